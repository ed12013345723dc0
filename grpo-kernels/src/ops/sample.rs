//! Sampling one token from a row of logits: temperature, top-k, top-p, min-p.
//!
//! # Contract
//!
//! `logits`: `[v]` f32 raw logits of one row (−∞ allowed for banned tokens; NaN and +∞ are
//! errors). The caller owns one seeded `ChaCha8Rng` per sequence, so results do not depend on
//! batching. Filters apply in the order transformers' `generate` applies its warpers:
//! temperature, then top-k, then top-p (on the top-k renormalised distribution), then min-p.
//!
//! - `temperature == 0`: greedy, the first index of the maximum logit; no randomness is drawn,
//!   and `logprob = 0` (the sampled distribution is a point mass).
//! - `top_k == 0` disables top-k; `top_p == 1` disables top-p (keeps the smallest set of most
//!   probable tokens whose mass reaches `top_p`, at least one); `min_p == 0` disables min-p
//!   (drops tokens with probability below `min_p ·` the largest probability).
//!
//! [`Sampled::logprob`] is the log-probability of the token under the distribution actually
//! sampled from (after temperature and filters, renormalised); [`Sampled::logprob_raw`] is its
//! log-probability under the temperature-1 softmax of the raw logits (what a trainer scoring
//! the same token would compute).

use super::math;
use crate::error::invalid;
use crate::{KernelError, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Sampling settings (validated by [`SamplingParams::validate`] on every call).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy. Must be finite and `>= 0`.
    pub temperature: f32,
    /// Keep only the `top_k` most probable tokens; `0` disables.
    pub top_k: usize,
    /// Nucleus mass in `(0, 1]`; `1` disables.
    pub top_p: f32,
    /// Minimum probability relative to the most probable token, in `[0, 1]`; `0` disables.
    pub min_p: f32,
}

impl SamplingParams {
    /// Plain sampling from the temperature-1 softmax (no filters).
    pub const PURE: SamplingParams = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
    };

    /// Greedy decoding.
    pub const GREEDY: SamplingParams = SamplingParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
    };

    /// Checks every field, naming the first invalid one.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "sample";
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(invalid(
                OP,
                "temperature",
                format!("must be finite and >= 0, got {}", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid(
                OP,
                "top_p",
                format!("must be in (0, 1], got {}", self.top_p),
            ));
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return Err(invalid(
                OP,
                "min_p",
                format!("must be in [0, 1], got {}", self.min_p),
            ));
        }
        Ok(())
    }
}

/// One sampled token and its log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    /// The sampled token id.
    pub token: u32,
    /// Log-probability under the distribution actually sampled from.
    pub logprob: f32,
    /// Log-probability under the temperature-1 softmax of the raw logits.
    pub logprob_raw: f32,
}

/// Samples one token from `logits` with `params`, drawing from `rng`. See the module contract.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> Result<Sampled> {
    const OP: &str = "sample";
    params.validate()?;
    if logits.is_empty() {
        return Err(invalid(OP, "logits", "empty row"));
    }
    if logits.len() > u32::MAX as usize {
        return Err(invalid(OP, "logits", "more than u32::MAX entries"));
    }
    // One branch-free (vectorised) pass for the common all-finite case, then the position.
    let bad = logits
        .iter()
        .fold(false, |acc, x| acc | x.is_nan() | (*x == f32::INFINITY));
    if bad
        && let Some((index, &value)) = logits
            .iter()
            .enumerate()
            .find(|(_, x)| x.is_nan() || **x == f32::INFINITY)
    {
        return Err(KernelError::NonFinite {
            op: OP,
            arg: "logits",
            index,
            value,
        });
    }
    // First index of the maximum (the vectorised maximum, then its first position).
    let zmax = math::max(logits);
    let argmax = logits.iter().position(|&z| z == zmax).unwrap_or(0);
    if zmax == f32::NEG_INFINITY {
        return Err(invalid(OP, "logits", "every logit is -inf"));
    }
    let raw_lse = log_sum_exp(logits, zmax);
    let raw = |i: usize| (logits[i] as f64 - raw_lse) as f32;
    if params.temperature == 0.0 {
        return Ok(Sampled {
            token: argmax as u32,
            logprob: 0.0,
            logprob_raw: raw(argmax),
        });
    }
    let inv_t = 1.0 / params.temperature;
    // Unnormalised tempered weights relative to the maximum (so the max has weight 1).
    let weight = |i: usize| math::exp((logits[i] - zmax) * inv_t) as f64;
    let filtered =
        params.top_k > 0 && params.top_k < logits.len() || params.top_p < 1.0 || params.min_p > 0.0;
    if !filtered {
        let mut w: Vec<f32> = logits.iter().map(|&z| (z - zmax) * inv_t).collect();
        let total = math::exp_sub_inplace(&mut w, 0.0);
        let u = rng.random::<f64>() * total;
        let mut acc = 0.0f64;
        let mut chosen = argmax;
        for (i, &wi) in w.iter().enumerate() {
            if wi == 0.0 {
                continue;
            }
            acc += wi as f64;
            chosen = i;
            if acc > u {
                break;
            }
        }
        let lp = (w[chosen] as f64 / total).ln() as f32;
        return Ok(Sampled {
            token: chosen as u32,
            logprob: lp,
            logprob_raw: raw(chosen),
        });
    }
    // Candidates: finite-weight tokens sorted by logit descending (ties by index).
    let mut cand: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| logits[i as usize] > f32::NEG_INFINITY)
        .collect();
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if params.top_k > 0 && params.top_k < cand.len() {
        cand.select_nth_unstable_by(params.top_k - 1, by_logit);
        cand.truncate(params.top_k);
    }
    cand.sort_unstable_by(by_logit);
    let mut w: Vec<f64> = cand.iter().map(|&i| weight(i as usize)).collect();
    if params.top_p < 1.0 {
        let total: f64 = w.iter().sum();
        let target = params.top_p as f64 * total;
        let mut acc = 0.0;
        let mut keep = w.len();
        for (n, &x) in w.iter().enumerate() {
            acc += x;
            if acc >= target {
                keep = n + 1;
                break;
            }
        }
        cand.truncate(keep);
        w.truncate(keep);
    }
    if params.min_p > 0.0 {
        // The maximum weight is 1 (cand[0] is the argmax), so the threshold is min_p itself.
        let keep = w
            .iter()
            .take_while(|&&x| x >= params.min_p as f64)
            .count()
            .max(1);
        cand.truncate(keep);
        w.truncate(keep);
    }
    let total: f64 = w.iter().sum();
    let u = rng.random::<f64>() * total;
    let mut acc = 0.0;
    let mut pick = w.len() - 1;
    for (n, &x) in w.iter().enumerate() {
        acc += x;
        if acc > u {
            pick = n;
            break;
        }
    }
    let token = cand[pick] as usize;
    Ok(Sampled {
        token: token as u32,
        logprob: (w[pick] / total).ln() as f32,
        logprob_raw: raw(token),
    })
}

/// Log-probability of `token` under the temperature-1 softmax of `logits` (the value a
/// trainer scoring the token computes): `logits[token] − logsumexp(logits)`, with the
/// vectorised exponential and lanes combined in f64. NaN when a logit is NaN; errors when
/// `token` is out of range or the row is empty.
pub fn logprob_of(logits: &[f32], token: u32) -> Result<f32> {
    const OP: &str = "logprob_of";
    let Some(&x) = logits.get(token as usize) else {
        return Err(invalid(
            OP,
            "token",
            format!("{token} is outside a row of {}", logits.len()),
        ));
    };
    let m = math::max(logits);
    if logits.iter().any(|v| v.is_nan()) {
        return Ok(f32::NAN);
    }
    let lse = log_sum_exp(logits, m);
    Ok((f64::from(x) - lse) as f32)
}

/// `ln Σ e^x` of a row whose maximum is `max` (vectorised exponential, lanes combined in f64):
/// the normaliser of both [`sample`]'s raw log-prob and [`logprob_of`].
fn log_sum_exp(logits: &[f32], max: f32) -> f64 {
    f64::from(max) + math::exp_moments(logits, max).0.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn logprob_of_matches_f64_log_softmax() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32) * 0.13 - 6.0)
            .collect();
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = logits.iter().map(|&x| (x as f64 - m).exp()).sum();
        for t in [0u32, 17, 999] {
            let want = logits[t as usize] as f64 - m - z.ln();
            let got = logprob_of(&logits, t).unwrap();
            assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert!(
            logprob_of(&logits, 1000)
                .unwrap_err()
                .to_string()
                .contains("`token`")
        );
        let mut with_inf = logits.clone();
        with_inf[3] = f32::NEG_INFINITY;
        assert!(logprob_of(&with_inf, 0).unwrap().is_finite());
    }

    #[test]
    fn greedy_picks_first_max() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let s = sample(&[1.0, 3.0, 3.0, 0.0], &SamplingParams::GREEDY, &mut rng).unwrap();
        assert_eq!(s.token, 1);
        assert_eq!(s.logprob, 0.0);
    }

    #[test]
    fn invalid_params_are_named() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = SamplingParams {
            top_p: 0.0,
            ..SamplingParams::PURE
        };
        let e = sample(&[0.0], &p, &mut rng).unwrap_err();
        assert!(e.to_string().contains("top_p"));
        let e = sample(&[0.0, f32::NAN], &SamplingParams::PURE, &mut rng).unwrap_err();
        assert!(matches!(e, KernelError::NonFinite { index: 1, .. }));
    }
}
