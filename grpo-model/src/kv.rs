//! KV caches and incremental forward for the generation engine.
//!
//! Two storage forms, with keys (after QK-norm and RoPE) and values of every layer:
//!
//! - [`KvCache`]: one sequence, per layer `[len, Hkv, D]` contiguous. Sharing a prompt across
//!   G samples is `cache.clone()` after prefill; [`KvCache::truncate`] rolls back.
//!   - [`Model::forward_step_hidden`] / [`Model::forward_step`]: run `T >= 1` new tokens at
//!     positions `cache.len()..`, append their keys and values, and return the final-norm
//!     hidden states `[T, H]` / the last position's logits `[V]`.
//!   - [`Model::decode_step`]: one new token for each of `B` sequences at once (projections
//!     and MLP as `[B, ·]` matrix products; attention per sequence); logits `[B, V]`.
//! - [`KvPool`]: paged storage in fixed-size blocks shared by many sequences; a sequence is a
//!   block table ([`PagedSeq`]), so sequences can share blocks (a prompt's G samples) and
//!   memory is reused block by block. Which blocks are free, shared or copied on write is the
//!   caller's policy (grpo-rollout's block manager).
//!   - [`Model::prefill_paged`]: prefill or continuation of several sequences, rows stacked
//!     through the layers (context gathered from the blocks); last-position logits `[n, V]`.
//!   - [`Model::decode_paged`]: one token per sequence; attention reads keys/values straight
//!     from the block tables (parallel over rows); logits `[B, V]`.
//! - [`Model::logits`]: `[n, H]` hidden states → `[n, V]` logits.

use grpo_kernels::ops::attention::attention_fwd;
use grpo_kernels::ops::embedding::embedding_fwd;
use grpo_kernels::ops::gemm::linear_rows;
use grpo_kernels::ops::logprob::logits;
use grpo_kernels::ops::paged::{Heads, paged_attention_row};
use grpo_kernels::ops::rmsnorm::rmsnorm_fwd;
use grpo_kernels::ops::rope::rope_fwd;
use grpo_kernels::ops::swiglu::swiglu_fwd;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::forward::{Ctx, Span};
use crate::model::Model;

/// Keys and values of one sequence, per layer `[len, Hkv, D]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
    kv_dim: usize,
}

impl KvCache {
    /// An empty cache for `config`.
    pub fn new(config: &ModelConfig) -> Self {
        Self::with_capacity(config, 0)
    }

    /// An empty cache with room for `tokens` positions.
    pub fn with_capacity(config: &ModelConfig, tokens: usize) -> Self {
        let kv_dim = config.kv_dim();
        KvCache {
            k: (0..config.num_layers)
                .map(|_| Vec::with_capacity(tokens * kv_dim))
                .collect(),
            v: (0..config.num_layers)
                .map(|_| Vec::with_capacity(tokens * kv_dim))
                .collect(),
            len: 0,
            kv_dim,
        }
    }

    /// Number of cached positions (= position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops positions `len..` (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            for (k, v) in self.k.iter_mut().zip(&mut self.v) {
                k.truncate(len * self.kv_dim);
                v.truncate(len * self.kv_dim);
            }
            self.len = len;
        }
    }

    /// Keys and values of `layer`, each `[len, Hkv, D]`.
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.k[layer], &self.v[layer])
    }

    /// Bytes held (f32 keys and values of every layer).
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|x| x.len() * 4).sum()
    }

    fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        self.k[layer].extend_from_slice(k);
        self.v[layer].extend_from_slice(v);
    }
}

impl Model {
    fn check_cache(&self, cache: &KvCache, new: usize, what: &str) -> Result<()> {
        if cache.k.len() != self.config.num_layers || cache.kv_dim != self.config.kv_dim() {
            return Err(Error::InvalidInput(format!(
                "{what}: KV cache was built for another config"
            )));
        }
        if cache.len + new > self.config.max_position_embeddings {
            return Err(Error::SequenceTooLong {
                what: what.into(),
                len: cache.len + new,
                max: self.config.max_position_embeddings,
            });
        }
        Ok(())
    }

    /// Runs `tokens` at positions `cache.len()..` (attending to the cache), appends their
    /// keys/values and returns the final-norm hidden states `[T, H]`.
    pub fn forward_step_hidden(&self, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<f32>> {
        let c = &self.config;
        let h = c.hidden_size;
        let t = tokens.len();
        if t == 0 {
            return Err(Error::InvalidInput("forward_step: no tokens".into()));
        }
        self.check_cache(cache, t, "forward_step")?;
        self.check_tokens("forward_step tokens", tokens, cache.len + t)?;
        let mut x = vec![0.0; t * h];
        embedding_fwd(
            &mut x,
            self.w(self.layout.embed, c.vocab_size * h),
            tokens,
            h,
        )?;
        let pos0 = cache.len;
        for l in 0..c.num_layers {
            let (a, out) = {
                let (ck, cv) = cache.layer(l);
                let span = Span {
                    off: 0,
                    t,
                    pos0,
                    ctx: if pos0 > 0 {
                        Ctx::Ext(ck, cv)
                    } else {
                        Ctx::None
                    },
                };
                self.layer_fwd_infer(l, &x, &[span])?
            };
            cache.append(l, &a.k, &a.v);
            x = out;
        }
        cache.len += t;
        let mut xf = vec![0.0; t * h];
        let mut rstd = vec![0.0; t];
        rmsnorm_fwd(
            &mut xf,
            &mut rstd,
            &x,
            self.w(self.layout.final_norm, h),
            t,
            h,
            c.rms_norm_eps,
        )?;
        Ok(xf)
    }

    /// [`Model::forward_step_hidden`], returning the logits `[V]` of the last new position.
    pub fn forward_step(&self, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<f32>> {
        let h = self.config.hidden_size;
        let xf = self.forward_step_hidden(cache, tokens)?;
        self.logits(&xf[xf.len() - h..], 1)
    }

    /// Logits `[n, V]` of final-norm hidden states `[n, H]`.
    pub fn logits(&self, hidden: &[f32], n: usize) -> Result<Vec<f32>> {
        let (h, v) = (self.config.hidden_size, self.config.vocab_size);
        let mut out = vec![0.0; n * v];
        logits(
            &mut out,
            hidden,
            self.w(self.layout.lm_head, v * h),
            n,
            h,
            v,
        )?;
        Ok(out)
    }

    /// One decode step for `B = caches.len()` sequences: `tokens[b]` is appended to
    /// `caches[b]`. Returns logits `[B, V]`. Equal (to rounding) to calling
    /// [`Model::forward_step`] on each sequence, but the matrix products run batched.
    pub fn decode_step(&self, caches: &mut [&mut KvCache], tokens: &[u32]) -> Result<Vec<f32>> {
        let c = &self.config;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let b = tokens.len();
        if caches.len() != b {
            return Err(Error::InvalidInput(format!(
                "decode_step: {} caches for {b} tokens",
                caches.len()
            )));
        }
        if b == 0 {
            return Ok(vec![]);
        }
        for (i, cache) in caches.iter().enumerate() {
            self.check_cache(cache, 1, &format!("decode_step row {i}"))?;
            self.check_tokens(
                &format!("decode_step row {i}"),
                &tokens[i..i + 1],
                cache.len + 1,
            )?;
        }
        let positions: Vec<usize> = caches.iter().map(|c| c.len).collect();
        let scale = 1.0 / (d as f32).sqrt();
        let mut lse = vec![0.0; hq];
        let logits = self.decode_rows(tokens, &positions, |l, q, k, v, att| {
            for (i, cache) in caches.iter_mut().enumerate() {
                cache.append(l, &k[i * kvd..(i + 1) * kvd], &v[i * kvd..(i + 1) * kvd]);
                let tk = positions[i] + 1;
                let (ck, cv) = cache.layer(l);
                attention_fwd(
                    &mut att[i * qd..(i + 1) * qd],
                    &mut lse,
                    &q[i * qd..(i + 1) * qd],
                    ck,
                    cv,
                    1,
                    tk,
                    hq,
                    hkv,
                    d,
                    tk - 1,
                    scale,
                )?;
            }
            Ok(())
        })?;
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        Ok(logits)
    }

    /// The row-wise part of one decode step for `B` rows at `positions`: embedding, then per
    /// layer the norms, projections (`[B, ·]` matrix products), QK-norm and RoPE, with
    /// attention delegated to `attend(layer, q [B, Hq·D], k [B, Hkv·D], v [B, Hkv·D], out
    /// [B, Hq·D])`, which also stores the new keys/values; returns logits `[B, V]`.
    fn decode_rows(
        &self,
        tokens: &[u32],
        positions: &[usize],
        mut attend: impl FnMut(usize, &[f32], &[f32], &[f32], &mut [f32]) -> Result<()>,
    ) -> Result<Vec<f32>> {
        let c = &self.config;
        let (h, qd, kvd, inter) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let b = tokens.len();
        let eps = c.rms_norm_eps;
        let mut x = vec![0.0; b * h];
        embedding_fwd(
            &mut x,
            self.w(self.layout.embed, c.vocab_size * h),
            tokens,
            h,
        )?;
        let mut xn = vec![0.0; b * h];
        let mut rstd = vec![0.0; b];
        let mut q = vec![0.0; b * qd];
        let mut k = vec![0.0; b * kvd];
        let mut v = vec![0.0; b * kvd];
        let mut att = vec![0.0; b * qd];
        let mut o = vec![0.0; b * h];
        let mut gate = vec![0.0; b * inter];
        let mut up = vec![0.0; b * inter];
        let mut act = vec![0.0; b * inter];
        for l in 0..c.num_layers {
            let lo = self.layout.layers[l];
            rmsnorm_fwd(&mut xn, &mut rstd, &x, self.w(lo.input_norm, h), b, h, eps)?;
            linear_rows(&mut q, &xn, self.w(lo.q, qd * h), b, h, qd, false)?;
            linear_rows(&mut k, &xn, self.w(lo.k, kvd * h), b, h, kvd, false)?;
            linear_rows(&mut v, &xn, self.w(lo.v, kvd * h), b, h, kvd, false)?;
            if let Some((bq, bk, bv)) = lo.qkv_bias {
                for (x, bias) in [
                    (&mut q, self.w(bq, qd)),
                    (&mut k, self.w(bk, kvd)),
                    (&mut v, self.w(bv, kvd)),
                ] {
                    for row in x.chunks_mut(bias.len()) {
                        row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
                    }
                }
            }
            if let Some((qn, kn)) = lo.qk_norm {
                let (mut qo, mut ko) = (vec![0.0; b * qd], vec![0.0; b * kvd]);
                let (mut rq, mut rk) = (vec![0.0; b * hq], vec![0.0; b * hkv]);
                rmsnorm_fwd(&mut qo, &mut rq, &q, self.w(qn, d), b * hq, d, eps)?;
                rmsnorm_fwd(&mut ko, &mut rk, &k, self.w(kn, d), b * hkv, d, eps)?;
                q = qo;
                k = ko;
            }
            rope_fwd(&mut q, positions, hq, d, &self.rope)?;
            rope_fwd(&mut k, positions, hkv, d, &self.rope)?;
            attend(l, &q, &k, &v, &mut att)?;
            linear_rows(&mut o, &att, self.w(lo.o, h * qd), b, qd, h, false)?;
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            rmsnorm_fwd(&mut xn, &mut rstd, &x, self.w(lo.post_norm, h), b, h, eps)?;
            linear_rows(
                &mut gate,
                &xn,
                self.w(lo.gate, inter * h),
                b,
                h,
                inter,
                false,
            )?;
            linear_rows(&mut up, &xn, self.w(lo.up, inter * h), b, h, inter, false)?;
            swiglu_fwd(&mut act, &gate, &up)?;
            linear_rows(&mut o, &act, self.w(lo.down, h * inter), b, inter, h, false)?;
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        rmsnorm_fwd(
            &mut xn,
            &mut rstd,
            &x,
            self.w(self.layout.final_norm, h),
            b,
            h,
            eps,
        )?;
        self.logits(&xn, b)
    }
}

/// Paged key/value storage: fixed-size blocks of `block_size` positions, one key and one
/// value buffer per layer: values `[num_blocks, block_size, Hkv·D]`, keys transposed within
/// each block, `[num_blocks, Hkv·D, block_size]` (the decode attention then computes the
/// scores of a block's positions as vector lanes, without horizontal sums; see
/// grpo-kernels' `paged` module).
///
/// A sequence's cache is a *block table* (the ids of its blocks in position order):
/// position `p` lives in block `table[p / block_size]`, slot `p % block_size`. The pool
/// only stores; which blocks are free, shared or copied on write is decided by the caller
/// (grpo-rollout's block manager). Storage grows on demand with [`KvPool::ensure_blocks`].
#[derive(Debug, Clone, PartialEq)]
pub struct KvPool {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    block_size: usize,
    kv_dim: usize,
    num_blocks: usize,
}

/// One sequence's view of a [`KvPool`] in a paged forward: its block table and the tokens
/// to run at positions `pos0..pos0 + tokens.len()` (attending to the `pos0` cached ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedSeq<'a> {
    /// Block ids covering at least `pos0 + tokens.len()` positions.
    pub blocks: &'a [u32],
    /// Positions already cached (= position of the first new token).
    pub pos0: usize,
    /// New tokens (at least one).
    pub tokens: &'a [u32],
}

impl KvPool {
    /// An empty pool for `config` with blocks of `block_size` positions (at least 1).
    pub fn new(config: &ModelConfig, block_size: usize) -> Self {
        KvPool {
            k: vec![Vec::new(); config.num_layers],
            v: vec![Vec::new(); config.num_layers],
            block_size: block_size.max(1),
            kv_dim: config.kv_dim(),
            num_blocks: 0,
        }
    }

    /// Positions per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks allocated so far.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// Bytes of one block (keys and values of every layer, f32).
    pub fn block_bytes(&self) -> usize {
        2 * self.k.len() * self.block_size * self.kv_dim * 4
    }

    /// Grows the storage to hold at least `blocks` blocks (new blocks are zeroed).
    pub fn ensure_blocks(&mut self, blocks: usize) {
        if blocks > self.num_blocks {
            let n = blocks * self.block_size * self.kv_dim;
            for x in self.k.iter_mut().chain(&mut self.v) {
                x.resize(n, 0.0);
            }
            self.num_blocks = blocks;
        }
    }

    /// Copies the first `positions` slots of block `src` into block `dst` in every layer
    /// (copy-on-write of a shared, partly filled block).
    pub fn copy_block(&mut self, src: u32, dst: u32, positions: usize) -> Result<()> {
        let (src, dst) = (src as usize, dst as usize);
        if src >= self.num_blocks || dst >= self.num_blocks || positions > self.block_size {
            return Err(Error::InvalidInput(format!(
                "KvPool::copy_block: block {src} -> {dst} ({positions} positions) outside a \
                 pool of {} blocks of {}",
                self.num_blocks, self.block_size
            )));
        }
        let (bs, kvd) = (self.block_size, self.kv_dim);
        let stride = bs * kvd;
        let n = positions * kvd;
        for x in &mut self.v {
            x.copy_within(src * stride..src * stride + n, dst * stride);
        }
        // Keys: the first `positions` slots of each of the block's `kvd` rows.
        for x in &mut self.k {
            for c in 0..kvd {
                let from = src * stride + c * bs;
                x.copy_within(from..from + positions, dst * stride + c * bs);
            }
        }
        Ok(())
    }

    /// Keys and values of positions `0..len` of a sequence at `layer`, gathered into
    /// contiguous `[len, Hkv·D]` buffers.
    pub fn gather(&self, layer: usize, blocks: &[u32], len: usize) -> (Vec<f32>, Vec<f32>) {
        let kvd = self.kv_dim;
        let mut k = Vec::with_capacity(len * kvd);
        let mut v = Vec::with_capacity(len * kvd);
        for (i, &b) in blocks.iter().enumerate() {
            let p0 = i * self.block_size;
            if p0 >= len {
                break;
            }
            let rows = (len - p0).min(self.block_size);
            let off = b as usize * self.block_size * kvd;
            let kb = &self.k[layer][off..off + self.block_size * kvd];
            for j in 0..rows {
                k.extend(kb[j..].iter().step_by(self.block_size).take(kvd));
            }
            v.extend_from_slice(&self.v[layer][off..off + rows * kvd]);
        }
        (k, v)
    }

    /// Block and slot of position `pos` in a sequence's table.
    fn slot(&self, blocks: &[u32], pos: usize) -> (usize, usize) {
        (
            blocks[pos / self.block_size] as usize,
            pos % self.block_size,
        )
    }

    /// Writes rows `[n, Hkv·D]` of keys and values at positions `pos0..pos0 + n`.
    fn write(&mut self, layer: usize, blocks: &[u32], pos0: usize, k: &[f32], v: &[f32]) {
        let kvd = self.kv_dim;
        let bs = self.block_size;
        for (i, (kr, vr)) in k.chunks(kvd).zip(v.chunks(kvd)).enumerate() {
            let (b, j) = self.slot(blocks, pos0 + i);
            let off = (b * bs + j) * kvd;
            self.v[layer][off..off + kvd].copy_from_slice(vr);
            let kb = &mut self.k[layer][b * bs * kvd..(b + 1) * bs * kvd];
            for (dst, &x) in kb[j..].iter_mut().step_by(bs).zip(kr) {
                *dst = x;
            }
        }
    }

    /// One query row `q [Hq·D]` at position `pos` attending to positions `0..=pos` of a
    /// sequence through its block table (grpo-kernels' [`paged_attention_row`]); writes
    /// `out [Hq·D]`. `scores` is scratch space.
    #[allow(clippy::too_many_arguments)]
    fn attend_row(
        &self,
        layer: usize,
        blocks: &[u32],
        pos: usize,
        q: &[f32],
        out: &mut [f32],
        heads: (usize, usize, usize),
        scale: f32,
        scores: &mut Vec<f32>,
    ) -> Result<()> {
        let (hq, hkv, d) = heads;
        let heads = Heads {
            q: hq,
            kv: hkv,
            dim: d,
        };
        let (kl, vl) = (&self.k[layer], &self.v[layer]);
        paged_attention_row(
            kl,
            vl,
            self.block_size,
            blocks,
            pos,
            q,
            out,
            heads,
            scale,
            scores,
        )?;
        Ok(())
    }
}

impl Model {
    fn check_paged(&self, pool: &KvPool, seq: &PagedSeq<'_>, what: &str) -> Result<()> {
        if pool.k.len() != self.config.num_layers || pool.kv_dim != self.config.kv_dim() {
            return Err(Error::InvalidInput(format!(
                "{what}: KV pool was built for another config"
            )));
        }
        if seq.tokens.is_empty() {
            return Err(Error::InvalidInput(format!("{what}: no tokens")));
        }
        let end = seq.pos0 + seq.tokens.len();
        self.check_tokens(what, seq.tokens, end)?;
        if seq.blocks.len() * pool.block_size < end {
            return Err(Error::InvalidInput(format!(
                "{what}: {} blocks of {} cannot hold {end} positions",
                seq.blocks.len(),
                pool.block_size
            )));
        }
        if let Some(b) = seq.blocks.iter().find(|&&b| b as usize >= pool.num_blocks) {
            return Err(Error::InvalidInput(format!(
                "{what}: block {b} is outside a pool of {} blocks",
                pool.num_blocks
            )));
        }
        Ok(())
    }

    /// Prefill (or continuation) of several sequences over a paged cache: each sequence's
    /// tokens run at positions `pos0..` attending to its `pos0` cached positions and to
    /// themselves; their keys/values are written into its blocks. All sequences' rows run
    /// through the layers stacked. Returns the logits `[seqs.len(), V]` of each sequence's
    /// last new position. The blocks written must not be shared with another sequence.
    pub fn prefill_paged(&self, pool: &mut KvPool, seqs: &[PagedSeq<'_>]) -> Result<Vec<f32>> {
        let c = &self.config;
        let h = c.hidden_size;
        for (i, s) in seqs.iter().enumerate() {
            self.check_paged(pool, s, &format!("prefill_paged sequence {i}"))?;
        }
        if seqs.is_empty() {
            return Ok(vec![]);
        }
        let tokens: Vec<u32> = seqs.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let n = tokens.len();
        let mut x = vec![0.0; n * h];
        embedding_fwd(
            &mut x,
            self.w(self.layout.embed, c.vocab_size * h),
            &tokens,
            h,
        )?;
        let kvd = c.kv_dim();
        for l in 0..c.num_layers {
            let ctx: Vec<(Vec<f32>, Vec<f32>)> = seqs
                .iter()
                .map(|s| pool.gather(l, s.blocks, s.pos0))
                .collect();
            let mut off = 0;
            let spans: Vec<Span<'_>> = seqs
                .iter()
                .zip(&ctx)
                .map(|(s, (ck, cv))| {
                    let sp = Span {
                        off,
                        t: s.tokens.len(),
                        pos0: s.pos0,
                        ctx: if s.pos0 > 0 {
                            Ctx::Ext(ck, cv)
                        } else {
                            Ctx::None
                        },
                    };
                    off += s.tokens.len();
                    sp
                })
                .collect();
            let (a, out) = self.layer_fwd_infer(l, &x, &spans)?;
            for (s, sp) in seqs.iter().zip(&spans) {
                let r = sp.off * kvd..(sp.off + sp.t) * kvd;
                pool.write(l, s.blocks, s.pos0, &a.k[r.clone()], &a.v[r]);
            }
            x = out;
        }
        let mut last = Vec::with_capacity(seqs.len() * h);
        let mut off = 0;
        for s in seqs {
            off += s.tokens.len();
            last.extend_from_slice(&x[(off - 1) * h..off * h]);
        }
        let mut xf = vec![0.0; seqs.len() * h];
        let mut rstd = vec![0.0; seqs.len()];
        rmsnorm_fwd(
            &mut xf,
            &mut rstd,
            &last,
            self.w(self.layout.final_norm, h),
            seqs.len(),
            h,
            c.rms_norm_eps,
        )?;
        self.logits(&xf, seqs.len())
    }

    /// One decode step over a paged cache: `seqs[b].tokens` is one token, written at
    /// position `seqs[b].pos0`; attention reads each sequence's keys/values straight from
    /// its block table (no gather). Row `b` does not depend on the other rows' contents.
    /// Returns logits `[B, V]`. The block holding position `pos0` must not be shared.
    pub fn decode_paged(&self, pool: &mut KvPool, seqs: &[PagedSeq<'_>]) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        let c = &self.config;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let heads = (c.num_heads, c.num_kv_heads, c.head_dim);
        for (i, s) in seqs.iter().enumerate() {
            let what = format!("decode_paged row {i}");
            self.check_paged(pool, s, &what)?;
            if s.tokens.len() != 1 {
                return Err(Error::InvalidInput(format!(
                    "{what}: {} tokens, a decode step takes one",
                    s.tokens.len()
                )));
            }
        }
        if seqs.is_empty() {
            return Ok(vec![]);
        }
        let tokens: Vec<u32> = seqs.iter().map(|s| s.tokens[0]).collect();
        let positions: Vec<usize> = seqs.iter().map(|s| s.pos0).collect();
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        // Work per row grows with its context; split rows so small steps stay serial.
        let work: usize = positions.iter().map(|p| (p + 1) * qd).sum();
        self.decode_rows(&tokens, &positions, |l, q, k, v, att| {
            for (i, s) in seqs.iter().enumerate() {
                let r = i * kvd..(i + 1) * kvd;
                pool.write(l, s.blocks, s.pos0, &k[r.clone()], &v[r]);
            }
            let pool = &*pool;
            let row = |(i, out): (usize, &mut [f32]), scores: &mut Vec<f32>| {
                let s = &seqs[i];
                pool.attend_row(
                    l,
                    s.blocks,
                    s.pos0,
                    &q[i * qd..(i + 1) * qd],
                    out,
                    heads,
                    scale,
                    scores,
                )
            };
            if work < 1 << 16 {
                let mut scores = Vec::new();
                att.chunks_mut(qd)
                    .enumerate()
                    .try_for_each(|x| row(x, &mut scores))
            } else {
                att.par_chunks_mut(qd)
                    .enumerate()
                    .try_for_each_init(Vec::new, |scores, x| row(x, scores))
            }
        })
    }
}
