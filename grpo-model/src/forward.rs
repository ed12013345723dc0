//! Teacher-forced forward: per-token log-probs and entropies of given completion tokens,
//! saving what [`crate::backward`] needs (all activations, or only each layer's input when
//! activation recomputation is on).
//!
//! Internally a batch is a list of *segments*: contiguous token spans at positions
//! `pos0..pos0 + T` that attend causally to themselves and, optionally, to the keys/values of
//! an earlier segment (their prefix). An ordinary sequence is one segment (prompt + completion
//! minus its last token, which is only a target). A Prefix Grouper group is one prompt segment
//! plus one segment per completion whose prefix is the prompt: the prompt is encoded once,
//! and in backward its key/value gradients are accumulated over the group before its own
//! backward runs once. Log-probs are computed by *jobs*: a list of (segment, row) hidden
//! states and their target tokens, so a completion's first token (predicted from the prompt's
//! last row) works in both layouts.

use grpo_kernels::ops::attention::{attention_fwd, on_this_thread};
use grpo_kernels::ops::embedding::embedding_fwd;
use grpo_kernels::ops::gemm::{linear_rows, matmul};
use grpo_kernels::ops::logprob::logprob_fwd;
use grpo_kernels::ops::rmsnorm::rmsnorm_fwd;
use grpo_kernels::ops::rope::rope_fwd;
use grpo_kernels::ops::swiglu::swiglu_fwd;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::Model;

/// One sequence to score: prompt ids (at least one) and completion ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqInput<'a> {
    /// Prompt token ids (non-empty).
    pub prompt: &'a [u32],
    /// Completion token ids: one log-prob and entropy each.
    pub completion: &'a [u32],
}

/// A Prefix Grouper group: one prompt and the G completions sampled from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput<'a> {
    /// Shared prompt ids (non-empty), encoded once.
    pub prompt: &'a [u32],
    /// The completions.
    pub completions: Vec<&'a [u32]>,
}

/// Forward options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Keep only each layer's input and recompute the layer in backward (less memory, about
    /// one extra forward of compute).
    pub recompute: bool,
    /// Vocabulary rows per chunk of the fused log-prob (bounds the logits buffer).
    pub vocab_chunk: usize,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            recompute: false,
            vocab_chunk: 4096,
        }
    }
}

/// Per-token results, one vector per completion (in input order; groups flattened in order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForwardOutput {
    /// `log p(completion[t] | prefix)` per completion token.
    pub logprobs: Vec<Vec<f32>>,
    /// Entropy (nats) of the predictive distribution at each completion token.
    pub entropy: Vec<Vec<f32>>,
}

/// Saved activations of one layer for one segment of `T` tokens (shapes in comments).
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerActs {
    /// `[T]` input RMSNorm reciprocal std (the normalised input itself is recomputed in
    /// backward from the layer input: one cheap row pass instead of `[T, H]` saved floats).
    pub rstd1: Vec<f32>,
    /// `[T, Hq·D]` q projection before QK-norm (Qwen3 only; empty otherwise).
    pub q_pre: Vec<f32>,
    /// `[T, Hkv·D]` k projection before QK-norm (Qwen3 only).
    pub k_pre: Vec<f32>,
    /// `[T·Hq]` / `[T·Hkv]` QK-norm reciprocal stds (Qwen3 only).
    pub q_rstd: Vec<f32>,
    /// See `q_rstd`.
    pub k_rstd: Vec<f32>,
    /// `[T, Hq, D]` queries after norm and RoPE.
    pub q: Vec<f32>,
    /// `[T, Hkv, D]` keys after norm and RoPE.
    pub k: Vec<f32>,
    /// `[T, Hkv, D]` values.
    pub v: Vec<f32>,
    /// `[T, Hq, D]` attention output (before o_proj).
    pub att: Vec<f32>,
    /// `[Hq, T]` attention log-sum-exp.
    pub lse: Vec<f32>,
    /// `[T, H]` residual stream after attention.
    pub x_mid: Vec<f32>,
    /// `[T]` post-attention RMSNorm reciprocal std (normalised MLP input recomputed in
    /// backward from `x_mid`).
    pub rstd2: Vec<f32>,
    /// `[T, I]` gate projection.
    pub gate: Vec<f32>,
    /// `[T, I]` up projection (`silu(gate)·up` is recomputed in backward).
    pub up: Vec<f32>,
}

/// Reusable temporaries of [`Model::layer_fwd_with`]: buffers that do not outlive one layer
/// (normalised inputs, SwiGLU activation), kept across the layers of a batch so they are
/// allocated (and page-faulted) once per forward instead of once per layer.
#[derive(Debug, Default)]
pub(crate) struct FwdScratch {
    /// `[T, H]` normalised input of attention, then of the MLP.
    xn: Vec<f32>,
    /// `[T, I]` silu(gate)·up.
    act: Vec<f32>,
}

/// `v[..n]`, growing `v` (zero-filled) when it is shorter; the contents are stale, so only
/// for outputs that are overwritten.
pub(crate) fn scratch(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// A contiguous token span (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// `[T]` input ids.
    pub tokens: Vec<u32>,
    /// Position of the first token (= prefix length when there is a prefix).
    pub pos0: usize,
    /// Index of the segment whose keys/values precede this one.
    pub prefix: Option<usize>,
}

/// Where a segment's context (preceding keys/values) comes from in a batched layer call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ctx<'a> {
    /// No context: plain causal self-attention (`pos0` must be 0).
    None,
    /// The rows of another segment of the same batch (its keys/values at this layer).
    Seg(usize),
    /// External keys and values `[pos0, Hkv·D]` (a KV cache).
    Ext(&'a [f32], &'a [f32]),
}

/// One segment's place in a batched layer call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span<'a> {
    /// First row in the batch.
    pub off: usize,
    /// Rows.
    pub t: usize,
    /// Position of the first row.
    pub pos0: usize,
    /// Context.
    pub ctx: Ctx<'a>,
}

/// The rows of a layer whose outputs are read: in the last layer only the rows that
/// predict a completion token feed the loss head, so a prompt's leading rows there need
/// their keys and values (later rows attend to them) but not their queries, attention
/// output, o_proj or MLP (on C2 a third of the last layer's rows). Each span keeps its last
/// `qspans[i].t` rows; `qspans[i].off` is the first of them in the compact `[K, ·]`
/// query-side buffers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keep {
    /// Per span: (first compact row, kept rows); `pos0` and `ctx` unused.
    pub qspans: Vec<Span<'static>>,
}

impl Keep {
    /// Every row of every span kept.
    pub(crate) fn all(spans: &[Span<'_>]) -> Keep {
        Keep::with_skips(spans, &vec![0; spans.len()])
    }

    /// Span `i` without its first `skips[i]` rows (clamped to its length).
    pub(crate) fn with_skips(spans: &[Span<'_>], skips: &[usize]) -> Keep {
        let mut off = 0;
        let qspans = spans
            .iter()
            .zip(skips)
            .map(|(sp, &skip)| {
                let t = sp.t - skip.min(sp.t);
                let q = Span {
                    off,
                    t,
                    pos0: sp.pos0 + sp.t - t,
                    ctx: Ctx::None,
                };
                off += t;
                q
            })
            .collect();
        Keep { qspans }
    }

    /// Kept rows (K).
    pub(crate) fn rows(&self) -> usize {
        self.qspans.iter().map(|q| q.t).sum()
    }

    /// Batch rows of the kept rows, in order.
    pub(crate) fn batch_rows<'s>(
        &'s self,
        spans: &'s [Span<'_>],
    ) -> impl Iterator<Item = usize> + 's {
        spans
            .iter()
            .zip(&self.qspans)
            .flat_map(|(sp, q)| sp.off + sp.t - q.t..sp.off + sp.t)
    }

    /// Positions of the kept rows.
    pub(crate) fn positions(&self) -> Vec<usize> {
        self.qspans
            .iter()
            .flat_map(|q| q.pos0..q.pos0 + q.t)
            .collect()
    }

    /// `out [K, w]` = the kept rows of `x [N, w]`.
    pub(crate) fn gather(&self, out: &mut [f32], x: &[f32], spans: &[Span<'_>], w: usize) {
        for (dst, r) in out.chunks_exact_mut(w).zip(self.batch_rows(spans)) {
            dst.copy_from_slice(&x[r * w..(r + 1) * w]);
        }
    }

    /// `dst [N, w]` kept rows `+= src [K, w]`.
    pub(crate) fn scatter_add(&self, dst: &mut [f32], src: &[f32], spans: &[Span<'_>], w: usize) {
        for (s, r) in src.chunks_exact(w).zip(self.batch_rows(spans)) {
            for (a, b) in dst[r * w..(r + 1) * w].iter_mut().zip(s) {
                *a += b;
            }
        }
    }
}

/// Saved state of a batch of segments; every per-row tensor is all segments' rows stacked.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchActs {
    /// `L + 1` residual-stream tensors `[N, H]`: input of each layer, then the last output.
    pub inputs: Vec<Vec<f32>>,
    /// Per-layer activations (empty when recomputing).
    pub layers: Vec<LayerActs>,
    /// `[N, H]` final-norm output.
    pub xf: Vec<f32>,
    /// `[N]` final-norm reciprocal std.
    pub rstd_f: Vec<f32>,
}

/// Log-prob rows of one output sequence.
#[derive(Debug, Clone, Default)]
pub(crate) struct Job {
    /// Batch row of each hidden state, one per target.
    pub rows: Vec<usize>,
    /// `[n]` target ids.
    pub targets: Vec<u32>,
    /// `[n]` saved log-sum-exp of the logits.
    pub lse: Vec<f32>,
    /// `[n]` saved entropies.
    pub entropy: Vec<f32>,
}

/// What [`Model::forward`] saves for [`Model::backward`].
#[derive(Debug, Clone)]
pub struct Activations {
    pub(crate) segs: Vec<Segment>,
    pub(crate) offs: Vec<usize>,
    /// Rows the last layer computes past keys/values (job rows index into them).
    pub(crate) keep: Keep,
    pub(crate) acts: BatchActs,
    pub(crate) jobs: Vec<Job>,
    pub(crate) opts: ForwardOptions,
}

impl Activations {
    /// Number of completions (output sequences) covered.
    pub fn num_sequences(&self) -> usize {
        self.jobs.len()
    }

    /// Number of completion tokens of each output sequence.
    pub fn lengths(&self) -> Vec<usize> {
        self.jobs.iter().map(|j| j.targets.len()).collect()
    }

    /// Number of token positions run through the layers (prompt tokens counted once per
    /// segment that holds them): the compute the Prefix Grouper saves shows up here.
    pub fn positions_computed(&self) -> usize {
        self.segs.iter().map(|s| s.tokens.len()).sum()
    }

    /// Bytes of saved f32 activations.
    pub fn saved_bytes(&self) -> usize {
        let a = &self.acts;
        let mut n = a.inputs.iter().map(Vec::len).sum::<usize>() + a.xf.len() + a.rstd_f.len();
        for l in &a.layers {
            n += [
                &l.rstd1, &l.q_pre, &l.k_pre, &l.q_rstd, &l.k_rstd, &l.q, &l.k, &l.v, &l.att,
                &l.lse, &l.x_mid, &l.rstd2, &l.gate, &l.up,
            ]
            .iter()
            .map(|v| v.len())
            .sum::<usize>();
        }
        n * 4
    }

    pub(crate) fn spans(&self) -> Vec<Span<'static>> {
        spans(&self.segs, &self.offs)
    }
}

/// Rows per tile of the row-tiled MLP backward: a tile's temporaries (`[tile, I]` activation
/// and its gradients) stay in a core's cache instead of streaming `[N, I]` buffers through
/// memory once per elementwise op (C2: backward 0.83 → 0.73 s; 128 and 256 rows measured
/// alike, 64 slower).
pub(crate) const MLP_TILE: usize = 128;

/// Whether `t` rows run the MLP backward in row tiles: when there are at least two tiles per
/// pool thread (fewer rows keep each product split across the pool).
pub(crate) fn mlp_tiled(t: usize) -> bool {
    t >= 2 * MLP_TILE * rayon::current_num_threads()
}

/// Whether attention runs as one task per span, each call on one thread (same bits, less
/// fork/join than splitting every short sequence across the pool), rather than span after
/// span with each call split across the pool: when there are enough spans to balance the
/// pool, so a few long prompts keep the per-call split.
pub(crate) fn task_per_span(spans: &[Span<'_>]) -> bool {
    spans.len() >= 4 * rayon::current_num_threads()
}

/// `buf` (`[N, width]`, the rows of `spans` stacked in order) cut into one mutable slice per
/// span. Errors if the spans are not consecutive from row 0 or do not cover `buf` exactly.
pub(crate) fn span_rows<'b, T>(
    buf: &'b mut [T],
    spans: &[Span<'_>],
    width: usize,
) -> Result<Vec<&'b mut [T]>> {
    let mut rest = buf;
    let mut next = 0;
    let mut parts = Vec::with_capacity(spans.len());
    for sp in spans {
        if sp.off != next || sp.t * width > rest.len() {
            return Err(Error::InvalidInput(format!(
                "span at row {} with {} rows does not follow row {next} of the batch",
                sp.off, sp.t
            )));
        }
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(sp.t * width);
        parts.push(head);
        rest = tail;
        next += sp.t;
    }
    if !rest.is_empty() {
        return Err(Error::InvalidInput(format!(
            "spans cover {next} rows, the batch has more"
        )));
    }
    Ok(parts)
}

/// First row of each segment in the stacked batch.
pub(crate) fn offsets(segs: &[Segment]) -> Vec<usize> {
    let mut off = 0;
    segs.iter()
        .map(|s| {
            let o = off;
            off += s.tokens.len();
            o
        })
        .collect()
}

pub(crate) fn spans(segs: &[Segment], offs: &[usize]) -> Vec<Span<'static>> {
    segs.iter()
        .zip(offs)
        .map(|(s, &off)| Span {
            off,
            t: s.tokens.len(),
            pos0: s.pos0,
            ctx: match s.prefix {
                Some(p) => Ctx::Seg(p),
                None => Ctx::None,
            },
        })
        .collect()
}

/// Which kernel a forward's linear products run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Gemm {
    /// The fastest for the shape (training and scoring): the summation order may change with
    /// the number of rows.
    #[default]
    Fast,
    /// Each output row depends only on its input row, bit for bit, whatever else is in the
    /// batch (generation; grpo-kernels' `linear_rows`).
    RowInvariant,
}

/// `out [t, n] (= or +=) x [t, k] · Wᵀ` with `w [n, k]` (HF Linear layout).
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_with(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    t: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    gemm: Gemm,
) -> Result<()> {
    match gemm {
        Gemm::Fast => matmul(out, x, w, t, k, n, false, true, accumulate)?,
        Gemm::RowInvariant => linear_rows(out, x, w, t, k, n, accumulate)?,
    }
    Ok(())
}

/// `x [N, n] += b [n]` on every row, split across the pool in blocks of rows.
fn add_bias(x: &mut [f32], b: &[f32]) {
    if b.is_empty() {
        return;
    }
    x.par_chunks_mut(b.len() * 256).for_each(|rows| {
        for row in rows.chunks_mut(b.len()) {
            for (v, bb) in row.iter_mut().zip(b) {
                *v += bb;
            }
        }
    });
}

impl Model {
    /// The keys/values a span attends to before its own rows, with their count.
    pub(crate) fn ctx_kv<'a>(
        &self,
        sp: &Span<'a>,
        spans: &[Span<'a>],
        k: &'a [f32],
        v: &'a [f32],
    ) -> Option<(&'a [f32], &'a [f32])> {
        let kvd = self.config.kv_dim();
        match sp.ctx {
            Ctx::None => None,
            Ctx::Ext(ck, cv) => Some((ck, cv)),
            Ctx::Seg(p) => {
                let ps = &spans[p];
                let r = ps.off * kvd..(ps.off + ps.t) * kvd;
                Some((&k[r.clone()], &v[r]))
            }
        }
    }

    /// One decoder layer over a batch of `N` stacked rows `x [N, H]` made of `spans`: the
    /// row-wise parts (norms, projections, MLP) run as `[N, ·]` matrix products, attention
    /// runs per span over its context and itself. Returns the saved activations and the
    /// layer output `[N, H]`. For generation: the products are row-invariant
    /// ([`Gemm::RowInvariant`]), so a sequence's rows do not depend on the others'.
    pub(crate) fn layer_fwd_infer(
        &self,
        l: usize,
        x: &[f32],
        spans: &[Span<'_>],
    ) -> Result<(LayerActs, Vec<f32>)> {
        self.layer_fwd_with(
            l,
            x,
            spans,
            None,
            &mut FwdScratch::default(),
            Gemm::RowInvariant,
        )
    }

    /// [`Model::layer_fwd_infer`] with caller-owned temporaries (reused across layers) and a
    /// choice of kernel for the linear products. With `keep` (the last layer, see [`Keep`]),
    /// keys and values cover every row but queries, attention output, o_proj and the MLP only
    /// each span's kept rows: the saved query-side activations and the returned output are
    /// `[K, ·]` over the kept rows, in order.
    pub(crate) fn layer_fwd_with(
        &self,
        l: usize,
        x: &[f32],
        spans: &[Span<'_>],
        keep: Option<&Keep>,
        ws: &mut FwdScratch,
        gemm: Gemm,
    ) -> Result<(LayerActs, Vec<f32>)> {
        let c = &self.config;
        let (h, qd, kvd, inter) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let lo = self.layout.layers[l];
        let t = x.len() / h;
        let _span = tracing::trace_span!("layer_fwd", layer = l, tokens = t).entered();
        if t == 0 {
            return Ok((LayerActs::default(), vec![]));
        }
        let mut a = LayerActs {
            rstd1: vec![0.0; t],
            ..Default::default()
        };
        let xn = scratch(&mut ws.xn, t * h);
        rmsnorm_fwd(
            xn,
            &mut a.rstd1,
            x,
            self.w(lo.input_norm, h),
            t,
            h,
            c.rms_norm_eps,
        )?;
        let all_rows = Keep::all(spans);
        let keep = keep.unwrap_or(&all_rows);
        let tq = keep.rows();
        if keep.qspans.len() != spans.len() {
            return Err(Error::InvalidInput(format!(
                "layer_fwd: {} kept spans for {} spans",
                keep.qspans.len(),
                spans.len()
            )));
        }
        // Query-side input: the kept rows of the normalised input.
        let mut xq_buf = Vec::new();
        let xq: &[f32] = if tq == t {
            xn
        } else {
            xq_buf = self.buffers.take(tq * h);
            keep.gather(&mut xq_buf, xn, spans, h);
            &xq_buf
        };
        let mut q = self.buffers.take(tq * qd);
        let mut k = self.buffers.take(t * kvd);
        let mut v = self.buffers.take(t * kvd);
        linear_with(&mut q, xq, self.w(lo.q, qd * h), tq, h, qd, false, gemm)?;
        self.buffers.give(xq_buf);
        linear_with(&mut k, xn, self.w(lo.k, kvd * h), t, h, kvd, false, gemm)?;
        linear_with(&mut v, xn, self.w(lo.v, kvd * h), t, h, kvd, false, gemm)?;
        if let Some((bq, bk, bv)) = lo.qkv_bias {
            add_bias(&mut q, self.w(bq, qd));
            add_bias(&mut k, self.w(bk, kvd));
            add_bias(&mut v, self.w(bv, kvd));
        }
        if let Some((qn, kn)) = lo.qk_norm {
            a.q_rstd = vec![0.0; tq * hq];
            a.k_rstd = vec![0.0; t * hkv];
            let mut qo = vec![0.0; tq * qd];
            let mut ko = vec![0.0; t * kvd];
            rmsnorm_fwd(
                &mut qo,
                &mut a.q_rstd,
                &q,
                self.w(qn, d),
                tq * hq,
                d,
                c.rms_norm_eps,
            )?;
            rmsnorm_fwd(
                &mut ko,
                &mut a.k_rstd,
                &k,
                self.w(kn, d),
                t * hkv,
                d,
                c.rms_norm_eps,
            )?;
            a.q_pre = std::mem::replace(&mut q, qo);
            a.k_pre = std::mem::replace(&mut k, ko);
        }
        let positions: Vec<usize> = spans.iter().flat_map(|s| s.pos0..s.pos0 + s.t).collect();
        if positions.len() != t {
            return Err(Error::InvalidInput(format!(
                "layer_fwd: spans cover {} rows, input has {t}",
                positions.len()
            )));
        }
        rope_fwd(&mut q, &keep.positions(), hq, d, &self.rope)?;
        rope_fwd(&mut k, &positions, hkv, d, &self.rope)?;
        a.att = self.buffers.take(tq * qd);
        a.lse = self.buffers.take(hq * tq);
        let scale = 1.0 / (d as f32).sqrt();
        let per_span = task_per_span(spans);
        let outs = span_rows(&mut a.att, &keep.qspans, qd)?;
        let lses = span_rows(&mut a.lse, &keep.qspans, hq)?;
        let attend = |(sp, qsp): (&Span<'_>, &Span<'_>), out: &mut [f32], lse: &mut [f32]| {
            if qsp.t == 0 {
                return Ok(());
            }
            let (r0, r1) = (sp.off, sp.off + sp.t);
            let own_k = &k[r0 * kvd..r1 * kvd];
            let own_v = &v[r0 * kvd..r1 * kvd];
            let qs = &q[qsp.off * qd..(qsp.off + qsp.t) * qd];
            // The kept rows are the span's last `qsp.t`: their queries start `skip` rows in.
            let skip = sp.t - qsp.t;
            match self.ctx_kv(sp, spans, &k, &v) {
                Some((ck, cv)) if sp.pos0 > 0 => {
                    let kc = [ck, own_k].concat();
                    let vc = [cv, own_v].concat();
                    let tk = sp.pos0 + sp.t;
                    let q0 = sp.pos0 + skip;
                    attention_fwd(out, lse, qs, &kc, &vc, qsp.t, tk, hq, hkv, d, q0, scale)
                }
                _ => attention_fwd(
                    out, lse, qs, own_k, own_v, qsp.t, sp.t, hq, hkv, d, skip, scale,
                ),
            }
        };
        spans
            .par_iter()
            .zip(&keep.qspans)
            .zip(outs)
            .zip(lses)
            .with_min_len(if per_span { 1 } else { usize::MAX })
            .try_for_each(|((spq, out), lse)| {
                if per_span {
                    on_this_thread(|| attend(spq, out, lse))
                } else {
                    attend(spq, out, lse)
                }
            })?;
        a.q = q;
        a.k = k;
        a.v = v;
        // x_mid = x + o_proj(att): the product is accumulated onto a copy of x's kept rows.
        a.x_mid = if tq == t {
            self.buffers.copy_of(x)
        } else {
            let mut xm = self.buffers.take(tq * h);
            keep.gather(&mut xm, x, spans, h);
            xm
        };
        linear_with(
            &mut a.x_mid,
            &a.att,
            self.w(lo.o, h * qd),
            tq,
            qd,
            h,
            true,
            gemm,
        )?;
        // MLP (the backward runs it in row tiles, see `mlp_tiled`; here the saved `gate`/`up`
        // are written out either way, and measured on C2 the whole-batch products are faster).
        a.rstd2 = vec![0.0; tq];
        a.gate = self.buffers.take(tq * inter);
        a.up = self.buffers.take(tq * inter);
        let mut out = self.buffers.take(tq * h);
        self.mlp_fwd_rows(
            l,
            &a.x_mid,
            &mut a.rstd2,
            &mut a.gate,
            &mut a.up,
            &mut out,
            ws,
            gemm,
        )?;
        Ok((a, out))
    }

    /// The MLP half of layer `l` over `T` rows: `out [T, H] = x_mid + down(silu(gate)·up)`
    /// with `gate`/`up` `[T, I]` (saved for backward) and the post-attention norm's `rstd2`
    /// `[T]`, all overwritten.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mlp_fwd_rows(
        &self,
        l: usize,
        x_mid: &[f32],
        rstd2: &mut [f32],
        gate: &mut [f32],
        up: &mut [f32],
        out: &mut [f32],
        ws: &mut FwdScratch,
        gemm: Gemm,
    ) -> Result<()> {
        let c = &self.config;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let lo = self.layout.layers[l];
        let t = rstd2.len();
        let xn = scratch(&mut ws.xn, t * h);
        rmsnorm_fwd(
            xn,
            rstd2,
            x_mid,
            self.w(lo.post_norm, h),
            t,
            h,
            c.rms_norm_eps,
        )?;
        linear_with(
            gate,
            xn,
            self.w(lo.gate, inter * h),
            t,
            h,
            inter,
            false,
            gemm,
        )?;
        linear_with(up, xn, self.w(lo.up, inter * h), t, h, inter, false, gemm)?;
        let act = scratch(&mut ws.act, t * inter);
        swiglu_fwd(act, gate, up)?;
        // out = x_mid + down(act), accumulated onto a copy of x_mid.
        crate::buffers::par_copy(out, x_mid);
        linear_with(
            out,
            act,
            self.w(lo.down, h * inter),
            t,
            inter,
            h,
            true,
            gemm,
        )
    }

    /// Runs all segments (stacked) through embedding, layers and final norm; the last layer
    /// and the final norm only over the rows `keep` keeps (see [`Keep`]), so `xf` and the
    /// last saved input are `[K, H]`. `save_inputs`: keep each layer's input; `save_layers`:
    /// keep every layer's activations.
    pub(crate) fn run_segments(
        &self,
        segs: &[Segment],
        offs: &[usize],
        keep: &Keep,
        save_inputs: bool,
        save_layers: bool,
    ) -> Result<BatchActs> {
        let h = self.config.hidden_size;
        let tokens: Vec<u32> = segs.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let n = tokens.len();
        let spans = spans(segs, offs);
        let mut x = self.buffers.take(n * h);
        embedding_fwd(
            &mut x,
            self.w(self.layout.embed, self.config.vocab_size * h),
            &tokens,
            h,
        )?;
        let mut acts = BatchActs::default();
        let mut ws = FwdScratch::default();
        let nl = self.config.num_layers;
        for l in 0..nl {
            let kept = (l + 1 == nl).then_some(keep);
            let (a, out) = self.layer_fwd_with(l, &x, &spans, kept, &mut ws, Gemm::Fast)?;
            let x_in = std::mem::replace(&mut x, out);
            if save_inputs {
                acts.inputs.push(x_in);
            }
            if save_layers {
                acts.layers.push(a);
            }
        }
        let n_out = if nl == 0 { n } else { keep.rows() };
        acts.xf = self.buffers.take(n_out * h);
        acts.rstd_f = vec![0.0; n_out];
        rmsnorm_fwd(
            &mut acts.xf,
            &mut acts.rstd_f,
            &x,
            self.w(self.layout.final_norm, h),
            n_out,
            h,
            self.config.rms_norm_eps,
        )?;
        if save_inputs {
            acts.inputs.push(x);
        }
        Ok(acts)
    }

    /// Hands the buffers of `acts` back for reuse by the next forward (optional): a training
    /// loop that calls this after each backward saves page-faulting the activations in
    /// again every step (C2: ~0.5 GB per step). They stay allocated until reused or
    /// [`Model::release_buffers`].
    pub fn recycle(&self, acts: Activations) {
        let b = acts.acts;
        for v in b.inputs.into_iter().chain([b.xf, b.rstd_f]) {
            self.buffers.give(v);
        }
        for l in b.layers {
            for v in [
                l.rstd1, l.q_pre, l.k_pre, l.q_rstd, l.k_rstd, l.q, l.k, l.v, l.att, l.lse,
                l.x_mid, l.rstd2, l.gate, l.up,
            ] {
                self.buffers.give(v);
            }
        }
    }

    /// Frees the buffers kept by [`Model::recycle`].
    pub fn release_buffers(&self) {
        self.buffers.clear();
        self.bwd_scratch.clear();
        self.tile_scratch.clear();
    }

    /// Floats held by [`Model::recycle`]'s buffers.
    pub fn recycled_floats(&self) -> usize {
        self.buffers.held()
    }

    /// Gathers the hidden rows of all `jobs`, in order, into one `[Σn, H]` block (so the fused
    /// log-prob streams `lm_head` once per block of rows instead of once per sequence).
    pub(crate) fn gather_all_rows(&self, acts: &BatchActs, jobs: &[Job]) -> Vec<f32> {
        let h = self.config.hidden_size;
        let n: usize = jobs.iter().map(|j| j.rows.len()).sum();
        let mut out = Vec::with_capacity(n * h);
        for &r in jobs.iter().flat_map(|j| &j.rows) {
            out.extend_from_slice(&acts.xf[r * h..(r + 1) * h]);
        }
        out
    }

    fn run_jobs(&self, acts: &BatchActs, jobs: &mut [Job], chunk: usize) -> Result<ForwardOutput> {
        let (h, v) = (self.config.hidden_size, self.config.vocab_size);
        let lm_head = self.w(self.layout.lm_head, v * h);
        let n: usize = jobs.iter().map(|j| j.targets.len()).sum();
        let hidden = self.gather_all_rows(acts, jobs);
        let targets: Vec<u32> = jobs
            .iter()
            .flat_map(|j| j.targets.iter().copied())
            .collect();
        let (mut logp, mut entropy, mut lse) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        if n > 0 {
            logprob_fwd(
                &mut logp,
                &mut entropy,
                &mut lse,
                &hidden,
                lm_head,
                &targets,
                n,
                h,
                v,
                chunk.clamp(1, v),
            )?;
        }
        let mut out = ForwardOutput::default();
        let mut i = 0;
        for job in jobs.iter_mut() {
            let r = i..i + job.targets.len();
            i = r.end;
            job.entropy = entropy[r.clone()].to_vec();
            job.lse = lse[r.clone()].to_vec();
            out.logprobs.push(logp[r].to_vec());
            out.entropy.push(job.entropy.clone());
        }
        Ok(out)
    }

    fn plan_unshared(&self, batch: &[SeqInput<'_>]) -> Result<(Vec<Segment>, Vec<Job>)> {
        let mut segs = Vec::with_capacity(batch.len());
        let mut jobs = Vec::with_capacity(batch.len());
        let mut off = 0;
        for (i, s) in batch.iter().enumerate() {
            self.check_seq(i, s.prompt, s.completion)?;
            let p = s.prompt.len();
            let c = s.completion.len();
            let mut tokens = s.prompt.to_vec();
            if c > 1 {
                tokens.extend_from_slice(&s.completion[..c - 1]);
            }
            jobs.push(Job {
                rows: (0..c).map(|j| off + p - 1 + j).collect(),
                targets: s.completion.to_vec(),
                ..Default::default()
            });
            off += tokens.len();
            segs.push(Segment {
                tokens,
                pos0: 0,
                prefix: None,
            });
        }
        Ok((segs, jobs))
    }

    fn plan_grouped(&self, groups: &[GroupInput<'_>]) -> Result<(Vec<Segment>, Vec<Job>)> {
        let mut segs = Vec::new();
        let mut jobs = Vec::new();
        let mut n = 0;
        let mut off = 0;
        for g in groups {
            let ps = segs.len();
            let prompt_off = off;
            let p = g.prompt.len();
            for c in &g.completions {
                self.check_seq(n, g.prompt, c)?;
                n += 1;
            }
            if p == 0 {
                return Err(Error::InvalidInput(format!(
                    "group {}: empty prompt",
                    jobs.len()
                )));
            }
            segs.push(Segment {
                tokens: g.prompt.to_vec(),
                pos0: 0,
                prefix: None,
            });
            off += p;
            for c in &g.completions {
                let len = c.len();
                let mut rows = Vec::with_capacity(len);
                if len > 0 {
                    rows.push(prompt_off + p - 1);
                }
                rows.extend((1..len).map(|j| off + j - 1));
                off += len.saturating_sub(1);
                jobs.push(Job {
                    rows,
                    targets: c.to_vec(),
                    ..Default::default()
                });
                segs.push(Segment {
                    tokens: if len > 1 {
                        c[..len - 1].to_vec()
                    } else {
                        vec![]
                    },
                    pos0: p,
                    prefix: Some(ps),
                });
            }
        }
        Ok((segs, jobs))
    }

    fn check_seq(&self, i: usize, prompt: &[u32], completion: &[u32]) -> Result<()> {
        if prompt.is_empty() {
            return Err(Error::InvalidInput(format!(
                "sequence {i}: empty prompt (need at least one token, e.g. BOS)"
            )));
        }
        let total = prompt.len() + completion.len();
        self.check_tokens(&format!("sequence {i} prompt"), prompt, total)?;
        self.check_tokens(&format!("sequence {i} completion"), completion, total)
    }

    /// The rows the loss head reads, as a [`Keep`] for the last layer: each segment from the
    /// first row a job reads (with no layers, every row). Renumbers the jobs' rows to the
    /// kept rows (the rows of `xf`).
    fn keep_for_jobs(&self, segs: &[Segment], offs: &[usize], jobs: &mut [Job]) -> Keep {
        let spans = spans(segs, offs);
        let seg_of = |r: usize| offs.partition_point(|&o| o <= r).saturating_sub(1);
        let mut skips: Vec<usize> = segs.iter().map(|s| s.tokens.len()).collect();
        if self.config.num_layers == 0 {
            skips.fill(0);
        } else {
            for &r in jobs.iter().flat_map(|j| &j.rows) {
                let s = seg_of(r);
                skips[s] = skips[s].min(r - offs[s]);
            }
        }
        let keep = Keep::with_skips(&spans, &skips);
        for r in jobs.iter_mut().flat_map(|j| &mut j.rows) {
            let s = seg_of(*r);
            let q = &keep.qspans[s];
            *r = q.off + (*r - offs[s] - (spans[s].t - q.t));
        }
        keep
    }

    fn forward_plan(
        &self,
        segs: Vec<Segment>,
        mut jobs: Vec<Job>,
        opts: ForwardOptions,
    ) -> Result<(ForwardOutput, Activations)> {
        let offs = offsets(&segs);
        let keep = self.keep_for_jobs(&segs, &offs, &mut jobs);
        let acts = self.run_segments(&segs, &offs, &keep, true, !opts.recompute)?;
        let out = self.run_jobs(&acts, &mut jobs, opts.vocab_chunk)?;
        Ok((
            out,
            Activations {
                segs,
                offs,
                keep,
                acts,
                jobs,
                opts,
            },
        ))
    }

    /// Teacher-forced forward over independent sequences, saving activations for
    /// [`Model::backward`].
    pub fn forward(
        &self,
        batch: &[SeqInput<'_>],
        opts: ForwardOptions,
    ) -> Result<(ForwardOutput, Activations)> {
        let (segs, jobs) = self.plan_unshared(batch)?;
        self.forward_plan(segs, jobs, opts)
    }

    /// Shared-prefix (Prefix Grouper) forward: each group's prompt is encoded once and its G
    /// completions attend to that one encoding. Outputs are flattened group by group, in
    /// order; equal (to rounding) to [`Model::forward`] on the unshared sequences.
    pub fn forward_grouped(
        &self,
        groups: &[GroupInput<'_>],
        opts: ForwardOptions,
    ) -> Result<(ForwardOutput, Activations)> {
        let (segs, jobs) = self.plan_grouped(groups)?;
        self.forward_plan(segs, jobs, opts)
    }

    /// Log-probs and entropies only (no activations kept beyond one layer).
    pub fn score(&self, batch: &[SeqInput<'_>]) -> Result<ForwardOutput> {
        let (segs, mut jobs) = self.plan_unshared(batch)?;
        let offs = offsets(&segs);
        let keep = self.keep_for_jobs(&segs, &offs, &mut jobs);
        let acts = self.run_segments(&segs, &offs, &keep, false, false)?;
        self.run_jobs(&acts, &mut jobs, ForwardOptions::default().vocab_chunk)
    }

    /// [`Model::score`] with shared prompts.
    pub fn score_grouped(&self, groups: &[GroupInput<'_>]) -> Result<ForwardOutput> {
        let (segs, mut jobs) = self.plan_grouped(groups)?;
        let offs = offsets(&segs);
        let keep = self.keep_for_jobs(&segs, &offs, &mut jobs);
        let acts = self.run_segments(&segs, &offs, &keep, false, false)?;
        self.run_jobs(&acts, &mut jobs, ForwardOptions::default().vocab_chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, ModelConfig};

    fn tiny(arch: Arch) -> Model {
        let config = ModelConfig {
            arch,
            vocab_size: 40,
            hidden_size: 32,
            intermediate_size: 48,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 8,
            max_position_embeddings: 64,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            tie_word_embeddings: false,
            bos_token_id: None,
            eos_token_ids: vec![1],
            pad_token_id: None,
        };
        Model::new_random(config, 7).unwrap()
    }

    #[test]
    fn last_layer_runs_only_the_rows_the_loss_reads() {
        for arch in [Arch::Qwen2, Arch::Qwen3] {
            let m = tiny(arch);
            let (p1, c1, p2, c2) = (
                vec![3u32, 4, 5, 6, 7],
                vec![8u32, 9, 10],
                vec![11u32],
                vec![12u32, 13],
            );
            let batch = [
                SeqInput {
                    prompt: &p1,
                    completion: &c1,
                },
                SeqInput {
                    prompt: &p2,
                    completion: &c2,
                },
            ];
            let (out, acts) = m.forward(&batch, ForwardOptions::default()).unwrap();
            // Layer 0 runs all 5 + 2 and 1 + 1 rows; the last layer only the 3 + 2 rows that
            // predict a completion token.
            let inter = m.config.intermediate_size;
            assert_eq!(acts.acts.layers[0].gate.len(), 9 * inter);
            assert_eq!(acts.acts.layers[1].gate.len(), 5 * inter);
            assert_eq!(acts.acts.layers[1].k.len(), 9 * m.config.kv_dim());
            assert_eq!(acts.acts.xf.len(), 5 * m.config.hidden_size);
            // Same log-probs as a forward whose last layer keeps every row.
            let (segs, mut jobs) = m.plan_unshared(&batch).unwrap();
            let offs = offsets(&segs);
            let all = Keep::all(&spans(&segs, &offs));
            let full = m.run_segments(&segs, &offs, &all, false, false).unwrap();
            let want = m.run_jobs(&full, &mut jobs, 16).unwrap();
            for (a, b) in out
                .logprobs
                .iter()
                .flatten()
                .zip(want.logprobs.iter().flatten())
            {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }

    fn span(off: usize, t: usize) -> Span<'static> {
        Span {
            off,
            t,
            pos0: 0,
            ctx: Ctx::None,
        }
    }

    #[test]
    fn span_rows_cuts_consecutive_spans_and_rejects_gaps() {
        let mut buf: Vec<u32> = (0..12).collect();
        let parts = span_rows(&mut buf, &[span(0, 1), span(1, 0), span(1, 3)], 3).unwrap();
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(lens, [3, 0, 9]);
        assert_eq!(parts[2][0], 3);
        // A gap, an overlap, too many rows, too few rows.
        for spans in [
            vec![span(0, 1), span(2, 2)],
            vec![span(0, 2), span(1, 2)],
            vec![span(0, 5)],
            vec![span(0, 3)],
        ] {
            assert!(span_rows(&mut buf, &spans, 3).is_err(), "{:?}", spans.len());
        }
    }
}
