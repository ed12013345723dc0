//! TRL 1.16.0 `GRPOTrainer` loss (`trl.grpo_loss`), computed exactly as
//! `GRPOTrainer._compute_loss` computes it in training mode on one process's
//! micro-batch, with the gradient of the returned loss with respect to the
//! current policy's per-token log-probabilities (`grad_log_prob`) and entropies
//! (`grad_entropy`).
//!
//! Parameter names are `GRPOConfig`'s; `gradient_accumulation_steps` stands for
//! the trainer's `current_gradient_accumulation_steps`, `num_processes` for
//! `accelerator.num_processes`, and `num_items_in_batch` defaults to the number
//! of valid tokens of this micro-batch (the single-process, single-micro-batch
//! value). Differences between TRL versions (the `GA/S` factor of `dapo`, the
//! default of `use_bias_correction_kl`) are documented in [`crate::compat`].
//!
//! Gradient conventions follow torch autograd (ties of `torch.min` split the
//! gradient, `torch.clamp` passes it on the closed interval).

use ndarray::{Array2, ArrayView2};
use serde::Deserialize;

use super::{check_finite, check_mask, check_tokens, row_sums};
use crate::error::{CoreError, Result};

/// `GRPOConfig` fields used by the loss (defaults of trl 1.16.0).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoLossParams {
    /// One of grpo, bnpo, dr_grpo, dapo, cispo, sapo, vespo, luspo (default `dapo`).
    #[serde(default = "default_loss_type")]
    pub loss_type: String,
    /// Lower clip ε (default 0.2).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Upper clip ε (default: `epsilon`); for `cispo` an absolute cap on the ratio.
    #[serde(default)]
    pub epsilon_high: Option<f64>,
    /// Two-sided clip upper bound on the unclipped ratio (default none).
    #[serde(default)]
    pub delta: Option<f64>,
    /// KL coefficient (default 0.0).
    #[serde(default)]
    pub beta: f64,
    /// Multiply the k3 KL by the (non-detached) importance ratio (default true in 1.16.0).
    #[serde(default = "default_true")]
    pub use_bias_correction_kl: bool,
    /// `token` or `sequence` (default `token`).
    #[serde(default = "default_level")]
    pub importance_sampling_level: String,
    /// Keep only the top-ρ entropy quantile of valid tokens (default 1.0 = off).
    #[serde(default = "default_one")]
    pub top_entropy_quantile: f64,
    /// Static entropy-bonus coefficient (default 0.0).
    #[serde(default)]
    pub entropy_coef: f64,
    /// `dr_grpo` normaliser (default 512).
    #[serde(default = "default_max_len")]
    pub max_completion_length: f64,
    /// Active tokens in the generation batch across processes (default: Σ mask here).
    #[serde(default)]
    pub num_items_in_batch: Option<f64>,
    /// Current gradient-accumulation steps (default 1).
    #[serde(default = "default_one")]
    pub gradient_accumulation_steps: f64,
    /// Number of processes (default 1).
    #[serde(default = "default_one")]
    pub num_processes: f64,
    /// Steps per generation (default: `gradient_accumulation_steps`).
    #[serde(default)]
    pub steps_per_generation: Option<f64>,
    /// SAPO temperature for A > 0 (default 1.0).
    #[serde(default = "default_one")]
    pub sapo_temperature_pos: f64,
    /// SAPO temperature for A ≤ 0 (default 1.05).
    #[serde(default = "default_tau_neg")]
    pub sapo_temperature_neg: f64,
    /// VESPO k for A ≥ 0 (default 2).
    #[serde(default = "default_two")]
    pub vespo_k_pos: f64,
    /// VESPO λ for A ≥ 0 (default 3).
    #[serde(default = "default_three")]
    pub vespo_lambda_pos: f64,
    /// VESPO k for A < 0 (default 3).
    #[serde(default = "default_three")]
    pub vespo_k_neg: f64,
    /// VESPO λ for A < 0 (default 2).
    #[serde(default = "default_two")]
    pub vespo_lambda_neg: f64,
    /// Off-policy sequence-mask threshold (default none = off).
    #[serde(default)]
    pub off_policy_mask_threshold: Option<f64>,
}

fn default_loss_type() -> String {
    "dapo".into()
}
fn default_epsilon() -> f64 {
    0.2
}
fn default_true() -> bool {
    true
}
fn default_level() -> String {
    "token".into()
}
fn default_one() -> f64 {
    1.0
}
fn default_max_len() -> f64 {
    512.0
}
fn default_tau_neg() -> f64 {
    1.05
}
fn default_two() -> f64 {
    2.0
}
fn default_three() -> f64 {
    3.0
}

impl Default for GrpoLossParams {
    fn default() -> Self {
        Self {
            loss_type: default_loss_type(),
            epsilon: default_epsilon(),
            epsilon_high: None,
            delta: None,
            beta: 0.0,
            use_bias_correction_kl: true,
            importance_sampling_level: default_level(),
            top_entropy_quantile: 1.0,
            entropy_coef: 0.0,
            max_completion_length: default_max_len(),
            num_items_in_batch: None,
            gradient_accumulation_steps: 1.0,
            num_processes: 1.0,
            steps_per_generation: None,
            sapo_temperature_pos: 1.0,
            sapo_temperature_neg: default_tau_neg(),
            vespo_k_pos: default_two(),
            vespo_lambda_pos: default_three(),
            vespo_k_neg: default_three(),
            vespo_lambda_neg: default_two(),
            off_policy_mask_threshold: None,
        }
    }
}

/// Inputs of `trl.grpo_loss` (TRL's names in parentheses).
#[derive(Debug, Clone, Copy)]
pub struct GrpoLossInputs<'a> {
    /// Current policy log-probs `[B,T]` (`per_token_logps`).
    pub log_prob: ArrayView2<'a, f64>,
    /// Old policy log-probs `[B,T]` (`old_per_token_logps`); `None` ⇒ `log_prob` detached.
    pub old_log_prob: Option<ArrayView2<'a, f64>>,
    /// Reference log-probs `[B,T]` (`ref_per_token_logps`), required when `beta ≠ 0`.
    pub ref_log_prob: Option<ArrayView2<'a, f64>>,
    /// Advantages `[B,1]` (a `[B]` input) or `[B,T]`.
    pub advantages: ArrayView2<'a, f64>,
    /// Completion mask (× tool mask) `[B,T]` (`completion_mask`).
    pub response_mask: ArrayView2<'a, f64>,
    /// Per-token entropies `[B,T]` (`entropies`); needed for the entropy mask or bonus.
    pub entropy: Option<ArrayView2<'a, f64>>,
    /// vLLM importance-sampling ratio `[B,T]` (`importance_sampling_ratio`); applied when given.
    pub importance_sampling_ratio: Option<ArrayView2<'a, f64>>,
    /// Sampler log-probs `[B,T]` (`sampling_per_token_logps`) for the off-policy mask.
    pub sampling_per_token_logps: Option<ArrayView2<'a, f64>>,
}

/// Output of `trl.grpo_loss`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpoLossOutput {
    /// The loss TRL back-propagates.
    pub loss: f64,
    /// The logged `policy_loss` (before the entropy bonus; for grpo/bnpo/dr_grpo/sapo/luspo
    /// before dividing by gradient accumulation).
    pub policy_loss: f64,
    /// `d loss / d per_token_logps` `[B,T]`.
    pub grad_log_prob: Array2<f64>,
    /// `d loss / d entropies` `[B,T]` (all zero without an entropy bonus).
    pub grad_entropy: Array2<f64>,
    /// Logged `kl` (global masked mean of the per-token KL), when `beta ≠ 0`.
    pub kl: Option<f64>,
    /// Logged `clip_ratio/low_mean` (clip-family losses).
    pub clip_ratio_low_mean: Option<f64>,
    /// Logged `clip_ratio/high_mean`.
    pub clip_ratio_high_mean: Option<f64>,
    /// Logged `clip_ratio/region_mean`.
    pub clip_ratio_region_mean: Option<f64>,
    /// Logged `cispo_clip_ratio` (`cispo` only).
    pub cispo_clip_ratio: Option<f64>,
    /// Logged `vespo/phi_seq_mean` (`vespo` only).
    pub vespo_phi_seq_mean: Option<f64>,
}

fn invalid(name: &str, value: impl ToString, reason: &str) -> CoreError {
    CoreError::InvalidParam {
        name: name.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Linear-interpolation quantile of sorted data (`torch.quantile` default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let pos = q * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// TRL 1.16.0 `GRPOTrainer._compute_loss` (train mode), see the module docs.
pub fn grpo_loss(x: &GrpoLossInputs<'_>, p: &GrpoLossParams) -> Result<GrpoLossOutput> {
    let m = &x.response_mask;
    check_mask("response_mask", m)?;
    let (b, t) = m.dim();
    if b == 0 {
        return Err(CoreError::Empty {
            what: "response_mask".into(),
        });
    }
    check_tokens("log_prob", &x.log_prob, m)?;
    let old = match &x.old_log_prob {
        Some(o) => {
            check_tokens("old_log_prob", o, m)?;
            o.to_owned()
        }
        None => x.log_prob.to_owned(),
    };
    let adv_cols = x.advantages.ncols();
    if x.advantages.nrows() != b || (adv_cols != 1 && adv_cols != t) {
        return Err(CoreError::ShapeMismatch {
            what: "advantages".into(),
            expected: vec![b, t],
            got: vec![x.advantages.nrows(), adv_cols],
        });
    }
    check_finite("advantages", &x.advantages)?;
    let adv = |i: usize, s: usize| {
        if adv_cols == 1 {
            x.advantages[[i, 0]]
        } else {
            x.advantages[[i, s]]
        }
    };
    for (name, a) in [
        ("ref_log_prob", &x.ref_log_prob),
        ("entropy", &x.entropy),
        ("importance_sampling_ratio", &x.importance_sampling_ratio),
        ("sampling_per_token_logps", &x.sampling_per_token_logps),
    ] {
        if let Some(a) = a {
            check_tokens(name, a, m)?;
        }
    }
    let lt = p.loss_type.as_str();
    if !matches!(
        lt,
        "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo" | "vespo" | "luspo"
    ) {
        return Err(invalid(
            "loss_type",
            lt,
            "expected grpo, bnpo, dr_grpo, dapo, cispo, sapo, vespo or luspo",
        ));
    }
    let seq_level = match p.importance_sampling_level.as_str() {
        "token" => false,
        "sequence" => true,
        other => {
            return Err(invalid(
                "importance_sampling_level",
                other,
                "expected `token` or `sequence`",
            ));
        }
    };
    let ga = p.gradient_accumulation_steps;
    if ga <= 0.0 || !ga.is_finite() {
        return Err(invalid("gradient_accumulation_steps", ga, "must be > 0"));
    }
    let eps_low = p.epsilon;
    let eps_high = p.epsilon_high.unwrap_or(p.epsilon);
    let mask_f = |i: usize, s: usize| m[[i, s]];
    let lens = row_sums(m);

    // Entropy mask (detached).
    let mut ent_mask = Array2::<f64>::ones((b, t));
    if p.top_entropy_quantile < 1.0 {
        let h = x.entropy.ok_or_else(|| CoreError::MissingInput {
            method: "trl.grpo_loss".into(),
            what: "entropy".into(),
        })?;
        let mut vals: Vec<f64> = (0..b)
            .flat_map(|i| (0..t).map(move |s| (i, s)))
            .filter(|&(i, s)| m[[i, s]] > 0.0)
            .map(|(i, s)| h[[i, s]] as f32 as f64)
            .collect();
        if vals.is_empty() {
            ent_mask.fill(0.0);
        } else {
            vals.sort_by(f64::total_cmp);
            let q = 1.0 - p.top_entropy_quantile;
            if !(0.0..=1.0).contains(&q) {
                return Err(invalid(
                    "top_entropy_quantile",
                    p.top_entropy_quantile,
                    "must be in [0, 1]",
                ));
            }
            let thr = quantile(&vals, q);
            for ((i, s), e) in ent_mask.indexed_iter_mut() {
                *e = f64::from(u8::from(h[[i, s]] * m[[i, s]] >= thr && m[[i, s]] > 0.0));
            }
        }
    }

    // Importance weights: coef[i,s] (token) or coef[i,0] per row (sequence).
    let logr = &x.log_prob - &old;
    let coef_row: Vec<f64> = (0..b)
        .map(|i| ((0..t).map(|s| logr[[i, s]] * m[[i, s]]).sum::<f64>() / lens[i].max(1.0)).exp())
        .collect();
    let coef = |i: usize, s: usize| {
        if seq_level {
            coef_row[i]
        } else {
            logr[[i, s]].exp()
        }
    };
    // d coef[i,t] / d ℓ[i,s] is coef·δ_ts (token) or coef_i·m[i,s]/max(L_i,1) (sequence).

    // Off-policy sequence mask (detached): mean sampler-vs-current log-ratio per row.
    let opm_kl: Vec<f64> = match p.off_policy_mask_threshold {
        None => Vec::new(),
        Some(_) => {
            let samp = x
                .sampling_per_token_logps
                .map_or_else(|| old.clone(), |v| v.to_owned());
            (0..b)
                .map(|i| {
                    (0..t)
                        .map(|s| (samp[[i, s]] - x.log_prob[[i, s]]) * m[[i, s]])
                        .sum::<f64>()
                        / lens[i].max(1.0)
                })
                .collect()
        }
    };
    let opm_keep = |i: usize, s: usize| -> f64 {
        match p.off_policy_mask_threshold {
            None => 1.0,
            Some(thr) => f64::from(u8::from(adv(i, s) >= 0.0 || opm_kl[i] <= thr)),
        }
    };

    // VESPO gamma weights (detached), per row or per token (sign of A).
    let vespo_logw: Vec<f64> = if lt == "vespo" {
        let low = 1e-8f64.ln();
        (0..b)
            .map(|i| {
                let mut sl: f64 = (0..t)
                    .map(|s| logr[[i, s]].clamp(-20.0, 20.0) * m[[i, s]])
                    .sum();
                if let Some(isr) = &x.importance_sampling_ratio {
                    sl += (0..t)
                        .map(|s| isr[[i, s]].ln().clamp(low, 20.0))
                        .sum::<f64>();
                }
                sl.clamp(low, 20.0)
            })
            .collect()
    } else {
        Vec::new()
    };
    let phi = |i: usize, a: f64| -> f64 {
        let lw = vespo_logw[i];
        let (k, lam) = if a >= 0.0 {
            (p.vespo_k_pos, p.vespo_lambda_pos)
        } else {
            (p.vespo_k_neg, p.vespo_lambda_neg)
        };
        let lam = lam.max(1e-4);
        let v = (lam + k * lw - lam * lw.exp()).exp();
        if v.is_finite() { v } else { 0.0 }
    };

    // Aggregation weights W[i,s] = d loss / d per_token_loss[i,s].
    let n_items = p.num_items_in_batch.unwrap_or_else(|| m.sum());
    let spg = p.steps_per_generation.unwrap_or(ga);
    let w_of = |i: usize, s: usize| -> f64 {
        let mk = mask_f(i, s);
        match lt {
            "grpo" | "sapo" => mk / (lens[i].max(1.0) * b as f64 * ga),
            "bnpo" => mk / (m.sum().max(1.0) * ga),
            "dr_grpo" => mk / (b as f64 * p.max_completion_length * ga),
            "luspo" => mk / (b as f64 * ga),
            _ => mk / (n_items.max(1.0) / p.num_processes * ga / spg),
        }
    };
    if lt == "dr_grpo" && p.max_completion_length <= 0.0 {
        return Err(invalid(
            "max_completion_length",
            p.max_completion_length,
            "must be > 0",
        ));
    }
    if matches!(lt, "dapo" | "cispo" | "vespo") && (p.num_processes <= 0.0 || spg <= 0.0) {
        return Err(invalid(
            "num_processes",
            p.num_processes,
            "num_processes and steps_per_generation must be > 0",
        ));
    }
    if p.beta != 0.0 && x.ref_log_prob.is_none() {
        return Err(CoreError::MissingInput {
            method: "trl.grpo_loss".into(),
            what: "ref_log_prob".into(),
        });
    }

    let mut loss = 0.0;
    let mut grad = Array2::<f64>::zeros((b, t));
    // Accumulates, per row, Σ_t W·mult·∂P/∂coef (+ β k ∂/∂coef) for sequence-level chain terms.
    let mut seq_chain = vec![0.0; b];
    let (mut kl_sum, mut low_n, mut high_n, mut reg_n) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..b {
        for s in 0..t {
            let a = adv(i, s);
            let c = coef(i, s);
            let lp = x.log_prob[[i, s]];
            // P and its derivatives: direct wrt ℓ[i,s] (dp_dl) and through coef (dp_dc).
            let (pv, dp_dl, dp_dc) = match lt {
                "cispo" => {
                    let cr = c.min(eps_high);
                    (-cr * a * lp, -cr * a, 0.0)
                }
                "sapo" => {
                    let tau = if a > 0.0 {
                        p.sapo_temperature_pos
                    } else {
                        p.sapo_temperature_neg
                    };
                    let sg = sigmoid(tau * (c - 1.0));
                    (-sg * 4.0 / tau * a, 0.0, -a * 4.0 * sg * (1.0 - sg))
                }
                "vespo" => {
                    let ph = phi(i, a);
                    (-ph * a * lp, -ph * a, 0.0)
                }
                _ => {
                    let (lo, hi) = (1.0 - eps_low, 1.0 + eps_high);
                    let c2 = c.clamp(lo, hi);
                    let dc2 = if c >= lo && c <= hi { 1.0 } else { 0.0 };
                    let (c1, dc1) = match p.delta {
                        Some(d) => (c.min(d), if c <= d { 1.0 } else { 0.0 }),
                        None => (c, 1.0),
                    };
                    let (v1, v2) = (c1 * a, c2 * a);
                    let (d1, d2) = (dc1 * a, dc2 * a);
                    let (mn, dmn) = if v1 < v2 {
                        (v1, d1)
                    } else if v1 > v2 {
                        (v2, d2)
                    } else {
                        (v1, 0.5 * (d1 + d2))
                    };
                    (-mn, 0.0, -dmn)
                }
            };
            let mut mult = opm_keep(i, s) * ent_mask[[i, s]];
            if let (true, Some(isr)) = (lt != "vespo", &x.importance_sampling_ratio) {
                mult *= isr[[i, s]];
            }
            let w = w_of(i, s);
            let mut pl = pv * mult;
            let mut dl_direct = dp_dl * mult;
            let mut dl_coef = dp_dc * mult;
            if p.beta != 0.0 {
                let r = x.ref_log_prob.as_ref().map_or(0.0, |r| r[[i, s]]);
                let d = r - lp;
                let k = d.exp() - d - 1.0;
                let dk = 1.0 - d.exp();
                let (kv, dkl, dkc) = if p.use_bias_correction_kl {
                    (k * c, dk * c, k)
                } else {
                    (k, dk, 0.0)
                };
                kl_sum += kv * m[[i, s]];
                pl += p.beta * kv;
                dl_direct += p.beta * dkl;
                dl_coef += p.beta * dkc;
            }
            loss += w * pl;
            if seq_level {
                grad[[i, s]] += w * dl_direct;
                seq_chain[i] += w * dl_coef;
            } else {
                grad[[i, s]] += w * (dl_direct + dl_coef * c);
            }
            if matches!(lt, "grpo" | "bnpo" | "dr_grpo" | "dapo" | "luspo") && m[[i, s]] > 0.0 {
                let lowc = c < 1.0 - eps_low && a < 0.0;
                let highc = c > 1.0 + eps_high && a > 0.0;
                low_n += f64::from(u8::from(lowc));
                high_n += f64::from(u8::from(highc));
                reg_n += f64::from(u8::from(lowc || highc));
            }
        }
    }
    if seq_level {
        for i in 0..b {
            let f = seq_chain[i] * coef_row[i] / lens[i].max(1.0);
            for s in 0..t {
                grad[[i, s]] += f * m[[i, s]];
            }
        }
    }
    let policy_loss = if matches!(lt, "dapo" | "cispo" | "vespo") {
        loss
    } else {
        loss * ga
    };
    let mut grad_entropy = Array2::<f64>::zeros((b, t));
    if p.entropy_coef != 0.0 {
        let h = x.entropy.ok_or_else(|| CoreError::MissingInput {
            method: "trl.grpo_loss".into(),
            what: "entropy".into(),
        })?;
        let eff = m * &ent_mask;
        let den = eff.sum().max(1.0) * ga;
        let ent_loss = (&eff * &h).sum() / den;
        loss -= p.entropy_coef * ent_loss;
        grad_entropy = eff.mapv(|e| -p.entropy_coef * e / den);
    }
    // Metrics: token means over the mask (sequence level: means over rows).
    let (ntok, nrow) = (m.sum().max(1.0), b as f64);
    let clip_den = if seq_level && adv_cols == 1 {
        nrow
    } else {
        ntok
    };
    let (low_mean, high_mean, reg_mean) = if seq_level && adv_cols == 1 {
        // one value per sequence
        let (mut l, mut h, mut r) = (0.0, 0.0, 0.0);
        for i in 0..b {
            let a = adv(i, 0);
            let c = coef_row[i];
            let lowc = c < 1.0 - eps_low && a < 0.0;
            let highc = c > 1.0 + eps_high && a > 0.0;
            l += f64::from(u8::from(lowc));
            h += f64::from(u8::from(highc));
            r += f64::from(u8::from(lowc || highc));
        }
        (l / clip_den, h / clip_den, r / clip_den)
    } else {
        (low_n / clip_den, high_n / clip_den, reg_n / clip_den)
    };
    let clip_family = matches!(lt, "grpo" | "bnpo" | "dr_grpo" | "dapo" | "luspo");
    // TRL's global_masked_mean: per-row values when the tensor is [B,1], else masked tokens.
    let masked_mean = |row_level: bool, f: &dyn Fn(usize, usize) -> f64| -> f64 {
        if row_level {
            (0..b).map(|i| f(i, 0)).sum::<f64>() / nrow.max(1.0)
        } else {
            let mut acc = 0.0;
            for i in 0..b {
                for s in 0..t {
                    acc += f(i, s) * m[[i, s]];
                }
            }
            acc / ntok
        }
    };
    let cispo_clip_ratio = (lt == "cispo").then(|| {
        masked_mean(seq_level && adv_cols == 1, &|i, s| {
            f64::from(u8::from(coef(i, s) > eps_high && adv(i, s) > 0.0))
        })
    });
    let vespo_phi_seq_mean =
        (lt == "vespo").then(|| masked_mean(adv_cols == 1, &|i, s| phi(i, adv(i, s))));
    Ok(GrpoLossOutput {
        loss,
        policy_loss,
        grad_log_prob: grad,
        grad_entropy,
        kl: (p.beta != 0.0).then(|| kl_sum / ntok),
        clip_ratio_low_mean: clip_family.then_some(low_mean),
        clip_ratio_high_mean: clip_family.then_some(high_mean),
        clip_ratio_region_mean: clip_family.then_some(reg_mean),
        cispo_clip_ratio,
        vespo_phi_seq_mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn default_matches_serde_defaults() {
        let from_json: GrpoLossParams = serde_json::from_str("{}").unwrap();
        let d = GrpoLossParams::default();
        assert_eq!(format!("{from_json:?}"), format!("{d:?}"));
    }

    #[test]
    fn quantile_interpolates_linearly() {
        assert_eq!(quantile(&[0.0, 1.0, 2.0, 3.0], 0.5), 1.5);
        assert_eq!(quantile(&[5.0], 0.3), 5.0);
    }

    #[test]
    fn on_policy_dapo_gradient_is_minus_advantage_over_tokens() {
        let lp = array![[-1.0, -2.0], [-0.5, -0.7]];
        let m = array![[1.0, 1.0], [1.0, 0.0]];
        let a = array![[1.0], [-2.0]];
        let x = GrpoLossInputs {
            log_prob: lp.view(),
            old_log_prob: None,
            ref_log_prob: None,
            advantages: a.view(),
            response_mask: m.view(),
            entropy: None,
            importance_sampling_ratio: None,
            sampling_per_token_logps: None,
        };
        let out = grpo_loss(&x, &GrpoLossParams::default()).unwrap();
        assert!((out.loss - (-(1.0 + 1.0 - 2.0) / 3.0)).abs() < 1e-12);
        assert!((out.grad_log_prob[[1, 0]] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(out.grad_log_prob[[1, 1]], 0.0);
    }
}
