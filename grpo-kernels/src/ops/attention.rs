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
//! CPU strategy: one work item per (KV head, block of queries). An item stacks the rows of
//! every query head that shares its KV head (`group = hq / hkv` heads, row `i · group +
//! head`), so each product covers the whole group: the score block is
//! `[bq · group, keys]` with `bq · group` about [`BLOCK_ROWS`], and in the backward the
//! products `Pᵀ·dO` and `dSᵀ·Q` sum the group's heads into the shared `dV`/`dK` directly.
//! The products are register-tiled loops (`attn_tiles`: AVX-512 where present, the same
//! bits otherwise) that skip the key chunks the causal mask hides; on C2's shapes (95 keys,
//! `d` = 32, one thread) forward + backward fell from 0.26 s to 0.16 s per 512 calls
//! against `gemm`-crate calls, which pack both operands on every call. Score blocks are
//! reused per thread (no page faults per item).
//! Items run in parallel on rayon's pool; inside [`on_this_thread`] the same items run on the
//! calling thread, with the same bits, for callers that parallelise over sequences (the
//! model's forward and backward run one task per sequence). Scores are normalised with a
//! numerically stable softmax whose `lse` is saved, so the backward recomputes
//! probabilities as `exp(score − lse)` (flash-attention style). Extra memory per item: the
//! stacked queries (and output gradients), one or two `[bq · group, keys]` score blocks, and
//! in the backward a partial `dK`/`dV` of `[keys, d]` each, summed into `dk`/`dv` in item
//! order at the end (so the sums do not depend on scheduling).

use super::attn_tiles::{self as tiles, Causal};
use super::math::{self, multiversion};
use crate::Result;
use crate::error::{check_len, checked_size, invalid};
use rayon::prelude::*;

/// Stacked score rows (queries × the query heads of one KV group) per block.
const BLOCK_ROWS: usize = 256;

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

    /// Query heads per KV head.
    fn group(&self) -> usize {
        self.hq / self.hkv
    }

    /// Queries per block: each block stacks `bq · group` score rows.
    fn bq(&self) -> usize {
        (BLOCK_ROWS / self.group()).max(1)
    }

    /// Query blocks.
    fn nqb(&self) -> usize {
        self.tq.div_ceil(self.bq())
    }

    /// (First query, queries) of block `qb`.
    fn block(&self, qb: usize) -> (usize, usize) {
        let i0 = qb * self.bq();
        (i0, self.bq().min(self.tq - i0))
    }

    /// Keys visible to any query of the block starting at `i0` with `bq` rows.
    fn kv_len(&self, i0: usize, bq: usize) -> usize {
        (self.q_offset + i0 + bq).min(self.tk)
    }

    /// Keys allowed to stacked row `r` of the block starting at query `i0`.
    fn limit(&self, i0: usize, r: usize) -> usize {
        self.q_offset + i0 + r / self.group() + 1
    }

    /// Offset in a `[tq, hq, d]` buffer of query `i`'s heads of KV group `g`.
    fn row_off(&self, i: usize, g: usize) -> usize {
        (i * self.hq + g * self.group()) * self.d
    }

    /// The heads of KV group `g` for the queries of block `qb` of `src` (`[tq, hq, d]`),
    /// stacked as `[bq · group, d]` (row `i · group + head`).
    fn pack(&self, src: &[f32], g: usize, qb: usize) -> Vec<f32> {
        let (i0, bq) = self.block(qb);
        let w = self.group() * self.d;
        let mut dst = Vec::with_capacity(bq * w);
        for i in i0..i0 + bq {
            let o = self.row_off(i, g);
            dst.extend_from_slice(&src[o..o + w]);
        }
        dst
    }

    /// The causal structure of the block starting at query `i0` that sees `kv_len` keys.
    fn mask(&self, i0: usize, kv_len: usize) -> Causal {
        Causal {
            limit0: self.limit(i0, 0),
            per: self.group(),
            cols: kv_len,
        }
    }

    /// `K[0..kv_len, g, :]ᵀ` (or V's) copied into a `[d, stride]` buffer, zero beyond
    /// `kv_len`.
    fn transposed(&self, k: &[f32], g: usize, kv_len: usize, stride: usize) -> Vec<f32> {
        let d = self.d;
        let mut kt = vec![0.0f32; d * stride];
        for (j, row) in k.chunks_exact(self.hkv * d).take(kv_len).enumerate() {
            for (c, &x) in row[g * d..(g + 1) * d].iter().enumerate() {
                kt[c * stride + j] = x;
            }
        }
        kt
    }

    /// The rows of KV head `g` in a `[tk, hkv, d]` buffer: a `[tk, hkv · d]` panel starting
    /// at the head's first column.
    fn head<'a>(&self, k: &'a [f32], g: usize) -> &'a [f32] {
        &k[g * self.d..]
    }

    /// Scatters per-item stacked rows (`items[g · nqb + qb]`, `[bq · group, d]` each) back
    /// into `dst` (`[tq, hq, d]`), parallel over queries.
    fn unpack_all<T: Sync>(
        &self,
        dst: &mut [f32],
        items: &[T],
        pick: impl Fn(&T) -> &[f32] + Sync,
        min_len: usize,
    ) {
        let (nqb, bq, w) = (self.nqb(), self.bq(), self.group() * self.d);
        dst.par_chunks_mut(self.hq * self.d)
            .enumerate()
            .with_min_len(min_len.max(16))
            .for_each(|(i, row)| {
                let (qb, il) = (i / bq, i % bq);
                for (g, part) in row.chunks_exact_mut(w).enumerate() {
                    part.copy_from_slice(&pick(&items[g * nqb + qb])[il * w..(il + 1) * w]);
                }
            });
    }
}

/// Row stride of a score block with `kv_len` keys: whole 16-float chunks, so the softmax
/// loops below never run a scalar tail.
fn padded(kv_len: usize) -> usize {
    kv_len.next_multiple_of(CHUNK)
}

/// Vector width the score loops are written for (one AVX-512 register, as in `math`).
const CHUNK: usize = math::LANES;

multiversion! {
/// Softmax of the score block `s` (`rows` rows of stride `stride`, a multiple of
/// [`CHUNK`]) in place, unnormalised: row `r` keeps keys `0..limit0 + r / per`, set to
/// `e^(score − max)`; every other column becomes 0. Writes each row's `1 / Σ` to `inv` and
/// its log-sum-exp to `lse`.
fn softmax_block(
    s: &mut [f32],
    stride: usize,
    limit0: usize,
    per: usize,
    inv: &mut [f32],
    lse: &mut [f32],
) {
    for (r, row) in s.chunks_exact_mut(stride).enumerate() {
        let live = mask_row(row, limit0 + r / per);
        let mut mx = [f32::NEG_INFINITY; CHUNK];
        for c in live.chunks_exact(CHUNK) {
            for l in 0..CHUNK {
                mx[l] = if c[l] > mx[l] { c[l] } else { mx[l] };
            }
        }
        let m = lanes_max(mx);
        let mut acc = [0.0f32; CHUNK];
        for c in live.chunks_exact_mut(CHUNK) {
            for l in 0..CHUNK {
                let e = math::exp(c[l] - m);
                c[l] = e;
                acc[l] += e;
            }
        }
        let sum = lanes_sum(acc);
        inv[r] = 1.0 / sum;
        lse[r] = m + sum.ln();
    }
}
}

multiversion! {
/// Backward probabilities in place: row `r` of `s` (stride a multiple of [`CHUNK`]) keeps
/// keys `0..limit0 + r / per` as `e^(score − lse[r])`; every other column becomes 0.
fn probs_block(s: &mut [f32], stride: usize, limit0: usize, per: usize, lse: &[f32]) {
    for (r, row) in s.chunks_exact_mut(stride).enumerate() {
        let live = mask_row(row, limit0 + r / per);
        let l0 = lse[r];
        for c in live.chunks_exact_mut(CHUNK) {
            for l in 0..CHUNK {
                c[l] = math::exp(c[l] - l0);
            }
        }
    }
}
}

multiversion! {
/// Softmax backward over a block: `dp = p · (dp − delta[row])` (rows of `stride` floats),
/// and exactly 0 where `p` is 0 (the masked keys, where `dp` was never computed).
fn softmax_grad_block(dp: &mut [f32], p: &[f32], stride: usize, delta: &[f32]) {
    for ((dr, pr), &dl) in dp.chunks_exact_mut(stride).zip(p.chunks_exact(stride)).zip(delta) {
        for (x, &pv) in dr.iter_mut().zip(pr) {
            *x = if pv == 0.0 { 0.0 } else { pv * (*x - dl) };
        }
    }
}
}

multiversion! {
/// `out[r] = Σ_c a[r, c] · b[r, c]` for rows of `d` floats, in [`CHUNK`] lanes with fused
/// multiply-adds (the lanes summed as a tree).
fn row_dots(out: &mut [f32], a: &[f32], b: &[f32], d: usize) {
    let full = d - d % CHUNK;
    for ((o, ar), br) in out.iter_mut().zip(a.chunks_exact(d)).zip(b.chunks_exact(d)) {
        let mut acc = [0.0f32; CHUNK];
        for (x, y) in ar[..full].chunks_exact(CHUNK).zip(br[..full].chunks_exact(CHUNK)) {
            for l in 0..CHUNK {
                acc[l] = x[l].mul_add(y[l], acc[l]);
            }
        }
        let mut sum = lanes_sum(acc);
        for (x, y) in ar[full..].iter().zip(&br[full..]) {
            sum = x.mul_add(*y, sum);
        }
        *o = sum;
    }
}
}

/// Masks one score row of a block (length a multiple of [`CHUNK`]) whose keys `0..limit`
/// are allowed: the rest of `limit`'s chunk becomes `-inf` (so `exp` gives exactly 0 there),
/// every later column 0. Returns the whole chunks that hold the allowed keys.
#[inline(always)]
fn mask_row(row: &mut [f32], limit: usize) -> &mut [f32] {
    let end = limit.next_multiple_of(CHUNK).min(row.len());
    let (live, rest) = row.split_at_mut(end);
    live[limit..].fill(f32::NEG_INFINITY);
    rest.fill(0.0);
    live
}

/// Largest of the lanes.
#[inline(always)]
fn lanes_max(mut v: [f32; CHUNK]) -> f32 {
    let mut w = CHUNK / 2;
    while w > 0 {
        for l in 0..w {
            v[l] = if v[l + w] > v[l] { v[l + w] } else { v[l] };
        }
        w /= 2;
    }
    v[0]
}

/// Sum of the lanes as a tree (`l + (l + 8)` first).
#[inline(always)]
fn lanes_sum(mut v: [f32; CHUNK]) -> f32 {
    let mut w = CHUNK / 2;
    while w > 0 {
        for l in 0..w {
            v[l] += v[l + w];
        }
        w /= 2;
    }
    v[0]
}

use crate::pool::min_len;
pub use crate::pool::on_this_thread;

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
    let (nqb, group) = (dims.nqb(), dims.group());
    // One item per (KV group, query block): its query heads' rows stacked into one score
    // block, so each product covers `group` heads at once.
    let items: Vec<(Vec<f32>, Vec<f32>)> = (0..hkv * nqb)
        .into_par_iter()
        .with_min_len(min_len)
        .map(|item| fwd_block(dims, item / nqb, item % nqb, q, k, v))
        .collect::<Result<_>>()?;
    let (outs, lses): (Vec<Vec<f32>>, Vec<Vec<f32>>) = items.into_iter().unzip();
    dims.unpack_all(out, &outs, |o| o, min_len);
    for (item, l) in lses.iter().enumerate() {
        let (g, qb) = (item / nqb, item % nqb);
        let (i0, _) = dims.block(qb);
        for (r, &x) in l.iter().enumerate() {
            lse[(g * group + r % group) * tq + i0 + r / group] = x;
        }
    }
    Ok(())
}

thread_local! {
    /// Score blocks kept between items on this thread: a C2 block is ~150 kB, which glibc
    /// serves with `mmap`, so a fresh one per item costs page faults on every use.
    static BLOCKS: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An `[n]` score block from this thread's [`BLOCKS`], holding stale values: every user
/// writes each element it reads (the products write the visible chunks, `mask_row` and
/// `softmax_grad_block` the rest).
fn score_block(n: usize) -> Vec<f32> {
    let mut v = BLOCKS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    if v.len() < n {
        v.resize(n, 0.0);
    }
    v.truncate(n);
    v
}

/// Returns a block to this thread's [`BLOCKS`] (at most two are kept).
fn give_block(v: Vec<f32>) {
    BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < 2 {
            b.push(v);
        }
    });
}

/// The scaled scores of one (KV group, query block) item, before masking.
struct Scores {
    /// First query of the block.
    i0: usize,
    /// Stacked rows (`bq · group`).
    rows: usize,
    /// Row stride of `s` ([`padded`] `kv_len`).
    stride: usize,
    /// Keys visible to each stacked row.
    mask: Causal,
    /// `[rows, d]` the block's stacked queries.
    qs: Vec<f32>,
    /// `[rows, stride]` `scale · Q·Kᵀ` in the first `kv_len` columns of each row.
    s: Vec<f32>,
}

impl Scores {
    fn new(dims: &Dims, g: usize, qb: usize, q: &[f32], k: &[f32]) -> Result<Self> {
        let d = dims.d;
        let (i0, bq) = dims.block(qb);
        let rows = bq * dims.group();
        let kv_len = dims.kv_len(i0, bq);
        let qs = dims.pack(q, g, qb);
        let stride = padded(kv_len);
        let mask = dims.mask(i0, kv_len);
        let kt = dims.transposed(k, g, kv_len, stride);
        let mut s = score_block(rows * stride);
        tiles::nt(
            tiles::backend(),
            &mut s,
            stride,
            &qs,
            d,
            &kt,
            stride,
            rows,
            mask,
            dims.scale,
        );
        Ok(Scores {
            i0,
            rows,
            stride,
            mask,
            qs,
            s,
        })
    }
}

/// Forward of KV group `g`, query block `qb`: (stacked output `[bq · group, d]`, stacked
/// log-sum-exp `[bq · group]`).
fn fwd_block(
    dims: &Dims,
    g: usize,
    qb: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let d = dims.d;
    let Scores {
        i0,
        rows,
        stride,
        mask,
        qs,
        mut s,
    } = Scores::new(dims, g, qb, q, k)?;
    // Unnormalised probabilities; each output row is divided by its sum after the product
    // (d values per row instead of one per key).
    let mut lse = vec![0.0f32; rows];
    let mut inv = vec![0.0f32; rows];
    softmax_block(
        &mut s,
        stride,
        dims.limit(i0, 0),
        dims.group(),
        &mut inv,
        &mut lse,
    );
    let mut o = qs;
    let hd = dims.hkv * d;
    tiles::nn(
        tiles::backend(),
        &mut o,
        d,
        &s,
        stride,
        dims.head(v, g),
        hd,
        rows,
        mask,
        1.0,
    );
    for (row, &c) in o.chunks_exact_mut(d).zip(&inv) {
        math::scale(row, c);
    }
    give_block(s);
    Ok((o, lse))
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
    let nqb = dims.nqb();
    // Items as in the forward; each returns its stacked dQ rows and its partial dK/dV over
    // the keys its block sees, summed below in item order (the same bits however the items
    // were scheduled).
    let items: Vec<BlockGrads> = (0..hkv * nqb)
        .into_par_iter()
        .with_min_len(min_len)
        .map(|item| bwd_block(dims, item / nqb, item % nqb, dout, q, k, v, out, lse))
        .collect::<Result<_>>()?;
    dims.unpack_all(dq, &items, |b| &b.dq, min_len);
    let kv_max = dims.kv_len(0, tq);
    let add_kv = |dst: &mut [f32], pick: fn(&BlockGrads) -> &[f32]| {
        dst.par_chunks_mut(hkv * d)
            .take(kv_max)
            .enumerate()
            .with_min_len(min_len.max(16))
            .for_each(|(j, row)| {
                for (item, b) in items.iter().enumerate() {
                    let src = pick(b);
                    if (j + 1) * d > src.len() {
                        continue;
                    }
                    let g = item / nqb;
                    for (x, y) in row[g * d..(g + 1) * d].iter_mut().zip(&src[j * d..]) {
                        *x += y;
                    }
                }
            });
    };
    add_kv(dk, |b| &b.dk);
    add_kv(dv, |b| &b.dv);
    Ok(())
}

/// Gradients of one (KV group, query block) item.
struct BlockGrads {
    /// `[bq · group, d]` stacked dQ rows.
    dq: Vec<f32>,
    /// `[kv_len, d]` this block's share of dK for group `g`.
    dk: Vec<f32>,
    /// `[kv_len, d]` this block's share of dV.
    dv: Vec<f32>,
}

/// Backward of KV group `g`, query block `qb` (flash-attention style: probabilities are
/// recomputed from the saved log-sum-exp).
#[allow(clippy::too_many_arguments)]
fn bwd_block(
    dims: &Dims,
    g: usize,
    qb: usize,
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
) -> Result<BlockGrads> {
    let (d, group, tq, scale) = (dims.d, dims.group(), dims.tq, dims.scale);
    // P = exp(scale·QKᵀ − lse), masked.
    let Scores {
        i0,
        rows,
        stride,
        mask,
        qs,
        s: mut p,
    } = Scores::new(dims, g, qb, q, k)?;
    let kv_len = mask.cols;
    let dos = dims.pack(dout, g, qb);
    let mut row_lse = vec![0.0f32; rows];
    for (r, l) in row_lse.iter_mut().enumerate() {
        let (i, hh) = (i0 + r / group, r % group);
        *l = lse[(g * group + hh) * tq + i];
    }
    // delta = rowsum(dO ⊙ O) over the stacked rows.
    let os = dims.pack(out, g, qb);
    let mut delta = vec![0.0f32; rows];
    row_dots(&mut delta, &dos, &os, d);
    probs_block(&mut p, stride, dims.limit(i0, 0), group, &row_lse);
    let be = tiles::backend();
    // dV = Pᵀ·dO (the stacked rows sum the group's heads).
    let mut dv = vec![0.0f32; kv_len * d];
    tiles::tn(be, &mut dv, d, &p, stride, &dos, rows, mask, 1.0);
    // dP = dO·Vᵀ
    let vt = dims.transposed(v, g, kv_len, stride);
    let mut dp = score_block(rows * stride);
    tiles::nt(be, &mut dp, stride, &dos, d, &vt, stride, rows, mask, 1.0);
    // dS = P ⊙ (dP − delta)
    softmax_grad_block(&mut dp, &p, stride, &delta);
    // dQ = scale · dS·K
    let mut dq = dos;
    let hd = dims.hkv * d;
    tiles::nn(
        be,
        &mut dq,
        d,
        &dp,
        stride,
        dims.head(k, g),
        hd,
        rows,
        mask,
        scale,
    );
    // dK = scale · dSᵀ·Q
    let mut dk = vec![0.0f32; kv_len * d];
    tiles::tn(be, &mut dk, d, &dp, stride, &qs, rows, mask, scale);
    give_block(p);
    give_block(dp);
    Ok(BlockGrads { dq, dk, dv })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_score_blocks_do_not_leak_into_results() {
        // (queries, keys, hq, hkv, d): row and key tails, masked chunks, and queries after a
        // prefix (so the rows of one tile see different numbers of 16-key chunks).
        for (t, tk, hq, hkv, d) in [
            (40usize, 40usize, 6usize, 2usize, 24usize),
            (30, 45, 2, 2, 16),
            (21, 60, 8, 2, 32),
        ] {
            let off = tk - t;
            let f = |i: usize, s: f32| ((i as f32 * s).sin() * 0.8) + 0.05;
            let q: Vec<f32> = (0..t * hq * d).map(|i| f(i, 0.37)).collect();
            let k: Vec<f32> = (0..tk * hkv * d).map(|i| f(i, 0.53)).collect();
            let v: Vec<f32> = (0..tk * hkv * d).map(|i| f(i, 0.71)).collect();
            let dout: Vec<f32> = (0..t * hq * d).map(|i| f(i, 0.91)).collect();
            let scale = 0.3;
            let run = || {
                on_this_thread(|| {
                    let mut out = vec![0.0f32; q.len()];
                    let mut lse = vec![0.0f32; hq * t];
                    attention_fwd(
                        &mut out, &mut lse, &q, &k, &v, t, tk, hq, hkv, d, off, scale,
                    )
                    .unwrap();
                    let (mut dq, mut dk, mut dv) = (
                        vec![0.0f32; q.len()],
                        vec![0.0f32; k.len()],
                        vec![0.0f32; v.len()],
                    );
                    attention_bwd(
                        &mut dq, &mut dk, &mut dv, &dout, &q, &k, &v, &out, &lse, t, tk, hq, hkv,
                        d, off, scale,
                    )
                    .unwrap();
                    [out, lse, dq, dk, dv]
                        .concat()
                        .iter()
                        .map(|x| x.to_bits())
                        .collect::<Vec<u32>>()
                })
            };
            // One worker thread, so every item runs where the blocks are poisoned.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let (clean, poisoned) = pool.install(|| {
                BLOCKS.with(|b| b.borrow_mut().clear());
                let clean = run();
                // Poison the thread's reusable blocks: NaN and -inf everywhere.
                BLOCKS.with(|b| b.borrow_mut().clear());
                give_block(vec![f32::NAN; 1 << 16]);
                give_block(vec![f32::NEG_INFINITY; 1 << 16]);
                (clean, run())
            });
            assert_eq!(clean, poisoned);
            assert!(clean.iter().all(|&b| f32::from_bits(b).is_finite()));
        }
    }

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
