//! Matrix multiply in the transposes the model needs (CPU via the `gemm` crate).
//!
//! # Contract (shared with the future CUDA twin, cuBLAS)
//!
//! [`matmul`]: `out[m, n] (= or +=) op(a)[m, k] @ op(b)[k, n]`, all buffers f32, row-major,
//! contiguous:
//! - `a` is stored `[m, k]`, or `[k, m]` when `trans_a` (then `op(a) = aᵀ`);
//! - `b` is stored `[k, n]`, or `[n, k]` when `trans_b` (then `op(b) = bᵀ`);
//! - `out` is overwritten when `accumulate == false`, added to when `accumulate == true`.
//!
//! With `k == 0` the product is zero (so `out` is zeroed or left unchanged).
//!
//! Note the `gemm` crate's scalar names are swapped relative to BLAS: it computes
//! `dst = alpha·dst + beta·lhs·rhs`. This module is the only place that calls it; every other
//! op goes through the bounds-checked strided wrapper here, so the `unsafe` stays in this file.

use crate::Result;
use crate::error::{check_len, checked_size, invalid};
use gemm::Parallelism;

/// Below this many multiply-adds a matmul runs on the calling thread.
const PARALLEL_THRESHOLD: usize = 64 * 64 * 64;

/// Up to this many rows of `a`, the linear-layer layout `a · bᵀ` runs as blocked dot products
/// ([`small_m_block`]) instead of the packed `gemm` kernel: for a decode step's handful of rows
/// the weight is streamed once either way, and packing it costs more than the product.
const SMALL_M: usize = 16;
/// Rows of `b` per parallel task in the small-`m` path.
const SMALL_M_ROWS: usize = 64;

crate::ops::math::multiversion! {
/// `out_t[j·m + i] = a[i, :] · b[j, :]` for the rows `j` of one block of `b` (`[rows, k]`):
/// each `b` row is read once and stays in L1 while the `m` dot products use it.
fn small_m_block(out_t: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize) {
    const L: usize = 16;
    for (brow, o) in b.chunks_exact(k).zip(out_t.chunks_exact_mut(m)) {
        for (i, oi) in o.iter_mut().enumerate() {
            let arow = &a[i * k..(i + 1) * k];
            let mut acc = [0.0f32; L];
            let (ca, cb) = (arow.chunks_exact(L), brow.chunks_exact(L));
            let (ta, tb) = (ca.remainder(), cb.remainder());
            for (x, y) in ca.zip(cb) {
                for l in 0..L {
                    acc[l] += x[l] * y[l];
                }
            }
            let mut sum = 0.0f32;
            for v in acc {
                sum += v;
            }
            for (x, y) in ta.iter().zip(tb) {
                sum += x * y;
            }
            *oi = sum;
        }
    }
}
}

/// `out[m,n] (= or +=) op(a)[m,k] @ op(b)[k,n]`; see the module doc for layouts.
///
/// Parallel over rayon's pool for large products. Errors name the argument whose length
/// disagrees with `m`, `k`, `n`.
pub fn matmul(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "matmul";
    check_len(OP, "out", out.len(), checked_size(OP, "out", &[m, n])?)?;
    check_len(OP, "a", a.len(), checked_size(OP, "a", &[m, k])?)?;
    check_len(OP, "b", b.len(), checked_size(OP, "b", &[k, n])?)?;
    if !trans_a && trans_b && m > 0 && m <= SMALL_M && k > 0 && n.saturating_mul(k) >= 1 << 15 {
        use rayon::prelude::*;
        let mut out_t = vec![0.0f32; n * m];
        out_t
            .par_chunks_mut(SMALL_M_ROWS * m)
            .zip(b.par_chunks(SMALL_M_ROWS * k))
            .for_each(|(o, bb)| small_m_block(o, a, bb, m, k));
        for (i, row) in out.chunks_exact_mut(n).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let x = out_t[j * m + i];
                if accumulate {
                    *v += x;
                } else {
                    *v = x;
                }
            }
        }
        return Ok(());
    }
    let (a_rs, a_cs) = if trans_a { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if trans_b { (1, k) } else { (n, 1) };
    let par = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    gemm_strided(
        MatMut {
            data: out,
            offset: 0,
            rows: m,
            cols: n,
            rs: n,
            cs: 1,
        },
        MatRef {
            data: a,
            offset: 0,
            rows: m,
            cols: k,
            rs: a_rs,
            cs: a_cs,
        },
        MatRef {
            data: b,
            offset: 0,
            rows: k,
            cols: n,
            rs: b_rs,
            cs: b_cs,
        },
        accumulate,
        1.0,
        par,
    )
}

/// A read-only strided matrix view into a slice (crate-internal).
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// A mutable strided matrix view into a slice (crate-internal).
pub(crate) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// Largest index a view touches, or `None` for an empty view.
fn last_index(offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    Some(offset + (rows - 1) * rs + (cols - 1) * cs)
}

/// Checks that a strided view lies inside a slice of `len` elements.
fn check_view(
    arg: &'static str,
    len: usize,
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> Result<()> {
    match last_index(offset, rows, cols, rs, cs) {
        Some(last) if last >= len => Err(invalid(
            "gemm",
            arg,
            format!("view ends at {last}, slice has {len}"),
        )),
        _ => Ok(()),
    }
}

/// `dst (= or +=) scale · lhs @ rhs` over strided views; the single `unsafe` call site of the
/// `gemm` crate. Bounds of every view are checked before the call, and `dst` cannot alias the
/// inputs because it is a `&mut` borrow.
pub(crate) fn gemm_strided(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    scale: f32,
    par: Parallelism,
) -> Result<()> {
    const OP: &str = "gemm";
    let (m, k, n) = (dst.rows, lhs.cols, dst.cols);
    if lhs.rows != m || rhs.rows != k || rhs.cols != n {
        return Err(invalid(
            OP,
            "dims",
            format!(
                "dst {}x{}, lhs {}x{}, rhs {}x{} do not chain",
                dst.rows, dst.cols, lhs.rows, lhs.cols, rhs.rows, rhs.cols
            ),
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    check_view("dst", dst.data.len(), dst.offset, m, n, dst.rs, dst.cs)?;
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[dst.offset + i * dst.rs + j * dst.cs] = 0.0;
                }
            }
        }
        return Ok(());
    }
    check_view("lhs", lhs.data.len(), lhs.offset, m, k, lhs.rs, lhs.cs)?;
    check_view("rhs", rhs.data.len(), rhs.offset, k, n, rhs.rs, rhs.cs)?;
    let to_isize = |x: usize, arg: &'static str| {
        isize::try_from(x).map_err(|_| invalid(OP, arg, "stride overflows isize"))
    };
    let (drs, dcs) = (to_isize(dst.rs, "dst")?, to_isize(dst.cs, "dst")?);
    let (lrs, lcs) = (to_isize(lhs.rs, "lhs")?, to_isize(lhs.cs, "lhs")?);
    let (rrs, rcs) = (to_isize(rhs.rs, "rhs")?, to_isize(rhs.cs, "rhs")?);
    // SAFETY: every element the kernel reads or writes lies inside the checked ranges above
    // (non-negative strides, last index < len); dst is exclusively borrowed so it does not
    // alias lhs/rhs. The gemm crate computes dst = alpha*dst + beta*lhs*rhs; alpha only
    // matters when read_dst is true.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr().add(dst.offset),
            dcs,
            drs,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lcs,
            lrs,
            rhs.data.as_ptr().add(rhs.offset),
            rcs,
            rrs,
            1.0f32,
            scale,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product_all_transposes() {
        // a = [[1,2,3],[4,5,6]] (2x3), b = [[1,0],[0,1],[1,1]] (3x2)
        let a = [1., 2., 3., 4., 5., 6.];
        let b = [1., 0., 0., 1., 1., 1.];
        let want = [4., 5., 10., 11.];
        let mut out = [0.0f32; 4];
        matmul(&mut out, &a, &b, 2, 3, 2, false, false, false).unwrap();
        assert_eq!(out, want);
        let at = [1., 4., 2., 5., 3., 6.];
        let bt = [1., 0., 1., 0., 1., 1.];
        let mut out2 = [1.0f32; 4];
        matmul(&mut out2, &at, &bt, 2, 3, 2, true, true, true).unwrap();
        assert_eq!(out2, [5., 6., 11., 12.]);
    }

    #[test]
    fn small_m_dot_path_matches_naive_and_packed() {
        // n·k large enough for the blocked dot-product path; m = 17 takes the packed path.
        let (k, n) = (301, 203);
        let a: Vec<f32> = (0..17 * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let mut packed = vec![0.0f32; 17 * n];
        matmul(&mut packed, &a, &b, 17, k, n, false, true, false).unwrap();
        for m in [1usize, 5, 16] {
            for acc in [false, true] {
                let mut fast = vec![0.5f32; m * n];
                matmul(&mut fast, &a[..m * k], &b, m, k, n, false, true, acc).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|p| f64::from(a[i * k + p]) * f64::from(b[j * k + p]))
                            .sum();
                        let want = dot + if acc { 0.5 } else { 0.0 };
                        let got = f64::from(fast[i * n + j]);
                        assert!((got - want).abs() < 1e-3, "m={m} ({i},{j}) {got} vs {want}");
                        let p = f64::from(packed[i * n + j]) + if acc { 0.5 } else { 0.0 };
                        assert!((got - p).abs() < 1e-3);
                    }
                }
            }
        }
    }

    #[test]
    fn small_m_transposed_accumulate_matches_naive() {
        let (m, k, n) = (3, 37, 150);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let mut fast = vec![1.0f32; m * n];
        matmul(&mut fast, &a, &b, m, k, n, false, true, true).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum::<f32>();
                assert!((fast[i * n + j] - want).abs() < 1e-4, "({i},{j})");
            }
        }
    }

    #[test]
    fn k_zero_zeroes_or_keeps() {
        let mut out = [3.0f32; 4];
        matmul(&mut out, &[], &[], 2, 0, 2, false, false, true).unwrap();
        assert_eq!(out, [3.0; 4]);
        matmul(&mut out, &[], &[], 2, 0, 2, false, false, false).unwrap();
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    fn shape_error_names_argument() {
        let mut out = [0.0f32; 4];
        let err = matmul(&mut out, &[0.0; 5], &[0.0; 6], 2, 3, 2, false, false, false).unwrap_err();
        assert!(err.to_string().contains("`a`"), "{err}");
    }
}
