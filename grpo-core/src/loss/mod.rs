//! Policy losses with analytic gradients (algorithms.md §4, §9).
//!
//! A loss reads a [`LossInputs`] view (padded `[B,T]` per-token arrays plus
//! optional per-row data), and returns a [`LossOutput`]: the scalar loss `𝓛`,
//! `∂𝓛/∂ℓ[i,t]` for every token (zero where the response mask is 0),
//! `∂𝓛/∂H[i,t]` when the loss uses the entropy, and [`LossMetrics`].
//!
//! Every loss is selected by a serde-tagged [`LossConfig`]
//! (`{ "type": "ppo_clip", ... }`). Token-level losses take an
//! [`Aggregation`] (`agg`). Modifiers and extra terms are *wrappers* that hold
//! the loss they modify in a `base` field and compose freely:
//! `rollout_correction`, `off_policy_mask`, `top_entropy_mask`, `capo_mask`
//! multiply each token's loss (and gradient) by a detached factor;
//! `kl_penalty`, `entropy_bonus`, `llds` add a term with its exact gradient.
//!
//! ```
//! use grpo_core::loss::{LossConfig, LossInputs};
//! use ndarray::array;
//! use rand::SeedableRng;
//!
//! let cfg: LossConfig = serde_json::from_str(
//!     r#"{"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28,
//!         "agg": {"type": "token_mean"}}"#,
//! ).unwrap();
//! let logp = array![[-1.0, -2.0], [-0.5, -0.7]];
//! let mask = array![[1.0, 1.0], [1.0, 0.0]];
//! let adv = array![[1.0, 1.0], [-1.0, -1.0]];
//! let inputs = LossInputs::new(logp.view(), logp.view(), mask.view(), adv.view());
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let out = cfg.compute(&inputs, &mut rng).unwrap();
//! // on-policy: 𝓛 = −token-mean(A) and ∂𝓛/∂ℓ = −A/M
//! assert!((out.loss - (-1.0 / 3.0)).abs() < 1e-12);
//! assert!((out.grad_logp[[0, 0]] - (-1.0 / 3.0)).abs() < 1e-12);
//! assert_eq!(out.grad_logp[[1, 1]], 0.0);
//! assert_eq!(out.metrics.clip_frac, 0.0);
//! ```
//!
//! | `type` | § | extra inputs | aggregation |
//! |---|---|---|---|
//! | `ppo_clip` (clip-higher, dual-clip) | 4.1 | — | `agg` |
//! | `two_sided_clip` | 4.2 | — | `agg` |
//! | `gspo`, `gspo_token` | 4.3 | — | `agg` |
//! | `luspo` | 4.4 | — | seq-mean-token-sum |
//! | `cispo` | 4.5 | — | `agg` |
//! | `sapo` | 4.6 | — | `agg` |
//! | `gmpo` | 4.7 | — | own (mean over B rows) |
//! | `vespo` | 4.8 | — | `agg` |
//! | `clip_cov`, `kl_cov` | 4.9 | — (Clip-Cov uses `rng`) | `agg` |
//! | `reinforce` (GPG, IS-weighted PG) | 4.10 | — | `agg` |
//! | `opmd_loss`, `rec_loss` | 4.17 | — | token-mean |
//! | `mdpo` | 4.18 | — | `agg` |
//! | `r2vpo` | 9.2 | — | `agg` |
//! | `reg_grpo` | 9.1 | `index` | own (mean over rows) |
//! | `disco` | 4.15 | `index`, binary `rewards` | own |
//! | `p3o` | 4.16 | `index`, `rewards` | own (mean over pairs) |
//! | `gtpo` | 4.20 | `index`, `token_ids`, `entropy` | own |
//! | `dagrpo_loss` | 9.3 | `index`, `rewards`, `scores` | `agg` |
//! | `rollout_correction` (TIS/MIS/icepop) | 4.12 | `rollout_log_prob` | base's |
//! | `off_policy_mask` | 4.11 | (`rollout_log_prob`) | base's |
//! | `top_entropy_mask` | 4.14 | `entropy` | base's |
//! | `capo_mask` | 9.8 | `instability` | base's |
//! | `kl_penalty` | 5 | `ref_log_prob` (`full_kl` for `full`) | `agg` |
//! | `entropy_bonus` | 4.13 | `entropy` | `agg` |
//! | `llds` | 4.19 | — | token-mean |
//!
//! Losses marked "own" are not sums of per-token losses and reject the four
//! token modifiers (`InvalidParam { name: "base" }`), except `gtpo`.
//!
//! **Stop-gradients.** Several losses are surrogates whose gradient treats a
//! function of `ℓ` as a constant (`sg(·)`: CISPO's clipped weight, VESPO's φ,
//! GSPO-token's sequence ratio, GTPO's `exp(ℓ − sg ℓ)`, the selection in
//! Clip-Cov/KL-Cov, masks computed from `ℓ`). Those constants are read from
//! [`LossInputs::stop_grad_log_prob`], which defaults to `log_prob`; the
//! returned gradient is then exactly the derivative of the returned value with
//! `stop_grad_log_prob` held fixed (this is how the finite-difference tests
//! verify every surrogate).
//!
//! Verification status: see [`registry`]; items from algorithms.md §9
//! (Reg-GRPO, R²VPO, DaGRPO, CAPO) and the P3O clipping forms are
//! reconstructions from abstracts, not checked against paper code.

pub mod aggregate;
mod cispo;
mod clip;
mod cov;
mod disco;
mod gmpo;
mod gspo;
mod gtpo;
mod modifiers;
mod p3o;
mod pairwise_mask;
mod reg_grpo;
mod regularized;
mod reinforce;
mod sapo;
mod terms;

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::registry::{Entry, Kind, Verification};

pub use aggregate::Aggregation;
pub use cispo::{CispoConfig, VespoConfig};
pub use clip::{PpoClipConfig, TwoSidedClipConfig};
pub use cov::{ClipCovConfig, KlCovConfig};
pub use disco::{DiscoConfig, DiscoKlType, DiscoScore, DiscoVariant};
pub use gmpo::GmpoConfig;
pub use gspo::{GspoConfig, LuspoConfig};
pub use gtpo::GtpoConfig;
pub use modifiers::{
    CapoMaskConfig, OffPolicyMaskConfig, RolloutCorrectionConfig, RolloutIsLevel, RolloutIsMode,
    TopEntropyMaskConfig,
};
pub use p3o::{P3oConfig, P3oVariant};
pub use pairwise_mask::DagrpoConfig;
pub use reg_grpo::RegGrpoConfig;
pub use regularized::{MdpoConfig, R2vpoConfig, R2vpoDual};
pub use reinforce::{
    OpmdConfig, RecClipMode, RecConfig, RecRegularizer, RecWeight, ReinforceConfig,
};
pub use sapo::SapoConfig;
pub use terms::{
    AdaptiveEntropyCoef, AdaptiveEntropyConfig, EntropyBonusConfig, KlPenaltyConfig, LldsConfig,
    LldsGate,
};

/// Read-only view of the per-token and per-row inputs of a policy loss.
/// All per-token arrays are `[B,T]`, per-row arrays `[B]`. Build with
/// [`LossInputs::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct LossInputs<'a> {
    /// `ℓ` `[B,T]`: log-prob of the sampled token under the current policy.
    pub log_prob: ArrayView2<'a, f64>,
    /// `ℓᵒ` `[B,T]`: log-prob under the policy that produced the batch.
    pub old_log_prob: ArrayView2<'a, f64>,
    /// `ℓʳ` `[B,T]`: reference-policy log-prob (KL terms).
    pub ref_log_prob: Option<ArrayView2<'a, f64>>,
    /// `ℓˢ` `[B,T]`: sampler (inference engine) log-prob (rollout correction, off-policy mask).
    pub rollout_log_prob: Option<ArrayView2<'a, f64>>,
    /// `H` `[B,T]`: entropy of the full next-token distribution (entropy bonus,
    /// top-entropy mask, GTPO).
    pub entropy: Option<ArrayView2<'a, f64>>,
    /// `m` `[B,T]` ∈ {0,1}: response (loss) mask.
    pub response_mask: ArrayView2<'a, f64>,
    /// `A` `[B,T]`: advantages (outcome estimators broadcast `A_i` over the row).
    pub advantages: ArrayView2<'a, f64>,
    /// Group id per row `[B]` (DisCO, P3O, Reg-GRPO, GTPO, DaGRPO).
    pub index: Option<&'a [usize]>,
    /// Scalar reward per row `[B]` (DisCO, P3O, DaGRPO).
    pub rewards: Option<ArrayView1<'a, f64>>,
    /// Fine-grained score per row `[B]` (DaGRPO distinctiveness).
    pub scores: Option<ArrayView1<'a, f64>>,
    /// Token ids `[B,T]` (GTPO conflict tokens).
    pub token_ids: Option<ArrayView2<'a, i64>>,
    /// Per-token instability score `[B,T]` supplied by the caller (CAPO masking).
    pub instability: Option<ArrayView2<'a, f64>>,
    /// Per-token exact KL(π_θ‖π_ref) `[B,T]` from the kernel (`full` KL estimator).
    pub full_kl: Option<ArrayView2<'a, f64>>,
    /// `sg(ℓ)` `[B,T]`: where stop-gradient quantities read `ℓ` from. `None` ⇒
    /// `log_prob`. Only finite-difference tests set it.
    pub stop_grad_log_prob: Option<ArrayView2<'a, f64>>,
}

impl<'a> LossInputs<'a> {
    /// Inputs every loss needs: `log_prob`, `old_log_prob`, `response_mask`,
    /// `advantages`, all `[B,T]`.
    pub fn new(
        log_prob: ArrayView2<'a, f64>,
        old_log_prob: ArrayView2<'a, f64>,
        response_mask: ArrayView2<'a, f64>,
        advantages: ArrayView2<'a, f64>,
    ) -> Self {
        Self {
            log_prob,
            old_log_prob,
            ref_log_prob: None,
            rollout_log_prob: None,
            entropy: None,
            response_mask,
            advantages,
            index: None,
            rewards: None,
            scores: None,
            token_ids: None,
            instability: None,
            full_kl: None,
            stop_grad_log_prob: None,
        }
    }
    /// Sets `ref_log_prob`.
    pub fn with_ref_log_prob(mut self, v: ArrayView2<'a, f64>) -> Self {
        self.ref_log_prob = Some(v);
        self
    }
    /// Sets `rollout_log_prob`.
    pub fn with_rollout_log_prob(mut self, v: ArrayView2<'a, f64>) -> Self {
        self.rollout_log_prob = Some(v);
        self
    }
    /// Sets `entropy`.
    pub fn with_entropy(mut self, v: ArrayView2<'a, f64>) -> Self {
        self.entropy = Some(v);
        self
    }
    /// Sets the group index.
    pub fn with_index(mut self, v: &'a [usize]) -> Self {
        self.index = Some(v);
        self
    }
    /// Sets the per-row rewards.
    pub fn with_rewards(mut self, v: ArrayView1<'a, f64>) -> Self {
        self.rewards = Some(v);
        self
    }
    /// Sets the per-row fine-grained scores.
    pub fn with_scores(mut self, v: ArrayView1<'a, f64>) -> Self {
        self.scores = Some(v);
        self
    }
    /// Sets the token ids.
    pub fn with_token_ids(mut self, v: ArrayView2<'a, i64>) -> Self {
        self.token_ids = Some(v);
        self
    }
    /// Sets the per-token instability scores.
    pub fn with_instability(mut self, v: ArrayView2<'a, f64>) -> Self {
        self.instability = Some(v);
        self
    }
    /// Sets the per-token full-distribution KL.
    pub fn with_full_kl(mut self, v: ArrayView2<'a, f64>) -> Self {
        self.full_kl = Some(v);
        self
    }
    /// Sets `stop_grad_log_prob` (tests only).
    pub fn with_stop_grad_log_prob(mut self, v: ArrayView2<'a, f64>) -> Self {
        self.stop_grad_log_prob = Some(v);
        self
    }

    /// `(B, T)`.
    pub fn dim(&self) -> (usize, usize) {
        self.log_prob.dim()
    }

    /// Validates shapes, the 0/1 mask, finiteness on valid tokens and per-row
    /// inputs. Empty mask rows are allowed (they contribute nothing, §0).
    pub fn validate(&self) -> Result<()> {
        let (b, t) = self.dim();
        if b == 0 || t == 0 {
            return Err(CoreError::Empty {
                what: "log_prob".into(),
            });
        }
        let shape2 = |what: &str, d: (usize, usize)| -> Result<()> {
            if d != (b, t) {
                return Err(CoreError::ShapeMismatch {
                    what: what.into(),
                    expected: vec![b, t],
                    got: vec![d.0, d.1],
                });
            }
            Ok(())
        };
        shape2("old_log_prob", self.old_log_prob.dim())?;
        shape2("response_mask", self.response_mask.dim())?;
        shape2("advantages", self.advantages.dim())?;
        let opts: [(&str, Option<&ArrayView2<'a, f64>>); 6] = [
            ("ref_log_prob", self.ref_log_prob.as_ref()),
            ("rollout_log_prob", self.rollout_log_prob.as_ref()),
            ("entropy", self.entropy.as_ref()),
            ("instability", self.instability.as_ref()),
            ("full_kl", self.full_kl.as_ref()),
            ("stop_grad_log_prob", self.stop_grad_log_prob.as_ref()),
        ];
        for (name, v) in opts.iter() {
            if let Some(v) = v {
                shape2(name, v.dim())?;
            }
        }
        if let Some(v) = &self.token_ids {
            shape2("token_ids", v.dim())?;
        }
        // Fast checks first; locate the offending element only on failure.
        let mask_ok = self.response_mask.iter().all(|v| *v == 0.0 || *v == 1.0);
        for ((i, j), v) in self.response_mask.indexed_iter() {
            if mask_ok {
                break;
            }
            if *v != 0.0 && *v != 1.0 {
                return Err(CoreError::InvalidMask {
                    what: "response_mask".into(),
                    row: i,
                    col: j,
                    value: *v,
                });
            }
        }
        let finite = |what: &str, a: &ArrayView2<'_, f64>| -> Result<()> {
            if ndarray::Zip::from(a)
                .and(&self.response_mask)
                .all(|v, m| *m == 0.0 || v.is_finite())
            {
                return Ok(());
            }
            for ((i, j), v) in a.indexed_iter() {
                if self.response_mask[[i, j]] != 0.0 && !v.is_finite() {
                    return Err(CoreError::NonFinite {
                        what: what.into(),
                        row: i,
                        col: j,
                        value: *v,
                    });
                }
            }
            Ok(())
        };
        finite("log_prob", &self.log_prob)?;
        finite("old_log_prob", &self.old_log_prob)?;
        finite("advantages", &self.advantages)?;
        for (name, v) in opts.iter() {
            if let Some(v) = v {
                finite(name, v)?;
            }
        }
        if let Some(ix) = self.index
            && ix.len() != b
        {
            return Err(CoreError::ShapeMismatch {
                what: "index".into(),
                expected: vec![b],
                got: vec![ix.len()],
            });
        }
        for (name, v) in [("rewards", &self.rewards), ("scores", &self.scores)] {
            if let Some(v) = v {
                if v.len() != b {
                    return Err(CoreError::ShapeMismatch {
                        what: name.into(),
                        expected: vec![b],
                        got: vec![v.len()],
                    });
                }
                for (i, x) in v.iter().enumerate() {
                    if !x.is_finite() {
                        return Err(CoreError::NonFiniteReward {
                            row: i,
                            component: name.into(),
                            value: *x,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Metrics of one loss evaluation. Fractions and means are over valid tokens
/// (`m = 1`) unless stated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossMetrics {
    /// Fraction of tokens whose clipped branch is active (verl `pg_clipfrac`;
    /// for CISPO the fraction with `ρ ≠ ρ̄`; sequence losses count each token of a clipped row).
    pub clip_frac: f64,
    /// Fraction clipped at the lower bound with `A < 0` (TRL `clip_ratio/low_mean`).
    pub clip_frac_lower: f64,
    /// Fraction clipped at the upper bound with `A > 0` (TRL `clip_ratio/high_mean`).
    pub clip_frac_upper: f64,
    /// `mean_m(ℓᵒ − ℓ)` (verl `ppo_kl`).
    pub ppo_kl: f64,
    /// Mean token ratio `e^{ℓ−ℓᵒ}` (log-ratio clamped at ±20 for the statistics).
    pub ratio_mean: f64,
    /// Minimum token ratio.
    pub ratio_min: f64,
    /// Maximum token ratio.
    pub ratio_max: f64,
    /// Mean entropy, if entropy was given.
    pub entropy: Option<f64>,
    /// Mean per-token KL to the reference (`kl_penalty` wrapper).
    pub kl: Option<f64>,
    /// Number of valid tokens `M`.
    pub valid_tokens: f64,
    /// True when `M = 0`: loss and gradients are 0 (verl would return NaN).
    pub empty_batch: bool,
    /// Loss-specific extras (documented per loss, e.g. `pg_clipfrac_lower`,
    /// `keep_frac`, `ratio_variance`, `disco_kl`, `llds`).
    pub extra: BTreeMap<String, f64>,
}

/// Result of a loss evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// The scalar loss `𝓛` (minimised).
    pub loss: f64,
    /// `∂𝓛/∂ℓ[i,t]` `[B,T]`, zero where the response mask is 0.
    pub grad_logp: Array2<f64>,
    /// `∂𝓛/∂H[i,t]` `[B,T]` when the loss uses the entropy (entropy bonus).
    pub grad_entropy: Option<Array2<f64>>,
    /// `∂𝓛/∂KL_full[i,t]` `[B,T]` for the `full` KL estimator (the kernel maps it to logits).
    pub grad_full_kl: Option<Array2<f64>>,
    /// Metrics.
    pub metrics: LossMetrics,
}

impl LossOutput {
    pub(crate) fn zeros(b: usize, t: usize) -> Self {
        Self {
            loss: 0.0,
            grad_logp: Array2::zeros((b, t)),
            grad_entropy: None,
            grad_full_kl: None,
            metrics: LossMetrics::default(),
        }
    }
}

/// A policy loss (serde tag `type`). Each variant's config documents its
/// formula, defaults and source; wrappers (`rollout_correction`,
/// `off_policy_mask`, `top_entropy_mask`, `capo_mask`, `kl_penalty`,
/// `entropy_bonus`, `llds`) hold the loss they modify in `base`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LossConfig {
    /// PPO-clip token loss with clip-higher and dual-clip (§4.1).
    PpoClip(PpoClipConfig),
    /// TRL two-sided clip δ (§4.2).
    TwoSidedClip(TwoSidedClipConfig),
    /// GSPO sequence-level ratio, exact gradient (§4.3).
    Gspo(GspoConfig),
    /// GSPO-token: verl's `gspo` surrogate with per-token advantages (§4.3).
    GspoToken(GspoConfig),
    /// LUSPO length-unbiased GSPO (§4.4).
    Luspo(LuspoConfig),
    /// CISPO clipped-IS-weight REINFORCE (§4.5).
    Cispo(CispoConfig),
    /// SAPO soft adaptive gate (§4.6).
    Sapo(SapoConfig),
    /// GMPO geometric-mean ratio (§4.7).
    Gmpo(GmpoConfig),
    /// VESPO gamma weighting (§4.8).
    Vespo(VespoConfig),
    /// Clip-Cov (§4.9).
    ClipCov(ClipCovConfig),
    /// KL-Cov (§4.9).
    KlCov(KlCovConfig),
    /// REINFORCE / GPG / IS-weighted PG (§4.10).
    Reinforce(ReinforceConfig),
    /// OPMD policy loss (Trinity-RFT, §4.17).
    OpmdLoss(OpmdConfig),
    /// REC family (Trinity-RFT; AsymRE/OPMD-Kimi configurations, §4.17).
    RecLoss(RecConfig),
    /// MDPO mirror-descent step (§4.18).
    Mdpo(MdpoConfig),
    /// R²VPO ratio-variance penalty (reconstructed, §9.2).
    R2vpo(R2vpoConfig),
    /// Reg-GRPO advantage regression (reconstructed, §9.1).
    RegGrpo(RegGrpoConfig),
    /// DisCO discriminative objective with constrained KL (§4.15).
    Disco(DiscoConfig),
    /// P3O pairwise PG (§4.16).
    P3o(P3oConfig),
    /// GTPO conflict tokens + entropy filter (§4.20).
    Gtpo(GtpoConfig),
    /// DaGRPO distinctiveness-masked pairwise advantages + PPO clip (reconstructed, §9.3).
    DagrpoLoss(DagrpoConfig),
    /// Rollout-vs-trainer importance correction TIS/MIS/icepop (§4.12), wrapper.
    RolloutCorrection(RolloutCorrectionConfig),
    /// Off-policy sequence mask (§4.11), wrapper.
    OffPolicyMask(OffPolicyMaskConfig),
    /// Top-entropy-quantile token mask (§4.14), wrapper.
    TopEntropyMask(TopEntropyMaskConfig),
    /// CAPO-style instability masking (reconstructed, §9.8), wrapper.
    CapoMask(CapoMaskConfig),
    /// KL penalty to the reference policy (§5), wrapper.
    KlPenalty(KlPenaltyConfig),
    /// Entropy bonus (§4.13), wrapper.
    EntropyBonus(EntropyBonusConfig),
    /// LLDS likelihood-preserving regulariser (§4.19), wrapper.
    Llds(LldsConfig),
}

/// Validated, derived quantities shared by the loss families.
pub(crate) struct Ctx<'c, 'a> {
    pub x: &'c LossInputs<'a>,
    pub b: usize,
    pub t: usize,
    /// `L_i`.
    pub len: Vec<f64>,
    /// `M`.
    pub n_tok: f64,
}

impl<'c, 'a> Ctx<'c, 'a> {
    pub fn m(&self, i: usize, j: usize) -> f64 {
        self.x.response_mask[[i, j]]
    }
    pub fn valid(&self, i: usize, j: usize) -> bool {
        self.x.response_mask[[i, j]] != 0.0
    }
    /// `sg(ℓ)` at (i,j).
    pub fn sg(&self, i: usize, j: usize) -> f64 {
        match &self.x.stop_grad_log_prob {
            Some(s) => s[[i, j]],
            None => self.x.log_prob[[i, j]],
        }
    }
    /// `ℓ − ℓᵒ`.
    pub fn logratio(&self, i: usize, j: usize) -> f64 {
        self.x.log_prob[[i, j]] - self.x.old_log_prob[[i, j]]
    }
    /// `sg(ℓ) − ℓᵒ`.
    pub fn sg_logratio(&self, i: usize, j: usize) -> f64 {
        self.sg(i, j) - self.x.old_log_prob[[i, j]]
    }
    /// `Σ_t m[i,t]·f(t)` over the valid tokens of row `i` only (values on
    /// masked tokens are never read, so NaN padding cannot leak).
    pub fn row_sum(&self, i: usize, f: impl Fn(usize) -> f64) -> f64 {
        let mut s = 0.0;
        for j in 0..self.t {
            if self.valid(i, j) {
                s += f(j);
            }
        }
        s
    }
    /// Masked row mean of the advantages (`A_i`; 0 for an empty row).
    pub fn row_adv(&self, i: usize) -> f64 {
        if self.len[i] <= 0.0 {
            return 0.0;
        }
        let mut s = 0.0;
        for j in 0..self.t {
            if self.valid(i, j) {
                s += self.x.advantages[[i, j]];
            }
        }
        s / self.len[i]
    }
    /// Masked mean of a per-token quantity over all valid tokens.
    pub fn token_mean(&self, f: impl Fn(usize, usize) -> f64) -> f64 {
        if self.n_tok <= 0.0 {
            return 0.0;
        }
        let mut s = 0.0;
        for i in 0..self.b {
            for j in 0..self.t {
                if self.valid(i, j) {
                    s += f(i, j);
                }
            }
        }
        s / self.n_tok
    }
    /// Groups from `index` in order of first appearance (rows listed in order).
    pub fn groups(&self, method: &str) -> Result<Vec<Vec<usize>>> {
        let ix = self.x.index.ok_or_else(|| CoreError::MissingInput {
            method: method.into(),
            what: "index".into(),
        })?;
        let mut order: Vec<usize> = Vec::new();
        let mut map: BTreeMap<usize, usize> = BTreeMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, g) in ix.iter().enumerate() {
            let k = *map.entry(*g).or_insert_with(|| {
                order.push(*g);
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[k].push(i);
        }
        Ok(groups)
    }
    pub fn rewards(&self, method: &str) -> Result<ArrayView1<'a, f64>> {
        self.x.rewards.ok_or_else(|| CoreError::MissingInput {
            method: method.into(),
            what: "rewards".into(),
        })
    }
}

/// Builds the output of a token-level loss: `𝓛 = Σ w f λ`, `∂𝓛/∂ℓ = w f γ`.
pub(crate) fn token_output(
    ctx: &Ctx<'_, '_>,
    agg: &Aggregation,
    lam: &Array2<f64>,
    gam: &Array2<f64>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    token_loss_fn(ctx, agg, factor, |i, j| (lam[[i, j]], gam[[i, j]]))
}

/// One-pass token-level loss: `f(i, j) = (λ[i,t], γ[i,t])` is called once per
/// valid token; `𝓛 = Σ w f λ`, `∂𝓛/∂ℓ = w f γ` with the aggregation's row weights.
pub(crate) fn token_loss_fn(
    ctx: &Ctx<'_, '_>,
    agg: &Aggregation,
    factor: &Array2<f64>,
    mut f: impl FnMut(usize, usize) -> (f64, f64),
) -> Result<LossOutput> {
    let rw = agg.row_weights(&ctx.len)?;
    let mut out = LossOutput::zeros(ctx.b, ctx.t);
    let mut loss = 0.0;
    for i in 0..ctx.b {
        if rw[i] == 0.0 {
            continue;
        }
        let m = ctx.x.response_mask.row(i);
        let fr = factor.row(i);
        let mut g = out.grad_logp.row_mut(i);
        for j in 0..ctx.t {
            if m[j] != 0.0 {
                let (l, gm) = f(i, j);
                let wf = rw[i] * fr[j];
                if wf != 0.0 {
                    loss += wf * l;
                    g[j] = wf * gm;
                }
            }
        }
    }
    out.loss = loss;
    Ok(out)
}

/// Rejects token modifiers for losses that are not a weighted sum of per-token losses.
pub(crate) fn require_unit_factor(
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    method: &str,
) -> Result<()> {
    for i in 0..ctx.b {
        for j in 0..ctx.t {
            if ctx.valid(i, j) && factor[[i, j]] != 1.0 {
                return Err(CoreError::InvalidParam {
                    name: "base".into(),
                    value: method.into(),
                    reason: "this loss is not a sum of per-token losses and cannot be wrapped by a token mask/weight modifier".into(),
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn param(name: &str, value: f64, ok: bool, reason: &str) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(CoreError::InvalidParam {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        })
    }
}

/// `true` when the unclipped branch of a PPO-style min/max carries the
/// gradient: `(A>0 ∧ r<hi) ∨ (A<0 ∧ r>lo)`.
pub(crate) fn active(a: f64, r: f64, lo: f64, hi: f64) -> bool {
    (a > 0.0 && r < hi) || (a < 0.0 && r > lo)
}

impl LossConfig {
    /// The loss a modifier or additive term wraps (`rollout_correction`, `off_policy_mask`,
    /// `top_entropy_mask`, `capo_mask`, `kl_penalty`, `entropy_bonus`, `llds`); `None` for
    /// a base loss.
    pub fn base(&self) -> Option<&LossConfig> {
        use LossConfig::*;
        match self {
            RolloutCorrection(c) => Some(&c.base),
            OffPolicyMask(c) => Some(&c.base),
            TopEntropyMask(c) => Some(&c.base),
            CapoMask(c) => Some(&c.base),
            KlPenalty(c) => Some(&c.base),
            EntropyBonus(c) => Some(&c.base),
            Llds(c) => Some(&c.base),
            _ => None,
        }
    }

    /// [`LossConfig::base`], mutably (a trainer setting a scheduled parameter of the
    /// wrapped loss).
    pub fn base_mut(&mut self) -> Option<&mut LossConfig> {
        use LossConfig::*;
        match self {
            RolloutCorrection(c) => Some(&mut c.base),
            OffPolicyMask(c) => Some(&mut c.base),
            TopEntropyMask(c) => Some(&mut c.base),
            CapoMask(c) => Some(&mut c.base),
            KlPenalty(c) => Some(&mut c.base),
            EntropyBonus(c) => Some(&mut c.base),
            Llds(c) => Some(&mut c.base),
            _ => None,
        }
    }

    /// Registry name of this loss (its serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            LossConfig::PpoClip(_) => "ppo_clip",
            LossConfig::TwoSidedClip(_) => "two_sided_clip",
            LossConfig::Gspo(_) => "gspo",
            LossConfig::GspoToken(_) => "gspo_token",
            LossConfig::Luspo(_) => "luspo",
            LossConfig::Cispo(_) => "cispo",
            LossConfig::Sapo(_) => "sapo",
            LossConfig::Gmpo(_) => "gmpo",
            LossConfig::Vespo(_) => "vespo",
            LossConfig::ClipCov(_) => "clip_cov",
            LossConfig::KlCov(_) => "kl_cov",
            LossConfig::Reinforce(_) => "reinforce",
            LossConfig::OpmdLoss(_) => "opmd_loss",
            LossConfig::RecLoss(_) => "rec_loss",
            LossConfig::Mdpo(_) => "mdpo",
            LossConfig::R2vpo(_) => "r2vpo",
            LossConfig::RegGrpo(_) => "reg_grpo",
            LossConfig::Disco(_) => "disco",
            LossConfig::P3o(_) => "p3o",
            LossConfig::Gtpo(_) => "gtpo",
            LossConfig::DagrpoLoss(_) => "dagrpo_loss",
            LossConfig::RolloutCorrection(_) => "rollout_correction",
            LossConfig::OffPolicyMask(_) => "off_policy_mask",
            LossConfig::TopEntropyMask(_) => "top_entropy_mask",
            LossConfig::CapoMask(_) => "capo_mask",
            LossConfig::KlPenalty(_) => "kl_penalty",
            LossConfig::EntropyBonus(_) => "entropy_bonus",
            LossConfig::Llds(_) => "llds",
        }
    }

    /// Evaluates the loss: validates the inputs, then returns the loss, its
    /// gradients and metrics. `rng` is used only by Clip-Cov's random token
    /// choice (pass a seeded `rand_chacha::ChaCha8Rng`).
    pub fn compute(&self, inputs: &LossInputs<'_>, rng: &mut dyn RngCore) -> Result<LossOutput> {
        inputs.validate()?;
        let (b, t) = inputs.dim();
        let len: Vec<f64> = (0..b).map(|i| inputs.response_mask.row(i).sum()).collect();
        let n_tok: f64 = len.iter().sum();
        let ctx = Ctx {
            x: inputs,
            b,
            t,
            len,
            n_tok,
        };
        let mut out = if n_tok <= 0.0 {
            self.validate_params()?;
            let mut o = LossOutput::zeros(b, t);
            o.metrics.empty_batch = true;
            o
        } else {
            let factor = Array2::<f64>::ones((b, t));
            self.eval(&ctx, &factor, rng)?
        };
        // Generic metrics.
        let m = &mut out.metrics;
        m.valid_tokens = n_tok;
        if n_tok > 0.0 {
            let (mut kl, mut rs) = (0.0, 0.0);
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            ndarray::Zip::from(&inputs.log_prob)
                .and(&inputs.old_log_prob)
                .and(&inputs.response_mask)
                .for_each(|lp, old, mk| {
                    if *mk != 0.0 {
                        let x = lp - old;
                        let r = x.clamp(-20.0, 20.0).exp();
                        kl -= x;
                        rs += r;
                        lo = lo.min(r);
                        hi = hi.max(r);
                    }
                });
            m.ppo_kl = kl / n_tok;
            m.ratio_mean = rs / n_tok;
            m.ratio_min = lo;
            m.ratio_max = hi;
            if let Some(h) = &inputs.entropy {
                m.entropy = Some(ctx.token_mean(|i, j| h[[i, j]]));
            }
        }
        Ok(out)
    }

    /// Checks hyper-parameters (also done by [`LossConfig::compute`]).
    pub fn validate_params(&self) -> Result<()> {
        match self {
            LossConfig::PpoClip(c) => c.validate(),
            LossConfig::TwoSidedClip(c) => c.validate(),
            LossConfig::Gspo(c) | LossConfig::GspoToken(c) => c.validate(),
            LossConfig::Luspo(c) => c.validate(),
            LossConfig::Cispo(c) => c.validate(),
            LossConfig::Sapo(c) => c.validate(),
            LossConfig::Gmpo(c) => c.validate(),
            LossConfig::Vespo(c) => c.validate(),
            LossConfig::ClipCov(c) => c.validate(),
            LossConfig::KlCov(c) => c.validate(),
            LossConfig::Reinforce(c) => c.validate(),
            LossConfig::OpmdLoss(c) => c.validate(),
            LossConfig::RecLoss(c) => c.validate(),
            LossConfig::Mdpo(c) => c.validate(),
            LossConfig::R2vpo(c) => c.validate(),
            LossConfig::RegGrpo(c) => c.validate(),
            LossConfig::Disco(c) => c.validate(),
            LossConfig::P3o(c) => c.validate(),
            LossConfig::Gtpo(c) => c.validate(),
            LossConfig::DagrpoLoss(c) => c.validate(),
            LossConfig::RolloutCorrection(c) => c.validate().and(c.base.validate_params()),
            LossConfig::OffPolicyMask(c) => c.validate().and(c.base.validate_params()),
            LossConfig::TopEntropyMask(c) => c.validate().and(c.base.validate_params()),
            LossConfig::CapoMask(c) => c.validate().and(c.base.validate_params()),
            LossConfig::KlPenalty(c) => c.validate().and(c.base.validate_params()),
            LossConfig::EntropyBonus(c) => c.validate().and(c.base.validate_params()),
            LossConfig::Llds(c) => c.validate().and(c.base.validate_params()),
        }
    }

    /// Evaluates with a detached per-token factor (product of the enclosing modifiers).
    pub(crate) fn eval(
        &self,
        ctx: &Ctx<'_, '_>,
        factor: &Array2<f64>,
        rng: &mut dyn RngCore,
    ) -> Result<LossOutput> {
        self.validate_params()?;
        match self {
            LossConfig::PpoClip(c) => clip::ppo_clip(c, ctx, factor),
            LossConfig::TwoSidedClip(c) => clip::two_sided(c, ctx, factor),
            LossConfig::Gspo(c) => gspo::gspo(c, ctx, factor, false),
            LossConfig::GspoToken(c) => gspo::gspo(c, ctx, factor, true),
            LossConfig::Luspo(c) => gspo::luspo(c, ctx, factor),
            LossConfig::Cispo(c) => cispo::cispo(c, ctx, factor),
            LossConfig::Sapo(c) => sapo::sapo(c, ctx, factor),
            LossConfig::Gmpo(c) => gmpo::gmpo(c, ctx, factor),
            LossConfig::Vespo(c) => cispo::vespo(c, ctx, factor),
            LossConfig::ClipCov(c) => cov::clip_cov(c, ctx, factor, rng),
            LossConfig::KlCov(c) => cov::kl_cov(c, ctx, factor),
            LossConfig::Reinforce(c) => reinforce::reinforce(c, ctx, factor),
            LossConfig::OpmdLoss(c) => reinforce::opmd(c, ctx, factor),
            LossConfig::RecLoss(c) => reinforce::rec(c, ctx, factor),
            LossConfig::Mdpo(c) => regularized::mdpo(c, ctx, factor),
            LossConfig::R2vpo(c) => regularized::r2vpo(c, ctx, factor),
            LossConfig::RegGrpo(c) => reg_grpo::reg_grpo(c, ctx, factor),
            LossConfig::Disco(c) => disco::disco(c, ctx, factor),
            LossConfig::P3o(c) => p3o::p3o(c, ctx, factor),
            LossConfig::Gtpo(c) => gtpo::gtpo(c, ctx, factor),
            LossConfig::DagrpoLoss(c) => pairwise_mask::dagrpo(c, ctx, factor),
            LossConfig::RolloutCorrection(c) => modifiers::rollout_correction(c, ctx, factor, rng),
            LossConfig::OffPolicyMask(c) => modifiers::off_policy_mask(c, ctx, factor, rng),
            LossConfig::TopEntropyMask(c) => modifiers::top_entropy_mask(c, ctx, factor, rng),
            LossConfig::CapoMask(c) => modifiers::capo_mask(c, ctx, factor, rng),
            LossConfig::KlPenalty(c) => terms::kl_penalty(c, ctx, factor, rng),
            LossConfig::EntropyBonus(c) => terms::entropy_bonus(c, ctx, factor, rng),
            LossConfig::Llds(c) => terms::llds(c, ctx, factor, rng),
        }
    }
}

/// Linear-interpolation quantile (torch default) of a non-empty slice.
pub(crate) fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 1 {
        return v[0];
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    v[lo] + (v[hi] - v[lo]) * frac
}

/// Registry rows of this module: policy losses, modifiers, and aggregation modes.
pub fn registry() -> Vec<Entry> {
    use Verification::{Reconstructed, Verified};
    let e = |name, summary, verification| Entry {
        name,
        kind: Kind::Loss,
        summary,
        verification,
    };
    let mut v = vec![
        e(
            "ppo_clip",
            "PPO-clip token loss with clip-higher (ε_low/ε_high, DAPO) and dual-clip c (verl `vanilla`), §4.1",
            Verified,
        ),
        e(
            "two_sided_clip",
            "two-sided clip δ (INTELLECT-2; TRL `delta`), §4.2",
            Verified,
        ),
        e(
            "gspo",
            "GSPO sequence-level ratio with exact gradient (TRL `importance_sampling_level=sequence`), §4.3",
            Verified,
        ),
        e(
            "gspo_token",
            "GSPO-token surrogate (verl `gspo`): per-token advantages, sg(sequence ratio), §4.3",
            Verified,
        ),
        e(
            "luspo",
            "LUSPO length-unbiased GSPO (TRL `luspo`), §4.4",
            Verified,
        ),
        e(
            "cispo",
            "CISPO clipped-IS-weight REINFORCE (verl/TRL `cispo`), §4.5",
            Verified,
        ),
        e(
            "sapo",
            "SAPO soft adaptive gate (verl/TRL `sapo`), §4.6",
            Verified,
        ),
        e(
            "gmpo",
            "GMPO geometric-mean ratio (verl `geo_mean`), §4.7",
            Verified,
        ),
        e(
            "vespo",
            "VESPO gamma-weighted REINFORCE (TRL `vespo`), §4.8",
            Verified,
        ),
        e(
            "clip_cov",
            "Clip-Cov: detach random high-covariance tokens (verl `clip_cov`), §4.9",
            Verified,
        ),
        e(
            "kl_cov",
            "KL-Cov: |log-ratio| penalty on top-covariance tokens (verl `kl_cov`), §4.9",
            Verified,
        ),
        e(
            "reinforce",
            "REINFORCE / GPG / IS-weighted PG / bypass mode (verl `reinforce`, `gpg`), §4.10",
            Verified,
        ),
        e(
            "opmd_loss",
            "OPMD policy loss token-mean(−Aℓ)/(1+τ) (Trinity-RFT), §4.17",
            Verified,
        ),
        e(
            "rec_loss",
            "REC off-policy REINFORCE family; OPMD-Kimi/AsymRE configurations (Trinity-RFT), §4.17",
            Verified,
        ),
        e(
            "mdpo",
            "MDPO mirror-descent step, sample-based KL(π_θ‖π_old)/t_k (LLM adaptation), §4.18",
            Verified,
        ),
        e(
            "r2vpo",
            "R²VPO ratio-variance penalty with primal-dual η (reconstructed from the abstract), §9.2",
            Reconstructed,
        ),
        e(
            "reg_grpo",
            "Reg-GRPO advantage regression (DeepVideo-R1; reconstructed from the abstract), §9.1",
            Reconstructed,
        ),
        e(
            "disco",
            "DisCO discriminative objective (logL/Lratio, disco/disco-b) with constrained KL (official code), §4.15",
            Verified,
        ),
        e(
            "p3o",
            "P3O pairwise PG, V1 separate / V2 joint clipping (clipping forms reconstructed), §4.16",
            Reconstructed,
        ),
        e(
            "gtpo",
            "GTPO conflict-token weighting + entropy filter (official code), §4.20",
            Verified,
        ),
        e(
            "dagrpo_loss",
            "DaGRPO distinctiveness-masked pairwise advantage + PPO clip (reconstructed), §9.3",
            Reconstructed,
        ),
        e(
            "rollout_correction",
            "rollout-vs-trainer IS correction TIS/MIS/icepop, token or sequence (TRL/OpenRLHF), §4.12",
            Verified,
        ),
        e(
            "off_policy_mask",
            "off-policy sequence mask for negative-advantage rows (TRL, DeepSeek-V3.2), §4.11",
            Verified,
        ),
        e(
            "top_entropy_mask",
            "top-entropy-quantile token mask, \"80/20\" (TRL `top_entropy_quantile`), §4.14",
            Verified,
        ),
        e(
            "capo_mask",
            "CAPO-style masking of tokens by a caller-supplied instability score (reconstructed), §9.8",
            Reconstructed,
        ),
        e(
            "kl_penalty",
            "KL loss β·Agg(k) to the reference policy with any KL estimator (verl `use_kl_loss`, TRL `beta`), §5",
            Verified,
        ),
        e(
            "entropy_bonus",
            "entropy bonus −c·Agg(H), static or driven by the adaptive controller (verl/TRL), §4.13",
            Verified,
        ),
        e(
            "llds",
            "LLDS likelihood-preserving regulariser, response or action gate (official code), §4.19",
            Verified,
        ),
    ];
    v.extend(aggregate::registry());
    v
}
