//! Per-request sampling parameters and their validation.

use serde::{Deserialize, Serialize};

use crate::error::{Result, RolloutError};

/// Which log-probability of each sampled token is reported as `logprobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogprobMode {
    /// log π(token) under the raw model distribution (temperature 1, no
    /// truncation): what the trainer's teacher-forced forward computes, so
    /// the trainer can use it as π_old directly. The default.
    #[default]
    Raw,
    /// log of the distribution actually sampled from (after temperature,
    /// top-k/top-p/min-p renormalisation), for importance corrections.
    Processed,
}

/// Sampling parameters of one request (one prompt, `n` samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingParams {
    /// Samples per prompt (the group size G).
    pub n: usize,
    /// Temperature; 0 means greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Nucleus threshold in (0, 1] (1 = off).
    pub top_p: f32,
    /// Drop tokens with probability below `min_p × p_max` (0 = off).
    pub min_p: f32,
    /// Maximum generated tokens.
    pub max_new_tokens: usize,
    /// End-of-sequence is suppressed until this many tokens were generated.
    pub min_new_tokens: usize,
    /// Extra token ids that stop generation (reason `stop`).
    pub stop_token_ids: Vec<u32>,
    /// Strings that stop generation when they appear in the decoded text; the
    /// returned text is cut where the stop string starts.
    pub stop: Vec<String>,
    /// Do not stop at end-of-sequence tokens.
    pub ignore_eos: bool,
    /// Seed of this request; sample `j` uses stream `j` of it, so the output
    /// depends only on the seed and the weights.
    pub seed: u64,
    /// Which log-prob to report as `logprobs` (both are always returned).
    pub logprob_mode: LogprobMode,
    /// Also report, for every generated token, the `top_logprobs` most likely tokens
    /// under the raw model distribution (temperature 1, no truncation) with their
    /// log-probs, in [`crate::Completion::top_logprobs`] (0 = none).
    #[serde(default)]
    pub top_logprobs: usize,
}

impl SamplingParams {
    /// Greedy decoding of one sample with `max_new_tokens`.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            n: 1,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            max_new_tokens,
            min_new_tokens: 0,
            stop_token_ids: Vec::new(),
            stop: Vec::new(),
            ignore_eos: false,
            seed: 0,
            logprob_mode: LogprobMode::Raw,
            top_logprobs: 0,
        }
    }

    /// Sampling `n` completions at `temperature` with a seed.
    pub fn sampled(n: usize, temperature: f32, max_new_tokens: usize, seed: u64) -> Self {
        Self {
            n,
            temperature,
            seed,
            ..Self::greedy(max_new_tokens)
        }
    }

    /// Checks every field; `request` is the index reported in errors, `context`
    /// the model's maximum sequence length, `prompt_len` the prompt's length.
    pub fn validate(&self, request: usize, prompt_len: usize, context: usize) -> Result<()> {
        let bad = |field, reason: String| {
            Err(RolloutError::InvalidRequest {
                request,
                field,
                reason,
            })
        };
        if self.n == 0 {
            return bad("n", "must be at least 1".into());
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(
                "temperature",
                format!("{} is not a finite value >= 0", self.temperature),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} is outside (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", format!("{} is outside [0, 1]", self.min_p));
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens", "must be at least 1".into());
        }
        if self.min_new_tokens > self.max_new_tokens {
            return bad(
                "min_new_tokens",
                format!(
                    "{} exceeds max_new_tokens {}",
                    self.min_new_tokens, self.max_new_tokens
                ),
            );
        }
        if prompt_len == 0 {
            return bad("prompt", "is empty".into());
        }
        if prompt_len >= context {
            return bad(
                "prompt",
                format!("{prompt_len} tokens leave no room in the model's context of {context}"),
            );
        }
        if let Some(s) = self.stop.iter().find(|s| s.is_empty()) {
            return bad("stop", format!("empty stop string {s:?}"));
        }
        if let Some(s) = self.stop.iter().find(|s| s.chars().count() > context) {
            return bad(
                "stop",
                format!(
                    "stop string of {} chars is longer than the context",
                    s.chars().count()
                ),
            );
        }
        Ok(())
    }
}
