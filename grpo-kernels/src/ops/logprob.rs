//! Fused LM head → log-softmax → gather of the target token (+ entropy), forward and
//! backward, in vocabulary chunks so the full `[t, v]` logits are never materialised.
//!
//! # Contract
//!
//! All buffers f32, row-major, contiguous. `hidden`: `[t, h]` (final-norm output);
//! `lm_head`: `[v, h]` (HF `lm_head.weight` layout, or the tied embedding table);
//! `targets`: `[t]` token ids `< v`; `logp`, `entropy`, `lse`, `dlogp`, `dentropy`: `[t]`.
//! With `z = hidden · lm_headᵀ` (row `i` = logits of token `i`):
//!
//! - [`logprob_fwd`] overwrites `lse[i] = log Σ_j exp z_ij`, `logp[i] = z_i,target − lse[i]`
//!   and `entropy[i] = −Σ_j p_ij log p_ij` (natural log).
//! - [`logprob_bwd`] takes `dlogp = ∂L/∂logp` and `dentropy = ∂L/∂entropy`, plus the
//!   forward's `lse` and `entropy`; it **overwrites** `dhidden [t, h]` and **accumulates** into
//!   `dlm_head [v, h]`. Per logit:
//!   `∂L/∂z_ij = dlogp_i (δ_j,target − p_ij) − dentropy_i · p_ij (log p_ij + entropy_i)`.
//!
//! Work is done in blocks of at most 1024 tokens × `chunk` vocabulary entries: extra memory is
//! one `[min(t, 1024), chunk]` f32 buffer (plus per-token scalars), i.e. 4 MiB for `t ≥ 1024`
//! and `chunk = 1024`, instead of the `4·t·v` bytes of materialised logits. The forward keeps
//! an online (rescaled) log-sum-exp and entropy accumulator per token, in f64; the backward
//! recomputes each logit chunk and applies three gemms per chunk.
//!
//! Cost: the forward is one `t × h × v` gemm (like plain logits); the backward recomputes
//! the logits, so forward + backward is four such gemms where a materialised version needs
//! three — the price of O(chunk) memory. Call the ops once over all tokens of a batch rather
//! than once per sequence: `lm_head` is streamed and `dlm_head` read-modify-written once per
//! 1024-token block, so per-sequence calls multiply that memory traffic.
//!
//! [`logits`] computes plain `[t, v]` logits for the few rows a sampler needs.

use super::gemm::{MatMut, MatRef, gemm_strided, linear_rows};
use super::math;
use crate::error::{check_len, checked_size, invalid};
use crate::{KernelError, Result};
use gemm::Parallelism;
use rayon::prelude::*;

/// Tokens per block (bounds the chunk buffer for long batches).
const TOKEN_BLOCK: usize = 1024;

struct Checked {
    h: usize,
    v: usize,
    chunk: usize,
}

fn check_common(
    op: &'static str,
    hidden: &[f32],
    lm_head: &[f32],
    targets: &[u32],
    t: usize,
    h: usize,
    v: usize,
    chunk: usize,
) -> Result<Checked> {
    check_len(
        op,
        "hidden",
        hidden.len(),
        checked_size(op, "hidden", &[t, h])?,
    )?;
    check_len(
        op,
        "lm_head",
        lm_head.len(),
        checked_size(op, "lm_head", &[v, h])?,
    )?;
    check_len(op, "targets", targets.len(), t)?;
    if v == 0 {
        return Err(invalid(op, "v", "vocabulary size must be positive"));
    }
    if chunk == 0 {
        return Err(invalid(op, "chunk", "vocabulary chunk must be positive"));
    }
    if let Some((position, &id)) = targets
        .iter()
        .enumerate()
        .find(|(_, id)| **id as usize >= v)
    {
        return Err(KernelError::TokenOutOfRange {
            op,
            id,
            position,
            vocab: v,
        });
    }
    Ok(Checked {
        h,
        v,
        chunk: chunk.min(v),
    })
}

/// Computes `buf[bt, cv] = hidden[r0..r0+bt] · lm_head[c0..c0+cv]ᵀ`.
fn logits_chunk(
    buf: &mut [f32],
    hidden: &[f32],
    lm_head: &[f32],
    c: &Checked,
    r0: usize,
    bt: usize,
    c0: usize,
    cv: usize,
) -> Result<()> {
    gemm_strided(
        MatMut {
            data: buf,
            offset: 0,
            rows: bt,
            cols: cv,
            rs: cv,
            cs: 1,
        },
        MatRef {
            data: hidden,
            offset: r0 * c.h,
            rows: bt,
            cols: c.h,
            rs: c.h,
            cs: 1,
        },
        MatRef {
            data: lm_head,
            offset: c0 * c.h,
            rows: c.h,
            cols: cv,
            rs: 1,
            cs: c.h,
        },
        false,
        1.0,
        Parallelism::Rayon(0),
    )
}

/// Running softmax statistics of one token: max `m`, `s0 = Σ e^(z−m)`, `s1 = Σ e^(z−m)(z−m)`.
#[derive(Clone, Copy)]
struct Online {
    m: f32,
    s0: f64,
    s1: f64,
    target: f32,
}

impl Online {
    const EMPTY: Online = Online {
        m: f32::NEG_INFINITY,
        s0: 0.0,
        s1: 0.0,
        target: f32::NAN,
    };

    /// Folds one chunk of logits into the statistics.
    fn absorb(&mut self, row: &[f32]) {
        let mc = math::max(row);
        if mc == f32::NEG_INFINITY {
            return;
        }
        let (c0, c1) = math::exp_moments(row, mc);
        if self.s0 == 0.0 {
            *self = Online {
                m: mc,
                s0: c0,
                s1: c1,
                target: self.target,
            };
            return;
        }
        let big = self.m.max(mc);
        let rescale = |m: f32, s0: f64, s1: f64| {
            let dm = (m - big) as f64;
            let a = dm.exp();
            (a * s0, a * (s1 + dm * s0))
        };
        let (a0, a1) = rescale(self.m, self.s0, self.s1);
        let (b0, b1) = rescale(mc, c0, c1);
        self.m = big;
        self.s0 = a0 + b0;
        self.s1 = a1 + b1;
    }
}

/// Bytes of scratch memory [`logprob_fwd`] or [`logprob_bwd`] allocates for `t` tokens and a
/// vocabulary chunk of `chunk` rows: one `[min(t, 1024), chunk]` f32 logits block plus, in
/// the forward, the per-token online statistics. This is the op's whole extra memory (the
/// outputs and the `dlm_head` accumulator are the caller's).
pub fn workspace_bytes(t: usize, chunk: usize) -> usize {
    let tb = t.min(TOKEN_BLOCK);
    tb * chunk * std::mem::size_of::<f32>() + tb * std::mem::size_of::<Online>()
}

/// Fused forward: `logp`, `entropy`, `lse` (all `[t]`, overwritten) from `hidden [t, h]` and
/// `lm_head [v, h]`, processing `chunk` vocabulary rows at a time. See the module contract.
pub fn logprob_fwd(
    logp: &mut [f32],
    entropy: &mut [f32],
    lse: &mut [f32],
    hidden: &[f32],
    lm_head: &[f32],
    targets: &[u32],
    t: usize,
    h: usize,
    v: usize,
    chunk: usize,
) -> Result<()> {
    const OP: &str = "logprob_fwd";
    let c = check_common(OP, hidden, lm_head, targets, t, h, v, chunk)?;
    check_len(OP, "logp", logp.len(), t)?;
    check_len(OP, "entropy", entropy.len(), t)?;
    check_len(OP, "lse", lse.len(), t)?;
    if t == 0 {
        return Ok(());
    }
    let tb = t.min(TOKEN_BLOCK);
    let mut buf = vec![0.0f32; tb * c.chunk];
    let mut stats = vec![Online::EMPTY; tb];
    for r0 in (0..t).step_by(TOKEN_BLOCK) {
        let bt = TOKEN_BLOCK.min(t - r0);
        let stats = &mut stats[..bt];
        stats.fill(Online::EMPTY);
        let tgt = &targets[r0..r0 + bt];
        for c0 in (0..c.v).step_by(c.chunk) {
            let cv = c.chunk.min(c.v - c0);
            let buf = &mut buf[..bt * cv];
            logits_chunk(buf, hidden, lm_head, &c, r0, bt, c0, cv)?;
            buf.par_chunks(cv)
                .zip(stats.par_iter_mut())
                .zip(tgt.par_iter())
                .with_min_len(4)
                .for_each(|((row, st), &id)| {
                    let id = id as usize;
                    if (c0..c0 + cv).contains(&id) {
                        st.target = row[id - c0];
                    }
                    st.absorb(row);
                });
        }
        for (i, st) in stats.iter().enumerate() {
            let ln_s0 = st.s0.ln();
            let l = st.m as f64 + ln_s0;
            lse[r0 + i] = l as f32;
            logp[r0 + i] = (st.target as f64 - l) as f32;
            entropy[r0 + i] = (ln_s0 - st.s1 / st.s0) as f32;
        }
    }
    Ok(())
}

/// Fused backward: `dhidden [t, h]` overwritten, `dlm_head [v, h]` accumulated, from
/// `dlogp`/`dentropy` and the forward's `lse`/`entropy`. See the module contract.
pub fn logprob_bwd(
    dhidden: &mut [f32],
    dlm_head: &mut [f32],
    dlogp: &[f32],
    dentropy: &[f32],
    hidden: &[f32],
    lm_head: &[f32],
    targets: &[u32],
    lse: &[f32],
    entropy: &[f32],
    t: usize,
    h: usize,
    v: usize,
    chunk: usize,
) -> Result<()> {
    const OP: &str = "logprob_bwd";
    let c = check_common(OP, hidden, lm_head, targets, t, h, v, chunk)?;
    check_len(OP, "dhidden", dhidden.len(), t * h)?;
    check_len(OP, "dlm_head", dlm_head.len(), v * h)?;
    check_len(OP, "dlogp", dlogp.len(), t)?;
    check_len(OP, "dentropy", dentropy.len(), t)?;
    check_len(OP, "lse", lse.len(), t)?;
    check_len(OP, "entropy", entropy.len(), t)?;
    if t == 0 {
        return Ok(());
    }
    if h == 0 {
        return Ok(());
    }
    let tb = t.min(TOKEN_BLOCK);
    let mut buf = vec![0.0f32; tb * c.chunk];
    for r0 in (0..t).step_by(TOKEN_BLOCK) {
        let bt = TOKEN_BLOCK.min(t - r0);
        let rows = r0..r0 + bt;
        let (tgt, a, b, l, ent) = (
            &targets[rows.clone()],
            &dlogp[rows.clone()],
            &dentropy[rows.clone()],
            &lse[rows.clone()],
            &entropy[rows],
        );
        for (ci, c0) in (0..c.v).step_by(c.chunk).enumerate() {
            let cv = c.chunk.min(c.v - c0);
            let buf = &mut buf[..bt * cv];
            logits_chunk(buf, hidden, lm_head, &c, r0, bt, c0, cv)?;
            buf.par_chunks_mut(cv)
                .enumerate()
                .with_min_len(4)
                .for_each(|(i, row)| {
                    dlogits_row(row, a[i], b[i], l[i], ent[i]);
                    let id = tgt[i] as usize;
                    if (c0..c0 + cv).contains(&id) {
                        row[id - c0] += a[i];
                    }
                });
            // dhidden[rows] (= or +=) dz · lm_head[c0..c0+cv]
            gemm_strided(
                MatMut {
                    data: dhidden,
                    offset: r0 * h,
                    rows: bt,
                    cols: h,
                    rs: h,
                    cs: 1,
                },
                MatRef {
                    data: buf,
                    offset: 0,
                    rows: bt,
                    cols: cv,
                    rs: cv,
                    cs: 1,
                },
                MatRef {
                    data: lm_head,
                    offset: c0 * h,
                    rows: cv,
                    cols: h,
                    rs: h,
                    cs: 1,
                },
                ci > 0,
                1.0,
                Parallelism::Rayon(0),
            )?;
            // dlm_head[c0..c0+cv] += dzᵀ · hidden[rows]
            gemm_strided(
                MatMut {
                    data: dlm_head,
                    offset: c0 * h,
                    rows: cv,
                    cols: h,
                    rs: h,
                    cs: 1,
                },
                MatRef {
                    data: buf,
                    offset: 0,
                    rows: cv,
                    cols: bt,
                    rs: 1,
                    cs: cv,
                },
                MatRef {
                    data: hidden,
                    offset: r0 * h,
                    rows: bt,
                    cols: h,
                    rs: h,
                    cs: 1,
                },
                true,
                1.0,
                Parallelism::Rayon(0),
            )?;
        }
    }
    Ok(())
}

math::multiversion! {
/// In place: logits `z` of one token → `∂L/∂z = −dlogp·p − dentropy·p·(log p + entropy)`
/// (the target's `+dlogp` is added by the caller).
fn dlogits_row(row: &mut [f32], dlogp: f32, dentropy: f32, lse: f32, entropy: f32) {
    for z in row.iter_mut() {
        let logp = *z - lse;
        let p = math::exp(logp);
        *z = -dlogp * p - dentropy * p * (logp + entropy);
    }
}
}

/// Plain logits `out[t, v] = hidden[t, h] · lm_head[v, h]ᵀ` (overwritten), for sampling:
/// row-invariant ([`crate::ops::gemm::linear_rows`]), so a row's logits do not depend on the
/// other rows.
pub fn logits(
    out: &mut [f32],
    hidden: &[f32],
    lm_head: &[f32],
    t: usize,
    h: usize,
    v: usize,
) -> Result<()> {
    linear_rows(out, hidden, lm_head, t, h, v, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_v_entropy() {
        // hidden = 0 -> all logits 0 -> uniform over v = 5.
        let (t, h, v) = (2, 3, 5);
        let hidden = vec![0.0f32; t * h];
        let lm = vec![1.0f32; v * h];
        let (mut lp, mut en, mut ls) = (vec![0.0; t], vec![0.0; t], vec![0.0; t]);
        logprob_fwd(&mut lp, &mut en, &mut ls, &hidden, &lm, &[0, 4], t, h, v, 2).unwrap();
        for i in 0..t {
            assert!((lp[i] + (5.0f32).ln()).abs() < 1e-6);
            assert!((en[i] - (5.0f32).ln()).abs() < 1e-6);
            assert!((ls[i] - (5.0f32).ln()).abs() < 1e-6);
        }
    }

    #[test]
    fn target_out_of_vocab_is_named() {
        let err = logprob_fwd(
            &mut [0.0],
            &mut [0.0],
            &mut [0.0],
            &[0.0],
            &[0.0, 0.0],
            &[2],
            1,
            1,
            2,
            1,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            KernelError::TokenOutOfRange {
                id: 2,
                position: 0,
                ..
            }
        ));
    }
}
