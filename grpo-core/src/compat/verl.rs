//! verl `core_algos` functions (volcengine/verl @ b178a3cd), computed exactly as
//! verl computes them, plus the analytic gradient of every loss with respect
//! to `log_prob` (`grad_log_prob`).
//!
//! Gradients follow torch autograd conventions at ties: `torch.maximum` /
//! `torch.minimum` split the incoming gradient in half when both arguments are
//! equal, and `torch.clamp` passes the gradient on the closed interval
//! `[min, max]`. Padding positions always get gradient 0.
//!
//! Parameter names are verl's own (function arguments, or the `ActorConfig` /
//! `AlgoConfig` fields the function reads). See the module docs of
//! [`crate::compat`] for the quirks reproduced here.

use ndarray::{Array2, ArrayView2};
use serde::Deserialize;

use super::{
    Groups, broadcast, check_finite, check_mask, check_shape, check_tokens, row_sums,
    verl_masked_mean,
};
use crate::error::{CoreError, Result};

/// Output of an outcome advantage estimator: `(advantages, returns)` as verl returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvantageOutput {
    /// `advantages` `[B,T]`.
    pub advantages: Array2<f64>,
    /// `returns` `[B,T]`.
    pub returns: Array2<f64>,
}

/// Output of a verl policy loss: the scalar, the metrics verl reports, and the gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyLossOutput {
    /// `pg_loss`.
    pub pg_loss: f64,
    /// `actor/pg_clipfrac` (absent where verl reports none).
    pub pg_clipfrac: Option<f64>,
    /// `actor/ppo_kl` (absent where verl reports none).
    pub ppo_kl: Option<f64>,
    /// `actor/pg_clipfrac_lower` (absent where verl reports none).
    pub pg_clipfrac_lower: Option<f64>,
    /// `d pg_loss / d log_prob` `[B,T]`.
    pub grad_log_prob: Array2<f64>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_true() -> bool {
    true
}
fn default_one() -> f64 {
    1.0
}

/// Parameters of the GRPO-family estimators (`epsilon`, `norm_adv_by_std_in_grpo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoParams {
    /// Added to the group std (default 1e-6).
    #[serde(default = "default_eps")]
    pub epsilon: f64,
    /// Divide by the group std (default true).
    #[serde(default = "default_true")]
    pub norm_adv_by_std_in_grpo: bool,
}

impl Default for GrpoParams {
    fn default() -> Self {
        Self {
            epsilon: 1e-6,
            norm_adv_by_std_in_grpo: true,
        }
    }
}

/// Parameters of estimators whose only (unused) argument is `epsilon`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpsilonParams {
    /// Accepted for signature parity; verl does not use it in these estimators.
    #[serde(default = "default_eps")]
    pub epsilon: f64,
}

/// REINFORCE++ parameters (`AlgoConfig.gamma`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GammaParams {
    /// Discount (default 1.0).
    #[serde(default = "default_one")]
    pub gamma: f64,
}

/// GPG advantage parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpgParams {
    /// Accepted, unused by verl.
    #[serde(default = "default_eps")]
    pub epsilon: f64,
    /// Divisor (default 1.0).
    #[serde(default = "default_one")]
    pub f_norm: f64,
    /// Accepted, but overwritten by verl with `B / max(#nonzero, 1)`.
    #[serde(default = "default_one")]
    pub alpha: f64,
}

/// The `ActorConfig` fields and `agg_loss` global-batch arguments read by verl's policy losses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorParams {
    /// `loss_agg_mode`; `None` ⇒ the function's default.
    #[serde(default)]
    pub loss_agg_mode: Option<String>,
    /// `clip_ratio` (default 0.2).
    #[serde(default = "default_clip")]
    pub clip_ratio: f64,
    /// `clip_ratio_low` (default: `clip_ratio`).
    #[serde(default)]
    pub clip_ratio_low: Option<f64>,
    /// `clip_ratio_high` (default: `clip_ratio`).
    #[serde(default)]
    pub clip_ratio_high: Option<f64>,
    /// Dual-clip constant (default 3.0, must be > 1).
    #[serde(default = "default_c")]
    pub clip_ratio_c: f64,
    /// SAPO temperature for A > 0 (default 1.0).
    #[serde(default = "default_one")]
    pub tau_pos: f64,
    /// SAPO temperature for A ≤ 0 (default 1.05).
    #[serde(default = "default_tau_neg")]
    pub tau_neg: f64,
    /// KL-Cov selected fraction (`policy_loss.kl_cov_ratio`, fallback 0.0002).
    #[serde(default)]
    pub kl_cov_ratio: Option<f64>,
    /// KL-Cov coefficient (`policy_loss.ppo_kl_coef`, code fallback 1.0).
    #[serde(default)]
    pub ppo_kl_coef: Option<f64>,
    /// `global_batch_info.dp_size` (default 1).
    #[serde(default = "default_one")]
    pub dp_size: f64,
    /// `global_batch_info.batch_num_tokens`.
    #[serde(default)]
    pub batch_num_tokens: Option<f64>,
    /// `global_batch_info.global_batch_size`.
    #[serde(default)]
    pub global_batch_size: Option<f64>,
    /// `global_batch_info.loss_scale_factor`.
    #[serde(default)]
    pub loss_scale_factor: Option<f64>,
}

fn default_clip() -> f64 {
    0.2
}
fn default_c() -> f64 {
    3.0
}
fn default_tau_neg() -> f64 {
    1.05
}

impl Default for ActorParams {
    fn default() -> Self {
        Self {
            loss_agg_mode: None,
            clip_ratio: 0.2,
            clip_ratio_low: None,
            clip_ratio_high: None,
            clip_ratio_c: 3.0,
            tau_pos: 1.0,
            tau_neg: 1.05,
            kl_cov_ratio: None,
            ppo_kl_coef: None,
            dp_size: 1.0,
            batch_num_tokens: None,
            global_batch_size: None,
            loss_scale_factor: None,
        }
    }
}

impl ActorParams {
    fn low(&self) -> f64 {
        self.clip_ratio_low.unwrap_or(self.clip_ratio)
    }
    fn high(&self) -> f64 {
        self.clip_ratio_high.unwrap_or(self.clip_ratio)
    }
    fn agg(&self, mode: &str) -> AggParams {
        AggParams {
            loss_agg_mode: mode.to_string(),
            dp_size: self.dp_size,
            batch_num_tokens: self.batch_num_tokens,
            global_batch_size: self.global_batch_size,
            loss_scale_factor: self.loss_scale_factor,
        }
    }
}

/// `agg_loss` arguments besides the two matrices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggParams {
    /// `token-mean`, `seq-mean-token-sum`, `seq-mean-token-mean` or `seq-mean-token-sum-norm` (required).
    pub loss_agg_mode: String,
    /// Data-parallel size (default 1).
    #[serde(default = "default_one")]
    pub dp_size: f64,
    /// Tokens in the global batch (`token-mean`; default: `Σ mask`).
    #[serde(default)]
    pub batch_num_tokens: Option<f64>,
    /// Sequences in the global batch (seq modes; default: non-empty rows).
    #[serde(default)]
    pub global_batch_size: Option<f64>,
    /// Normaliser of `seq-mean-token-sum-norm` (default: the padded width `T`).
    #[serde(default)]
    pub loss_scale_factor: Option<f64>,
}

/// `kl_penalty` argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlPenaltyParams {
    /// `kl`/`k1`, `abs`, `mse`/`k2`, `low_var_kl`/`k3`, optionally with a `+` suffix.
    pub kl_penalty: String,
}

/// `masked_whiten` argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitenParams {
    /// Keep the output zero-mean (default true); false re-adds the mean.
    #[serde(default = "default_true")]
    pub shift_mean: bool,
}

/// `AdaptiveKLController(init_kl_coef, target_kl, horizon)` (defaults from verl's `kl_ctrl` config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveKlParams {
    /// Initial coefficient (default 0.001).
    #[serde(default = "default_kl_coef")]
    pub init_kl_coef: f64,
    /// Target KL (default 0.1).
    #[serde(default = "default_target_kl")]
    pub target_kl: f64,
    /// Horizon (default 10000, must be > 0).
    #[serde(default = "default_horizon")]
    pub horizon: f64,
}

fn default_kl_coef() -> f64 {
    0.001
}
fn default_target_kl() -> f64 {
    0.1
}
fn default_horizon() -> f64 {
    10000.0
}

fn invalid(name: &str, value: impl ToString, reason: &str) -> CoreError {
    CoreError::InvalidParam {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Common validation of `(token_level_rewards, response_mask)`; returns `(B, T)`.
fn check_rewards(r: &ArrayView2<'_, f64>, m: &ArrayView2<'_, f64>) -> Result<(usize, usize)> {
    check_mask("response_mask", m)?;
    let (b, t) = m.dim();
    check_shape("token_level_rewards", r, b, t)?;
    for ((row, _), &value) in r.indexed_iter() {
        if !value.is_finite() {
            return Err(CoreError::NonFiniteReward {
                row,
                component: "token_level_rewards".into(),
                value,
            });
        }
    }
    if b == 0 {
        return Err(CoreError::Empty {
            what: "token_level_rewards".into(),
        });
    }
    Ok((b, t))
}

fn same(a: Array2<f64>) -> AdvantageOutput {
    AdvantageOutput {
        returns: a.clone(),
        advantages: a,
    }
}

/// Mean of a group (torch.mean).
fn mean_of(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Unbiased std (torch.std); NaN for one element as in torch.
fn std_of(v: &[f64]) -> f64 {
    let mu = mean_of(v);
    let ss: f64 = v.iter().map(|x| (x - mu) * (x - mu)).sum();
    (ss / (v.len() as f64 - 1.0)).sqrt()
}

/// verl `compute_grpo_outcome_advantage` (loop version).
///
/// Singleton group ⇒ `μ = 0, σ = 1`, so `A = R/(1+ε)` (not 0).
pub fn compute_grpo_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    p: &GrpoParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let mut stats = Vec::with_capacity(g.members.len());
    for mem in &g.members {
        let v: Vec<f64> = mem.iter().map(|&i| scores[i]).collect();
        stats.push(if v.len() == 1 {
            (0.0, 1.0)
        } else {
            (mean_of(&v), std_of(&v))
        });
    }
    let s: Vec<f64> = (0..b)
        .map(|i| {
            let (mu, sd) = stats[g.of_row[i]];
            if p.norm_adv_by_std_in_grpo {
                (scores[i] - mu) / (sd + p.epsilon)
            } else {
                scores[i] - mu
            }
        })
        .collect();
    Ok(same(broadcast(&s, &response_mask)))
}

/// verl `compute_grpo_vectorized_outcome_advantage`.
///
/// Group statistics are computed in `f32` exactly like verl's `group_mean_std`:
/// `σ = sqrt(max((Σx² − (Σx)²/n)/max(n−1,1), ε))`, singleton ⇒ `μ=0, σ=1`; then
/// `A = (R − μ)/(σ + ε)` with `σ + ε` rounded to `f32`.
pub fn compute_grpo_vectorized_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    p: &GrpoParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let ng = g.members.len();
    let (mut cnt, mut s1, mut s2) = (vec![0f32; ng], vec![0f32; ng], vec![0f32; ng]);
    for i in 0..b {
        let x = scores[i] as f32;
        let k = g.of_row[i];
        cnt[k] += 1.0;
        s1[k] += x;
        s2[k] += x * x;
    }
    let eps32 = p.epsilon as f32;
    let stats: Vec<(f32, f32)> = (0..ng)
        .map(|k| {
            if cnt[k] <= 1.0 {
                return (0.0, 1.0);
            }
            let mean = s1[k] / cnt[k].max(1.0);
            let var_num = s2[k] - (s1[k] * s1[k]) / cnt[k].max(1.0);
            let var = var_num / (cnt[k] - 1.0).max(1.0);
            (mean, var.max(eps32).sqrt())
        })
        .collect();
    let s: Vec<f64> = (0..b)
        .map(|i| {
            let (mu, sd) = stats[g.of_row[i]];
            if p.norm_adv_by_std_in_grpo {
                (scores[i] - mu as f64) / (sd + eps32) as f64
            } else {
                scores[i] - mu as f64
            }
        })
        .collect();
    Ok(same(broadcast(&s, &response_mask)))
}

/// verl `compute_grpo_passk_outcome_advantage`: per group only the best row gets
/// `r(1) − r(2)` (divided by `std + ε` when `norm_adv_by_std_in_grpo`). Groups of
/// size 1 are an error (verl raises). Ties for the maximum pick the first row.
pub fn compute_grpo_passk_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    p: &GrpoParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let mut adv = vec![0.0; b];
    for (k, mem) in g.members.iter().enumerate() {
        if mem.len() < 2 {
            return Err(CoreError::GroupTooSmall {
                group: k,
                size: mem.len(),
                min: 2,
                method: "verl.compute_grpo_passk_outcome_advantage".into(),
            });
        }
        let v: Vec<f64> = mem.iter().map(|&i| scores[i]).collect();
        let mut best = 0;
        for j in 1..v.len() {
            if v[j] > v[best] {
                best = j;
            }
        }
        let second = v
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != best)
            .map(|(_, &x)| x)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut a = v[best] - second;
        if p.norm_adv_by_std_in_grpo {
            a /= std_of(&v) + p.epsilon;
        }
        adv[mem[best]] = a;
    }
    Ok(same(broadcast(&adv, &response_mask)))
}

/// Group means with verl's singleton convention (`μ = 0`).
fn group_means(scores: &[f64], g: &Groups) -> Vec<f64> {
    g.members
        .iter()
        .map(|mem| {
            if mem.len() == 1 {
                0.0
            } else {
                mean_of(&mem.iter().map(|&i| scores[i]).collect::<Vec<_>>())
            }
        })
        .collect()
}

/// verl `compute_rloo_outcome_advantage` (loop version): `A = R·n/(n−1) − μ·n/(n−1)`;
/// a singleton row keeps its score `R`.
pub fn compute_rloo_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    _p: &EpsilonParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let mu = group_means(&scores, &g);
    let s: Vec<f64> = (0..b)
        .map(|i| {
            let n = g.members[g.of_row[i]].len() as f64;
            if n > 1.0 {
                scores[i] * n / (n - 1.0) - mu[g.of_row[i]] * n / (n - 1.0)
            } else {
                scores[i]
            }
        })
        .collect();
    Ok(same(broadcast(&s, &response_mask)))
}

/// verl `compute_rloo_vectorized_outcome_advantage`: `(n·R − Σ_g R)/max(n−1,1)·[n>1]`;
/// a singleton row gets 0.
pub fn compute_rloo_vectorized_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    _p: &EpsilonParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let sums: Vec<f64> = g
        .members
        .iter()
        .map(|mem| mem.iter().map(|&i| scores[i]).sum())
        .collect();
    let s: Vec<f64> = (0..b)
        .map(|i| {
            let k = g.of_row[i];
            let c = g.members[k].len() as f64;
            if c > 1.0 {
                (c * scores[i] - sums[k]) / (c - 1.0).max(1.0)
            } else {
                0.0
            }
        })
        .collect();
    Ok(same(broadcast(&s, &response_mask)))
}

/// verl `masked_whiten(values, mask, shift_mean)`: `(x − μ)·(var + 1e-8)^{−1/2}` with
/// `μ = Σ m x/(Σm + 1e-8)` and the unbiased masked variance. Applies to every
/// position (padding included). `Σ m ≤ 1` is an error, as in verl.
pub fn masked_whiten(
    values: ArrayView2<'_, f64>,
    mask: ArrayView2<'_, f64>,
    p: &WhitenParams,
) -> Result<Array2<f64>> {
    check_mask("mask", &mask)?;
    check_tokens("values", &values, &mask)?;
    let n: f64 = mask.iter().sum();
    if n <= 1.0 {
        return Err(CoreError::InvalidParam {
            name: "mask".into(),
            value: format!("sum {n}"),
            reason: "masked_var needs at least two valid tokens (verl raises ValueError)".into(),
        });
    }
    let mean = verl_masked_mean(&values, &mask);
    let centred = values.mapv(|x| (x - mean) * (x - mean));
    let var = verl_masked_mean(&centred.view(), &mask) * (n / (n - 1.0));
    let scale = 1.0 / (var + 1e-8).sqrt();
    let mut out = values.mapv(|x| (x - mean) * scale);
    if !p.shift_mean {
        out.mapv_inplace(|x| x + mean);
    }
    Ok(out)
}

/// verl `compute_reinforce_plus_plus_outcome_advantage`: discounted returns with a
/// reset after each masked position, then batch masked whitening times the mask.
pub fn compute_reinforce_plus_plus_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    p: &GammaParams,
) -> Result<AdvantageOutput> {
    let (b, t) = check_rewards(&token_level_rewards, &response_mask)?;
    let mut returns = Array2::<f64>::zeros((b, t));
    for i in 0..b {
        let mut run = 0.0;
        for s in (0..t).rev() {
            run = token_level_rewards[[i, s]] + p.gamma * run;
            returns[[i, s]] = run;
            run *= response_mask[[i, s]];
        }
    }
    let mut adv = masked_whiten(
        returns.view(),
        response_mask,
        &WhitenParams { shift_mean: true },
    )?;
    adv *= &response_mask;
    Ok(AdvantageOutput {
        advantages: adv,
        returns,
    })
}

/// verl `compute_reinforce_plus_plus_baseline_outcome_advantage`: group-mean-centred
/// score (singleton μ = 0) tiled over tokens, masked, whitened over the batch, masked.
pub fn compute_reinforce_plus_plus_baseline_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    _p: &EpsilonParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let mu = group_means(&scores, &g);
    let s: Vec<f64> = (0..b).map(|i| scores[i] - mu[g.of_row[i]]).collect();
    let tiled = broadcast(&s, &response_mask);
    let mut adv = masked_whiten(
        tiled.view(),
        response_mask,
        &WhitenParams { shift_mean: true },
    )?;
    adv *= &response_mask;
    Ok(same(adv))
}

/// verl `compute_remax_outcome_advantage`: `returns` = reverse cumulative sum of
/// `r·m`; `advantages = returns − reward_baselines·m`.
pub fn compute_remax_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    reward_baselines: &[f64],
    response_mask: ArrayView2<'_, f64>,
) -> Result<AdvantageOutput> {
    let (b, t) = check_rewards(&token_level_rewards, &response_mask)?;
    if reward_baselines.len() != b {
        return Err(CoreError::ShapeMismatch {
            what: "reward_baselines".into(),
            expected: vec![b],
            got: vec![reward_baselines.len()],
        });
    }
    if let Some((row, &value)) = reward_baselines
        .iter()
        .enumerate()
        .find(|(_, x)| !x.is_finite())
    {
        return Err(CoreError::NonFiniteReward {
            row,
            component: "reward_baselines".into(),
            value,
        });
    }
    let mut returns = Array2::<f64>::zeros((b, t));
    for i in 0..b {
        let mut run = 0.0;
        for s in (0..t).rev() {
            run += token_level_rewards[[i, s]] * response_mask[[i, s]];
            returns[[i, s]] = run;
        }
    }
    let mut adv = returns.clone();
    for ((i, s), a) in adv.indexed_iter_mut() {
        *a -= reward_baselines[i] * response_mask[[i, s]];
    }
    Ok(AdvantageOutput {
        advantages: adv,
        returns,
    })
}

/// verl `compute_opo_outcome_advantage`: baseline `Σ L R / Σ L` per group
/// (singleton ⇒ 0). A group whose rows are all empty (0/0 in verl) is an error.
pub fn compute_opo_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    _p: &EpsilonParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let lens = row_sums(&response_mask);
    let mut bsl = Vec::with_capacity(g.members.len());
    for (k, mem) in g.members.iter().enumerate() {
        if mem.len() == 1 {
            bsl.push(0.0);
            continue;
        }
        let lsum: f64 = mem.iter().map(|&i| lens[i]).sum();
        if lsum == 0.0 {
            return Err(CoreError::InvalidGroupIndex {
                reason: format!("group {k}: every response is empty, OPO baseline is 0/0"),
            });
        }
        bsl.push(mem.iter().map(|&i| lens[i] * scores[i]).sum::<f64>() / lsum);
    }
    let s: Vec<f64> = (0..b).map(|i| scores[i] - bsl[g.of_row[i]]).collect();
    Ok(same(broadcast(&s, &response_mask)))
}

/// verl `compute_gpg_outcome_advantage`: `α = B/max(#{R ≠ 0}, 1)` over the whole
/// batch (the `alpha` argument is ignored, as in verl), `A = α(R − μ)/f_norm`.
pub fn compute_gpg_outcome_advantage(
    token_level_rewards: ArrayView2<'_, f64>,
    response_mask: ArrayView2<'_, f64>,
    index: &[String],
    p: &GpgParams,
) -> Result<AdvantageOutput> {
    let (b, _) = check_rewards(&token_level_rewards, &response_mask)?;
    let g = Groups::new(index, b)?;
    let scores = row_sums(&token_level_rewards);
    let nz = scores.iter().filter(|&&x| x != 0.0).count().max(1);
    let alpha = b as f64 / nz as f64;
    let mu = group_means(&scores, &g);
    let s: Vec<f64> = (0..b)
        .map(|i| alpha * (scores[i] - mu[g.of_row[i]]) / p.f_norm)
        .collect();
    Ok(same(broadcast(&s, &response_mask)))
}

// ---------------------------------------------------------------- agg_loss

/// verl `agg_loss`: returns the loss and `d loss / d loss_mat` (`grad_loss_mat`).
///
/// A denominator of 0 (all-masked batch in `token-mean`/seq modes) would be
/// NaN in verl; it is an error here.
pub fn agg_loss(
    loss_mat: ArrayView2<'_, f64>,
    loss_mask: ArrayView2<'_, f64>,
    p: &AggParams,
) -> Result<(f64, Array2<f64>)> {
    check_mask("loss_mask", &loss_mask)?;
    check_tokens("loss_mat", &loss_mat, &loss_mask)?;
    let w = agg_weights(&loss_mask, p)?;
    let loss = (&w * &loss_mat).sum();
    Ok((loss, w))
}

/// The weights `∂ loss / ∂ loss_mat[i,t]` of verl's `agg_loss`.
pub(crate) fn agg_weights(m: &ArrayView2<'_, f64>, p: &AggParams) -> Result<Array2<f64>> {
    let (_, t) = m.dim();
    let lens = row_sums(m);
    let nonempty = lens.iter().filter(|&&l| l > 0.0).count() as f64;
    let zero_den = |what: &str| CoreError::InvalidParam {
        name: what.to_string(),
        value: "0".into(),
        reason: "the aggregation denominator is 0 (verl would return NaN)".into(),
    };
    let mut w = m.to_owned();
    match p.loss_agg_mode.as_str() {
        "token-mean" => {
            let n = p.batch_num_tokens.unwrap_or_else(|| m.sum());
            if n == 0.0 {
                return Err(zero_den("batch_num_tokens"));
            }
            w.mapv_inplace(|k| k / n * p.dp_size);
        }
        "seq-mean-token-sum" | "seq-mean-token-mean" => {
            let gbs = p.global_batch_size.unwrap_or(nonempty);
            if gbs == 0.0 {
                return Err(zero_den("global_batch_size"));
            }
            let token_mean = p.loss_agg_mode == "seq-mean-token-mean";
            for (i, mut row) in w.rows_mut().into_iter().enumerate() {
                let seq = if lens[i] > 0.0 { 1.0 } else { 0.0 };
                let per = if token_mean {
                    1.0 / (lens[i] + 1e-8)
                } else {
                    1.0
                };
                row.mapv_inplace(|k| k * per * seq / gbs * p.dp_size);
            }
        }
        "seq-mean-token-sum-norm" => {
            let c = p.loss_scale_factor.unwrap_or(t as f64);
            if c == 0.0 {
                return Err(zero_den("loss_scale_factor"));
            }
            w.mapv_inplace(|k| k / c);
        }
        other => return Err(invalid("loss_agg_mode", other, "invalid loss_agg_mode")),
    }
    Ok(w)
}

// ---------------------------------------------------------------- policy losses

/// The common inputs of verl's policy losses.
#[derive(Debug, Clone, Copy)]
pub struct LossInputs<'a> {
    /// `old_log_prob` `[B,T]` (for `compute_policy_loss_reinforce`: `rollout_log_prob`).
    pub old_log_prob: ArrayView2<'a, f64>,
    /// `log_prob` `[B,T]` (the differentiated input).
    pub log_prob: ArrayView2<'a, f64>,
    /// `advantages` `[B,T]`.
    pub advantages: ArrayView2<'a, f64>,
    /// `response_mask` `[B,T]`.
    pub response_mask: ArrayView2<'a, f64>,
    /// Optional detached `rollout_is_weights` `[B,T]`.
    pub rollout_is_weights: Option<ArrayView2<'a, f64>>,
}

impl LossInputs<'_> {
    fn check(&self, old_name: &str) -> Result<()> {
        check_mask("response_mask", &self.response_mask)?;
        check_tokens(old_name, &self.old_log_prob, &self.response_mask)?;
        check_tokens("log_prob", &self.log_prob, &self.response_mask)?;
        check_tokens("advantages", &self.advantages, &self.response_mask)?;
        if let Some(w) = &self.rollout_is_weights {
            check_tokens("rollout_is_weights", w, &self.response_mask)?;
        }
        Ok(())
    }
    fn isw(&self, i: usize, t: usize) -> f64 {
        self.rollout_is_weights.map_or(1.0, |w| w[[i, t]])
    }
}

/// d clamp(x, lo, hi)/dx in torch (gradient passes on the closed interval).
fn dclamp(x: f64, lo: f64, hi: f64) -> f64 {
    if x >= lo && x <= hi { 1.0 } else { 0.0 }
}

/// torch.maximum(a, b) value and derivative given da, db (ties split in half).
fn tmax(a: f64, da: f64, b: f64, db: f64) -> (f64, f64) {
    if a > b {
        (a, da)
    } else if a < b {
        (b, db)
    } else {
        (a, 0.5 * (da + db))
    }
}

/// torch.minimum(a, b) value and derivative (ties split in half).
fn tmin(a: f64, da: f64, b: f64, db: f64) -> (f64, f64) {
    if a < b {
        (a, da)
    } else if a > b {
        (b, db)
    } else {
        (a, 0.5 * (da + db))
    }
}

/// Aggregates a per-token loss `lam` with local gradient `dlam` through `agg_loss`.
fn finish(
    lam: &Array2<f64>,
    dlam: &Array2<f64>,
    m: &ArrayView2<'_, f64>,
    agg: &AggParams,
) -> Result<(f64, Array2<f64>)> {
    let w = agg_weights(m, agg)?;
    let loss = (&w * lam).sum();
    Ok((loss, &w * dlam))
}

fn check_clip(p: &ActorParams) -> Result<()> {
    if p.clip_ratio_c <= 1.0 {
        return Err(invalid(
            "clip_ratio_c",
            p.clip_ratio_c,
            "must be > 1 (verl asserts)",
        ));
    }
    Ok(())
}

/// verl `compute_policy_loss_vanilla`: PPO-clip with asymmetric ε, dual-clip `c`
/// for `A < 0`, log-ratio clamped to ±20, default `token-mean`.
pub fn compute_policy_loss_vanilla(
    x: &LossInputs<'_>,
    p: &ActorParams,
) -> Result<PolicyLossOutput> {
    x.check("old_log_prob")?;
    check_clip(p)?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let (lo, hi) = (1.0 - p.low(), 1.0 + p.high());
    let c = p.clip_ratio_c;
    let mut lam = Array2::zeros((b, t));
    let mut dlam = Array2::zeros((b, t));
    let mut negkl = Array2::zeros((b, t));
    let mut clipped = Array2::zeros((b, t));
    let mut lower = Array2::zeros((b, t));
    for i in 0..b {
        for s in 0..t {
            let a = x.advantages[[i, s]];
            let raw = x.log_prob[[i, s]] - x.old_log_prob[[i, s]];
            let xc = raw.clamp(-20.0, 20.0);
            let dxc = dclamp(raw, -20.0, 20.0);
            negkl[[i, s]] = -xc;
            let r = xc.exp();
            let dr = r * dxc;
            let (l1, d1) = (-a * r, -a * dr);
            let rc = r.clamp(lo, hi);
            let (l2, d2) = (-a * rc, -a * dr * dclamp(r, lo, hi));
            clipped[[i, s]] = f64::from(u8::from(l2 > l1));
            let (cl1, dcl1) = tmax(l1, d1, l2, d2);
            let l3 = -a * c;
            let (cl2, dcl2) = tmin(l3, 0.0, cl1, dcl1);
            lower[[i, s]] = f64::from(u8::from(cl1 > l3 && a < 0.0));
            let (v, d) = if a < 0.0 { (cl2, dcl2) } else { (cl1, dcl1) };
            let w = x.isw(i, s);
            lam[[i, s]] = v * w;
            dlam[[i, s]] = d * w;
        }
    }
    let mode = p.loss_agg_mode.as_deref().unwrap_or("token-mean");
    let (pg_loss, grad) = finish(&lam, &dlam, m, &p.agg(mode))?;
    Ok(PolicyLossOutput {
        pg_loss,
        pg_clipfrac: Some(verl_masked_mean(&clipped.view(), m)),
        ppo_kl: Some(verl_masked_mean(&negkl.view(), m)),
        pg_clipfrac_lower: Some(verl_masked_mean(&lower.view(), m)),
        grad_log_prob: grad,
    })
}

/// verl `compute_policy_loss_gspo`: sequence ratio `s_i = exp(mean_t m x)` (no ±20
/// clamp; combined log-ratio clamped at +10), PPO clip on `s`, always
/// `seq-mean-token-mean` (`loss_agg_mode` is ignored).
pub fn compute_policy_loss_gspo(x: &LossInputs<'_>, p: &ActorParams) -> Result<PolicyLossOutput> {
    x.check("old_log_prob")?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let (lo, hi) = (1.0 - p.low(), 1.0 + p.high());
    let mut lam = Array2::zeros((b, t));
    let mut dlam = Array2::zeros((b, t));
    let mut clipped = Array2::zeros((b, t));
    let negkl = &x.old_log_prob - &x.log_prob;
    for i in 0..b {
        let len = m.row(i).sum().max(1.0);
        let seq: f64 = (0..t)
            .map(|s| (x.log_prob[[i, s]] - x.old_log_prob[[i, s]]) * m[[i, s]])
            .sum::<f64>()
            / len;
        let ls = seq.min(10.0);
        let dls = if seq <= 10.0 { 1.0 } else { 0.0 };
        let sr = ls.exp();
        let dsr = sr * dls;
        for s in 0..t {
            let a = x.advantages[[i, s]];
            let (l1, d1) = (-a * sr, -a * dsr);
            let (l2, d2) = (-a * sr.clamp(lo, hi), -a * dsr * dclamp(sr, lo, hi));
            clipped[[i, s]] = f64::from(u8::from(l2 > l1));
            let (v, d) = tmax(l1, d1, l2, d2);
            let w = x.isw(i, s);
            lam[[i, s]] = v * w;
            dlam[[i, s]] = d * w;
        }
    }
    let (pg_loss, grad) = finish(&lam, &dlam, m, &p.agg("seq-mean-token-mean"))?;
    Ok(PolicyLossOutput {
        pg_loss,
        pg_clipfrac: Some(verl_masked_mean(&clipped.view(), m)),
        ppo_kl: Some(verl_masked_mean(&negkl.view(), m)),
        pg_clipfrac_lower: Some(0.0),
        grad_log_prob: grad,
    })
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// verl `compute_policy_loss_sapo`: `λ = −σ(τ(ρ−1))·4/τ·A`, `τ = tau_pos` if `A > 0`
/// else `tau_neg`; always `seq-mean-token-mean`.
pub fn compute_policy_loss_sapo(x: &LossInputs<'_>, p: &ActorParams) -> Result<PolicyLossOutput> {
    x.check("old_log_prob")?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let mut lam = Array2::zeros((b, t));
    let mut dlam = Array2::zeros((b, t));
    let mut negkl = Array2::zeros((b, t));
    for i in 0..b {
        for s in 0..t {
            let a = x.advantages[[i, s]];
            let raw = x.log_prob[[i, s]] - x.old_log_prob[[i, s]];
            let xc = raw.clamp(-20.0, 20.0);
            negkl[[i, s]] = -xc;
            let r = xc.exp();
            let dr = r * dclamp(raw, -20.0, 20.0);
            let tau = if a > 0.0 { p.tau_pos } else { p.tau_neg };
            let sg = sigmoid(tau * (r - 1.0));
            let gate = sg * (4.0 / tau);
            let w = x.isw(i, s);
            lam[[i, s]] = -gate * a * w;
            dlam[[i, s]] = -a * 4.0 * sg * (1.0 - sg) * dr * w;
        }
    }
    let (pg_loss, grad) = finish(&lam, &dlam, m, &p.agg("seq-mean-token-mean"))?;
    Ok(PolicyLossOutput {
        pg_loss,
        pg_clipfrac: Some(0.0),
        ppo_kl: Some(verl_masked_mean(&negkl.view(), m)),
        pg_clipfrac_lower: Some(0.0),
        grad_log_prob: grad,
    })
}

/// verl `compute_policy_loss_cispo`: `λ = −sg(clip(ρ, 1−ε_low, 1+ε_high))·A·ℓ`
/// (ρ from the ±20-clamped log-ratio).
pub fn compute_policy_loss_cispo(x: &LossInputs<'_>, p: &ActorParams) -> Result<PolicyLossOutput> {
    x.check("old_log_prob")?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let (lo, hi) = (1.0 - p.low(), 1.0 + p.high());
    let mut lam = Array2::zeros((b, t));
    let mut dlam = Array2::zeros((b, t));
    let mut negkl = Array2::zeros((b, t));
    let mut clipped = Array2::zeros((b, t));
    for i in 0..b {
        for s in 0..t {
            let a = x.advantages[[i, s]];
            let xc = (x.log_prob[[i, s]] - x.old_log_prob[[i, s]]).clamp(-20.0, 20.0);
            negkl[[i, s]] = -xc;
            let r = xc.exp();
            let rc = r.clamp(lo, hi);
            clipped[[i, s]] = f64::from(u8::from(r != rc));
            let w = x.isw(i, s);
            lam[[i, s]] = -rc * a * x.log_prob[[i, s]] * w;
            dlam[[i, s]] = -rc * a * w;
        }
    }
    let mode = p.loss_agg_mode.as_deref().unwrap_or("token-mean");
    let (pg_loss, grad) = finish(&lam, &dlam, m, &p.agg(mode))?;
    Ok(PolicyLossOutput {
        pg_loss,
        pg_clipfrac: Some(verl_masked_mean(&clipped.view(), m)),
        ppo_kl: Some(verl_masked_mean(&negkl.view(), m)),
        pg_clipfrac_lower: Some(0.0),
        grad_log_prob: grad,
    })
}

/// verl `compute_policy_loss_gpg`: `λ = −ℓ·A` (no metrics).
pub fn compute_policy_loss_gpg(x: &LossInputs<'_>, p: &ActorParams) -> Result<PolicyLossOutput> {
    x.check("old_log_prob")?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let mut lam = Array2::zeros((b, t));
    let mut dlam = Array2::zeros((b, t));
    for ((i, s), l) in lam.indexed_iter_mut() {
        let w = x.isw(i, s);
        *l = -x.log_prob[[i, s]] * x.advantages[[i, s]] * w;
        dlam[[i, s]] = -x.advantages[[i, s]] * w;
    }
    let mode = p.loss_agg_mode.as_deref().unwrap_or("token-mean");
    let (pg_loss, grad) = finish(&lam, &dlam, m, &p.agg(mode))?;
    Ok(PolicyLossOutput {
        pg_loss,
        pg_clipfrac: None,
        ppo_kl: None,
        pg_clipfrac_lower: None,
        grad_log_prob: grad,
    })
}

/// verl `compute_policy_loss_reinforce(rollout_log_prob, log_prob, ...)`: `λ = −A·ℓ·ϖ`,
/// default `seq-mean-token-sum`; `ppo_kl = masked_mean(rollout_log_prob − log_prob)`.
/// `x.old_log_prob` holds `rollout_log_prob`.
pub fn compute_policy_loss_reinforce(
    x: &LossInputs<'_>,
    p: &ActorParams,
) -> Result<PolicyLossOutput> {
    x.check("rollout_log_prob")?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let mut lam = Array2::zeros((b, t));
    let mut dlam = Array2::zeros((b, t));
    for ((i, s), l) in lam.indexed_iter_mut() {
        let w = x.isw(i, s);
        *l = -x.advantages[[i, s]] * x.log_prob[[i, s]] * w;
        dlam[[i, s]] = -x.advantages[[i, s]] * w;
    }
    let mode = p.loss_agg_mode.as_deref().unwrap_or("seq-mean-token-sum");
    let (pg_loss, grad) = finish(&lam, &dlam, m, &p.agg(mode))?;
    let negkl = &x.old_log_prob - &x.log_prob;
    Ok(PolicyLossOutput {
        pg_loss,
        pg_clipfrac: None,
        ppo_kl: Some(verl_masked_mean(&negkl.view(), m)),
        pg_clipfrac_lower: None,
        grad_log_prob: grad,
    })
}

/// verl `compute_policy_loss_geo_mean` (GMPO): log-space clip per token by the sign
/// of `A`, geometric-mean ratio per row, `loss = mean over all B rows of −Ā_i R_i`
/// (`loss_agg_mode` ignored). Rollout IS weights enter as their per-row geometric mean.
pub fn compute_policy_loss_geo_mean(
    x: &LossInputs<'_>,
    p: &ActorParams,
) -> Result<PolicyLossOutput> {
    x.check("old_log_prob")?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let (el, eh) = (p.low(), p.high());
    let mut grad = Array2::zeros((b, t));
    let mut negkl = Array2::zeros((b, t));
    let mut cl_hi = Array2::zeros((b, t));
    let mut cl_lo = Array2::zeros((b, t));
    let mut loss = 0.0;
    for i in 0..b {
        let len = m.row(i).sum();
        let mut sum_x = 0.0;
        let mut dx = vec![0.0; t];
        let mut abar = 0.0;
        let mut logw = 0.0;
        for s in 0..t {
            let a = x.advantages[[i, s]];
            let raw = x.log_prob[[i, s]] - x.old_log_prob[[i, s]];
            negkl[[i, s]] = -raw;
            let sg = if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            };
            let xc = raw.clamp(-el, eh);
            let dxc = dclamp(raw, -el, eh);
            let (mn, dmn) = tmin(sg * raw, sg, sg * xc, sg * dxc);
            sum_x += sg * mn * m[[i, s]];
            dx[s] = sg * dmn * m[[i, s]];
            abar += a * m[[i, s]];
            let clipped = raw != xc;
            cl_hi[[i, s]] = f64::from(u8::from(clipped && a > 0.0));
            cl_lo[[i, s]] = f64::from(u8::from(clipped && a < 0.0));
            if let Some(w) = &x.rollout_is_weights {
                logw += (w[[i, s]] + 1e-10).ln() * m[[i, s]];
            }
        }
        let ratio = (sum_x / (len + 1e-8)).exp();
        let abar = abar / (len + 1e-8);
        let seqw = if x.rollout_is_weights.is_some() {
            (logw / (len + 1e-8)).exp()
        } else {
            1.0
        };
        loss += -abar * ratio * seqw;
        for s in 0..t {
            grad[[i, s]] = -abar * ratio * seqw * dx[s] / (len + 1e-8) / b as f64;
        }
    }
    Ok(PolicyLossOutput {
        pg_loss: loss / b as f64,
        pg_clipfrac: Some(verl_masked_mean(&cl_hi.view(), m)),
        ppo_kl: Some(verl_masked_mean(&negkl.view(), m)),
        pg_clipfrac_lower: Some(verl_masked_mean(&cl_lo.view(), m)),
        grad_log_prob: grad,
    })
}

/// verl `compute_policy_loss_kl_cov`: `λ = −Aρ` (no clip, no clamp) plus
/// `ppo_kl_coef·|x|` on the `max(1, ⌊N·kl_cov_ratio⌋)` valid tokens with the largest
/// `(A − mean A)(ℓ − mean ℓ)`; ties broken by lowest row-major index.
/// The returned `ppo_kl` is verl's `masked_mean(|x|)`.
pub fn compute_policy_loss_kl_cov(x: &LossInputs<'_>, p: &ActorParams) -> Result<PolicyLossOutput> {
    x.check("old_log_prob")?;
    let m = &x.response_mask;
    let (b, t) = m.dim();
    let ratio_k = p.kl_cov_ratio.unwrap_or(0.0002);
    let coef = p.ppo_kl_coef.unwrap_or(1.0);
    if ratio_k <= 0.0 || !ratio_k.is_finite() {
        return Err(invalid(
            "kl_cov_ratio",
            ratio_k,
            "must be > 0 (verl asserts)",
        ));
    }
    let mut lam = Array2::zeros((b, t));
    let mut dlam = Array2::zeros((b, t));
    let mut absx = Array2::zeros((b, t));
    for i in 0..b {
        for s in 0..t {
            let a = x.advantages[[i, s]];
            let raw = x.log_prob[[i, s]] - x.old_log_prob[[i, s]];
            let r = raw.exp();
            absx[[i, s]] = raw.abs();
            lam[[i, s]] = -a * r;
            dlam[[i, s]] = -a * r;
        }
    }
    let valid: Vec<(usize, usize)> = (0..b)
        .flat_map(|i| (0..t).map(move |s| (i, s)))
        .filter(|&(i, s)| m[[i, s]] > 0.0)
        .collect();
    if !valid.is_empty() {
        let n = valid.len() as f64;
        let ma = valid
            .iter()
            .map(|&(i, s)| x.advantages[[i, s]])
            .sum::<f64>()
            / n;
        let ml = valid.iter().map(|&(i, s)| x.log_prob[[i, s]]).sum::<f64>() / n;
        let cov: Vec<f64> = valid
            .iter()
            .map(|&(i, s)| (x.advantages[[i, s]] - ma) * (x.log_prob[[i, s]] - ml))
            .collect();
        let k = ((n * ratio_k).floor() as usize).max(1).min(valid.len());
        let mut order: Vec<usize> = (0..valid.len()).collect();
        order.sort_by(|&u, &v| cov[v].total_cmp(&cov[u]).then(u.cmp(&v)));
        for &j in &order[..k] {
            let (i, s) = valid[j];
            let raw = x.log_prob[[i, s]] - x.old_log_prob[[i, s]];
            let sign = if raw > 0.0 {
                1.0
            } else if raw < 0.0 {
                -1.0
            } else {
                0.0
            };
            lam[[i, s]] += coef * raw.abs();
            dlam[[i, s]] += coef * sign;
        }
    }
    for ((i, s), l) in lam.indexed_iter_mut() {
        let w = x.isw(i, s);
        *l *= w;
        dlam[[i, s]] *= w;
    }
    let mode = p.loss_agg_mode.as_deref().unwrap_or("token-mean");
    let (pg_loss, grad) = finish(&lam, &dlam, m, &p.agg(mode))?;
    Ok(PolicyLossOutput {
        pg_loss,
        pg_clipfrac: None,
        ppo_kl: Some(verl_masked_mean(&absx.view(), m)),
        pg_clipfrac_lower: None,
        grad_log_prob: grad,
    })
}

// ---------------------------------------------------------------- KL

/// verl `kl_penalty(logprob, ref_logprob, kl_penalty)`: the per-token estimate `kl`
/// and `∂ Σ(m·kl) / ∂ logprob` (`m` = `response_mask`, all ones if absent).
///
/// `+` names use the documented straight-through intent (value of the base
/// estimator, gradient `ℓ − ℓʳ`); verl @ b178a3cd raises `NotImplementedError` for them.
pub fn kl_penalty(
    logprob: ArrayView2<'_, f64>,
    ref_logprob: ArrayView2<'_, f64>,
    mask: Option<ArrayView2<'_, f64>>,
    p: &KlPenaltyParams,
) -> Result<(Array2<f64>, Array2<f64>)> {
    let (b, t) = logprob.dim();
    check_finite("log_prob", &logprob)?;
    check_shape("ref_log_prob", &ref_logprob, b, t)?;
    check_finite("ref_log_prob", &ref_logprob)?;
    if let Some(mk) = &mask {
        check_mask("response_mask", mk)?;
        check_shape("response_mask", mk, b, t)?;
    }
    let name = p.kl_penalty.as_str();
    let (base, straight) = match name.strip_suffix('+') {
        Some(base) => (base, true),
        None => (name, false),
    };
    if !matches!(
        base,
        "kl" | "k1" | "abs" | "mse" | "k2" | "low_var_kl" | "k3"
    ) {
        return Err(invalid(
            "kl_penalty",
            name,
            "unknown or unimplemented estimator (verl: NotImplementedError)",
        ));
    }
    let mut kl = Array2::zeros((b, t));
    let mut grad = Array2::zeros((b, t));
    for i in 0..b {
        for s in 0..t {
            let u = logprob[[i, s]] - ref_logprob[[i, s]];
            let (v, d) = match base {
                "kl" | "k1" => (u, 1.0),
                "abs" => (
                    u.abs(),
                    if u > 0.0 {
                        1.0
                    } else if u < 0.0 {
                        -1.0
                    } else {
                        0.0
                    },
                ),
                "mse" | "k2" => (0.5 * u * u, u),
                _ => {
                    let raw = -u;
                    let kc = raw.clamp(-20.0, 20.0);
                    let dk = -dclamp(raw, -20.0, 20.0);
                    let r = kc.exp();
                    let kld = r - kc - 1.0;
                    let dkld = (r - 1.0) * dk;
                    (kld.clamp(-10.0, 10.0), dkld * dclamp(kld, -10.0, 10.0))
                }
            };
            let d = if straight { u } else { d };
            let mk = mask.as_ref().map_or(1.0, |mk| mk[[i, s]]);
            kl[[i, s]] = v;
            grad[[i, s]] = d * mk;
        }
    }
    Ok((kl, grad))
}

/// verl `AdaptiveKLController`: applies `update(current_kl, n_steps)` for each pair and
/// returns the coefficient after each update:
/// `β ← β·(1 + clip(kl/target − 1, −0.2, 0.2)·n_steps/horizon)`.
pub fn adaptive_kl_controller(updates: &[(f64, f64)], p: &AdaptiveKlParams) -> Result<Vec<f64>> {
    if p.horizon <= 0.0 || !p.horizon.is_finite() {
        return Err(invalid("horizon", p.horizon, "must be > 0 (verl asserts)"));
    }
    if p.target_kl == 0.0 || !p.target_kl.is_finite() {
        return Err(invalid(
            "target_kl",
            p.target_kl,
            "must be finite and non-zero",
        ));
    }
    let mut value = p.init_kl_coef;
    let mut out = Vec::with_capacity(updates.len());
    for (row, &(kl, n)) in updates.iter().enumerate() {
        if !kl.is_finite() || !n.is_finite() {
            return Err(CoreError::NonFinite {
                what: "updates".into(),
                row,
                col: usize::from(kl.is_finite()),
                value: if kl.is_finite() { n } else { kl },
            });
        }
        let e = (kl / p.target_kl - 1.0).clamp(-0.2, 0.2);
        value *= 1.0 + e * n / p.horizon;
        out.push(value);
    }
    Ok(out)
}
