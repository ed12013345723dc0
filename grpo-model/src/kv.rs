//! KV cache and incremental forward for the generation engine.
//!
//! [`KvCache`] holds one sequence's keys (after QK-norm and RoPE) and values for every layer,
//! each `[len, Hkv, D]` contiguous, exactly what the attention op reads. Allocation policy
//! (paging, prefix sharing) belongs to grpo-rollout: sharing a prompt across G samples is
//! `cache.clone()` after prefill, and [`KvCache::truncate`] rolls back.
//!
//! - [`Model::forward_step_hidden`] / [`Model::forward_step`]: run `T >= 1` new tokens of one
//!   sequence (prefill or a decode step) at positions `cache.len()..`, append their keys and
//!   values, and return the final-norm hidden states `[T, H]` / the last position's logits `[V]`.
//! - [`Model::decode_step`]: one new token for each of `B` sequences at once (the projections
//!   and MLP run as `[B, ·]` matrix products; attention per sequence over its own cache);
//!   returns logits `[B, V]`.
//! - [`Model::logits`]: `[n, H]` hidden states → `[n, V]` logits.

use grpo_kernels::ops::attention::attention_fwd;
use grpo_kernels::ops::embedding::embedding_fwd;
use grpo_kernels::ops::logprob::logits;
use grpo_kernels::ops::rmsnorm::rmsnorm_fwd;
use grpo_kernels::ops::rope::rope_fwd;
use grpo_kernels::ops::swiglu::swiglu_fwd;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::forward::{Ctx, Span, linear};
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
                self.layer_fwd(l, &x, &[span])?
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
        let (h, qd, kvd, inter) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
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
        let eps = c.rms_norm_eps;
        let scale = 1.0 / (d as f32).sqrt();
        let mut x = vec![0.0; b * h];
        embedding_fwd(
            &mut x,
            self.w(self.layout.embed, c.vocab_size * h),
            tokens,
            h,
        )?;
        let mut xn = vec![0.0; b * h];
        let mut rstd = vec![0.0; b];
        for l in 0..c.num_layers {
            let lo = self.layout.layers[l];
            rmsnorm_fwd(&mut xn, &mut rstd, &x, self.w(lo.input_norm, h), b, h, eps)?;
            let mut q = vec![0.0; b * qd];
            let mut k = vec![0.0; b * kvd];
            let mut v = vec![0.0; b * kvd];
            linear(&mut q, &xn, self.w(lo.q, qd * h), b, h, qd)?;
            linear(&mut k, &xn, self.w(lo.k, kvd * h), b, h, kvd)?;
            linear(&mut v, &xn, self.w(lo.v, kvd * h), b, h, kvd)?;
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
            rope_fwd(&mut q, &positions, hq, d, &self.rope)?;
            rope_fwd(&mut k, &positions, hkv, d, &self.rope)?;
            let mut att = vec![0.0; b * qd];
            let mut lse = vec![0.0; hq];
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
            let mut o = vec![0.0; b * h];
            linear(&mut o, &att, self.w(lo.o, h * qd), b, qd, h)?;
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            rmsnorm_fwd(&mut xn, &mut rstd, &x, self.w(lo.post_norm, h), b, h, eps)?;
            let mut gate = vec![0.0; b * inter];
            let mut up = vec![0.0; b * inter];
            linear(&mut gate, &xn, self.w(lo.gate, inter * h), b, h, inter)?;
            linear(&mut up, &xn, self.w(lo.up, inter * h), b, h, inter)?;
            let mut act = vec![0.0; b * inter];
            swiglu_fwd(&mut act, &gate, &up)?;
            linear(&mut o, &act, self.w(lo.down, h * inter), b, inter, h)?;
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
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
