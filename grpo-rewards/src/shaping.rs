//! Reward shaping and composition (`algorithms.md` section 7).
//!
//! - [`format_reward`]: 1/0 for a regex full match, with a `<think>…</think>
//!   <answer>…</answer>` preset built from tag names.
//! - [`dapo_overlong_penalty`]: DAPO soft overlong punishment (verl and
//!   OpenRLHF variants) and [`prorl_stop_penalty`].
//! - [`cosine_length_reward`]: the open-r1 / open-rs cosine length reward.
//! - [`otc_factor`] / [`otc_grpo_rewards`]: OTC tool-efficiency reward.
//! - [`rapo_absolute`] / [`rapo_relative`]: RAPO score rewards.
//! - [`RewardSpec`]: weighted components kept separately (so GDPO can
//!   normalise each) and combined by sum or product.
//! - [`Shaper`]: a serde-tagged config (`{"type": "dapo_overlong", ...}`) that
//!   selects any of the above by name.
//!
//! ```
//! use grpo_rewards::shaping::{dapo_overlong_penalty, OverlongMode};
//! // L_max = 20480, buffer 4096: no penalty up to 16384 tokens, -1 at 20480
//! assert_eq!(dapo_overlong_penalty(16_000, 20_480, 4_096, 1.0, OverlongMode::Verl), 0.0);
//! assert_eq!(dapo_overlong_penalty(20_480, 20_480, 4_096, 1.0, OverlongMode::Verl), -1.0);
//! ```

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RewardError};

/// 1.0 when `pattern` matches the whole `text` (dot matches newlines), else 0.0.
pub fn format_reward(pattern: &Regex, text: &str) -> f64 {
    match pattern.find(text) {
        Some(m) if m.start() == 0 && m.end() == text.len() => 1.0,
        _ => 0.0,
    }
}

/// The regex for `<t1>…</t1>\s*<t2>…</t2>…` with nothing around it.
pub fn tag_pattern(tags: &[&str]) -> Result<Regex> {
    let mut p = String::from(r"(?s)^\s*");
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(RewardError::InvalidInput {
                field: "tags".into(),
                reason: format!("bad tag name {t:?}"),
            });
        }
        if i > 0 {
            p.push_str(r"\s*");
        }
        p.push_str(&format!("<{t}>.*?</{t}>"));
    }
    p.push_str(r"\s*$");
    Regex::new(&p).map_err(|e| RewardError::InvalidInput {
        field: "tags".into(),
        reason: e.to_string(),
    })
}

/// Which DAPO overlong formula to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OverlongMode {
    /// verl: `min(-(L - L_exp)/L_buf * f, 0)` (grows past -f beyond `L_max`).
    #[default]
    Verl,
    /// OpenRLHF: the excess is capped at the buffer, so the penalty stops at -f.
    OpenRlhf,
}

/// DAPO soft overlong punishment added to the reward: 0 up to
/// `L_exp = max_len - buffer`, then linear down to `-factor` at `max_len`.
pub fn dapo_overlong_penalty(
    len: usize,
    max_len: usize,
    buffer: usize,
    factor: f64,
    mode: OverlongMode,
) -> f64 {
    if buffer == 0 {
        return 0.0;
    }
    let expected = max_len.saturating_sub(buffer) as f64;
    let mut excess = len as f64 - expected;
    if mode == OverlongMode::OpenRlhf {
        excess = excess.min(buffer as f64);
    }
    if excess <= 0.0 {
        return 0.0;
    }
    -excess / buffer as f64 * factor
}

/// ProRL stop-properly penalty for truncated samples: `coef * r` when
/// `coef >= 0`, else `coef`; untruncated samples keep `r`.
pub fn prorl_stop_penalty(reward: f64, truncated: bool, coef: f64) -> f64 {
    match (truncated, coef >= 0.0) {
        (false, _) => reward,
        (true, true) => coef * reward,
        (true, false) => coef,
    }
}

/// Parameters of the cosine length reward (open-r1 function defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CosineParams {
    /// Reward of a correct answer of length 0.
    pub max_value_correct: f64,
    /// Reward of a correct answer of length `max_len`.
    pub min_value_correct: f64,
    /// Reward of a wrong answer of length `max_len`.
    pub max_value_wrong: f64,
    /// Reward of a wrong answer of length 0.
    pub min_value_wrong: f64,
    /// Length scale (characters in the reference code).
    pub max_len: usize,
}

impl Default for CosineParams {
    fn default() -> Self {
        CosineParams {
            max_value_correct: 1.0,
            min_value_correct: 0.5,
            max_value_wrong: -0.5,
            min_value_wrong: -1.0,
            max_len: 1000,
        }
    }
}

/// `r = v_min + ½(v_max − v_min)(1 + cos(π·len/len_max))`, with the wrong
/// branch's ends swapped so longer wrong answers are punished less.
pub fn cosine_length_reward(len: usize, correct: bool, p: &CosineParams) -> f64 {
    let progress = (len as f64 / p.max_len.max(1) as f64).min(1.0);
    let cos = (std::f64::consts::PI * progress).cos();
    let (min_v, max_v) = if correct {
        (p.min_value_correct, p.max_value_correct)
    } else {
        (p.max_value_wrong, p.min_value_wrong)
    };
    min_v + 0.5 * (max_v - min_v) * (1.0 + cos)
}

/// OTC tool-efficiency factor for `m` calls with optimum `n` (`None` =
/// OTC-PPO, i.e. n = 0) and smoothing `c`.
pub fn otc_factor(m: usize, n: Option<usize>, c: f64) -> f64 {
    let n = n.unwrap_or(0);
    let (mf, nf) = (m as f64, n as f64);
    let f = if m == 0 && n == 0 {
        0.0
    } else if n == 0 {
        mf
    } else {
        2.0 * nf * mf / (mf + nf)
    };
    if f == 0.0 && n == 0 {
        1.0
    } else if n == 0 {
        (mf * std::f64::consts::PI / (2.0 * mf + c)).cos()
    } else {
        (f * std::f64::consts::PI / (2.0 * nf)).sin()
    }
}

/// OTC-GRPO for one group: `n` = fewest calls among correct trajectories;
/// reward = `alpha * factor * correctness` (wrong answers get 0).
pub fn otc_grpo_rewards(calls: &[usize], correctness: &[f64], c: f64, alpha: f64) -> Vec<f64> {
    let n = calls
        .iter()
        .zip(correctness)
        .filter(|(_, r)| **r > 0.0)
        .map(|(m, _)| *m)
        .min();
    calls
        .iter()
        .zip(correctness)
        .map(|(m, r)| alpha * otc_factor(*m, n, c) * r)
        .collect()
}

/// RAPO absolute ("error") reward: `exp(-½(|ŝ-s|/0.1)²) + 1e-5`.
pub fn rapo_absolute(pred: f64, gold: f64) -> f64 {
    (-0.5 * ((pred - gold).abs() / 0.1).powi(2)).exp() + 1e-5
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |err| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var)
}

/// RAPO relative ("rank") rewards. `preds[i]` are the predicted scores of
/// the responses for image `i`, `gold[i]` its gold score. Response `j` of
/// image `i` gets the mean over images `z != i` of the fidelity
/// `sqrt(p g + ε) + sqrt((1-p)(1-g) + ε)`, `p = Φ((ŝ_ij − μ_z)/sqrt(σ²_i + σ²_z + ε))`,
/// `g = 1[s_i >= s_z]`, ε = 1e-6.
pub fn rapo_relative(preds: &[Vec<f64>], gold: &[f64]) -> Vec<Vec<f64>> {
    const EPS: f64 = 1e-6;
    let stats: Vec<(f64, f64)> = preds.iter().map(|p| mean_var(p)).collect();
    preds
        .iter()
        .enumerate()
        .map(|(i, ps)| {
            ps.iter()
                .map(|s| {
                    let mut acc = 0.0;
                    let mut k = 0;
                    for (z, (mu_z, var_z)) in stats.iter().enumerate() {
                        if z == i {
                            continue;
                        }
                        let p = normal_cdf((s - mu_z) / (stats[i].1 + var_z + EPS).sqrt());
                        let g = if gold[i] >= gold[z] { 1.0 } else { 0.0 };
                        acc += (p * g + EPS).sqrt() + ((1.0 - p) * (1.0 - g) + EPS).sqrt();
                        k += 1;
                    }
                    if k == 0 { 0.0 } else { acc / k as f64 }
                })
                .collect()
        })
        .collect()
}

/// How components are combined into the scalar reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Weighted sum (TRL `reward_weights`, NaN treated as 0 like `nansum`).
    #[default]
    Sum,
    /// Product of `weight * value` (OTC-style multiplicative).
    Product,
}

/// A declared combination of named reward components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSpec {
    /// Weight per component name; components not listed are ignored.
    pub weights: BTreeMap<String, f64>,
    /// Sum or product.
    pub combine: Combine,
    /// Lower clamp of the scalar.
    pub floor: Option<f64>,
    /// Upper clamp of the scalar.
    pub ceiling: Option<f64>,
}

impl RewardSpec {
    /// Combines `components` into one scalar (the components stay available
    /// to the caller for per-component normalisation).
    pub fn combine(&self, components: &BTreeMap<String, f64>) -> f64 {
        let terms = self.weights.iter().map(|(k, w)| {
            let v = components.get(k).copied().unwrap_or(f64::NAN);
            if v.is_nan() { None } else { Some(w * v) }
        });
        let mut r: f64 = match self.combine {
            Combine::Sum => terms.flatten().sum(),
            Combine::Product => terms.map(|t| t.unwrap_or(0.0)).product(),
        };
        if let Some(f) = self.floor {
            r = r.max(f);
        }
        if let Some(c) = self.ceiling {
            r = r.min(c);
        }
        r
    }
}

/// What a shaper can look at for one sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample<'a> {
    /// The completion text.
    pub text: &'a str,
    /// Its length in tokens (characters for `cosine_length` when `use_chars`).
    pub len_tokens: usize,
    /// The correctness / accuracy reward.
    pub correctness: f64,
    /// Whether the completion was cut at the length limit.
    pub truncated: bool,
    /// Number of tool calls made (from the environment's step records).
    pub tool_calls: usize,
    /// OTC-GRPO optimum for the group (`None` = OTC-PPO).
    pub group_min_calls: Option<usize>,
}

/// A shaping rule selected by name in configs (`{"type": "...", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Shaper {
    /// 1/0 for a full regex match, or for the tag structure when `pattern` is absent.
    Format {
        /// A regex (full match); overrides `tags`.
        #[serde(default)]
        pattern: Option<String>,
        /// Tag names in order (default `think`, `answer`).
        #[serde(default)]
        tags: Option<Vec<String>>,
    },
    /// DAPO overlong soft punishment.
    DapoOverlong {
        /// `L_max`.
        max_len: usize,
        /// `L_buf`.
        buffer: usize,
        /// Penalty factor `f`.
        #[serde(default = "one")]
        factor: f64,
        /// Formula variant.
        #[serde(default)]
        mode: OverlongMode,
    },
    /// Cosine length reward (uses `Sample::text` length in characters).
    CosineLength(CosineParams),
    /// OTC efficiency reward `alpha * factor * correctness`.
    Otc {
        /// Smoothing `c`.
        #[serde(default = "one")]
        c: f64,
        /// Scale `alpha`.
        #[serde(default = "one")]
        alpha: f64,
    },
    /// ProRL stop-properly penalty applied to the correctness reward.
    ProrlStop {
        /// Coefficient.
        coef: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl Shaper {
    /// The component name this shaper reports under.
    pub fn name(&self) -> &'static str {
        match self {
            Shaper::Format { .. } => "format",
            Shaper::DapoOverlong { .. } => "overlong",
            Shaper::CosineLength(_) => "cosine_length",
            Shaper::Otc { .. } => "efficiency",
            Shaper::ProrlStop { .. } => "stop",
        }
    }

    /// Evaluates the rule on one sample. `Err` only for a bad config (regex).
    pub fn apply(&self, s: &Sample<'_>) -> Result<f64> {
        Ok(match self {
            Shaper::Format { pattern, tags } => {
                let re = match pattern {
                    Some(p) => {
                        Regex::new(&format!("(?s){p}")).map_err(|e| RewardError::InvalidInput {
                            field: "pattern".into(),
                            reason: e.to_string(),
                        })?
                    }
                    None => {
                        let t: Vec<&str> = match tags {
                            Some(t) => t.iter().map(String::as_str).collect(),
                            None => vec!["think", "answer"],
                        };
                        tag_pattern(&t)?
                    }
                };
                format_reward(&re, s.text)
            }
            Shaper::DapoOverlong {
                max_len,
                buffer,
                factor,
                mode,
            } => dapo_overlong_penalty(s.len_tokens, *max_len, *buffer, *factor, *mode),
            Shaper::CosineLength(p) => {
                cosine_length_reward(s.text.chars().count(), s.correctness > 0.0, p)
            }
            Shaper::Otc { c, alpha } => {
                alpha * otc_factor(s.tool_calls, s.group_min_calls, *c) * s.correctness
            }
            Shaper::ProrlStop { coef } => prorl_stop_penalty(s.correctness, s.truncated, *coef),
        })
    }
}

/// Runs several shapers and returns their named components plus the
/// correctness itself under `accuracy`.
pub fn components(shapers: &[Shaper], s: &Sample<'_>) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    out.insert("accuracy".to_string(), s.correctness);
    for sh in shapers {
        out.insert(sh.name().to_string(), sh.apply(s)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_is_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_963_985) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_254).abs() < 1e-6);
    }
}
