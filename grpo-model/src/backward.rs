//! Hand-written backward, layer by layer in reverse order of [`crate::forward`].
//!
//! Input: `d loss / d logprob` and `d loss / d entropy` per completion token. Output:
//! parameter gradients **accumulated** into a flat buffer with the layout of the weights
//! (so several micro-batches can add up before one optimizer step). With tied embeddings the
//! lm_head and embedding gradients land in the same tensor.
//!
//! All segments of a batch are stacked into one `[N, ·]` row block per layer; attention
//! runs per segment. For shared-prefix segments each completion's attention backward adds
//! into the prompt rows' key/value gradients, which then flow through the k/v projections
//! once, together with the prompt's own.

use grpo_kernels::ops::attention::{attention_bwd, on_this_thread};
use grpo_kernels::ops::embedding::embedding_bwd;
use grpo_kernels::ops::gemm::matmul;
use grpo_kernels::ops::logprob::logprob_bwd;
use grpo_kernels::ops::rmsnorm::{rmsnorm_bwd, rmsnorm_fwd};
use grpo_kernels::ops::rope::rope_bwd;
use grpo_kernels::ops::swiglu::{swiglu_bwd, swiglu_fwd};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::forward::{
    Activations, Ctx, FwdScratch, Gemm, Job, Keep, LayerActs, MLP_TILE, Span, mlp_tiled, scratch,
    span_rows, task_per_span,
};
use crate::model::Model;

/// `dW [n, k] += dyᵀ · x` for `y [t, n] = x [t, k] · Wᵀ`.
fn acc_weight_grad(
    dw: &mut [f32],
    dy: &[f32],
    x: &[f32],
    t: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    matmul(dw, dy, x, n, t, k, true, false, true)?;
    Ok(())
}

/// `dx [t, k] (=/+=) dy [t, n] · W [n, k]`.
fn input_grad(
    dx: &mut [f32],
    dy: &[f32],
    w: &[f32],
    t: usize,
    k: usize,
    n: usize,
    acc: bool,
) -> Result<()> {
    matmul(dx, dy, w, t, n, k, false, false, acc)?;
    Ok(())
}

fn acc_bias_grad(db: &mut [f32], dy: &[f32]) {
    for row in dy.chunks(db.len()) {
        for (g, d) in db.iter_mut().zip(row) {
            *g += d;
        }
    }
}

fn g(grads: &mut [f32], off: usize, len: usize) -> &mut [f32] {
    &mut grads[off..off + len]
}

/// Reusable buffers of [`Model::layer_bwd`], shared by all layers and kept between backward
/// calls in the model (so the `[N, ·]` temporaries are allocated and page-faulted once).
#[derive(Debug, Default)]
pub(crate) struct BwdScratch {
    /// `[N, H]` recomputed normalised input (MLP, then attention).
    xn: Vec<f32>,
    /// `[N]` reciprocal stds of the recomputation (equal to the saved ones).
    rstd: Vec<f32>,
    /// `[N, I]` recomputed silu(gate)·up, then d loss / d it.
    act: Vec<f32>,
    /// `[N, I]` d gate.
    dgate: Vec<f32>,
    /// `[N, I]` d up.
    dup: Vec<f32>,
    /// `[N, H]` d normalised input.
    dxn: Vec<f32>,
    /// `[N, H]` d x_mid.
    dmid: Vec<f32>,
    /// `[N, Hq·D]` d attention output.
    datt: Vec<f32>,
    /// `[N, Hq·D]` d q.
    dq: Vec<f32>,
    /// `[N, Hkv·D]` d k.
    dk: Vec<f32>,
    /// `[N, Hkv·D]` d v.
    dv: Vec<f32>,
    /// `[N, Hq·D]` / `[N, Hkv·D]` gradients before QK-norm (Qwen3 only).
    dq_pre: Vec<f32>,
    /// See `dq_pre`.
    dk_pre: Vec<f32>,
}

/// One task of a tiled backward: its scratch and its weight-gradient partial.
pub(crate) type TilePartial = (BwdScratch, Vec<f32>);

/// The saved MLP inputs of a block of rows (see [`Model::mlp_bwd_rows`]).
#[derive(Clone, Copy)]
struct MlpRows<'a> {
    /// `[T, H]` residual stream after attention.
    x_mid: &'a [f32],
    /// `[T]` post-attention norm reciprocal stds.
    rstd2: &'a [f32],
    /// `[T, I]` gate projection.
    gate: &'a [f32],
    /// `[T, I]` up projection.
    up: &'a [f32],
}

/// The saved attention-half inputs of a block of rows (see [`Model::attn_bwd_rows`]); the
/// fields mirror [`LayerActs`].
#[derive(Clone, Copy)]
struct AttnRows<'a> {
    rstd1: &'a [f32],
    q_pre: &'a [f32],
    k_pre: &'a [f32],
    q_rstd: &'a [f32],
    k_rstd: &'a [f32],
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    att: &'a [f32],
    lse: &'a [f32],
}

impl<'a> AttnRows<'a> {
    fn of(a: &'a LayerActs) -> Self {
        AttnRows {
            rstd1: &a.rstd1,
            q_pre: &a.q_pre,
            k_pre: &a.k_pre,
            q_rstd: &a.q_rstd,
            k_rstd: &a.k_rstd,
            q: &a.q,
            k: &a.k,
            v: &a.v,
            att: &a.att,
            lse: &a.lse,
        }
    }

    /// Rows `r0..r1` (the QK-norm fields stay empty when they are).
    fn rows(&self, r0: usize, r1: usize, c: &crate::config::ModelConfig) -> Self {
        let (qd, kvd, hq, hkv) = (c.q_dim(), c.kv_dim(), c.num_heads, c.num_kv_heads);
        let cut = |v: &'a [f32], w: usize| if v.is_empty() { v } else { &v[r0 * w..r1 * w] };
        AttnRows {
            rstd1: cut(self.rstd1, 1),
            q_pre: cut(self.q_pre, qd),
            k_pre: cut(self.k_pre, kvd),
            q_rstd: cut(self.q_rstd, hq),
            k_rstd: cut(self.k_rstd, hkv),
            q: cut(self.q, qd),
            k: cut(self.k, kvd),
            v: cut(self.v, kvd),
            att: cut(self.att, qd),
            lse: cut(self.lse, hq),
        }
    }
}

/// Where [`Model::attn_bwd_rows`] accumulates its weight gradients (offsets into the
/// model's layout or a task's partial).
#[derive(Clone, Copy)]
struct AttnGrads {
    o: usize,
    q: usize,
    k: usize,
    v: usize,
    input_norm: usize,
    bias: Option<(usize, usize, usize)>,
    qk_norm: Option<(usize, usize)>,
}

/// Tiles of whole spans for the tiled attention-half backward, or `None` to run it over the
/// whole batch: when the batch is large enough for the tiled MLP ([`mlp_tiled`]) and cuts
/// into at least two tiles per pool thread. A tile ends once it holds [`MLP_TILE`] rows,
/// at a span boundary that no later span's context reaches back across.
fn attn_tiles(spans: &[Span<'_>], t: usize) -> Option<Vec<(usize, usize)>> {
    if !mlp_tiled(t) {
        return None;
    }
    let n = spans.len();
    // reach[i]: the first span that a span at or after i reads keys/values from.
    let mut reach = vec![n; n + 1];
    for i in (0..n).rev() {
        let own = match spans[i].ctx {
            Ctx::Seg(p) => p.min(i),
            _ => i,
        };
        reach[i] = own.min(reach[i + 1]);
    }
    let mut tiles = Vec::new();
    let (mut s0, mut rows) = (0, 0);
    for i in 0..n {
        rows += spans[i].t;
        if rows >= MLP_TILE && reach[i + 1] > i {
            tiles.push((s0, i + 1));
            (s0, rows) = (i + 1, 0);
        }
    }
    if s0 < n {
        tiles.push((s0, n));
    }
    (tiles.len() >= 2 * rayon::current_num_threads()).then_some(tiles)
}

/// Where [`Model::mlp_bwd_rows`] accumulates its weight gradients: offsets into a gradient
/// buffer (the model's layout, or a task's partial).
#[derive(Clone, Copy)]
struct MlpGrads {
    down: usize,
    gate: usize,
    up: usize,
    norm: usize,
}

impl Model {
    /// Backward of one batched layer (see [`Model::layer_fwd`]). `dout [N, H]` is d loss /
    /// d layer output; `dx [N, H]` is overwritten with d loss / d layer input. Key/value
    /// gradients of a span that attends to another span's rows are accumulated into that
    /// span's rows before the shared projections run, so a shared prompt's gradient is
    /// accumulated once. The normalised inputs and the SwiGLU activation are recomputed
    /// from the saved layer input, `x_mid`, gate and up.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer_bwd(
        &self,
        l: usize,
        x: &[f32],
        a: &LayerActs,
        dout: &[f32],
        dx: &mut [f32],
        spans: &[Span<'_>],
        keep: Option<&Keep>,
        grads: &mut [f32],
        ws: &mut BwdScratch,
    ) -> Result<()> {
        let c = &self.config;
        let h = c.hidden_size;
        let lo = self.layout.layers[l];
        let t = x.len() / h;
        let _span = tracing::trace_span!("layer_bwd", layer = l, tokens = t).entered();
        if t == 0 {
            return Ok(());
        }
        // MLP: out = x_mid + down(silu(gate) * up). Large batches run it in row tiles (see
        // `MLP_TILE`): one task per pool thread takes a fixed, contiguous share of the rows,
        // tile by tile, into its own weight-gradient partial; the partials are added in task
        // order, so the sums do not depend on scheduling.
        // The MLP half runs over the rows the layer outputs (`tq`: the kept rows with `keep`).
        let tq = a.rstd2.len();
        let mut dmid_buf = std::mem::take(&mut ws.dmid);
        let dmid = scratch(&mut dmid_buf, tq * h);
        if mlp_tiled(tq) {
            self.mlp_bwd_tiled(l, a, dout, dmid, grads)?;
        } else {
            let rows = MlpRows {
                x_mid: &a.x_mid,
                rstd2: &a.rstd2,
                gate: &a.gate,
                up: &a.up,
            };
            let slots = MlpGrads {
                down: lo.down,
                gate: lo.gate,
                up: lo.up,
                norm: lo.post_norm,
            };
            self.mlp_bwd_rows(l, rows, dout, dmid, grads, slots, ws)?;
        }
        // Attention half. Large unshared or grouped batches run it in tiles of whole spans
        // (see `attn_tiles`), like the MLP; otherwise over the whole batch.
        let lo_slots = AttnGrads {
            o: lo.o,
            q: lo.q,
            k: lo.k,
            v: lo.v,
            input_norm: lo.input_norm,
            bias: lo.qkv_bias,
            qk_norm: lo.qk_norm,
        };
        let rows = AttnRows::of(a);
        match (keep, attn_tiles(spans, t)) {
            (Some(keep), _) if tq < t => {
                self.attn_bwd_rows(l, x, rows, spans, Some(keep), dmid, dx, grads, lo_slots, ws)?
            }
            (_, Some(tiles)) => self.attn_bwd_tiled(l, x, rows, spans, &tiles, dmid, dx, grads)?,
            (_, None) => {
                self.attn_bwd_rows(l, x, rows, spans, None, dmid, dx, grads, lo_slots, ws)?
            }
        }
        ws.dmid = dmid_buf;
        Ok(())
    }

    /// [`Model::mlp_bwd_rows`] in [`MLP_TILE`]-row tiles: one task per pool thread over a
    /// fixed, contiguous share of the rows, each with its own weight-gradient partial.
    fn mlp_bwd_tiled(
        &self,
        l: usize,
        a: &LayerActs,
        dout: &[f32],
        dmid: &mut [f32],
        grads: &mut [f32],
    ) -> Result<()> {
        let c = &self.config;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let lo = self.layout.layers[l];
        let t = a.rstd2.len();
        let (wd, wg, wu) = (h * inter, inter * h, inter * h);
        let slots = MlpGrads {
            down: 0,
            gate: wd,
            up: wd + wg,
            norm: wd + wg + wu,
        };
        let share = t.div_ceil(rayon::current_num_threads());
        let th = MLP_TILE;
        let partials: Vec<TilePartial> = dmid
            .par_chunks_mut(share * h)
            .zip(dout.par_chunks(share * h))
            .zip(a.x_mid.par_chunks(share * h))
            .zip(a.rstd2.par_chunks(share))
            .zip(a.gate.par_chunks(share * inter))
            .zip(a.up.par_chunks(share * inter))
            .map(|(((((dm, d), xm), rs), gt), up)| {
                on_this_thread(|| -> Result<TilePartial> {
                    let (mut ws, mut part) = self.tile_partial(slots.norm + h);
                    for (((((dm, d), xm), rs), gt), up) in dm
                        .chunks_mut(th * h)
                        .zip(d.chunks(th * h))
                        .zip(xm.chunks(th * h))
                        .zip(rs.chunks(th))
                        .zip(gt.chunks(th * inter))
                        .zip(up.chunks(th * inter))
                    {
                        let rows = MlpRows {
                            x_mid: xm,
                            rstd2: rs,
                            gate: gt,
                            up,
                        };
                        self.mlp_bwd_rows(l, rows, d, dm, &mut part, slots, &mut ws)?;
                    }
                    Ok((ws, part))
                })
            })
            .collect::<Result<_>>()?;
        let pairs = [
            (lo.down, slots.down, wd),
            (lo.gate, slots.gate, wg),
            (lo.up, slots.up, wu),
            (lo.post_norm, slots.norm, h),
        ];
        self.add_partials(grads, &pairs, partials);
        Ok(())
    }

    /// Scratch and a zeroed weight-gradient partial of `len` floats for one task of a tiled
    /// backward (kept between calls in `tile_scratch`).
    fn tile_partial(&self, len: usize) -> TilePartial {
        let (ws, mut part) = self.tile_scratch.take();
        part.clear();
        part.resize(len, 0.0);
        (ws, part)
    }

    /// Adds each task's partial into `grads` in task order (so the sums do not depend on
    /// scheduling) at `(grads offset, partial offset, len)` places, then keeps the tasks'
    /// buffers for the next call.
    fn add_partials(
        &self,
        grads: &mut [f32],
        pairs: &[(usize, usize, usize)],
        partials: Vec<TilePartial>,
    ) {
        for (_, part) in &partials {
            for &(off, at, len) in pairs {
                for (x, y) in g(grads, off, len).iter_mut().zip(&part[at..at + len]) {
                    *x += y;
                }
            }
        }
        for tile in partials {
            self.tile_scratch.give(tile);
        }
    }

    /// Backward of layer `l`'s attention half over a block of `T` rows made of `spans`
    /// (offsets relative to the block; contexts inside it): `dx [T, H]` is overwritten with
    /// d loss / d layer input from `dmid [K, H]` (d loss / d x_mid on the `K` rows `keep`
    /// keeps, all `T` without it); the o/q/k/v, input-norm,
    /// bias and QK-norm weight gradients are **accumulated** into `grads` at `slots`.
    #[allow(clippy::too_many_arguments)]
    fn attn_bwd_rows(
        &self,
        l: usize,
        x: &[f32],
        a: AttnRows<'_>,
        spans: &[Span<'_>],
        keep: Option<&Keep>,
        dmid: &[f32],
        dx: &mut [f32],
        grads: &mut [f32],
        slots: AttnGrads,
        ws: &mut BwdScratch,
    ) -> Result<()> {
        let c = &self.config;
        let (h, qd, kvd) = (c.hidden_size, c.q_dim(), c.kv_dim());
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let lo = self.layout.layers[l];
        let t = x.len() / h;
        let eps = c.rms_norm_eps;
        // Query-side rows: all of them, or the kept ones (the last layer, see `Keep`).
        let all_rows;
        let keep = match keep {
            Some(k) => k,
            None => {
                all_rows = Keep::all(spans);
                &all_rows
            }
        };
        let tq = keep.rows();
        // Attention: x_mid = x + o_proj(att)
        let datt = scratch(&mut ws.datt, tq * qd);
        input_grad(datt, dmid, self.w(lo.o, h * qd), tq, qd, h, false)?;
        acc_weight_grad(g(grads, slots.o, h * qd), dmid, a.att, tq, qd, h)?;
        let scale = 1.0 / (d as f32).sqrt();
        let dq = scratch(&mut ws.dq, tq * qd);
        let dk = scratch(&mut ws.dk, t * kvd);
        let dv = scratch(&mut ws.dv, t * kvd);
        // dq is overwritten span by span (the spans cover every row); dk/dv accumulate.
        dk.fill(0.0);
        dv.fill(0.0);
        // Spans in parallel, one task each when there are many ([`task_per_span`]). A span
        // without context accumulates into its own dk/dv rows; a completion on a shared prompt
        // returns the gradient of its whole context, added below in span order so the sums do
        // not depend on scheduling.
        type CtxGrads = Option<(Vec<f32>, Vec<f32>)>;
        let attend = |(sp, qsp): (&Span<'_>, &Span<'_>),
                      dqs: &mut [f32],
                      dks: &mut [f32],
                      dvs: &mut [f32]| {
            if qsp.t == 0 {
                return Ok(None);
            }
            let (r0, r1) = (sp.off, sp.off + sp.t);
            let (q0, q1) = (qsp.off, qsp.off + qsp.t);
            let (douts, qs, outs) = (
                &datt[q0 * qd..q1 * qd],
                &a.q[q0 * qd..q1 * qd],
                &a.att[q0 * qd..q1 * qd],
            );
            let lse = &a.lse[hq * q0..hq * q1];
            // The kept queries are the span's last `qsp.t` rows.
            let skip = sp.t - qsp.t;
            let own_k = &a.k[r0 * kvd..r1 * kvd];
            let own_v = &a.v[r0 * kvd..r1 * kvd];
            match (sp.ctx, self.ctx_kv(sp, spans, a.k, a.v)) {
                (Ctx::Seg(_), Some((ck, cv))) if sp.pos0 > 0 => {
                    let kc = [ck, own_k].concat();
                    let vc = [cv, own_v].concat();
                    let tk = sp.pos0 + sp.t;
                    let mut dkc = vec![0.0; tk * kvd];
                    let mut dvc = vec![0.0; tk * kvd];
                    attention_bwd(
                        dqs,
                        &mut dkc,
                        &mut dvc,
                        douts,
                        qs,
                        &kc,
                        &vc,
                        outs,
                        lse,
                        qsp.t,
                        tk,
                        hq,
                        hkv,
                        d,
                        sp.pos0 + skip,
                        scale,
                    )?;
                    Ok(Some((dkc, dvc)))
                }
                (Ctx::None, _) => {
                    attention_bwd(
                        dqs, dks, dvs, douts, qs, own_k, own_v, outs, lse, qsp.t, sp.t, hq, hkv, d,
                        skip, scale,
                    )?;
                    Ok(None)
                }
                _ => Err(Error::InvalidInput(
                    "layer_bwd: only in-batch contexts are differentiable".into(),
                )),
            }
        };
        let per_span = task_per_span(spans);
        let ctx_grads: Vec<CtxGrads> = span_rows(dq, &keep.qspans, qd)?
            .into_par_iter()
            .zip(span_rows(dk, spans, kvd)?)
            .zip(span_rows(dv, spans, kvd)?)
            .zip(spans.par_iter().zip(&keep.qspans))
            .with_min_len(if per_span { 1 } else { usize::MAX })
            .map(|(((dqs, dks), dvs), spq)| -> Result<CtxGrads> {
                if per_span {
                    on_this_thread(|| attend(spq, dqs, dks, dvs))
                } else {
                    attend(spq, dqs, dks, dvs)
                }
            })
            .collect::<Result<_>>()?;
        for (sp, grads_kv) in spans.iter().zip(ctx_grads) {
            let (Ctx::Seg(p), Some((dkc, dvc))) = (sp.ctx, grads_kv) else {
                continue;
            };
            let (r0, r1) = (sp.off, sp.off + sp.t);
            let ps = &spans[p];
            let pr = ps.off * kvd..(ps.off + ps.t) * kvd;
            for (dst, src) in [(&mut *dk, &dkc), (&mut *dv, &dvc)] {
                dst[pr.clone()]
                    .iter_mut()
                    .zip(&src[..sp.pos0 * kvd])
                    .for_each(|(a, b)| *a += b);
                dst[r0 * kvd..r1 * kvd]
                    .iter_mut()
                    .zip(&src[sp.pos0 * kvd..])
                    .for_each(|(a, b)| *a += b);
            }
        }
        let positions: Vec<usize> = spans.iter().flat_map(|s| s.pos0..s.pos0 + s.t).collect();
        rope_bwd(dq, &keep.positions(), hq, d, &self.rope)?;
        rope_bwd(dk, &positions, hkv, d, &self.rope)?;
        let (dq, dk): (&[f32], &[f32]) =
            if let (Some((qn, kn)), Some((gqn, gkn))) = (lo.qk_norm, slots.qk_norm) {
                let dq_pre = scratch(&mut ws.dq_pre, tq * qd);
                let dk_pre = scratch(&mut ws.dk_pre, t * kvd);
                rmsnorm_bwd(
                    dq_pre,
                    g(grads, gqn, d),
                    dq,
                    a.q_pre,
                    self.w(qn, d),
                    a.q_rstd,
                    tq * hq,
                    d,
                )?;
                rmsnorm_bwd(
                    dk_pre,
                    g(grads, gkn, d),
                    dk,
                    a.k_pre,
                    self.w(kn, d),
                    a.k_rstd,
                    t * hkv,
                    d,
                )?;
                (dq_pre, dk_pre)
            } else {
                (dq, dk)
            };
        let dv: &[f32] = dv;
        if let Some((bq, bk, bv)) = slots.bias {
            acc_bias_grad(g(grads, bq, qd), dq);
            acc_bias_grad(g(grads, bk, kvd), dk);
            acc_bias_grad(g(grads, bv, kvd), dv);
        }
        let xn1 = scratch(&mut ws.xn, t * h);
        let rstd = scratch(&mut ws.rstd, t);
        rmsnorm_fwd(xn1, rstd, x, self.w(lo.input_norm, h), t, h, eps)?;
        let dxn1 = scratch(&mut ws.dxn, t * h);
        if tq == t {
            input_grad(dxn1, dq, self.w(lo.q, qd * h), t, h, qd, false)?;
            input_grad(dxn1, dk, self.w(lo.k, kvd * h), t, h, kvd, true)?;
            input_grad(dxn1, dv, self.w(lo.v, kvd * h), t, h, kvd, true)?;
            acc_weight_grad(g(grads, slots.q, qd * h), dq, xn1, t, h, qd)?;
        } else {
            // Queries only on the kept rows: their input gradient is added into those rows,
            // and Wq's gradient reads the kept rows of the normalised input.
            input_grad(dxn1, dk, self.w(lo.k, kvd * h), t, h, kvd, false)?;
            input_grad(dxn1, dv, self.w(lo.v, kvd * h), t, h, kvd, true)?;
            let mut part = self.buffers.take(tq * h);
            input_grad(&mut part, dq, self.w(lo.q, qd * h), tq, h, qd, false)?;
            keep.scatter_add(dxn1, &part, spans, h);
            keep.gather(&mut part, xn1, spans, h);
            acc_weight_grad(g(grads, slots.q, qd * h), dq, &part, tq, h, qd)?;
            self.buffers.give(part);
        }
        acc_weight_grad(g(grads, slots.k, kvd * h), dk, xn1, t, h, kvd)?;
        acc_weight_grad(g(grads, slots.v, kvd * h), dv, xn1, t, h, kvd)?;
        rmsnorm_bwd(
            dx,
            g(grads, slots.input_norm, h),
            dxn1,
            x,
            self.w(lo.input_norm, h),
            a.rstd1,
            t,
            h,
        )?;
        if tq == t {
            for (x, m) in dx.iter_mut().zip(dmid.iter()) {
                *x += m;
            }
        } else {
            keep.scatter_add(dx, dmid, spans, h);
        }
        Ok(())
    }

    /// [`Model::attn_bwd_rows`] over `tiles` (consecutive span ranges that hold their own
    /// contexts): one task per pool thread over a fixed, contiguous run of tiles, each with
    /// its own weight-gradient partial, added in task order.
    #[allow(clippy::too_many_arguments)]
    fn attn_bwd_tiled(
        &self,
        l: usize,
        x: &[f32],
        a: AttnRows<'_>,
        spans: &[Span<'_>],
        tiles: &[(usize, usize)],
        dmid: &[f32],
        dx: &mut [f32],
        grads: &mut [f32],
    ) -> Result<()> {
        let c = &self.config;
        let (h, qd, kvd, d) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.head_dim);
        let lo = self.layout.layers[l];
        // Partial layout: o, q, k, v, input norm, then the optional biases and QK norms.
        let mut at = 0;
        let mut slot = |len: usize| {
            let o = at;
            at += len;
            o
        };
        let slots = AttnGrads {
            o: slot(h * qd),
            q: slot(qd * h),
            k: slot(kvd * h),
            v: slot(kvd * h),
            input_norm: slot(h),
            bias: lo.qkv_bias.map(|_| (slot(qd), slot(kvd), slot(kvd))),
            qk_norm: lo.qk_norm.map(|_| (slot(d), slot(d))),
        };
        let part_len = at;
        let mut pairs = vec![
            (lo.o, slots.o, h * qd),
            (lo.q, slots.q, qd * h),
            (lo.k, slots.k, kvd * h),
            (lo.v, slots.v, kvd * h),
            (lo.input_norm, slots.input_norm, h),
        ];
        if let (Some((bq, bk, bv)), Some((pq, pk, pv))) = (lo.qkv_bias, slots.bias) {
            pairs.extend([(bq, pq, qd), (bk, pk, kvd), (bv, pv, kvd)]);
        }
        if let (Some((qn, kn)), Some((pq, pk))) = (lo.qk_norm, slots.qk_norm) {
            pairs.extend([(qn, pq, d), (kn, pk, d)]);
        }
        // Tiles per task: contiguous runs of about equal rows.
        let row0 = |s: usize| spans.get(s).map_or(x.len() / h, |sp| sp.off);
        let tasks = rayon::current_num_threads().max(1);
        let share = (x.len() / h).div_ceil(tasks);
        let mut runs: Vec<&[(usize, usize)]> = Vec::with_capacity(tasks);
        let mut rest = tiles;
        for k in 1..=tasks {
            let n = if k == tasks {
                rest.len()
            } else {
                rest.iter()
                    .take_while(|&&(_, s1)| row0(s1) <= k * share)
                    .count()
                    .max(1)
                    .min(rest.len())
            };
            let (run, tail) = rest.split_at(n);
            if !run.is_empty() {
                runs.push(run);
            }
            rest = tail;
        }
        // Each run's rows of dx.
        let mut dx_parts = Vec::with_capacity(runs.len());
        let mut dx_rest = dx;
        for run in &runs {
            let (r0, r1) = (row0(run[0].0), row0(run[run.len() - 1].1));
            let (head, tail) = std::mem::take(&mut dx_rest).split_at_mut((r1 - r0) * h);
            dx_parts.push(head);
            dx_rest = tail;
        }
        let partials: Vec<TilePartial> = runs
            .into_par_iter()
            .zip(dx_parts)
            .with_min_len(1)
            .map(|(run, dx_run)| {
                on_this_thread(|| -> Result<TilePartial> {
                    let (mut ws, mut part) = self.tile_partial(part_len);
                    let base = row0(run[0].0);
                    for &(s0, s1) in run {
                        let (r0, r1) = (row0(s0), row0(s1));
                        let local: Vec<Span<'_>> = spans[s0..s1]
                            .iter()
                            .map(|sp| Span {
                                off: sp.off - r0,
                                ctx: match sp.ctx {
                                    Ctx::Seg(p) => Ctx::Seg(p - s0),
                                    other => other,
                                },
                                ..*sp
                            })
                            .collect();
                        self.attn_bwd_rows(
                            l,
                            &x[r0 * h..r1 * h],
                            a.rows(r0, r1, c),
                            &local,
                            None,
                            &dmid[r0 * h..r1 * h],
                            &mut dx_run[(r0 - base) * h..(r1 - base) * h],
                            &mut part,
                            slots,
                            &mut ws,
                        )?;
                    }
                    Ok((ws, part))
                })
            })
            .collect::<Result<_>>()?;
        self.add_partials(grads, &pairs, partials);
        Ok(())
    }

    /// Backward of layer `l`'s MLP over a block of `T` rows: `dmid [T, H]` is overwritten
    /// with d loss / d x_mid (the residual included) from `dout [T, H]`; the down, gate, up
    /// and post-norm weight gradients are **accumulated** into `grads` at `slots`. The
    /// normalised input and the SwiGLU activation are recomputed.
    #[allow(clippy::too_many_arguments)]
    fn mlp_bwd_rows(
        &self,
        l: usize,
        a: MlpRows<'_>,
        dout: &[f32],
        dmid: &mut [f32],
        grads: &mut [f32],
        slots: MlpGrads,
        ws: &mut BwdScratch,
    ) -> Result<()> {
        let c = &self.config;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let lo = self.layout.layers[l];
        let t = a.rstd2.len();
        let act = scratch(&mut ws.act, t * inter);
        swiglu_fwd(act, a.gate, a.up)?;
        acc_weight_grad(g(grads, slots.down, h * inter), dout, act, t, inter, h)?;
        let dact = act;
        input_grad(dact, dout, self.w(lo.down, h * inter), t, inter, h, false)?;
        let dgate = scratch(&mut ws.dgate, t * inter);
        let dup = scratch(&mut ws.dup, t * inter);
        swiglu_bwd(dgate, dup, dact, a.gate, a.up)?;
        let xn2 = scratch(&mut ws.xn, t * h);
        let rstd = scratch(&mut ws.rstd, t);
        let w_norm = self.w(lo.post_norm, h);
        rmsnorm_fwd(xn2, rstd, a.x_mid, w_norm, t, h, c.rms_norm_eps)?;
        let dxn2 = scratch(&mut ws.dxn, t * h);
        input_grad(dxn2, dgate, self.w(lo.gate, inter * h), t, h, inter, false)?;
        input_grad(dxn2, dup, self.w(lo.up, inter * h), t, h, inter, true)?;
        acc_weight_grad(g(grads, slots.gate, inter * h), dgate, xn2, t, h, inter)?;
        acc_weight_grad(g(grads, slots.up, inter * h), dup, xn2, t, h, inter)?;
        rmsnorm_bwd(
            dmid,
            g(grads, slots.norm, h),
            dxn2,
            a.x_mid,
            w_norm,
            a.rstd2,
            t,
            h,
        )?;
        for (m, o) in dmid.iter_mut().zip(dout) {
            *m += o;
        }
        Ok(())
    }

    /// Backward from per-token `dlogp` (and optional `dentropy`), shaped like the forward's
    /// outputs, **accumulating** parameter gradients into `grads` (`[layout.total]`).
    pub fn backward(
        &self,
        acts: &Activations,
        dlogp: &[Vec<f32>],
        dentropy: Option<&[Vec<f32>]>,
        grads: &mut [f32],
    ) -> Result<()> {
        let c = &self.config;
        let (h, v, nl) = (c.hidden_size, c.vocab_size, c.num_layers);
        if grads.len() != self.layout.total {
            return Err(Error::InvalidInput(format!(
                "gradient buffer has {} values, expected {}",
                grads.len(),
                self.layout.total
            )));
        }
        let lens = acts.lengths();
        let check = |name: &str, d: &[Vec<f32>]| -> Result<()> {
            if d.len() != lens.len() {
                return Err(Error::InvalidInput(format!(
                    "{name}: {} sequences, forward had {}",
                    d.len(),
                    lens.len()
                )));
            }
            for (i, (x, n)) in d.iter().zip(&lens).enumerate() {
                if x.len() != *n {
                    return Err(Error::InvalidInput(format!(
                        "{name}: sequence {i} has {} values, expected {n}",
                        x.len()
                    )));
                }
            }
            Ok(())
        };
        check("dlogp", dlogp)?;
        if let Some(de) = dentropy {
            check("dentropy", de)?;
        }
        // Rows of the loss head (the last layer's kept rows) and of the other layers.
        let n_rows = acts.acts.xf.len() / h;
        let n_all = acts.positions_computed();
        let spans = acts.spans();
        // Loss head: fused lm_head/log-softmax backward, scattered to the batch rows.
        let mut dxf = vec![0.0; n_rows * h];
        let lm_off = self.layout.lm_head;
        let n: usize = lens.iter().sum();
        if n > 0 {
            let hidden = self.gather_all_rows(&acts.acts, &acts.jobs);
            let cat = |f: fn(&Job) -> &[f32]| -> Vec<f32> {
                acts.jobs
                    .iter()
                    .flat_map(|j| f(j).iter().copied())
                    .collect()
            };
            let targets: Vec<u32> = acts
                .jobs
                .iter()
                .flat_map(|j| j.targets.iter().copied())
                .collect();
            let (lse, entropy) = (cat(|j| &j.lse), cat(|j| &j.entropy));
            let dl: Vec<f32> = dlogp.iter().flatten().copied().collect();
            let de: Vec<f32> = match dentropy {
                Some(de) => de.iter().flatten().copied().collect(),
                None => vec![0.0; n],
            };
            let mut dh = vec![0.0; n * h];
            // lm_head is read from the weights while its gradient accumulates in `grads`.
            logprob_bwd(
                &mut dh,
                g(grads, lm_off, v * h),
                &dl,
                &de,
                &hidden,
                self.w(lm_off, v * h),
                &targets,
                &lse,
                &entropy,
                n,
                h,
                v,
                acts.opts.vocab_chunk.clamp(1, v),
            )?;
            let rows = acts.jobs.iter().flat_map(|j| &j.rows);
            for (&r, dhr) in rows.zip(dh.chunks_exact(h)) {
                for (a, b) in dxf[r * h..(r + 1) * h].iter_mut().zip(dhr) {
                    *a += b;
                }
            }
        }
        if n_rows == 0 || n_all == 0 {
            // No completion token: nothing flows back.
            return Ok(());
        }
        // Final norm, into the first `n_rows` rows of `dx`.
        let mut dx = self.buffers.take(n_all * h);
        rmsnorm_bwd(
            &mut dx[..n_rows * h],
            g(grads, self.layout.final_norm, h),
            &dxf,
            &acts.acts.inputs[nl],
            self.w(self.layout.final_norm, h),
            &acts.acts.rstd_f,
            n_rows,
            h,
        )?;
        drop(dxf);
        // Layers, last to first; `dx` and `dnext` swap roles each layer.
        let mut dnext = self.buffers.take(n_all * h);
        let mut ws = self.bwd_scratch.take();
        let mut fws = FwdScratch::default();
        for l in (0..nl).rev() {
            let x = &acts.acts.inputs[l];
            let keep = (l + 1 == nl).then_some(&acts.keep);
            let recomputed;
            let layer = if acts.opts.recompute {
                recomputed = self
                    .layer_fwd_with(l, x, &spans, keep, &mut fws, Gemm::Fast)?
                    .0;
                &recomputed
            } else {
                &acts.acts.layers[l]
            };
            // d loss / d layer output covers the rows the layer output: the kept rows for
            // the last layer, all rows below it.
            let n_out = if l + 1 == nl { n_rows } else { n_all };
            self.layer_bwd(
                l,
                x,
                layer,
                &dx[..n_out * h],
                &mut dnext,
                &spans,
                keep,
                grads,
                &mut ws,
            )?;
            std::mem::swap(&mut dx, &mut dnext);
        }
        let tokens: Vec<u32> = acts
            .segs
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        embedding_bwd(g(grads, self.layout.embed, v * h), &dx, &tokens, h)?;
        self.buffers.give(dx);
        self.buffers.give(dnext);
        self.bwd_scratch.give(ws);
        Ok(())
    }
}
