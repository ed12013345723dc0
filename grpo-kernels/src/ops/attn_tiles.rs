//! Register-tiled products of the attention kernel (crate-internal).
//!
//! The attention items multiply small blocks: a stacked query block `[rows ≤ 256, d]` by the
//! keys or values of one KV head (`d` = 32…128), and score blocks `[rows, keys]` by `[keys,
//! d]` panels. A general `gemm` call packs both operands and dispatches per call, which on
//! C2's shapes (95 keys, `d` = 32) cost as much as the arithmetic. These three loops keep an
//! `R × W` tile of the output in registers (up to 8 rows × 32 floats: 16 AVX-512
//! accumulators), read each operand once per tile, use fused multiply-adds, and skip the
//! parts of a block that the causal mask zeroes ([`Causal`]).
//!
//! Every output element is one fused multiply-add chain over the inner index in increasing
//! order, so the result does not depend on the tile sizes, the row or column position, or
//! which compiled version ([`multiversion!`]) runs: `f32::mul_add` is exactly rounded
//! everywhere.
//!
//! Shapes (row-major, strides in floats):
//! - [`nt`]: `c[r, j] = alpha · Σ_k a[r, k] · bt[k, j]` with `a [rows, d]` and `bt [d, ldb]`
//!   (the transposed keys or values, zero-padded to `ldb`, a multiple of 16); columns are
//!   written in 16-wide chunks up to row `r`'s visible columns rounded up to 16.
//! - [`nn`]: `c[r, 0..n] = alpha · Σ_{j < visible(r)} a[r, j] · b[j, 0..n]` with `a [rows,
//!   lda]` a masked score/probability block (zero beyond each row's visible columns) and `b`
//!   the rows of one head in a `[keys, ldb]` buffer starting at `boff`.
//! - [`tn`]: `c[j, 0..n] = alpha · Σ_r a[r, j] · b[r, 0..n]` over the rows that see column
//!   `j`, with `a` as in [`nn`] and `b [rows, n]` contiguous; `c [cols, n]`.

use super::math::multiversion;

/// Output rows per register tile.
const MR: usize = 8;
/// Output columns per register tile (two AVX-512 registers).
const NW: usize = 32;
/// Column chunk of score rows (one AVX-512 register).
const CW: usize = 16;

/// The causal structure of a stacked score block: row `r` sees columns
/// `0..min(limit0 + r / per, cols)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Causal {
    /// Columns visible to row 0.
    pub limit0: usize,
    /// Consecutive rows that share a limit (the query heads of one KV group).
    pub per: usize,
    /// Columns of the block (keys).
    pub cols: usize,
}

impl Causal {
    /// Columns visible to row `r`.
    #[inline(always)]
    fn visible(&self, r: usize) -> usize {
        (self.limit0 + r / self.per).min(self.cols)
    }

    /// First row that sees column `j`.
    #[inline(always)]
    fn first_row(&self, j: usize) -> usize {
        (j + 1).saturating_sub(self.limit0) * self.per
    }
}

/// The left operand of a tile: `R` values per inner index `k`, value `(k, r)` at
/// `a[a0 + k·aks + r·ars]` (rows of a score block, or its columns for [`tn`]).
#[derive(Clone, Copy)]
struct Lhs<'a> {
    a: &'a [f32],
    a0: usize,
    aks: usize,
    ars: usize,
}

/// One backend's row panel: `c[c0 + r·ldc + j] = alpha · Σ_{k < kn} lhs(k, r) ·
/// b[b0 + k·ldb + j]` for `R` rows (8 or 1) and columns `0..n`.
type Panel = fn(&mut [f32], usize, usize, Lhs<'_>, &[f32], usize, usize, usize, usize, f32);

/// The panels of one implementation: for [`MR`] rows and for one.
#[derive(Clone, Copy)]
pub(crate) struct Backend {
    wide: Panel,
    narrow: Panel,
}

/// Portable loops (compiled per instruction set by [`multiversion!`]).
pub(crate) const PORTABLE: Backend = Backend {
    wide: panel_wide,
    narrow: panel_narrow,
};

/// AVX-512 where the CPU has it, else [`PORTABLE`] (same bits either way).
pub(crate) fn backend() -> Backend {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Backend {
            wide: x86::panel::<MR>,
            narrow: x86::panel::<1>,
        };
    }
    PORTABLE
}

/// One `R × W` tile of a portable panel at output columns `n0..n0 + W`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const R: usize, const W: usize>(
    c: &mut [f32],
    c0: usize,
    ldc: usize,
    lhs: Lhs<'_>,
    b: &[f32],
    b0: usize,
    ldb: usize,
    kn: usize,
    alpha: f32,
) {
    let mut acc = [[0.0f32; W]; R];
    for k in 0..kn {
        let bk: &[f32; W] = b[b0 + k * ldb..b0 + k * ldb + W]
            .try_into()
            .expect("W columns");
        let ak = lhs.a0 + k * lhs.aks;
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = lhs.a[ak + r * lhs.ars];
            for l in 0..W {
                acc[l] = x.mul_add(bk[l], acc[l]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row: &mut [f32; W] = (&mut c[c0 + r * ldc..c0 + r * ldc + W])
            .try_into()
            .expect("W columns");
        for l in 0..W {
            row[l] = acc[l] * alpha;
        }
    }
}

/// A portable panel of `R` rows: tiles of 32, 16, then 1 columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn panel<const R: usize>(
    c: &mut [f32],
    c0: usize,
    ldc: usize,
    lhs: Lhs<'_>,
    b: &[f32],
    b0: usize,
    ldb: usize,
    kn: usize,
    n: usize,
    alpha: f32,
) {
    let mut n0 = 0;
    while n0 + NW <= n {
        tile::<R, NW>(c, c0 + n0, ldc, lhs, b, b0 + n0, ldb, kn, alpha);
        n0 += NW;
    }
    while n0 + CW <= n {
        tile::<R, CW>(c, c0 + n0, ldc, lhs, b, b0 + n0, ldb, kn, alpha);
        n0 += CW;
    }
    while n0 < n {
        tile::<R, 1>(c, c0 + n0, ldc, lhs, b, b0 + n0, ldb, kn, alpha);
        n0 += 1;
    }
}

multiversion! {
/// [`panel`] of [`MR`] rows.
#[allow(clippy::too_many_arguments)]
fn panel_wide(
    c: &mut [f32],
    c0: usize,
    ldc: usize,
    lhs: Lhs<'_>,
    b: &[f32],
    b0: usize,
    ldb: usize,
    kn: usize,
    n: usize,
    alpha: f32,
) {
    panel::<MR>(c, c0, ldc, lhs, b, b0, ldb, kn, n, alpha)
}
}

multiversion! {
/// [`panel`] of one row.
#[allow(clippy::too_many_arguments)]
fn panel_narrow(
    c: &mut [f32],
    c0: usize,
    ldc: usize,
    lhs: Lhs<'_>,
    b: &[f32],
    b0: usize,
    ldb: usize,
    kn: usize,
    n: usize,
    alpha: f32,
) {
    panel::<1>(c, c0, ldc, lhs, b, b0, ldb, kn, n, alpha)
}
}

/// Calls `f(panel, first, count)` over `0..total` in blocks of [`MR`], then one at a time.
fn each_panel(be: Backend, total: usize, mut f: impl FnMut(Panel, usize, usize)) {
    let mut i = 0;
    while i < total {
        let (panel, r) = if i + MR <= total {
            (be.wide, MR)
        } else {
            (be.narrow, 1)
        };
        f(panel, i, r);
        i += r;
    }
}

/// `c [rows, ldc] = alpha · a [rows, d] · bt [d, ldb]` on each row's visible columns (in
/// 16-wide chunks); see the module doc.
#[allow(clippy::too_many_arguments)]
pub(crate) fn nt(
    be: Backend,
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    d: usize,
    bt: &[f32],
    ldb: usize,
    rows: usize,
    mask: Causal,
    alpha: f32,
) {
    each_panel(be, rows, |panel, r0, r| {
        let end = mask.visible(r0 + r - 1).next_multiple_of(CW).min(ldb);
        let lhs = Lhs {
            a,
            a0: r0 * d,
            aks: 1,
            ars: d,
        };
        panel(c, r0 * ldc, ldc, lhs, bt, 0, ldb, d, end, alpha);
    });
}

/// `c [rows, n] = alpha · a [rows, lda] · b [keys, ldb]` (columns `0..n` of `b`'s rows,
/// which start at `b[0]`) over each row's visible keys; see the module doc.
#[allow(clippy::too_many_arguments)]
pub(crate) fn nn(
    be: Backend,
    c: &mut [f32],
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    rows: usize,
    mask: Causal,
    alpha: f32,
) {
    each_panel(be, rows, |panel, r0, r| {
        let lhs = Lhs {
            a,
            a0: r0 * lda,
            aks: 1,
            ars: lda,
        };
        let k = mask.visible(r0 + r - 1);
        panel(c, r0 * n, n, lhs, b, 0, ldb, k, n, alpha);
    });
}

/// `c [cols, n] = alpha · a [rows, lda]ᵀ · b [rows, n]` over the rows that see each column;
/// see the module doc.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tn(
    be: Backend,
    c: &mut [f32],
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    rows: usize,
    mask: Causal,
    alpha: f32,
) {
    each_panel(be, mask.cols, |panel, j0, _| {
        // Keys j0..j0 + r over the rows that see key j0 (later rows see all of them; the
        // earlier rows' entries for the later keys are masked zeros).
        let r_start = mask.first_row(j0).min(rows);
        let lhs = Lhs {
            a,
            a0: r_start * lda + j0,
            aks: lda,
            ars: 1,
        };
        panel(
            c,
            j0 * n,
            n,
            lhs,
            b,
            r_start * n,
            n,
            rows - r_start,
            n,
            alpha,
        );
    });
}

/// The panels with AVX-512 intrinsics: LLVM's vectoriser lays the portable tiles out along
/// the wrong dimension for some shapes (a key-major tile spilled its accumulators), so the
/// register tile is spelled out here. Each output element is the same `fma` chain as in the
/// portable loops, so both give the same bits. Every offset is checked against its slice
/// before a tile runs.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CW, Lhs};
    use std::arch::x86_64::*;

    /// Lanes of the last vector of an `n`-column tile starting at `n0` with `v` vectors.
    fn tail_mask(n: usize, n0: usize, v: usize) -> u16 {
        let rem = n - n0 - CW * (v - 1);
        if rem >= CW {
            u16::MAX
        } else {
            (1u16 << rem) - 1
        }
    }

    /// `c[r, 16·v + lane] = alpha · Σ_k a[k·aks + r·ars] · b[k·ldb + 16·v + lane]` over
    /// `k in 0..kn` for an `R × V`-vector tile (row stride `ldc`); the last vector of each
    /// row loads and stores only the lanes of `last`. The caller checks every offset.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const V: usize>(
        c: *mut f32,
        ldc: usize,
        a: *const f32,
        (aks, ars): (usize, usize),
        b: *const f32,
        ldb: usize,
        kn: usize,
        last: u16,
        alpha: f32,
    ) {
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for k in 0..kn {
                let mut bv = [_mm512_setzero_ps(); V];
                for (v, x) in bv.iter_mut().enumerate() {
                    let p = b.add(k * ldb + CW * v);
                    *x = if v + 1 == V {
                        _mm512_maskz_loadu_ps(last, p)
                    } else {
                        _mm512_loadu_ps(p)
                    };
                }
                let ak = a.add(k * aks);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ak.add(r * ars));
                    for (y, &z) in acc.iter_mut().zip(&bv) {
                        *y = _mm512_fmadd_ps(x, z, *y);
                    }
                }
            }
            let al = _mm512_set1_ps(alpha);
            for (r, acc) in acc.iter().enumerate() {
                for (v, &x) in acc.iter().enumerate() {
                    let p = c.add(r * ldc + CW * v);
                    let y = _mm512_mul_ps(x, al);
                    if v + 1 == V {
                        _mm512_mask_storeu_ps(p, last, y);
                    } else {
                        _mm512_storeu_ps(p, y);
                    }
                }
            }
        }
    }

    /// A panel of `R` rows (see [`super::Panel`]): tiles of 2, then 1 (possibly partial)
    /// vectors. Panics without AVX-512F or when a tile would leave `a`, `b` or `c`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn panel<const R: usize>(
        c: &mut [f32],
        c0: usize,
        ldc: usize,
        lhs: Lhs<'_>,
        b: &[f32],
        b0: usize,
        ldb: usize,
        kn: usize,
        n: usize,
        alpha: f32,
    ) {
        assert!(
            std::arch::is_x86_feature_detected!("avx512f"),
            "needs AVX-512F"
        );
        if kn > 0 {
            let last_a = lhs.a0 + (kn - 1) * lhs.aks + (R - 1) * lhs.ars;
            assert!(last_a < lhs.a.len(), "tile reads past a");
        }
        let mut n0 = 0;
        while n0 < n {
            let cols = (n - n0).min(2 * CW);
            if kn > 0 {
                assert!(
                    b0 + n0 + (kn - 1) * ldb + cols <= b.len(),
                    "tile reads past b"
                );
            }
            assert!(
                c0 + n0 + (R - 1) * ldc + cols <= c.len(),
                "tile writes past c"
            );
            // SAFETY: the asserts above bound every load and store of the tile, and the CPU
            // has AVX-512F.
            unsafe {
                let (bp, cp) = (b.as_ptr().add(b0 + n0), c.as_mut_ptr().add(c0 + n0));
                let ap = lhs.a.as_ptr().add(lhs.a0);
                let st = (lhs.aks, lhs.ars);
                if cols > CW {
                    let last = tail_mask(n, n0, 2);
                    tile::<R, 2>(cp, ldc, ap, st, bp, ldb, kn, last, alpha);
                } else {
                    let last = tail_mask(n, n0, 1);
                    tile::<R, 1>(cp, ldc, ap, st, bp, ldb, kn, last, alpha);
                }
            }
            n0 += cols;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn randv(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A block masked like the attention's: zero beyond each row's visible columns.
    fn masked(rows: usize, stride: usize, mask: Causal, seed: u64) -> Vec<f32> {
        let mut a = randv(rows * stride, seed);
        for r in 0..rows {
            a[r * stride + mask.visible(r)..(r + 1) * stride].fill(0.0);
        }
        a
    }

    #[test]
    fn products_match_naive_sums_on_odd_shapes() {
        // Shapes with row, key and column tails; per = 1 (one head) and 4 (stacked group).
        for &(rows, cols, d, per, limit0) in &[
            (37usize, 45usize, 32usize, 4usize, 36usize),
            (9, 95, 24, 1, 87),
            (64, 17, 40, 4, 2),
            (7, 3, 5, 7, 3),
        ] {
            let mask = Causal { limit0, per, cols };
            let stride = cols.next_multiple_of(CW);
            let a = randv(rows * d, 1);
            let mut bt = vec![0.0f32; d * stride];
            let kv = randv(cols * d, 2);
            for j in 0..cols {
                for k in 0..d {
                    bt[k * stride + j] = kv[j * d + k];
                }
            }
            let mut s = vec![f32::NAN; rows * stride];
            nt(
                backend(),
                &mut s,
                stride,
                &a,
                d,
                &bt,
                stride,
                rows,
                mask,
                0.5,
            );
            let mut s2 = vec![f32::NAN; rows * stride];
            nt(
                PORTABLE, &mut s2, stride, &a, d, &bt, stride, rows, mask, 0.5,
            );
            for r in 0..rows {
                for j in 0..mask.visible(r) {
                    let want: f32 = (0..d).map(|k| a[r * d + k] * kv[j * d + k]).sum();
                    assert!((s[r * stride + j] - 0.5 * want).abs() < 1e-5, "nt {r} {j}");
                    assert_eq!(s[r * stride + j].to_bits(), s2[r * stride + j].to_bits());
                }
            }
            let p = masked(rows, stride, mask, 3);
            let mut o = vec![f32::NAN; rows * d];
            nn(backend(), &mut o, d, &p, stride, &kv, d, rows, mask, 2.0);
            let mut o2 = vec![f32::NAN; rows * d];
            nn(PORTABLE, &mut o2, d, &p, stride, &kv, d, rows, mask, 2.0);
            assert_eq!(bits(&o), bits(&o2), "nn: AVX-512 and portable bits");
            for r in 0..rows {
                for x in 0..d {
                    let want: f32 = (0..cols).map(|j| p[r * stride + j] * kv[j * d + x]).sum();
                    assert!((o[r * d + x] - 2.0 * want).abs() < 1e-5, "nn {r} {x}");
                }
            }
            let dout = randv(rows * d, 4);
            let mut dv = vec![f32::NAN; cols * d];
            tn(backend(), &mut dv, d, &p, stride, &dout, rows, mask, 1.0);
            let mut dv2 = vec![f32::NAN; cols * d];
            tn(PORTABLE, &mut dv2, d, &p, stride, &dout, rows, mask, 1.0);
            assert_eq!(bits(&dv), bits(&dv2), "tn: AVX-512 and portable bits");
            for j in 0..cols {
                for x in 0..d {
                    let want: f32 = (0..rows).map(|r| p[r * stride + j] * dout[r * d + x]).sum();
                    assert!((dv[j * d + x] - want).abs() < 1e-5, "tn {j} {x}");
                }
            }
        }
    }
}
