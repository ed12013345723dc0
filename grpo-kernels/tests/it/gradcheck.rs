//! Finite-difference checks for every backward op: central differences of the f64 reference
//! forward (itself checked against our forward in `cpu_reference`) against our f32 backward.
//! The loss is always `Σ w ⊙ output` with random weights `w`, so `dout = w`. Outputs the
//! backward accumulates into start from random values to check `+=` rather than `=`.

use crate::reference::{self as r, AttnShape, assert_close, randv, rng, to64};
use grpo_kernels::ops::{attention, embedding, logprob, rmsnorm, rope, swiglu};

/// Central-difference gradient of `f` at `x`.
fn numgrad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * x[i].abs().max(1.0);
            xp[i] = x[i] + h;
            let fp = f(&xp);
            xp[i] = x[i] - h;
            let fm = f(&xp);
            xp[i] = x[i];
            (fp - fm) / (2.0 * h)
        })
        .collect()
}

fn dot(a: &[f64], w: &[f32]) -> f64 {
    a.iter().zip(w).map(|(x, &y)| x * y as f64).sum()
}

/// Our accumulated gradient minus the random initial value it was added to.
fn minus(acc: &[f32], init: &[f32]) -> Vec<f32> {
    acc.iter().zip(init).map(|(a, b)| a - b).collect()
}

const ATOL: f64 = 2e-4;
const RTOL: f64 = 2e-3;

#[test]
fn rmsnorm_backward() {
    for (seed, &(rows, dim)) in [(1usize, 1usize), (3, 5), (4, 17)].iter().enumerate() {
        let mut g = rng(seed as u64);
        let x = randv(&mut g, rows * dim, 2.0);
        let w = randv(&mut g, dim, 1.5);
        let wl = randv(&mut g, rows * dim, 1.0);
        let eps = 1e-5;
        let mut out = vec![0.0; rows * dim];
        let mut rstd = vec![0.0; rows];
        rmsnorm::rmsnorm_fwd(&mut out, &mut rstd, &x, &w, rows, dim, eps as f32).unwrap();
        let mut dx = vec![f32::NAN; rows * dim];
        let dw0 = randv(&mut g, dim, 1.0);
        let mut dw = dw0.clone();
        rmsnorm::rmsnorm_bwd(&mut dx, &mut dw, &wl, &x, &w, &rstd, rows, dim).unwrap();
        let (x64, w64) = (to64(&x), to64(&w));
        let gx = numgrad(&x64, |xx| dot(&r::rmsnorm(xx, &w64, rows, dim, eps), &wl));
        let gw = numgrad(&w64, |ww| dot(&r::rmsnorm(&x64, ww, rows, dim, eps), &wl));
        assert_close("rmsnorm dx", &dx, &gx, ATOL, RTOL);
        assert_close("rmsnorm dw", &minus(&dw, &dw0), &gw, ATOL, RTOL);
    }
}

#[test]
fn rope_backward() {
    let (tokens, heads, hd) = (4, 3, 6);
    let mut g = rng(7);
    let x = randv(&mut g, tokens * heads * hd, 1.0);
    let wl = randv(&mut g, tokens * heads * hd, 1.0);
    let positions = [0usize, 3, 17, 100];
    let table = rope::RopeTable::new(hd, 1e6, 128).unwrap();
    let mut dx = wl.clone();
    rope::rope_bwd(&mut dx, &positions, heads, hd, &table).unwrap();
    let gx = numgrad(&to64(&x), |xx| {
        dot(&r::rope(xx, &positions, heads, hd, 1e6), &wl)
    });
    assert_close("rope dx", &dx, &gx, ATOL, RTOL);
}

fn attention_case(tq: usize, tk: usize, hq: usize, hkv: usize, d: usize, seed: u64) {
    let q_offset = tk - tq;
    let scale = 1.0 / (d as f32).sqrt();
    let mut g = rng(seed);
    let q = randv(&mut g, tq * hq * d, 1.5);
    let k = randv(&mut g, tk * hkv * d, 1.5);
    let v = randv(&mut g, tk * hkv * d, 1.0);
    let wl = randv(&mut g, tq * hq * d, 1.0);
    let mut out = vec![0.0; tq * hq * d];
    let mut lse = vec![0.0; hq * tq];
    attention::attention_fwd(
        &mut out, &mut lse, &q, &k, &v, tq, tk, hq, hkv, d, q_offset, scale,
    )
    .unwrap();
    let mut dq = vec![f32::NAN; q.len()];
    let dk0 = randv(&mut g, k.len(), 1.0);
    let dv0 = randv(&mut g, v.len(), 1.0);
    let (mut dk, mut dv) = (dk0.clone(), dv0.clone());
    attention::attention_bwd(
        &mut dq, &mut dk, &mut dv, &wl, &q, &k, &v, &out, &lse, tq, tk, hq, hkv, d, q_offset, scale,
    )
    .unwrap();
    let s = AttnShape {
        tq,
        tk,
        hq,
        hkv,
        d,
        q_offset,
        scale: scale as f64,
    };
    let (q64, k64, v64) = (to64(&q), to64(&k), to64(&v));
    let gq = numgrad(&q64, |x| dot(&r::attention(x, &k64, &v64, &s).0, &wl));
    let gk = numgrad(&k64, |x| dot(&r::attention(&q64, x, &v64, &s).0, &wl));
    let gv = numgrad(&v64, |x| dot(&r::attention(&q64, &k64, x, &s).0, &wl));
    let what = format!("attention tq={tq} tk={tk} hq={hq} hkv={hkv} d={d}");
    assert_close(&format!("{what} dq"), &dq, &gq, ATOL, RTOL);
    assert_close(&format!("{what} dk"), &minus(&dk, &dk0), &gk, ATOL, RTOL);
    assert_close(&format!("{what} dv"), &minus(&dv, &dv0), &gv, ATOL, RTOL);
}

#[test]
fn attention_backward_self() {
    attention_case(5, 5, 2, 1, 4, 1);
    attention_case(4, 4, 3, 3, 3, 2);
}

#[test]
fn attention_backward_with_offset_and_gqa() {
    // q_offset > 0 (prefix / cache), GQA ratio 2 and 3, decode (tq = 1).
    attention_case(3, 8, 4, 2, 5, 3);
    attention_case(1, 6, 6, 2, 4, 4);
}

#[test]
fn attention_backward_several_query_blocks() {
    // tq > 64 crosses the kernel's query-block boundary.
    attention_case(67, 70, 2, 1, 2, 5);
}

#[test]
fn swiglu_backward() {
    let n = 37;
    let mut g = rng(11);
    let gate = randv(&mut g, n, 5.0);
    let up = randv(&mut g, n, 2.0);
    let wl = randv(&mut g, n, 1.0);
    let (mut dg, mut du) = (vec![f32::NAN; n], vec![f32::NAN; n]);
    swiglu::swiglu_bwd(&mut dg, &mut du, &wl, &gate, &up).unwrap();
    let (g64, u64_) = (to64(&gate), to64(&up));
    let f = |gg: &[f64], uu: &[f64]| -> f64 {
        gg.iter()
            .zip(uu)
            .zip(&wl)
            .map(|((&a, &b), &w)| r::silu(a) * b * w as f64)
            .sum()
    };
    assert_close(
        "swiglu dgate",
        &dg,
        &numgrad(&g64, |x| f(x, &u64_)),
        ATOL,
        RTOL,
    );
    assert_close(
        "swiglu dup",
        &du,
        &numgrad(&u64_, |x| f(&g64, x)),
        ATOL,
        RTOL,
    );
}

#[test]
fn embedding_backward() {
    let (vocab, d) = (6, 3);
    let ids = [1u32, 4, 1, 0, 5, 1];
    let mut g = rng(12);
    let table = randv(&mut g, vocab * d, 1.0);
    let wl = randv(&mut g, ids.len() * d, 1.0);
    let dt0 = randv(&mut g, vocab * d, 1.0);
    let mut dt = dt0.clone();
    embedding::embedding_bwd(&mut dt, &wl, &ids, d).unwrap();
    let gather = |tab: &[f64]| -> f64 {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                (0..d)
                    .map(|c| tab[id as usize * d + c] * wl[i * d + c] as f64)
                    .sum::<f64>()
            })
            .sum()
    };
    assert_close(
        "embedding dtable",
        &minus(&dt, &dt0),
        &numgrad(&to64(&table), gather),
        ATOL,
        RTOL,
    );
}

/// Loss `Σ a·logp + b·entropy`; checks dhidden and dlm_head.
fn logprob_case(
    t: usize,
    h: usize,
    v: usize,
    chunk: usize,
    use_logp: bool,
    use_ent: bool,
    seed: u64,
) {
    let mut g = rng(seed);
    let hidden = randv(&mut g, t * h, 1.0);
    let lm = randv(&mut g, v * h, 1.0);
    let targets: Vec<u32> = (0..t).map(|i| ((i * 7 + 3) % v) as u32).collect();
    let a: Vec<f32> = if use_logp {
        randv(&mut g, t, 1.0)
    } else {
        vec![0.0; t]
    };
    let b: Vec<f32> = if use_ent {
        randv(&mut g, t, 1.0)
    } else {
        vec![0.0; t]
    };
    let (mut lp, mut ent, mut lse) = (vec![0.0; t], vec![0.0; t], vec![0.0; t]);
    logprob::logprob_fwd(
        &mut lp, &mut ent, &mut lse, &hidden, &lm, &targets, t, h, v, chunk,
    )
    .unwrap();
    let mut dh = vec![f32::NAN; t * h];
    let dlm0 = randv(&mut g, v * h, 1.0);
    let mut dlm = dlm0.clone();
    logprob::logprob_bwd(
        &mut dh, &mut dlm, &a, &b, &hidden, &lm, &targets, &lse, &ent, t, h, v, chunk,
    )
    .unwrap();
    let loss = |hh: &[f64], ll: &[f64]| -> f64 {
        let (lp, ent, _) = r::logprob(hh, ll, &targets, t, h, v);
        dot(&lp, &a) + dot(&ent, &b)
    };
    let (h64, l64) = (to64(&hidden), to64(&lm));
    let what = format!("logprob t={t} h={h} v={v} chunk={chunk} logp={use_logp} entropy={use_ent}");
    assert_close(
        &format!("{what} dhidden"),
        &dh,
        &numgrad(&h64, |x| loss(x, &l64)),
        ATOL,
        RTOL,
    );
    assert_close(
        &format!("{what} dlm_head"),
        &minus(&dlm, &dlm0),
        &numgrad(&l64, |x| loss(&h64, x)),
        ATOL,
        RTOL,
    );
}

#[test]
fn logprob_backward_dlogp_only() {
    logprob_case(4, 5, 11, 3, true, false, 21);
}

#[test]
fn logprob_backward_dentropy_only() {
    logprob_case(4, 5, 11, 4, false, true, 22);
}

#[test]
fn logprob_backward_both_and_odd_chunks() {
    logprob_case(5, 3, 13, 13, true, true, 23);
    logprob_case(3, 6, 9, 2, true, true, 24);
    logprob_case(2, 4, 7, 100, true, true, 25);
}
