//! Causal grouped-query attention forward/backward (also the KV-cache decode path and the
//! shared-prefix forward).
//!
//! # Contract
//!
//! All buffers f32, row-major, contiguous:
//! - `q`, `out`, `dout`, `dq`: `[tq, hq, d]`; `k`, `v`, `dk`, `dv`: `[tk, hkv, d]`;
//! - `lse`: `[hq, tq]`, the natural-log sum of exponentials of each query's scaled, masked
//!   scores (saved by the forward, consumed by the backward).
//!
//! Query `i` (0-based in `q`) attends to keys `j <= q_offset + i`; `q_offset + tq <= tk` is
//! required. Use `q_offset = tk - tq` for plain causal self-attention, for a KV-cache decode
//! step (`tq = 1`, keys = the whole cache), and for the shared-prefix (Prefix Grouper) forward
//! where keys = prompt keys ++ completion keys. Query head `h` uses KV head
//! `h / (hq / hkv)` (`hq` must be a multiple of `hkv`).
//!
//! `scores = scale · q·kᵀ`, `p = softmax(scores)` over the allowed keys, `out = p·v`.
//!
//! - [`attention_fwd`]: `out` and `lse` are overwritten.
//! - [`attention_bwd`]: `dq` is **overwritten**; `dk` and `dv` are **accumulated** (`+=`), so
//!   a shared prompt's KV gradients can collect contributions from several completions.
//!
//! CPU strategy: parallel over (query head, block of 64 queries) in the forward and over query
//! heads in the backward (rayon); inside [`on_this_thread`] the same items run on the calling
//! thread, with the same bits, for callers that parallelise over sequences (the model's
//! forward and backward run one task per sequence). The score block `[64, keys]` is computed
//! with the `gemm` crate and normalised with a numerically stable softmax whose `lse` is saved, so the
//! backward recomputes probabilities as `exp(score − lse)` (flash-attention style). Extra
//! memory: the forward holds one `[64, tk]` score block per task plus a head-major copy of
//! the output; the backward holds per-query-head partial `dK`/`dV` of `[q_offset + tq, d]`
//! each (`2 · hq · tk · d` floats), reduced into `dk`/`dv` at the end.

use super::gemm::{MatMut, MatRef, gemm_strided};
use super::math;
use crate::Result;
use crate::error::{check_len, checked_size, invalid};
use gemm::Parallelism;
use rayon::prelude::*;

/// Queries per block in the score computation.
const BQ: usize = 64;

/// Validated dimensions of one attention call.
#[derive(Clone, Copy)]
struct Dims {
    tq: usize,
    tk: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    q_offset: usize,
    scale: f32,
}

impl Dims {
    fn check(
        op: &'static str,
        tq: usize,
        tk: usize,
        hq: usize,
        hkv: usize,
        d: usize,
        q_offset: usize,
        scale: f32,
    ) -> Result<Self> {
        if hkv == 0 || hq == 0 || !hq.is_multiple_of(hkv) {
            return Err(invalid(
                op,
                "hq",
                format!("query heads {hq} must be a positive multiple of kv heads {hkv}"),
            ));
        }
        if d == 0 {
            return Err(invalid(op, "d", "head dimension must be positive"));
        }
        if q_offset.checked_add(tq).is_none_or(|end| end > tk) {
            return Err(invalid(
                op,
                "q_offset",
                format!("q_offset {q_offset} + tq {tq} exceeds tk {tk}"),
            ));
        }
        if !scale.is_finite() {
            return Err(invalid(op, "scale", format!("must be finite, got {scale}")));
        }
        Ok(Self {
            tq,
            tk,
            hq,
            hkv,
            d,
            q_offset,
            scale,
        })
    }

    fn group(&self) -> usize {
        self.hq / self.hkv
    }

    /// Keys visible to any query of the block starting at `i0` with `bq` rows.
    fn kv_len(&self, i0: usize, bq: usize) -> usize {
        (self.q_offset + i0 + bq).min(self.tk)
    }

    fn q_view<'a>(&self, q: &'a [f32], h: usize, i0: usize, bq: usize) -> MatRef<'a> {
        MatRef {
            data: q,
            offset: (i0 * self.hq + h) * self.d,
            rows: bq,
            cols: self.d,
            rs: self.hq * self.d,
            cs: 1,
        }
    }

    /// `K[0..kv_len, g, :]ᵀ` as a `[d, kv_len]` view.
    fn kt_view<'a>(&self, k: &'a [f32], g: usize, kv_len: usize) -> MatRef<'a> {
        MatRef {
            data: k,
            offset: g * self.d,
            rows: self.d,
            cols: kv_len,
            rs: 1,
            cs: self.hkv * self.d,
        }
    }

    /// `V[0..kv_len, g, :]` as a `[kv_len, d]` view.
    fn v_view<'a>(&self, v: &'a [f32], g: usize, kv_len: usize) -> MatRef<'a> {
        MatRef {
            data: v,
            offset: g * self.d,
            rows: kv_len,
            cols: self.d,
            rs: self.hkv * self.d,
            cs: 1,
        }
    }
}

fn mat_mut(data: &mut [f32], rows: usize, cols: usize) -> MatMut<'_> {
    MatMut {
        data,
        offset: 0,
        rows,
        cols,
        rs: cols,
        cs: 1,
    }
}

fn mat_ref(data: &[f32], rows: usize, cols: usize) -> MatRef<'_> {
    MatRef {
        data,
        offset: 0,
        rows,
        cols,
        rs: cols,
        cs: 1,
    }
}

/// `[rows, cols]` row-major buffer seen transposed as `[cols, rows]`.
fn mat_ref_t(data: &[f32], rows: usize, cols: usize) -> MatRef<'_> {
    MatRef {
        data,
        offset: 0,
        rows: cols,
        cols: rows,
        rs: 1,
        cs: cols,
    }
}

thread_local! {
    /// Set by [`on_this_thread`].
    static ON_THIS_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every [`attention_fwd`] / [`attention_bwd`] call it makes on this thread
/// computed on this thread alone, with the same bits as the parallel split: for callers that
/// already run many short sequences in parallel (one task per sequence beats splitting
/// each one across the pool).
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_THIS_THREAD.set(self.0);
        }
    }
    let _restore = Restore(ON_THIS_THREAD.replace(true));
    f()
}

/// Rayon's minimum items per task for the calling thread: 1 (split freely) or `usize::MAX`
/// (one task, run here) inside [`on_this_thread`].
fn min_len() -> usize {
    if ON_THIS_THREAD.get() { usize::MAX } else { 1 }
}

/// Causal GQA attention forward; see the module contract. Parallel over (query head, query
/// block).
pub fn attention_fwd(
    out: &mut [f32],
    lse: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    tq: usize,
    tk: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    q_offset: usize,
    scale: f32,
) -> Result<()> {
    const OP: &str = "attention_fwd";
    let dims = &Dims::check(OP, tq, tk, hq, hkv, d, q_offset, scale)?;
    let min_len = min_len();
    let nq = checked_size(OP, "q", &[tq, hq, d])?;
    let nk = checked_size(OP, "k", &[tk, hkv, d])?;
    check_len(OP, "out", out.len(), nq)?;
    check_len(OP, "q", q.len(), nq)?;
    check_len(OP, "k", k.len(), nk)?;
    check_len(OP, "v", v.len(), nk)?;
    check_len(OP, "lse", lse.len(), hq * tq)?;
    if tq == 0 {
        return Ok(());
    }
    let nqb = tq.div_ceil(BQ);
    // Head-major scratch, padded to whole blocks so every (head, block) item owns one chunk.
    let mut o_tmp = vec![0.0f32; hq * nqb * BQ * d];
    let mut lse_tmp = vec![0.0f32; hq * nqb * BQ];
    o_tmp
        .par_chunks_mut(BQ * d)
        .zip(lse_tmp.par_chunks_mut(BQ))
        .enumerate()
        .with_min_len(min_len)
        .try_for_each(|(item, (o_blk, lse_blk))| -> Result<()> {
            let (h, qb) = (item / nqb, item % nqb);
            let i0 = qb * BQ;
            let bq = BQ.min(tq - i0);
            let kv_len = dims.kv_len(i0, bq);
            let g = h / dims.group();
            let mut s = vec![0.0f32; bq * kv_len];
            gemm_strided(
                mat_mut(&mut s, bq, kv_len),
                dims.q_view(q, h, i0, bq),
                dims.kt_view(k, g, kv_len),
                false,
                scale,
                Parallelism::None,
            )?;
            for (r, row) in s.chunks_mut(kv_len).enumerate() {
                let limit = dims.q_offset + i0 + r + 1; // allowed keys: 0..limit
                let (live, masked) = row.split_at_mut(limit);
                let m = math::max(live);
                let sum = math::exp_sub_inplace(live, m);
                math::scale(live, (1.0 / sum) as f32);
                masked.fill(0.0);
                lse_blk[r] = (m as f64 + sum.ln()) as f32;
            }
            gemm_strided(
                mat_mut(&mut o_blk[..bq * d], bq, d),
                mat_ref(&s, bq, kv_len),
                dims.v_view(v, g, kv_len),
                false,
                1.0,
                Parallelism::None,
            )
        })?;
    let stride = nqb * BQ;
    out.par_chunks_mut(hq * d)
        .enumerate()
        .with_min_len(min_len.max(16))
        .for_each(|(i, row)| {
            for h in 0..hq {
                let src = (h * stride + i) * d;
                row[h * d..(h + 1) * d].copy_from_slice(&o_tmp[src..src + d]);
            }
        });
    for h in 0..hq {
        lse[h * tq..(h + 1) * tq].copy_from_slice(&lse_tmp[h * stride..h * stride + tq]);
    }
    Ok(())
}

/// Causal GQA attention backward: `dq` overwritten, `dk`/`dv` accumulated; `out` and `lse`
/// are the forward's outputs. See the module contract. Parallel over query heads.
pub fn attention_bwd(
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    tq: usize,
    tk: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    q_offset: usize,
    scale: f32,
) -> Result<()> {
    const OP: &str = "attention_bwd";
    let dims = &Dims::check(OP, tq, tk, hq, hkv, d, q_offset, scale)?;
    let min_len = min_len();
    let nq = checked_size(OP, "q", &[tq, hq, d])?;
    let nk = checked_size(OP, "k", &[tk, hkv, d])?;
    check_len(OP, "dq", dq.len(), nq)?;
    check_len(OP, "dout", dout.len(), nq)?;
    check_len(OP, "q", q.len(), nq)?;
    check_len(OP, "out", out.len(), nq)?;
    check_len(OP, "dk", dk.len(), nk)?;
    check_len(OP, "dv", dv.len(), nk)?;
    check_len(OP, "k", k.len(), nk)?;
    check_len(OP, "v", v.len(), nk)?;
    check_len(OP, "lse", lse.len(), hq * tq)?;
    if tq == 0 {
        return Ok(());
    }
    let kv_max = dims.kv_len(0, tq);
    // Per query head: (dq_h [tq, d], dk_h [kv_max, d], dv_h [kv_max, d]).
    let per_head: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..hq)
        .into_par_iter()
        .with_min_len(min_len)
        .map(|h| {
            head_bwd(
                dims,
                h,
                dout,
                q,
                k,
                v,
                out,
                &lse[h * tq..(h + 1) * tq],
                kv_max,
            )
        })
        .collect::<Result<_>>()?;
    dq.par_chunks_mut(hq * d)
        .enumerate()
        .with_min_len(min_len.max(16))
        .for_each(|(i, row)| {
            for (h, (dq_h, _, _)) in per_head.iter().enumerate() {
                row[h * d..(h + 1) * d].copy_from_slice(&dq_h[i * d..(i + 1) * d]);
            }
        });
    let group = dims.group();
    let add_kv = |dst: &mut [f32], pick: fn(&(Vec<f32>, Vec<f32>, Vec<f32>)) -> &Vec<f32>| {
        dst.par_chunks_mut(hkv * d)
            .take(kv_max)
            .enumerate()
            .with_min_len(min_len.max(16))
            .for_each(|(j, row)| {
                for (h, head) in per_head.iter().enumerate() {
                    let g = h / group;
                    let src = &pick(head)[j * d..(j + 1) * d];
                    for (x, y) in row[g * d..(g + 1) * d].iter_mut().zip(src) {
                        *x += y;
                    }
                }
            });
    };
    add_kv(dk, |t| &t.1);
    add_kv(dv, |t| &t.2);
    Ok(())
}

/// Backward of one query head over all its query blocks.
fn head_bwd(
    dims: &Dims,
    h: usize,
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse_h: &[f32],
    kv_max: usize,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let (tq, d, scale) = (dims.tq, dims.d, dims.scale);
    let g = h / dims.group();
    let mut dq_h = vec![0.0f32; tq * d];
    let mut dk_h = vec![0.0f32; kv_max * d];
    let mut dv_h = vec![0.0f32; kv_max * d];
    let mut p = vec![0.0f32; BQ * kv_max];
    let mut dp = vec![0.0f32; BQ * kv_max];
    let mut delta = [0.0f32; BQ];
    for i0 in (0..tq).step_by(BQ) {
        let bq = BQ.min(tq - i0);
        let kv_len = dims.kv_len(i0, bq);
        let p = &mut p[..bq * kv_len];
        let dp = &mut dp[..bq * kv_len];
        let q_blk = dims.q_view(q, h, i0, bq);
        let do_blk = dims.q_view(dout, h, i0, bq);
        // P = exp(scale·QKᵀ − lse), masked.
        gemm_strided(
            mat_mut(p, bq, kv_len),
            q_blk,
            dims.kt_view(k, g, kv_len),
            false,
            scale,
            Parallelism::None,
        )?;
        for (r, row) in p.chunks_mut(kv_len).enumerate() {
            let limit = dims.q_offset + i0 + r + 1;
            let l = lse_h[i0 + r];
            let (live, masked) = row.split_at_mut(limit);
            math::exp_sub_inplace(live, l);
            masked.fill(0.0);
            let base = ((i0 + r) * dims.hq + h) * d;
            delta[r] = dout[base..base + d]
                .iter()
                .zip(&out[base..base + d])
                .map(|(a, b)| a * b)
                .sum();
        }
        // dV_h += Pᵀ·dO
        gemm_strided(
            mat_mut(&mut dv_h[..kv_len * d], kv_len, d),
            mat_ref_t(p, bq, kv_len),
            do_blk,
            true,
            1.0,
            Parallelism::None,
        )?;
        // dP = dO·Vᵀ
        let vt = MatRef {
            data: v,
            offset: g * d,
            rows: d,
            cols: kv_len,
            rs: 1,
            cs: dims.hkv * d,
        };
        gemm_strided(
            mat_mut(dp, bq, kv_len),
            do_blk,
            vt,
            false,
            1.0,
            Parallelism::None,
        )?;
        // dS = P ⊙ (dP − delta)
        for (r, (dprow, prow)) in dp.chunks_mut(kv_len).zip(p.chunks(kv_len)).enumerate() {
            let dl = delta[r];
            for (x, &pv) in dprow.iter_mut().zip(prow) {
                *x = pv * (*x - dl);
            }
        }
        // dQ_blk = scale · dS·K
        gemm_strided(
            mat_mut(&mut dq_h[i0 * d..(i0 + bq) * d], bq, d),
            mat_ref(dp, bq, kv_len),
            dims.v_view(k, g, kv_len),
            false,
            scale,
            Parallelism::None,
        )?;
        // dK_h += scale · dSᵀ·Q_blk
        gemm_strided(
            mat_mut(&mut dk_h[..kv_len * d], kv_len, d),
            mat_ref_t(dp, bq, kv_len),
            q_blk,
            true,
            scale,
            Parallelism::None,
        )?;
    }
    Ok((dq_h, dk_h, dv_h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_key_returns_its_value() {
        // tq = tk = 1: output equals v, lse equals the score.
        let q = [1.0f32, 2.0];
        let k = [0.5f32, 0.25];
        let v = [3.0f32, -1.0];
        let mut out = [0.0f32; 2];
        let mut lse = [0.0f32; 1];
        attention_fwd(&mut out, &mut lse, &q, &k, &v, 1, 1, 1, 1, 2, 0, 1.0).unwrap();
        assert_eq!(out, v);
        assert!((lse[0] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_offsets_and_groups() {
        let z = [0.0f32; 16];
        let mut o = [0.0f32; 4];
        let mut l = [0.0f32; 2];
        let e = attention_fwd(
            &mut o,
            &mut l,
            &z[..4],
            &z[..4],
            &z[..4],
            2,
            2,
            1,
            1,
            2,
            1,
            1.0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("q_offset"), "{e}");
        let e = attention_fwd(
            &mut o,
            &mut l,
            &z[..4],
            &z[..4],
            &z[..4],
            1,
            1,
            2,
            3,
            2,
            0,
            1.0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("hq"), "{e}");
    }
}
