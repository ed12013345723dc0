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

/// Up to this many rows of `a`, the linear-layer layout `a · bᵀ` runs as register-tiled dot
/// products ([`small_m_block`]) instead of the packed `gemm` kernel: for a decode step's
/// handful of rows the weight is streamed once either way, and packing it costs more than the
/// product. Measured on the 2-core box (`examples/bench_small_m.rs`, Qwen2.5-0.5B shapes): the
/// tiled path is 1.2–3.5× faster up to 32 rows, and up to 64 rows when `n ≤ k` (the packed
/// kernel is weak when the output is narrow and `k` long, e.g. `down_proj`).
const SMALL_M: usize = 32;
/// Rows of `a` per worker from which a product may be split by rows (see [`matmul`]).
const ROW_SPLIT_MIN_ROWS: usize = 64;
/// Weights up to this many elements are split by rows whatever their shape.
const ROW_SPLIT_MAX_WEIGHT: usize = 1 << 20;
/// Up to this many rows, the tiled path also runs products with `n ≤ k`.
const SMALL_M_NARROW: usize = 64;
/// Rows of `b` per parallel task in the small-`m` path (a multiple of every tile width).
const SMALL_M_ROWS: usize = 48;

/// From this row length the AVX-512 small-`m` kernel uses 8 × 3 tiles (each streamed `b` row
/// meets 8 rows of `a` at once), below it 4 × 4. Measured: 8 × 3 is 1.25× faster on C3b
/// (decode, Qwen2.5-0.5B, k = 896 / 4864), 4 × 4 ~10% faster on C1 (k = 256 / 704).
const TALL_TILE_MIN_K: usize = 768;

/// Lanes of one accumulator in the small-`m` kernel (one AVX-512 register, two AVX2 ones).
const DOT_LANES: usize = 16;

/// Sums the lanes of one accumulator as a tree (`l + (l+8)` first), then the `k % 16` tail
/// elements: the same order in every version, so the portable, AVX2 and AVX-512 paths agree
/// bit for bit.
#[inline(always)]
fn finish_dot(lanes: &[f32; DOT_LANES], a_tail: &[f32], b_tail: &[f32]) -> f32 {
    let mut t8 = [0.0f32; 8];
    for l in 0..8 {
        t8[l] = lanes[l] + lanes[l + 8];
    }
    finish_dot8(&t8, a_tail, b_tail)
}

/// The rest of [`finish_dot`] from the 8 sums `lanes[l] + lanes[l + 8]`: pairwise halving
/// (`l + (l+4)`, then `l + (l+2)`, then lane 0 + lane 1, the order of a vector reduction),
/// then the tail products in order.
#[inline(always)]
fn finish_dot8(t8: &[f32; 8], a_tail: &[f32], b_tail: &[f32]) -> f32 {
    let t4 = [t8[0] + t8[4], t8[1] + t8[5], t8[2] + t8[6], t8[3] + t8[7]];
    let mut sum = (t4[0] + t4[2]) + (t4[1] + t4[3]);
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum = x.mul_add(*y, sum);
    }
    sum
}

/// Portable tile: dot products of `R` rows of `a` with `C` rows of `b` (each `k` long, row `r`
/// of `a` at `a[r·k..]`, row `c` of `b` at `b[c·k..]`), written to `out_t[c·m + r]`.
#[inline(always)]
fn dot_tile_portable<const R: usize, const C: usize>(
    out_t: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
) {
    let full = k - k % DOT_LANES;
    for r in 0..R {
        for c in 0..C {
            let (ar, bc) = (&a[r * k..(r + 1) * k], &b[c * k..(c + 1) * k]);
            let mut acc = [0.0f32; DOT_LANES];
            for (x, y) in ar[..full]
                .chunks_exact(DOT_LANES)
                .zip(bc[..full].chunks_exact(DOT_LANES))
            {
                for l in 0..DOT_LANES {
                    acc[l] = x[l].mul_add(y[l], acc[l]);
                }
            }
            out_t[c * m + r] = finish_dot(&acc, &ar[full..], &bc[full..]);
        }
    }
}

/// AVX-512 and AVX2 versions of the tile with explicit registers: `R·C` independent
/// accumulators hide the add latency (one accumulator chain runs at a quarter of the adder's
/// throughput, and LLVM spills an array of them to the stack), each loaded `a` chunk is used
/// `C` times and each `b` chunk `R` times. Products are fused multiply-adds, like the
/// portable version's `mul_add` (so all versions round identically).
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::DOT_LANES;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512VL (without VL, LLVM keeps the 256-bit
    /// reduction's operands in the low 16 registers and spills accumulators); `a` holds `R`
    /// rows and `b` `C` rows of `k` elements and `out_t` has index `(C−1)·m + R − 1`.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub(super) unsafe fn tile_avx512<const R: usize, const C: usize, const PREFETCH: bool>(
        out_t: &mut [f32],
        a: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
    ) {
        debug_assert!(a.len() >= R * k && b.len() >= C * k && out_t.len() > (C - 1) * m + R - 1);
        let full = k - k % DOT_LANES;
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut p = 0;
        while p < full {
            let mut bv = [_mm512_setzero_ps(); C];
            for (c, v) in bv.iter_mut().enumerate() {
                // SAFETY: c < C and p + 16 <= k, so the 16 floats lie inside b's row c.
                *v = unsafe { _mm512_loadu_ps(bp.add(c * k + p)) };
                if PREFETCH {
                    // The same line of the next tile's rows (a prefetch never faults).
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add((2 * C + c) * k + p).cast());
                }
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                // SAFETY: r < R and p + 16 <= k.
                let av = unsafe { _mm512_loadu_ps(ap.add(r * k + p)) };
                for (x, y) in accr.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, *y, *x);
                }
            }
            p += DOT_LANES;
        }
        // Lanes l + (l+8) of each accumulator as one 256-bit add; the rest of the tree runs
        // eight accumulators at a time in `finish_tile`.
        let mut y = [_mm256_setzero_ps(); MAX_TILE];
        for (r, accr) in acc.iter().enumerate() {
            for (c, x) in accr.iter().enumerate() {
                let lo = _mm512_castps512_ps256(*x);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*x)));
                y[r * C + c] = _mm256_add_ps(lo, hi);
            }
        }
        // SAFETY: AVX-512F implies AVX2; shapes as documented above.
        unsafe { finish_tile::<R, C>(&y, out_t, a, b, m, k) };
    }

    /// # Safety
    /// The CPU must support AVX2; same shapes as [`tile_avx512`]. Each 16-lane accumulator is
    /// two 256-bit registers (lanes 0–7 and 8–15).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2<const R: usize, const C: usize, const PREFETCH: bool>(
        out_t: &mut [f32],
        a: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
    ) {
        debug_assert!(a.len() >= R * k && b.len() >= C * k && out_t.len() > (C - 1) * m + R - 1);
        let full = k - k % DOT_LANES;
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let z = _mm256_setzero_ps();
        let mut acc = [[[z; 2]; C]; R];
        let mut p = 0;
        while p < full {
            let mut bv = [[z; 2]; C];
            for (c, v) in bv.iter_mut().enumerate() {
                // SAFETY: c < C and p + 16 <= k.
                unsafe {
                    v[0] = _mm256_loadu_ps(bp.add(c * k + p));
                    v[1] = _mm256_loadu_ps(bp.add(c * k + p + 8));
                }
                if PREFETCH {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add((2 * C + c) * k + p).cast());
                }
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                // SAFETY: r < R and p + 16 <= k.
                let (a0, a1) = unsafe {
                    (
                        _mm256_loadu_ps(ap.add(r * k + p)),
                        _mm256_loadu_ps(ap.add(r * k + p + 8)),
                    )
                };
                for (x, y) in accr.iter_mut().zip(&bv) {
                    x[0] = _mm256_fmadd_ps(a0, y[0], x[0]);
                    x[1] = _mm256_fmadd_ps(a1, y[1], x[1]);
                }
            }
            p += DOT_LANES;
        }
        let mut y = [z; MAX_TILE];
        for (r, accr) in acc.iter().enumerate() {
            for (c, x) in accr.iter().enumerate() {
                y[r * C + c] = _mm256_add_ps(x[0], x[1]);
            }
        }
        // SAFETY: AVX2 is enabled here; shapes as documented above.
        unsafe { finish_tile::<R, C>(&y, out_t, a, b, m, k) };
    }

    /// Accumulators per tile at most (8 × 3).
    const MAX_TILE: usize = 24;
    /// Which accumulator of a group of eight each lane of [`reduce8`]'s result holds.
    const LANE_ACC: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

    /// The tree of `finish_dot8` for eight accumulators at once, adding exactly the same
    /// pairs: `y[i]` holds accumulator `i`'s lanes `l + (l+8)`; lane `j` of the result is the
    /// sum of accumulator `LANE_ACC[j]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn reduce8(y: &[__m256]) -> __m256 {
        // l + (l+4): the low halves of two accumulators against their high halves.
        let half = |u: __m256, v: __m256| {
            _mm256_add_ps(
                _mm256_permute2f128_ps::<0x20>(u, v),
                _mm256_permute2f128_ps::<0x31>(u, v),
            )
        };
        let (w01, w23) = (half(y[0], y[1]), half(y[2], y[3]));
        let (w45, w67) = (half(y[4], y[5]), half(y[6], y[7]));
        // t4[0] + t4[2] and t4[1] + t4[3]: [a, c] pairs in the low 128 bits, [b, d] high.
        let pairs = |u: __m256, v: __m256| {
            _mm256_add_ps(
                _mm256_shuffle_ps::<0b01_00_01_00>(u, v),
                _mm256_shuffle_ps::<0b11_10_11_10>(u, v),
            )
        };
        let (u0, u1) = (pairs(w01, w23), pairs(w45, w67));
        // (t4[0] + t4[2]) + (t4[1] + t4[3]).
        _mm256_add_ps(
            _mm256_shuffle_ps::<0b10_00_10_00>(u0, u1),
            _mm256_shuffle_ps::<0b11_01_11_01>(u0, u1),
        )
    }

    /// Finishes an `R × C` tile from its accumulators' `l + (l+8)` sums `y[r·C + c]`: the
    /// rest of the tree eight at a time ([`reduce8`]), then each dot product's `k % 16` tail
    /// in order, as `finish_dot8` does.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `R·C ≤ MAX_TILE`; shapes as in [`tile_avx512`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn finish_tile<const R: usize, const C: usize>(
        y: &[__m256; MAX_TILE],
        out_t: &mut [f32],
        a: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
    ) {
        let n = R * C;
        let full = k - k % DOT_LANES;
        let mut g = 0;
        while g < n {
            // `g + 8 ≤ MAX_TILE` because `n ≤ MAX_TILE` and `MAX_TILE` is a multiple of 8.
            let v = reduce8(&y[g..g + 8]);
            let mut s = [0.0f32; 8];
            // SAFETY: `s` holds 8 floats.
            unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) };
            if full == k {
                // No tail: store the sums. (Going through the tail loop with empty slices
                // made C1 25% slower.)
                for (&sum, q) in s.iter().zip(LANE_ACC) {
                    let idx = g + q;
                    if idx < n {
                        out_t[(idx % C) * m + idx / C] = sum;
                    }
                }
                g += 8;
                continue;
            }
            for (&sum, q) in s.iter().zip(LANE_ACC) {
                let idx = g + q;
                if idx < n {
                    let (r, c) = (idx / C, idx % C);
                    let mut sum = sum;
                    for (x, w) in a[r * k + full..(r + 1) * k]
                        .iter()
                        .zip(&b[c * k + full..(c + 1) * k])
                    {
                        sum = x.mul_add(*w, sum);
                    }
                    out_t[c * m + r] = sum;
                }
            }
            g += 8;
        }
    }
}

/// Which tile implementation the CPU runs.
#[derive(Clone, Copy)]
enum DotIsa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl DotIsa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return DotIsa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return DotIsa::Avx2;
            }
        }
        DotIsa::Portable
    }

    /// One `R × C` tile (shapes as in [`dot_tile_portable`], checked here). With `prefetch`,
    /// the SIMD versions also prefetch the `C` rows of `b` that follow the tile's.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn tile<const R: usize, const C: usize>(
        self,
        out_t: &mut [f32],
        a: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
        prefetch: bool,
    ) {
        assert!(a.len() >= R * k && b.len() >= C * k && out_t.len() > (C - 1) * m + R - 1);
        match self {
            DotIsa::Portable => dot_tile_portable::<R, C>(out_t, a, b, m, k),
            // SAFETY: detected above; shapes asserted.
            #[cfg(target_arch = "x86_64")]
            DotIsa::Avx2 if prefetch => unsafe { simd::tile_avx2::<R, C, true>(out_t, a, b, m, k) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            DotIsa::Avx2 => unsafe { simd::tile_avx2::<R, C, false>(out_t, a, b, m, k) },
            // SAFETY: detected above; shapes asserted.
            #[cfg(target_arch = "x86_64")]
            DotIsa::Avx512 if prefetch => unsafe {
                simd::tile_avx512::<R, C, true>(out_t, a, b, m, k)
            },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            DotIsa::Avx512 => unsafe { simd::tile_avx512::<R, C, false>(out_t, a, b, m, k) },
        }
    }
}

/// `out_t[j·m + i] = a[i, :] · b[j, :]` for the rows `j` of one block of `b` (`[rows, k]`).
/// Tiles of up to 8 rows of `a` × up to 8 rows of `b` (fewer `a` rows take more `b` rows, so
/// there are always ≥ 4 independent accumulators, and AVX2 uses half-size tiles for its 16
/// registers); the block's `b` rows are read from memory once (the first tile of `a` rows
/// prefetches the next block's) and reused from L1 by every later tile of `a` rows.
fn small_m_block(out_t: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, isa: DotIsa) {
    let wide = !matches!(isa, DotIsa::Portable | DotIsa::Avx2);
    let rows = b.len() / k;
    // `b` rows per tile: on AVX-512, 3 with ≥ 8 rows of a and long rows (8×3 tiles, 24
    // accumulators; the last 4–7 rows as 4×3), else 4 with ≥ 4 rows (4×4), 4 with 2–3 rows,
    // 8 with one; on AVX2 (16 registers) half as many.
    let cb_max = match (m, wide) {
        (8.., true) if k >= TALL_TILE_MIN_K => 3,
        (4.., true) => 4,
        (4.., false) => 2,
        (2 | 3, true) => 4,
        (2 | 3, false) => 2,
        (_, true) => 8,
        (_, false) => 4,
    };
    let ra_max = if wide { 4 } else { 2 };
    let mut j = 0;
    while j < rows {
        let cb = (rows - j).min(cb_max);
        let bj = &b[j * k..(j + cb) * k];
        let oj = &mut out_t[j * m..(j + cb) * m];
        let mut i = 0;
        while i < m {
            let ra = if wide && cb_max == 3 && m - i >= 8 {
                8
            } else {
                (m - i).min(ra_max)
            };
            let (ai, oi) = (&a[i * k..(i + ra) * k], &mut oj[i..]);
            match (ra, cb) {
                (8, 3) => isa.tile::<8, 3>(oi, ai, bj, m, k, i == 0),
                (4, 4) => isa.tile::<4, 4>(oi, ai, bj, m, k, i == 0),
                (4, 3) => isa.tile::<4, 3>(oi, ai, bj, m, k, i == 0),
                (4, 2) => isa.tile::<4, 2>(oi, ai, bj, m, k, i == 0),
                (3, 4) => isa.tile::<3, 4>(oi, ai, bj, m, k, i == 0),
                (3, 2) => isa.tile::<3, 2>(oi, ai, bj, m, k, i == 0),
                (2, 4) => isa.tile::<2, 4>(oi, ai, bj, m, k, i == 0),
                (2, 2) => isa.tile::<2, 2>(oi, ai, bj, m, k, i == 0),
                (1, 8) => isa.tile::<1, 8>(oi, ai, bj, m, k, i == 0),
                (1, 4) => isa.tile::<1, 4>(oi, ai, bj, m, k, i == 0),
                (1, 2) => isa.tile::<1, 2>(oi, ai, bj, m, k, i == 0),
                // Other shapes (last rows of b or of a): one b row at a time.
                (_, _) => {
                    for c in 0..cb {
                        let (bc, oc) = (&bj[c * k..(c + 1) * k], &mut oi[c * m..]);
                        match ra {
                            8 => isa.tile::<8, 1>(oc, ai, bc, m, k, false),
                            4 => isa.tile::<4, 1>(oc, ai, bc, m, k, false),
                            3 => isa.tile::<3, 1>(oc, ai, bc, m, k, false),
                            2 => isa.tile::<2, 1>(oc, ai, bc, m, k, false),
                            _ => isa.tile::<1, 1>(oc, ai, bc, m, k, false),
                        }
                    }
                }
            }
            i += ra;
        }
        j += cb;
    }
}

/// `out[m, n] (= or +=) a[m, k] · b[n, k]ᵀ` with the tiled kernel ([`small_m_block`]), `k > 0`,
/// lengths already checked; with `parallel`, parallel over blocks of `b` rows when the
/// product is large.
#[allow(clippy::too_many_arguments)]
fn tiled_rows(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    isa: DotIsa,
    parallel: bool,
) {
    use rayon::prelude::*;
    let mut out_t = vec![0.0f32; n * m];
    // Rows of b per block: with few rows of a the block is streamed once, with more (a
    // chunk of `linear_rows`) a and the block together should stay in L1.
    let br = if m <= 8 { SMALL_M_ROWS } else { B_BLOCK_ROWS };
    if parallel && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        out_t
            .par_chunks_mut(br * m)
            .zip(b.par_chunks(br * k))
            .for_each(|(o, bb)| small_m_block(o, a, bb, m, k, isa));
    } else {
        out_t
            .chunks_mut(br * m)
            .zip(b.chunks(br * k))
            .for_each(|(o, bb)| small_m_block(o, a, bb, m, k, isa));
    }
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
}

/// Checks the lengths of a product's operands: `out` `[m, n]`, the left operand `m·k`
/// elements, the right one `k·n` (either layout); errors name the op and the argument.
fn check_product(
    op: &'static str,
    out: &[f32],
    (lhs_name, lhs): (&'static str, &[f32]),
    (rhs_name, rhs): (&'static str, &[f32]),
    m: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    check_len(op, "out", out.len(), checked_size(op, "out", &[m, n])?)?;
    check_len(
        op,
        lhs_name,
        lhs.len(),
        checked_size(op, lhs_name, &[m, k])?,
    )?;
    check_len(
        op,
        rhs_name,
        rhs.len(),
        checked_size(op, rhs_name, &[k, n])?,
    )
}

/// Rows of `x` per task in [`linear_rows`] (the tile loop's `a` block stays in L1/L2).
const INVARIANT_ROWS: usize = 16;
/// Rows of `b` per block in [`tiled_rows`] when `a` has more than 8 rows.
const B_BLOCK_ROWS: usize = 16;

/// The linear layer `out[m, n] (= or +=) x[m, k] · w[n, k]ᵀ` with **row invariance**: each row
/// of the result depends only on the same row of `x` and on `w`, bit for bit, whatever `m` is
/// and whatever the other rows hold (every element is one dot product summed in a fixed
/// order: 16 strided partial sums by fused multiply-add, a fixed tree, then the tail). The
/// generation engine uses it so that a sample's log-probs do not depend on the batch it ran
/// in; [`matmul`] instead picks the fastest kernel for the shape, whose summation order
/// changes with `m`. Layouts as in [`matmul`] with `trans_a = false`, `trans_b = true`.
///
/// # Contract (CUDA twin)
/// One thread block per output tile with a fixed reduction order along `k` that does not
/// depend on the tile's position or on `m` (no split-k).
pub fn linear_rows(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) -> Result<()> {
    check_product("linear_rows", out, ("x", x), ("w", w), m, k, n)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return Ok(());
    }
    let isa = DotIsa::detect();
    if m <= INVARIANT_ROWS {
        tiled_rows(out, x, w, m, k, n, accumulate, isa, !crate::pool::serial());
        return Ok(());
    }
    // Chunks of rows in parallel; each chunk also splits its blocks of `w` only when there
    // are too few chunks to keep the pool busy (nested tasks of a few µs cost more than they
    // share).
    use rayon::prelude::*;
    let serial = crate::pool::serial();
    let inner = !serial && m.div_ceil(INVARIANT_ROWS) < 2 * rayon::current_num_threads();
    out.par_chunks_mut(INVARIANT_ROWS * n)
        .zip(x.par_chunks(INVARIANT_ROWS * k))
        .with_min_len(crate::pool::min_len())
        .for_each(|(o, xx)| tiled_rows(o, xx, w, xx.len() / k, k, n, accumulate, isa, inner));
    Ok(())
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
    check_product("matmul", out, ("a", a), ("b", b), m, k, n)?;
    let small = m <= SMALL_M || (m <= SMALL_M_NARROW && n <= k);
    let serial = crate::pool::serial();
    if !trans_a && trans_b && m > 0 && small && k > 0 && n.saturating_mul(k) >= 1 << 15 {
        tiled_rows(out, a, b, m, k, n, accumulate, DotIsa::detect(), !serial);
        return Ok(());
    }
    let (a_rs, a_cs) = if trans_a { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if trans_b { (1, k) } else { (n, 1) };
    // Row split: each worker runs the single-threaded kernel on its own rows of `a`/`out`
    // (packing the weight once per worker). Faster than the kernel's own parallel split when
    // the weight is small or narrow (measured on Qwen2.5-0.5B and C1 shapes,
    // `examples/bench_small_m`): q/k/o/down projections and every matrix of a tiny model;
    // slower for wide weights such as gate/up and the LM head of a large model.
    let threads = rayon::current_num_threads();
    let narrow = n <= k || n.saturating_mul(k) <= ROW_SPLIT_MAX_WEIGHT;
    if !serial && !trans_a && threads > 1 && m >= ROW_SPLIT_MIN_ROWS * threads && narrow {
        use rayon::prelude::*;
        let rows = m.div_ceil(threads);
        return out
            .par_chunks_mut(rows * n)
            .zip(a.par_chunks(rows * k))
            .try_for_each(|(o, aa)| {
                let r = aa.len() / k;
                packed_product(
                    o,
                    aa,
                    (k, 1),
                    b,
                    (b_rs, b_cs),
                    r,
                    k,
                    n,
                    accumulate,
                    Parallelism::None,
                )
            });
    }
    let par = if !serial && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    packed_product(
        out,
        a,
        (a_rs, a_cs),
        b,
        (b_rs, b_cs),
        m,
        k,
        n,
        accumulate,
        par,
    )
}

/// `out[m, n] (= or +=) a · b` on the `gemm` crate's packed kernel, `out` row-major and
/// contiguous, `a` (`m × k`) and `b` (`k × n`) with the given (row, column) strides.
#[allow(clippy::too_many_arguments)]
fn packed_product(
    out: &mut [f32],
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    par: Parallelism,
) -> Result<()> {
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

    /// Deterministic test values `((i·step) mod modulus − center) / scale`, `i < len`.
    fn wave(len: usize, step: usize, modulus: usize, center: f32, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * step % modulus) as f32 - center) / scale)
            .collect()
    }

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
        // n·k large enough for the tiled dot-product path; m = 65 takes the packed path.
        let (k, n) = (301, 203);
        let a: Vec<f32> = wave(65 * k, 7, 13, 6.0, 7.0);
        let b: Vec<f32> = wave(k * n, 5, 11, 5.0, 5.0);
        let mut packed = vec![0.0f32; 65 * n];
        matmul(&mut packed, &a, &b, 65, k, n, false, true, false).unwrap();
        for m in (1usize..=20).chain([31, 32, 33]) {
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
        let a: Vec<f32> = wave(m * k, 7, 13, 6.0, 7.0);
        let b: Vec<f32> = wave(k * n, 5, 11, 5.0, 5.0);
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
    fn row_split_matches_naive_for_both_b_layouts() {
        // m large enough to split by rows on any pool with ≥ 2 threads; odd sizes.
        let (m, k, n) = (301, 37, 53);
        let a: Vec<f32> = wave(m * k, 7, 13, 6.0, 7.0);
        let b: Vec<f32> = wave(k * n, 5, 11, 5.0, 5.0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for trans_b in [false, true] {
            for acc in [false, true] {
                let mut out = vec![0.25f32; m * n];
                pool.install(|| matmul(&mut out, &a, &b, m, k, n, false, trans_b, acc).unwrap());
                for i in 0..m {
                    for j in 0..n {
                        let bv = |p: usize| if trans_b { b[j * k + p] } else { b[p * n + j] };
                        let dot: f32 = (0..k).map(|p| a[i * k + p] * bv(p)).sum();
                        let want = dot + if acc { 0.25 } else { 0.0 };
                        let got = out[i * n + j];
                        assert!((got - want).abs() < 1e-4, "({i},{j}) {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn tile_versions_agree_bit_for_bit() {
        // Every tile shape (rows of a 1..=12 and 17, rows of b 1..=10) and k with and without
        // a tail: the AVX2 and AVX-512 versions give the portable version's bits.
        let mut isas = vec![DotIsa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                isas.push(DotIsa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                isas.push(DotIsa::Avx512);
            }
        }
        for k in [1usize, 15, 16, 17, 33, 64, 100, 777] {
            for m in (1usize..=12).chain([17]) {
                for rows in 1usize..=10 {
                    let a: Vec<f32> = (0..m * k)
                        .map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 1.3e-3)
                        .collect();
                    let b: Vec<f32> = (0..rows * k)
                        .map(|i| ((i * 104_729 % 997) as f32 - 498.0) * 2.1e-3)
                        .collect();
                    let run = |isa: DotIsa| {
                        let mut o = vec![0.0f32; rows * m];
                        small_m_block(&mut o, &a, &b, m, k, isa);
                        o.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                    };
                    let want = run(DotIsa::Portable);
                    for &isa in &isas[1..] {
                        assert_eq!(run(isa), want, "k={k} m={m} rows={rows}");
                    }
                }
            }
        }
    }

    #[test]
    fn linear_rows_is_bitwise_row_invariant_and_exact() {
        // Each row alone (m = 1) and inside products of 2..300 rows, on 1- and 3-thread
        // pools, accumulating or not: the same bits; and within rounding of an f64 product.
        let (k, n) = (203, 97);
        let rows = 300;
        let x: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0 + (i % 5) as f32 * 1e-3)
            .collect();
        let w: Vec<f32> = wave(n * k, 5, 11, 5.0, 5.0);
        let init = |i: usize| (i % 3) as f32 * 0.5;
        for acc in [false, true] {
            let alone: Vec<Vec<f32>> = (0..rows)
                .map(|i| {
                    let mut o: Vec<f32> = (0..n).map(|j| init(i * n + j)).collect();
                    linear_rows(&mut o, &x[i * k..(i + 1) * k], &w, 1, k, n, acc).unwrap();
                    o
                })
                .collect();
            for (i, row) in alone.iter().enumerate() {
                for (j, got) in row.iter().enumerate() {
                    let dot: f64 = (0..k)
                        .map(|p| f64::from(x[i * k + p]) * f64::from(w[j * k + p]))
                        .sum();
                    let want = dot + if acc { f64::from(init(i * n + j)) } else { 0.0 };
                    assert!((f64::from(*got) - want).abs() < 1e-3, "({i},{j})");
                }
            }
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                for (start, m) in [(0, 2), (5, 9), (1, 33), (7, 64), (3, 65), (0, 300)] {
                    let mut o: Vec<f32> = (start * n..(start + m) * n).map(init).collect();
                    let xs = &x[start * k..(start + m) * k];
                    pool.install(|| linear_rows(&mut o, xs, &w, m, k, n, acc).unwrap());
                    for (r, got) in o.chunks(n).enumerate() {
                        let want = &alone[start + r];
                        assert!(
                            got.iter()
                                .zip(want)
                                .all(|(a, b)| a.to_bits() == b.to_bits()),
                            "row {} differs in a product of {m} rows ({threads} threads)",
                            start + r
                        );
                    }
                }
            }
        }
        let mut out = [0.0f32; 4];
        let err = linear_rows(&mut out, &[0.0; 5], &[0.0; 6], 2, 3, 2, false).unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
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
