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

/// log-softmax of `logits` at `token`, in f64 for accuracy.
pub fn raw_logprob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    (logits[token as usize] as f64 - max - sum.ln()) as f32
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
    let (token, processed) = match s {
        Ok(s) => (s.token, s.logprob),
        // Validated parameters make this unreachable for finite logits; fall
        // back to greedy on the raw logits rather than aborting a batch.
        Err(_) => {
            let (i, _) = view
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, &x)| {
                    if x > b.1 { (i, x) } else { b }
                });
            (i as u32, 0.0)
        }
    };
    SampleOut {
        token,
        logprob_raw: raw_logprob(logits, token),
        logprob_processed: processed,
    }
}
