//! Criterion benches for grpo-kernels at model shapes.
//!
//! Shapes: the tiny Qwen2 of workloads C1/C2 (hidden 256, 8 heads, 2 KV heads, head_dim 32,
//! intermediate 704, 96-token sequences) and Qwen2.5-0.5B of C3/C4 (hidden 896, 14 heads,
//! 2 KV heads, head_dim 64, intermediate 4864, 128-token sequences). The fused log-prob group
//! compares the chunked op with materialising `[t, v]` logits and a full log-softmax; by
//! default it uses V = 32768 to keep the run short, and the full C5 shape (t = 512,
//! V = 151936) with `GRPO_BENCH_FULL=1`.
//!
//! Run: `cargo bench -p grpo-kernels --bench ops [-- FILTER]`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use grpo_kernels::ops::{attention, gemm, logprob};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

fn randv(n: usize, seed: u64) -> Vec<f32> {
    let mut g = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| g.random_range(-1.0f32..1.0)).collect()
}

fn bench_matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    // (name, m, k, n, trans_a, trans_b): forward x·Wᵀ, backward dX = dY·W, dW = dYᵀ·X.
    let shapes = [
        ("tiny_qkv_fwd", 12288, 256, 384, false, true),
        ("tiny_mlp_up_fwd", 12288, 256, 1408, false, true),
        ("tiny_mlp_down_dw", 256, 12288, 704, true, false),
        ("qwen05_qkv_fwd", 1024, 896, 1152, false, true),
        ("qwen05_gate_up_fwd", 1024, 896, 9728, false, true),
        ("qwen05_down_fwd", 1024, 4864, 896, false, true),
        ("qwen05_down_dx", 1024, 896, 4864, false, false),
        ("qwen05_down_dw", 896, 1024, 4864, true, false),
        ("qwen05_decode_gate_up", 8, 896, 9728, false, true),
        ("qwen05_decode1_down", 1, 4864, 896, false, true),
        ("qwen05_decode16_gate_up", 16, 896, 9728, false, true),
        ("qwen05_decode32_gate_up", 32, 896, 9728, false, true),
    ];
    for (name, m, k, n, ta, tb) in shapes {
        let a = randv(m * k, 1);
        let b = randv(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(name, |bch| {
            bch.iter(|| {
                gemm::matmul(
                    &mut out,
                    black_box(&a),
                    black_box(&b),
                    m,
                    k,
                    n,
                    ta,
                    tb,
                    false,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn bench_attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    // (name, sequences, t, hq, hkv, d): one call per sequence.
    for (name, seqs, t, hq, hkv, d) in [
        ("tiny_c2", 16, 96, 8, 2, 32),
        ("qwen05_c4", 8, 128, 14, 2, 64),
        ("qwen05_long", 1, 2048, 14, 2, 64),
    ] {
        let q = randv(t * hq * d, 3);
        let k = randv(t * hkv * d, 4);
        let v = randv(t * hkv * d, 5);
        let dout = randv(t * hq * d, 6);
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0.0f32; t * hq * d];
        let mut lse = vec![0.0f32; hq * t];
        group.bench_function(BenchmarkId::new("fwd", name), |b| {
            b.iter(|| {
                for _ in 0..seqs {
                    attention::attention_fwd(
                        &mut out, &mut lse, &q, &k, &v, t, t, hq, hkv, d, 0, scale,
                    )
                    .unwrap();
                }
            })
        });
        let (mut dq, mut dk, mut dv) = (
            vec![0.0f32; q.len()],
            vec![0.0f32; k.len()],
            vec![0.0f32; v.len()],
        );
        group.bench_function(BenchmarkId::new("bwd", name), |b| {
            b.iter(|| {
                for _ in 0..seqs {
                    attention::attention_bwd(
                        &mut dq, &mut dk, &mut dv, &dout, &q, &k, &v, &out, &lse, t, t, hq, hkv, d,
                        0, scale,
                    )
                    .unwrap();
                }
            })
        });
    }
    group.finish();
}

/// Materialised baseline: full logits, log-softmax, gather, entropy; backward through the full
/// `[t, v]` gradient (what eager PyTorch does).
fn materialised_fwd_bwd(
    hidden: &[f32],
    lm: &[f32],
    targets: &[u32],
    t: usize,
    h: usize,
    v: usize,
    dh: &mut [f32],
    dlm: &mut [f32],
) {
    let mut z = vec![0.0f32; t * v];
    gemm::matmul(&mut z, hidden, lm, t, h, v, false, true, false).unwrap();
    for (i, row) in z.chunks_mut(v).enumerate() {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = row.iter().map(|x| (x - m).exp()).sum();
        let l = m + s.ln();
        for x in row.iter_mut() {
            *x = -(*x - l).exp(); // d logp / dz with dlogp = 1
        }
        row[targets[i] as usize] += 1.0;
    }
    gemm::matmul(dh, &z, lm, t, v, h, false, false, false).unwrap();
    gemm::matmul(dlm, &z, hidden, v, t, h, true, false, true).unwrap();
}

fn bench_logprob(c: &mut Criterion) {
    let full = std::env::var_os("GRPO_BENCH_FULL").is_some();
    let (t, h, v) = if full {
        (512, 896, 151_936)
    } else {
        (512, 896, 32_768)
    };
    let hidden = randv(t * h, 7);
    let lm = randv(v * h, 8);
    let targets: Vec<u32> = (0..t).map(|i| (i * 7919 % v) as u32).collect();
    let mut group = c.benchmark_group(format!("logprob_t{t}_h{h}_v{v}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(if full { 30 } else { 8 }));
    let (mut lp, mut ent, mut lse) = (vec![0.0f32; t], vec![0.0f32; t], vec![0.0f32; t]);
    let (mut dh, mut dlm) = (vec![0.0f32; t * h], vec![0.0f32; v * h]);
    let ones = vec![1.0f32; t];
    let zeros = vec![0.0f32; t];
    for chunk in [1024usize, 4096] {
        group.bench_function(BenchmarkId::new("fused_fwd", chunk), |b| {
            b.iter(|| {
                logprob::logprob_fwd(
                    &mut lp, &mut ent, &mut lse, &hidden, &lm, &targets, t, h, v, chunk,
                )
                .unwrap()
            })
        });
    }
    for chunk in [1024usize, 4096, 16384] {
        group.bench_function(BenchmarkId::new("fused_fwd_bwd", chunk), |b| {
            b.iter(|| {
                logprob::logprob_fwd(
                    &mut lp, &mut ent, &mut lse, &hidden, &lm, &targets, t, h, v, chunk,
                )
                .unwrap();
                logprob::logprob_bwd(
                    &mut dh, &mut dlm, &ones, &zeros, &hidden, &lm, &targets, &lse, &ent, t, h, v,
                    chunk,
                )
                .unwrap();
            })
        });
    }
    group.bench_function("materialised_fwd_bwd", |b| {
        b.iter(|| materialised_fwd_bwd(&hidden, &lm, &targets, t, h, v, &mut dh, &mut dlm))
    });
    group.finish();
}

criterion_group!(benches, bench_matmul, bench_attention, bench_logprob);
criterion_main!(benches);
