//! Each CPU op against the naive f64 reference on random shapes (odd sizes, GQA ratios,
//! block boundaries of the attention and log-prob kernels).

use crate::reference::{self as r, AttnShape, assert_close, randv, rng, to64};
use grpo_kernels::ops::{attention, embedding, gemm, logprob, rmsnorm, rope, swiglu};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matmul_matches_naive(m in 1usize..40, k in 0usize..40, n in 1usize..40, ta: bool, tb: bool, acc: bool, seed: u64) {
        let mut g = rng(seed);
        let a = randv(&mut g, m * k, 1.0);
        let b = randv(&mut g, k * n, 1.0);
        let init = randv(&mut g, m * n, 1.0);
        let mut out = init.clone();
        gemm::matmul(&mut out, &a, &b, m, k, n, ta, tb, acc).unwrap();
        let mut want = r::matmul(&to64(&a), &to64(&b), m, k, n, ta, tb);
        if acc {
            for (w, &i) in want.iter_mut().zip(&init) { *w += i as f64; }
        }
        assert_close("matmul", &out, &want, 1e-5, 1e-5);
    }

    #[test]
    fn rmsnorm_matches_naive(rows in 1usize..20, dim in 1usize..70, seed: u64) {
        let mut g = rng(seed);
        let x = randv(&mut g, rows * dim, 3.0);
        let w = randv(&mut g, dim, 2.0);
        let mut out = vec![0.0; rows * dim];
        let mut rstd = vec![0.0; rows];
        rmsnorm::rmsnorm_fwd(&mut out, &mut rstd, &x, &w, rows, dim, 1e-6).unwrap();
        assert_close("rmsnorm", &out, &r::rmsnorm(&to64(&x), &to64(&w), rows, dim, 1e-6), 1e-5, 1e-5);
    }

    #[test]
    fn rope_matches_naive(tokens in 1usize..12, heads in 1usize..5, half in 1usize..9, seed: u64) {
        let hd = 2 * half;
        let mut g = rng(seed);
        let x = randv(&mut g, tokens * heads * hd, 1.0);
        let positions: Vec<usize> = (0..tokens).map(|i| (i * 37 + seed as usize % 100) % 500).collect();
        let table = rope::RopeTable::new(hd, 10000.0, 512).unwrap();
        let mut y = x.clone();
        rope::rope_fwd(&mut y, &positions, heads, hd, &table).unwrap();
        // f32 angles (as transformers computes them) differ from f64 by ~pos·1e-7.
        assert_close("rope", &y, &r::rope(&to64(&x), &positions, heads, hd, 10000.0), 2e-4, 1e-4);
    }

    #[test]
    fn swiglu_matches_naive(n in 0usize..9000, seed: u64) {
        let mut g = rng(seed);
        let gate = randv(&mut g, n, 6.0);
        let up = randv(&mut g, n, 2.0);
        let mut out = vec![0.0; n];
        swiglu::swiglu_fwd(&mut out, &gate, &up).unwrap();
        let want: Vec<f64> = gate.iter().zip(&up).map(|(&a, &b)| r::silu(a as f64) * b as f64).collect();
        assert_close("swiglu", &out, &want, 1e-6, 1e-5);
    }

    #[test]
    fn embedding_matches_naive(vocab in 1usize..50, d in 1usize..200, t in 0usize..400, seed: u64) {
        let mut g = rng(seed);
        let table = randv(&mut g, vocab * d, 1.0);
        let ids: Vec<u32> = (0..t).map(|i| ((i as u64 * 7919 + seed) % vocab as u64) as u32).collect();
        let mut out = vec![0.0; t * d];
        embedding::embedding_fwd(&mut out, &table, &ids, d).unwrap();
        for (i, &id) in ids.iter().enumerate() {
            prop_assert_eq!(&out[i * d..(i + 1) * d], &table[id as usize * d..(id as usize + 1) * d]);
        }
        let dout = randv(&mut g, t * d, 1.0);
        let init = randv(&mut g, vocab * d, 1.0);
        let mut dt = init.clone();
        embedding::embedding_bwd(&mut dt, &dout, &ids, d).unwrap();
        let mut want = to64(&init);
        for (i, &id) in ids.iter().enumerate() {
            for c in 0..d { want[id as usize * d + c] += dout[i * d + c] as f64; }
        }
        assert_close("embedding_bwd", &dt, &want, 1e-5, 1e-5);
    }
}

fn check_attention(tq: usize, tk: usize, hq: usize, hkv: usize, d: usize, seed: u64) {
    let q_offset = tk - tq;
    let scale = 1.0 / (d as f32).sqrt();
    let mut g = rng(seed);
    let q = randv(&mut g, tq * hq * d, 1.5);
    let k = randv(&mut g, tk * hkv * d, 1.5);
    let v = randv(&mut g, tk * hkv * d, 1.0);
    let mut out = vec![0.0; tq * hq * d];
    let mut lse = vec![0.0; hq * tq];
    attention::attention_fwd(
        &mut out, &mut lse, &q, &k, &v, tq, tk, hq, hkv, d, q_offset, scale,
    )
    .unwrap();
    let shape = AttnShape {
        tq,
        tk,
        hq,
        hkv,
        d,
        q_offset,
        scale: scale as f64,
    };
    let (want, want_lse) = r::attention(&to64(&q), &to64(&k), &to64(&v), &shape);
    let what = format!("attention tq={tq} tk={tk} hq={hq} hkv={hkv} d={d}");
    assert_close(&format!("{what} out"), &out, &want, 2e-5, 1e-4);
    assert_close(&format!("{what} lse"), &lse, &want_lse, 2e-5, 1e-5);
}

#[test]
fn attention_matches_naive_on_varied_shapes() {
    // (tq, tk, hq, hkv, d): self-attention, GQA 1/2/3/7, prefix offsets, decode (tq = 1),
    // and tq > 64 so several query blocks are exercised.
    let shapes = [
        (1, 1, 1, 1, 1),
        (5, 5, 2, 2, 3),
        (7, 7, 4, 2, 8),
        (9, 13, 6, 2, 5),
        (1, 17, 14, 2, 16),
        (3, 40, 3, 1, 7),
        (70, 70, 2, 1, 4),
        (130, 150, 7, 7, 9),
        (65, 65, 14, 2, 6),
    ];
    for (n, &(tq, tk, hq, hkv, d)) in shapes.iter().enumerate() {
        check_attention(tq, tk, hq, hkv, d, n as u64);
    }
}

#[test]
fn attention_decode_equals_last_row_of_full() {
    // A KV-cache decode step (tq = 1, q_offset = tk - 1) equals the last query of a full pass.
    let (t, hq, hkv, d) = (11, 4, 2, 8);
    let mut g = rng(99);
    let q = randv(&mut g, t * hq * d, 1.0);
    let k = randv(&mut g, t * hkv * d, 1.0);
    let v = randv(&mut g, t * hkv * d, 1.0);
    let mut full = vec![0.0; t * hq * d];
    let mut lse = vec![0.0; hq * t];
    attention::attention_fwd(&mut full, &mut lse, &q, &k, &v, t, t, hq, hkv, d, 0, 0.3).unwrap();
    let mut one = vec![0.0; hq * d];
    let mut lse1 = vec![0.0; hq];
    attention::attention_fwd(
        &mut one,
        &mut lse1,
        &q[(t - 1) * hq * d..],
        &k,
        &v,
        1,
        t,
        hq,
        hkv,
        d,
        t - 1,
        0.3,
    )
    .unwrap();
    let want: Vec<f64> = to64(&full[(t - 1) * hq * d..]);
    assert_close("decode", &one, &want, 1e-6, 1e-6);
}

#[test]
fn attention_on_this_thread_equals_the_parallel_split_bit_for_bit() {
    // Several query blocks (BQ = 64), a prefix offset and GQA: `on_this_thread` runs the
    // same per-(head, block) computations on one thread, so every bit must agree.
    let (tq, tk, hq, hkv, d) = (150, 170, 6, 2, 16);
    let q_offset = tk - tq;
    let mut g = rng(7);
    let q = randv(&mut g, tq * hq * d, 1.5);
    let k = randv(&mut g, tk * hkv * d, 1.5);
    let v = randv(&mut g, tk * hkv * d, 1.0);
    let dout = randv(&mut g, tq * hq * d, 1.0);
    let dk0 = randv(&mut g, k.len(), 1.0);
    let run = || {
        let mut out = vec![0.0f32; tq * hq * d];
        let mut lse = vec![0.0f32; hq * tq];
        attention::attention_fwd(
            &mut out, &mut lse, &q, &k, &v, tq, tk, hq, hkv, d, q_offset, 0.25,
        )
        .unwrap();
        let mut dq = vec![f32::NAN; q.len()];
        let (mut dk, mut dv) = (dk0.clone(), dk0.clone());
        attention::attention_bwd(
            &mut dq, &mut dk, &mut dv, &dout, &q, &k, &v, &out, &lse, tq, tk, hq, hkv, d, q_offset,
            0.25,
        )
        .unwrap();
        [out, lse, dq, dk, dv].map(|x| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
    };
    let (par, ser) = (run(), attention::on_this_thread(run));
    for (name, (a, b)) in ["out", "lse", "dq", "dk", "dv"]
        .iter()
        .zip(par.iter().zip(&ser))
    {
        assert_eq!(
            a, b,
            "{name} differs between one thread and the parallel split"
        );
    }
}

fn check_logprob(t: usize, h: usize, v: usize, chunk: usize, seed: u64) {
    let mut g = rng(seed);
    let hidden = randv(&mut g, t * h, 1.0);
    let lm = randv(&mut g, v * h, 1.0);
    let targets: Vec<u32> = (0..t)
        .map(|i| ((i as u64 * 31 + seed) % v as u64) as u32)
        .collect();
    let (mut lp, mut ent, mut lse) = (vec![0.0; t], vec![0.0; t], vec![0.0; t]);
    logprob::logprob_fwd(
        &mut lp, &mut ent, &mut lse, &hidden, &lm, &targets, t, h, v, chunk,
    )
    .unwrap();
    let (wlp, went, wlse) = r::logprob(&to64(&hidden), &to64(&lm), &targets, t, h, v);
    let what = format!("logprob t={t} h={h} v={v} chunk={chunk}");
    assert_close(&format!("{what} logp"), &lp, &wlp, 5e-5, 1e-5);
    assert_close(&format!("{what} entropy"), &ent, &went, 5e-5, 1e-5);
    assert_close(&format!("{what} lse"), &lse, &wlse, 5e-5, 1e-5);
}

#[test]
fn fused_logprob_matches_naive() {
    // chunk = 1, odd chunks, chunk > v, and t > 1024 (several token blocks).
    for (n, &(t, h, v, chunk)) in [
        (1, 1, 1, 1),
        (3, 5, 7, 1),
        (9, 16, 50, 7),
        (17, 8, 33, 100),
        (4, 12, 257, 64),
        (1030, 4, 9, 4),
    ]
    .iter()
    .enumerate()
    {
        check_logprob(t, h, v, chunk, n as u64);
    }
}

#[test]
fn fused_logprob_is_stable_for_large_logits() {
    // Logits around ±300: a naive exp would overflow f32.
    let (t, h, v) = (3, 2, 40);
    let hidden: Vec<f32> = vec![30.0, -10.0, 25.0, 25.0, -30.0, 5.0];
    let mut g = rng(5);
    let lm = randv(&mut g, v * h, 10.0);
    let targets = [0u32, 39, 17];
    let (mut lp, mut ent, mut lse) = (vec![0.0; t], vec![0.0; t], vec![0.0; t]);
    logprob::logprob_fwd(
        &mut lp, &mut ent, &mut lse, &hidden, &lm, &targets, t, h, v, 6,
    )
    .unwrap();
    let (wlp, went, _) = r::logprob(&to64(&hidden), &to64(&lm), &targets, t, h, v);
    assert_close("large logp", &lp, &wlp, 2e-3, 1e-5);
    assert_close("large entropy", &ent, &went, 2e-3, 1e-3);
}

#[test]
fn logits_helper_matches_naive() {
    let (t, h, v) = (3, 7, 11);
    let mut g = rng(8);
    let hidden = randv(&mut g, t * h, 1.0);
    let lm = randv(&mut g, v * h, 1.0);
    let mut out = vec![0.0; t * v];
    logprob::logits(&mut out, &hidden, &lm, t, h, v).unwrap();
    assert_close(
        "logits",
        &out,
        &r::matmul(&to64(&hidden), &to64(&lm), t, h, v, false, true),
        1e-5,
        1e-5,
    );
}
