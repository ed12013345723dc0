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
