//! Token selection for one sequence: end-of-sequence suppression (for
//! `min_new_tokens`), then the kernel sampler (temperature, top-k, top-p,
//! min-p) with the sequence's own RNG stream; both log-probs are reported.

use rand_chacha::ChaCha8Rng;

use grpo_kernels::ops::sample as ksample;

use crate::params::SamplingParams;

/// The sampled token and its log-probs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOut {
    /// The token id.
    pub token: u32,
    /// log π(token) under the raw logits (temperature 1, no truncation).
    pub logprob_raw: f32,
    /// log-prob under the distribution actually sampled from.
    pub logprob_processed: f32,
}

/// log-softmax of `logits` at `token` (grpo-kernels' vectorised [`ksample::logprob_of`],
/// lanes combined in f64); NaN for an out-of-range token or NaN logits.
pub fn raw_logprob(logits: &[f32], token: u32) -> f32 {
    ksample::logprob_of(logits, token).unwrap_or(f32::NAN)
}

/// Samples one token. `params` were validated by the engine.
pub fn sample_token(
    logits: &[f32],
    params: &SamplingParams,
    eos: &[u32],
    suppress_eos: bool,
    rng: &mut ChaCha8Rng,
) -> SampleOut {
    let kp = ksample::SamplingParams {
        temperature: params.temperature,
        top_k: params.top_k,
        top_p: params.top_p,
        min_p: params.min_p,
    };
    let masked: Option<Vec<f32>> = suppress_eos.then(|| {
        let mut w = logits.to_vec();
        for &e in eos {
            if let Some(x) = w.get_mut(e as usize) {
                *x = f32::NEG_INFINITY;
            }
        }
        w
    });
    let view: &[f32] = masked.as_deref().unwrap_or(logits);
    let s = ksample::sample(view, &kp, rng);
    let (token, processed, raw) = match s {
        // The kernel's raw log-prob is over `view`; with EOS masked it must be recomputed
        // over the unmasked row (the model's distribution).
        Ok(s) if masked.is_none() => (s.token, s.logprob, s.logprob_raw),
        Ok(s) => (s.token, s.logprob, raw_logprob(logits, s.token)),
        // Validated parameters make this unreachable for finite logits; fall
        // back to greedy on the raw logits rather than aborting a batch.
        Err(_) => {
            let (i, _) = view
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, &x)| {
                    if x > b.1 { (i, x) } else { b }
                });
            (i as u32, 0.0, raw_logprob(logits, i as u32))
        }
    };
    SampleOut {
        token,
        logprob_raw: raw,
        logprob_processed: processed,
    }
}

/// The `k` most likely tokens of `logits` (at most its length) with their log-probs under
/// the temperature-1 softmax, most likely first; ties go to the lower id. Logits that are
/// NaN are never chosen ahead of a number; a row without a finite maximum yields NaN
/// log-probs.
pub fn top_logprobs(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    // NaN ranks below every number (including −∞).
    let key = |x: f32| if x.is_nan() { (false, 0.0) } else { (true, x) };
    // Kept most likely first; a candidate enters only when it beats the current last.
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &x) in logits.iter().enumerate() {
        if best.len() == k && best.last().is_some_and(|&(_, y)| key(x) <= key(y)) {
            continue;
        }
        let at = best.partition_point(|&(_, y)| key(y) >= key(x));
        best.insert(at, (i as u32, x));
        best.truncate(k);
    }
    let max = logits
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    let lse = if max.is_finite() {
        let sum: f64 = logits
            .iter()
            .filter(|x| !x.is_nan())
            .map(|&x| (f64::from(x) - f64::from(max)).exp())
            .sum();
        f64::from(max) + sum.ln()
    } else {
        f64::NAN
    };
    best.into_iter()
        .map(|(i, x)| (i, (f64::from(x) - lse) as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_logprobs_are_the_k_largest_sorted_and_normalised() {
        let logits = [0.5f32, 3.0, -1.0, 3.0, f32::NAN, 2.0, f32::NEG_INFINITY];
        let top = top_logprobs(&logits, 3);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 3, 5], "ties keep the lower id first");
        let finite: Vec<f64> = [0.5f64, 3.0, -1.0, 3.0, 2.0]
            .iter()
            .map(|x| x.exp())
            .collect();
        let lse = finite.iter().sum::<f64>().ln();
        for (i, lp) in &top {
            let want = f64::from(logits[*i as usize]) - lse;
            assert!((f64::from(*lp) - want).abs() < 1e-6, "{i}: {lp} vs {want}");
        }
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        assert_eq!(top_logprobs(&logits, 0), Vec::new());
        assert_eq!(top_logprobs(&logits, 100).len(), logits.len());
        assert_eq!(top_logprobs(&logits, 100).last().map(|t| t.0), Some(4));
        assert!(top_logprobs(&[f32::NEG_INFINITY; 3], 2)[0].1.is_nan());
    }
}
