//! Decode-step attention of one query row over a paged KV cache (the generation engine's
//! inner loop).
//!
//! # Contract (shared with the future CUDA twin)
//!
//! All buffers f32, row-major:
//! - `v_cache`: one layer's values `[num_blocks, block_size, hkv·d]`;
//! - `k_cache`: one layer's keys, transposed within each block: `[num_blocks, hkv·d,
//!   block_size]` (key element `c` of the position in slot `s` of block `b` is at
//!   `(b·hkv·d + c)·block_size + s`), so the scores of a block's positions are vector lanes;
//! - `blocks`: the sequence's block table, position `p` in block `blocks[p / block_size]`,
//!   slot `p % block_size`; it must cover positions `0..=pos`;
//! - `q`, `out`: `[hq·d]`, the query row at position `pos` and its output (overwritten).
//!
//! Query head `h` uses KV head `h / (hq / hkv)`; `out = softmax(scale · q·Kᵀ) · V` over
//! positions `0..=pos`. The query heads of one KV head are processed together, so each key
//! and value row is read once per group. `scores` is caller-owned scratch (resized here) so
//! a decode step allocates nothing per row.
//!
//! CPU: compiled for AVX-512, AVX2+FMA and the baseline by `multiversion!` (same scalar code;
//! the softmax uses the crate's shared `math::max` / `math::exp_sub_inplace`;
//! fused multiply-adds, fixed summation order: every version returns the same bits, and a
//! row's result depends only on its own inputs, never on the batch).

use crate::Result;
use crate::error::invalid;
use crate::ops::math::{self, multiversion};

/// Lanes of the dot-product accumulators.
const LANES: usize = 16;

/// Head shapes of [`paged_attention_row`]: query heads, KV heads, head dim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Query heads `hq` (a multiple of `hkv`).
    pub q: usize,
    /// Key/value heads `hkv`.
    pub kv: usize,
    /// Head dimension `d`.
    pub dim: usize,
}

/// One query row at position `pos` attending to positions `0..=pos` of a paged cache; see
/// the module doc for layouts. Errors name the argument that does not fit the shapes (a
/// block id outside the cache, a table too short for `pos`, wrong `q`/`out` lengths).
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_row(
    k_cache: &[f32],
    v_cache: &[f32],
    block_size: usize,
    blocks: &[u32],
    pos: usize,
    q: &[f32],
    out: &mut [f32],
    heads: Heads,
    scale: f32,
    scores: &mut Vec<f32>,
) -> Result<()> {
    const OP: &str = "paged_attention_row";
    let Heads {
        q: hq,
        kv: hkv,
        dim: d,
    } = heads;
    if hkv == 0 || d == 0 || !hq.is_multiple_of(hkv) || block_size == 0 {
        return Err(invalid(
            OP,
            "heads",
            format!("hq {hq}, hkv {hkv}, d {d}, block_size {block_size}"),
        ));
    }
    let kvd = hkv * d;
    if q.len() != hq * d {
        return Err(invalid(
            OP,
            "q",
            format!("{} floats, want {}", q.len(), hq * d),
        ));
    }
    if out.len() != hq * d {
        return Err(invalid(
            OP,
            "out",
            format!("{} floats, want {}", out.len(), hq * d),
        ));
    }
    if k_cache.len() != v_cache.len() || !k_cache.len().is_multiple_of(block_size * kvd) {
        return Err(invalid(
            OP,
            "v_cache",
            format!(
                "k {} and v {} floats; both must be [blocks, {block_size}, {kvd}]",
                k_cache.len(),
                v_cache.len()
            ),
        ));
    }
    let num_blocks = k_cache.len() / (block_size * kvd);
    let tk = pos + 1;
    let need = tk.div_ceil(block_size);
    if blocks.len() < need {
        return Err(invalid(
            OP,
            "blocks",
            format!("{} blocks cover fewer than {tk} positions", blocks.len()),
        ));
    }
    let blocks = &blocks[..need];
    if let Some(b) = blocks.iter().find(|&&b| b as usize >= num_blocks) {
        return Err(invalid(
            OP,
            "blocks",
            format!("block {b} is outside a cache of {num_blocks} blocks"),
        ));
    }
    let group = hq / hkv;
    scores.clear();
    scores.resize(group * tk, 0.0);
    attend(
        k_cache, v_cache, block_size, blocks, tk, q, out, hkv, group, d, scale, scores,
    );
    Ok(())
}

multiversion! {
/// The checked body of [`paged_attention_row`] (`scores` has `group·tk` floats).
#[allow(clippy::too_many_arguments)]
fn attend(
    k_cache: &[f32],
    v_cache: &[f32],
    bs: usize,
    blocks: &[u32],
    tk: usize,
    q: &[f32],
    out: &mut [f32],
    hkv: usize,
    group: usize,
    d: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let kvd = hkv * d;
    for g in 0..hkv {
        let qg = &q[g * group * d..(g + 1) * group * d];
        // scores[r · tk + p] for query head g·group + r.
        let mut r = 0;
        while r < group {
            let rows = (group - r).min(PV_HEADS);
            let qr = &qg[r * d..(r + rows) * d];
            let sc = &mut scores[r * tk..(r + rows) * tk];
            match rows {
                4 => qk_tile::<4>(sc, qr, k_cache, bs, blocks, tk, kvd, g * d, d, scale),
                3 => qk_tile::<3>(sc, qr, k_cache, bs, blocks, tk, kvd, g * d, d, scale),
                2 => qk_tile::<2>(sc, qr, k_cache, bs, blocks, tk, kvd, g * d, d, scale),
                _ => qk_tile::<1>(sc, qr, k_cache, bs, blocks, tk, kvd, g * d, d, scale),
            }
            r += rows;
        }
        for sr in scores.chunks_exact_mut(tk) {
            let max = math::max(sr);
            let sum = math::exp_sub_inplace(sr, max) as f32;
            let inv = 1.0 / sum;
            for s in sr.iter_mut() {
                *s *= inv;
            }
        }
        let og = &mut out[g * group * d..(g + 1) * group * d];
        let sg = &scores[..group * tk];
        let mut r = 0;
        while r < group {
            let rows = (group - r).min(PV_HEADS);
            let (o, sc) = (&mut og[r * d..(r + rows) * d], &sg[r * tk..(r + rows) * tk]);
            match rows {
                4 => pv_tile::<4>(o, sc, v_cache, bs, blocks, tk, kvd, g * d, d),
                3 => pv_tile::<3>(o, sc, v_cache, bs, blocks, tk, kvd, g * d, d),
                2 => pv_tile::<2>(o, sc, v_cache, bs, blocks, tk, kvd, g * d, d),
                _ => pv_tile::<1>(o, sc, v_cache, bs, blocks, tk, kvd, g * d, d),
            }
            r += rows;
        }
    }
}
}

/// `scores[r, p] = scale · q[r, :] · k[p, off..off + d]` for `R` query heads and every
/// position `p < tk`: up to 16 positions of a block at a time as vector lanes of the
/// transposed key block (one broadcast multiply-add per key element, no horizontal sums).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn qk_tile<const R: usize>(
    scores: &mut [f32],
    q: &[f32],
    k_cache: &[f32],
    bs: usize,
    blocks: &[u32],
    tk: usize,
    kvd: usize,
    off: usize,
    d: usize,
    scale: f32,
) {
    for (bi, &b) in blocks.iter().enumerate() {
        let p0 = bi * bs;
        let n = (tk - p0).min(bs);
        let kb = &k_cache[b as usize * bs * kvd..][..bs * kvd];
        let mut s0 = 0;
        while s0 < n {
            let w = (n - s0).min(LANES);
            let mut acc = [[0.0f32; LANES]; R];
            if s0 + LANES <= bs {
                // Full lanes (slots past `n` hold stale values; their lanes are dropped).
                for i in 0..d {
                    let kt = &kb[(off + i) * bs + s0..(off + i) * bs + s0 + LANES];
                    for (r, a) in acc.iter_mut().enumerate() {
                        let qv = q[r * d + i];
                        for l in 0..LANES {
                            a[l] = qv.mul_add(kt[l], a[l]);
                        }
                    }
                }
            } else {
                for i in 0..d {
                    let kt = &kb[(off + i) * bs + s0..(off + i) * bs + s0 + w];
                    for (r, a) in acc.iter_mut().enumerate() {
                        let qv = q[r * d + i];
                        for (al, &kl) in a.iter_mut().zip(kt) {
                            *al = qv.mul_add(kl, *al);
                        }
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                for (dst, &x) in scores[r * tk + p0 + s0..r * tk + p0 + s0 + w]
                    .iter_mut()
                    .zip(a)
                {
                    *dst = scale * x;
                }
            }
            s0 += w;
        }
    }
}

/// Query heads whose outputs accumulate together in [`pv_tile`] (each value chunk is loaded
/// once for all of them; `PV_HEADS` independent accumulators hide the FMA latency).
const PV_HEADS: usize = 4;

/// `out[r, :] = Σ_p scores[r, p] · v[p, off..off + d]` for `R` query heads, 16 output dims at
/// a time accumulated in registers over all positions (read through the block table).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pv_tile<const R: usize>(
    out: &mut [f32],
    scores: &[f32],
    v_cache: &[f32],
    bs: usize,
    blocks: &[u32],
    tk: usize,
    kvd: usize,
    off: usize,
    d: usize,
) {
    let mut c0 = 0;
    while c0 < d {
        let w = (d - c0).min(LANES);
        let mut acc = [[0.0f32; LANES]; R];
        for (bi, &b) in blocks.iter().enumerate() {
            let p0 = bi * bs;
            let n = (tk - p0).min(bs);
            let vb = &v_cache[b as usize * bs * kvd..][..n * kvd];
            for (j, vrow) in vb.chunks_exact(kvd).enumerate() {
                let v = &vrow[off + c0..off + c0 + w];
                if w == LANES {
                    for (r, a) in acc.iter_mut().enumerate() {
                        let s = scores[r * tk + p0 + j];
                        for l in 0..LANES {
                            a[l] = s.mul_add(v[l], a[l]);
                        }
                    }
                } else {
                    for (r, a) in acc.iter_mut().enumerate() {
                        let s = scores[r * tk + p0 + j];
                        for (al, &vl) in a.iter_mut().zip(v) {
                            *al = s.mul_add(vl, *al);
                        }
                    }
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            out[r * d + c0..r * d + c0 + w].copy_from_slice(&a[..w]);
        }
        c0 += w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: contiguous K/V rows, f64 softmax.
    fn naive(k: &[f32], v: &[f32], q: &[f32], heads: Heads, tk: usize, scale: f32) -> Vec<f32> {
        let Heads {
            q: hq,
            kv: hkv,
            dim: d,
        } = heads;
        let group = hq / hkv;
        let mut out = vec![0.0f32; hq * d];
        for h in 0..hq {
            let g = h / group;
            let s: Vec<f64> = (0..tk)
                .map(|p| {
                    (0..d)
                        .map(|i| f64::from(q[h * d + i]) * f64::from(k[(p * hkv + g) * d + i]))
                        .sum::<f64>()
                        * f64::from(scale)
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for i in 0..d {
                let o: f64 = (0..tk)
                    .map(|p| (s[p] - m).exp() / z * f64::from(v[(p * hkv + g) * d + i]))
                    .sum();
                out[h * d + i] = o as f32;
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32)
            .map(|x| (x / 16_777_216.0) * 2.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_contiguous_reference_through_a_scrambled_block_table() {
        for (heads, bs, pos) in [
            (
                Heads {
                    q: 8,
                    kv: 2,
                    dim: 32,
                },
                16,
                40,
            ),
            (
                Heads {
                    q: 14,
                    kv: 2,
                    dim: 64,
                },
                16,
                0,
            ),
            (
                Heads {
                    q: 4,
                    kv: 4,
                    dim: 20,
                },
                3,
                17usize,
            ),
        ] {
            let kvd = heads.kv * heads.dim;
            let tk = pos + 1;
            let nb = tk.div_ceil(bs) + 3;
            let (kc, vc) = (values(nb * bs * kvd, 1), values(nb * bs * kvd, 2));
            // Block table in reverse order of storage.
            let blocks: Vec<u32> = (0..tk.div_ceil(bs)).map(|i| (nb - 1 - i) as u32).collect();
            let mut k = Vec::new();
            let mut v = Vec::new();
            for p in 0..tk {
                let (b, slot) = (blocks[p / bs] as usize, p % bs);
                let at = (b * bs + slot) * kvd;
                v.extend_from_slice(&vc[at..at + kvd]);
                // Keys are transposed within a block: element c at (b·kvd + c)·bs + slot.
                k.extend((0..kvd).map(|c| kc[(b * kvd + c) * bs + slot]));
            }
            let q = values(heads.q * heads.dim, 3);
            let scale = 1.0 / (heads.dim as f32).sqrt();
            let mut out = vec![0.0f32; q.len()];
            let mut scratch = Vec::new();
            paged_attention_row(
                &kc,
                &vc,
                bs,
                &blocks,
                pos,
                &q,
                &mut out,
                heads,
                scale,
                &mut scratch,
            )
            .unwrap();
            let want = naive(&k, &v, &q, heads, tk, scale);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{heads:?} pos {pos}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_shapes_name_the_argument() {
        let heads = Heads {
            q: 2,
            kv: 1,
            dim: 4,
        };
        let (kc, vc) = (vec![0.0; 2 * 4 * 4], vec![0.0; 2 * 4 * 4]);
        let q = vec![0.0; 8];
        let mut out = vec![0.0; 8];
        let mut s = Vec::new();
        let e = paged_attention_row(&kc, &vc, 4, &[0], 5, &q, &mut out, heads, 1.0, &mut s)
            .unwrap_err();
        assert!(e.to_string().contains("`blocks`"), "{e}");
        let e = paged_attention_row(&kc, &vc, 4, &[0, 7], 5, &q, &mut out, heads, 1.0, &mut s)
            .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let e = paged_attention_row(&kc, &vc, 4, &[0], 1, &q[..4], &mut out, heads, 1.0, &mut s)
            .unwrap_err();
        assert!(e.to_string().contains("`q`"), "{e}");
    }
}
