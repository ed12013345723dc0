//! RMSNorm forward/backward (Llama/Qwen `RMSNorm`, also Qwen3's per-head q/k norm).
//!
//! # Contract
//!
//! All buffers f32, row-major, contiguous. `x`, `out`, `dout`, `dx`: `[rows, dim]`;
//! `w`, `dw`: `[dim]`; `rstd`: `[rows]`.
//!
//! - [`rmsnorm_fwd`]: `rstd[r] = 1 / sqrt(mean_i x[r,i]^2 + eps)`,
//!   `out[r,i] = x[r,i] * rstd[r] * w[i]`. `out` and `rstd` are overwritten (`rstd` is saved
//!   for the backward).
//! - [`rmsnorm_bwd`]: `dx` is **overwritten**, `dw` is **accumulated** (`+=`).
//!
//! Qwen3's qk-norm normalises each head separately over `head_dim`: call the same functions
//! with `rows = tokens * heads`, `dim = head_dim` on the `[tokens, heads, head_dim]` buffer.
//! Row sums (the sum of squares, and `Σ dout·w·x` in the backward) run in 16 f32 lanes with
//! fused multiply-adds, the lanes combined in f64.

use super::math::LANES;
use crate::Result;
use crate::error::{check_len, checked_size, invalid};
use crate::pool::min_len;
use rayon::prelude::*;

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 16;

/// RMSNorm forward: `out = x * rstd * w`, `rstd` saved per row. See the module contract.
pub fn rmsnorm_fwd(
    out: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    rows: usize,
    dim: usize,
    eps: f32,
) -> Result<()> {
    const OP: &str = "rmsnorm_fwd";
    let n = checked_size(OP, "x", &[rows, dim])?;
    check_len(OP, "out", out.len(), n)?;
    check_len(OP, "x", x.len(), n)?;
    check_len(OP, "rstd", rstd.len(), rows)?;
    check_len(OP, "w", w.len(), dim)?;
    if dim == 0 {
        return Err(invalid(OP, "dim", "must be positive"));
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(invalid(
            OP,
            "eps",
            format!("must be finite and >= 0, got {eps}"),
        ));
    }
    out.par_chunks_mut(dim * ROWS_PER_TASK)
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .zip(x.par_chunks(dim * ROWS_PER_TASK))
        .with_min_len(min_len())
        .for_each(|((o, r), xs)| fwd_block(o, r, xs, w, dim, eps));
    Ok(())
}

/// `Σ a[i] · b[i] · c[i]` (`c` = `None`: `Σ a[i] · b[i]`) in [`LANES`] f32 lanes with
/// fused multiply-adds, lanes and the tail combined in f64: a sequential f64 sum does not
/// vectorise (C2: the norms took 0.09 s per step on one core).
#[inline(always)]
fn sum_products(a: &[f32], b: &[f32], c: Option<&[f32]>) -> f64 {
    let mut acc = [0.0f32; LANES];
    let n = a.len().min(b.len());
    let full = n - n % LANES;
    match c {
        None => {
            for (x, y) in a[..full]
                .chunks_exact(LANES)
                .zip(b[..full].chunks_exact(LANES))
            {
                for l in 0..LANES {
                    acc[l] = x[l].mul_add(y[l], acc[l]);
                }
            }
        }
        Some(c) => {
            let c = &c[..full];
            for ((x, y), z) in a[..full]
                .chunks_exact(LANES)
                .zip(b[..full].chunks_exact(LANES))
                .zip(c.chunks_exact(LANES))
            {
                for l in 0..LANES {
                    acc[l] = (x[l] * y[l]).mul_add(z[l], acc[l]);
                }
            }
        }
    }
    let mut s: f64 = acc.iter().map(|&v| v as f64).sum();
    for i in full..n {
        let p = a[i] * b[i] * c.map_or(1.0, |c| c[i]);
        s += p as f64;
    }
    s
}

super::math::multiversion! {
/// [`rmsnorm_fwd`] over a block of rows.
fn fwd_block(o: &mut [f32], r: &mut [f32], xs: &[f32], w: &[f32], dim: usize, eps: f32) {
    for ((orow, rr), xrow) in o.chunks_mut(dim).zip(r.iter_mut()).zip(xs.chunks(dim)) {
        let ss = sum_products(xrow, xrow, None);
        let inv = 1.0 / ((ss / dim as f64) as f32 + eps).sqrt();
        *rr = inv;
        for ((ov, &xv), &wv) in orow.iter_mut().zip(xrow).zip(w) {
            *ov = wv * (xv * inv);
        }
    }
}
}

super::math::multiversion! {
/// [`rmsnorm_bwd`] over a block of rows: `dx` rows overwritten, their `dw` share added
/// into `acc`.
fn bwd_block(
    dxs: &mut [f32],
    acc: &mut [f32],
    dos: &[f32],
    xs: &[f32],
    w: &[f32],
    rs: &[f32],
    dim: usize,
) {
    for (((dxrow, dorow), xrow), &r) in dxs
        .chunks_mut(dim)
        .zip(dos.chunks(dim))
        .zip(xs.chunks(dim))
        .zip(rs)
    {
        let dot = sum_products(dorow, w, Some(xrow));
        let c = (dot as f32) * r * r * r / dim as f32;
        for ((((dxv, &d), &xv), &wv), a) in dxrow
            .iter_mut()
            .zip(dorow)
            .zip(xrow)
            .zip(w)
            .zip(acc.iter_mut())
        {
            *dxv = r * d * wv - c * xv;
            *a += d * xv * r;
        }
    }
}
}

/// RMSNorm backward: `dx` overwritten, `dw` accumulated. `rstd` comes from [`rmsnorm_fwd`].
///
/// With `g = dout ⊙ w` and `r = rstd[row]`:
/// `dx = r·g − r³/dim · x · Σ(g ⊙ x)`, `dw += Σ_rows dout ⊙ x · r`.
pub fn rmsnorm_bwd(
    dx: &mut [f32],
    dw: &mut [f32],
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    rstd: &[f32],
    rows: usize,
    dim: usize,
) -> Result<()> {
    const OP: &str = "rmsnorm_bwd";
    let n = checked_size(OP, "x", &[rows, dim])?;
    check_len(OP, "dx", dx.len(), n)?;
    check_len(OP, "dout", dout.len(), n)?;
    check_len(OP, "x", x.len(), n)?;
    check_len(OP, "rstd", rstd.len(), rows)?;
    check_len(OP, "w", w.len(), dim)?;
    check_len(OP, "dw", dw.len(), dim)?;
    if dim == 0 {
        return Err(invalid(OP, "dim", "must be positive"));
    }
    let block = dim * ROWS_PER_TASK;
    // One `dw` partial per block of rows, combined in block order afterwards: a rayon
    // fold/reduce would add the partials in a schedule-dependent order and make `dw` (and so
    // training) differ in the last bits between identical runs.
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(block)
        .zip(dout.par_chunks(block))
        .zip(x.par_chunks(block))
        .zip(rstd.par_chunks(ROWS_PER_TASK))
        .with_min_len(min_len())
        .map(|(((dxs, dos), xs), rs)| {
            let mut acc = vec![0.0f32; dim];
            bwd_block(dxs, &mut acc, dos, xs, w, rs, dim);
            acc
        })
        .collect();
    let mut partial = vec![0.0f32; dim];
    for p in &partials {
        for (a, b) in partial.iter_mut().zip(p) {
            *a += b;
        }
    }
    for (d, p) in dw.iter_mut().zip(&partial) {
        *d += p;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_dw_is_bitwise_reproducible() {
        // Many row blocks, so rayon splits the work differently from call to call.
        let (rows, dim) = (ROWS_PER_TASK * 37 + 3, 24);
        let f = |i: usize, s: f32| ((i as f32 * s).sin() * 1.7) + 0.1;
        let x: Vec<f32> = (0..rows * dim).map(|i| f(i, 0.37)).collect();
        let dout: Vec<f32> = (0..rows * dim).map(|i| f(i, 0.91)).collect();
        let w: Vec<f32> = (0..dim).map(|i| f(i, 1.3)).collect();
        let mut out = vec![0.0; rows * dim];
        let mut rstd = vec![0.0; rows];
        rmsnorm_fwd(&mut out, &mut rstd, &x, &w, rows, dim, 1e-6).unwrap();
        let run = || {
            let (mut dx, mut dw) = (vec![0.0; rows * dim], vec![0.0; dim]);
            rmsnorm_bwd(&mut dx, &mut dw, &dout, &x, &w, &rstd, rows, dim).unwrap();
            dw.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let first = run();
        for _ in 0..20 {
            assert_eq!(run(), first);
        }
    }

    #[test]
    fn unit_weight_normalises_rms_to_one() {
        let x = [3.0f32, 4.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let w = [1.0f32; 4];
        let mut out = [0.0f32; 8];
        let mut rstd = [0.0f32; 2];
        rmsnorm_fwd(&mut out, &mut rstd, &x, &w, 2, 4, 0.0).unwrap();
        assert!((rstd[0] - 1.0 / 2.5).abs() < 1e-6);
        assert!((out[4] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn bad_weight_length_is_named() {
        let err = rmsnorm_fwd(
            &mut [0.0; 4],
            &mut [0.0; 1],
            &[1.0; 4],
            &[1.0; 3],
            1,
            4,
            1e-6,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`w`"));
    }
}
