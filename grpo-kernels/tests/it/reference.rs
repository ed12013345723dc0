//! Naive f64 reference implementations and test helpers shared by the test modules.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in [-scale, scale].
pub fn randv(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..=scale)).collect()
}

pub fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise, reporting the worst element.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() - (atol + rtol * w.abs());
        assert!(!(g as f64).is_nan(), "{what}[{i}] is NaN (want {w})");
        if err > worst.1 {
            worst = (i, err);
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        panic!(
            "{what}[{i}]: got {} want {} (atol {atol}, rtol {rtol})",
            got[i], want[i]
        );
    }
}

pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for p in 0..k {
                let av = if ta { a[p * m + i] } else { a[i * k + p] };
                let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                s += av * bv;
            }
            out[i * n + j] = s;
        }
    }
    out
}

pub fn rmsnorm(x: &[f64], w: &[f64], rows: usize, dim: usize, eps: f64) -> Vec<f64> {
    let mut out = vec![0.0; rows * dim];
    for r in 0..rows {
        let row = &x[r * dim..(r + 1) * dim];
        let ms = row.iter().map(|v| v * v).sum::<f64>() / dim as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for i in 0..dim {
            out[r * dim + i] = row[i] * inv * w[i];
        }
    }
    out
}

pub fn rope(x: &[f64], positions: &[usize], heads: usize, hd: usize, theta: f64) -> Vec<f64> {
    let half = hd / 2;
    let mut out = x.to_vec();
    for (t, &p) in positions.iter().enumerate() {
        for h in 0..heads {
            let base = (t * heads + h) * hd;
            for i in 0..half {
                let ang = p as f64 / theta.powf(2.0 * i as f64 / hd as f64);
                let (c, s) = (ang.cos(), ang.sin());
                let (a, b) = (x[base + i], x[base + half + i]);
                out[base + i] = a * c - b * s;
                out[base + half + i] = b * c + a * s;
            }
        }
    }
    out
}

pub struct AttnShape {
    pub tq: usize,
    pub tk: usize,
    pub hq: usize,
    pub hkv: usize,
    pub d: usize,
    pub q_offset: usize,
    pub scale: f64,
}

/// Returns (out [tq,hq,d], lse [hq,tq]).
pub fn attention(q: &[f64], k: &[f64], v: &[f64], s: &AttnShape) -> (Vec<f64>, Vec<f64>) {
    let (tq, hq, hkv, d) = (s.tq, s.hq, s.hkv, s.d);
    assert!(
        s.q_offset + tq <= s.tk,
        "reference attention: q_offset + tq > tk"
    );
    let mut out = vec![0.0; tq * hq * d];
    let mut lse = vec![0.0; hq * tq];
    for h in 0..hq {
        let g = h / (hq / hkv);
        for i in 0..tq {
            let n = s.q_offset + i + 1;
            let scores: Vec<f64> = (0..n)
                .map(|j| {
                    (0..d)
                        .map(|p| q[(i * hq + h) * d + p] * k[(j * hkv + g) * d + p])
                        .sum::<f64>()
                        * s.scale
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = scores.iter().map(|x| (x - m).exp()).sum();
            lse[h * tq + i] = m + z.ln();
            for j in 0..n {
                let pj = (scores[j] - m).exp() / z;
                for p in 0..d {
                    out[(i * hq + h) * d + p] += pj * v[(j * hkv + g) * d + p];
                }
            }
        }
    }
    (out, lse)
}

pub fn silu(g: f64) -> f64 {
    g / (1.0 + (-g).exp())
}

/// Returns (logp, entropy, lse) per token from full f64 logits.
pub fn logprob(
    hidden: &[f64],
    lm: &[f64],
    targets: &[u32],
    t: usize,
    h: usize,
    v: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let z = matmul(hidden, lm, t, h, v, false, true);
    let mut lp = vec![0.0; t];
    let mut ent = vec![0.0; t];
    let mut lse = vec![0.0; t];
    for i in 0..t {
        let row = &z[i * v..(i + 1) * v];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let l = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        lse[i] = l;
        lp[i] = row[targets[i] as usize] - l;
        ent[i] = -row.iter().map(|x| (x - l).exp() * (x - l)).sum::<f64>();
    }
    (lp, ent, lse)
}
