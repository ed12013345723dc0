//! The generation engine: for each request, prefill the prompt once, fork
//! the prompt's KV state into its `n` samples (prefix sharing), then decode
//! all live sequences of all requests together (continuous batching: a
//! finished sequence frees its slot and a waiting request starts).
//!
//! Determinism: sample `j` of a request draws from ChaCha8 stream `j` of the
//! request's seed, so its tokens depend only on the seed and the weights,
//! provided the model's decode is batch-invariant (each row computed
//! independently; [`Lm`] implementations must keep that promise).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, RolloutError};
use crate::params::{LogprobMode, SamplingParams};
use crate::sampling::{SampleOut, sample_token};
use crate::stop::{FinishReason, find_stop};

/// What the engine needs from a causal language model.
pub trait Lm {
    /// The per-sequence key/value state.
    type Cache;
    /// Vocabulary size (length of a logits row).
    fn vocab_size(&self) -> usize;
    /// Maximum sequence length (prompt + generated).
    fn max_positions(&self) -> usize;
    /// End-of-sequence token ids.
    fn eos_token_ids(&self) -> Vec<u32>;
    /// An empty cache.
    fn new_cache(&self) -> Self::Cache;
    /// A cache that continues from `cache` (implementations share the
    /// immutable prefix rather than copying it where they can).
    fn fork(&self, cache: &Self::Cache) -> Self::Cache;
    /// Tokens held by `cache`.
    fn cache_len(&self, cache: &Self::Cache) -> usize;
    /// Appends `tokens` and returns the logits of the last position, `[vocab]`.
    fn extend(
        &self,
        cache: &mut Self::Cache,
        tokens: &[u32],
    ) -> std::result::Result<Vec<f32>, String>;
    /// One decode step: appends `tokens[i]` to `caches[i]` and returns the
    /// logits `[caches.len(), vocab]`. Row `i` must not depend on the other rows.
    fn decode(
        &self,
        caches: &mut [&mut Self::Cache],
        tokens: &[u32],
    ) -> std::result::Result<Vec<f32>, String> {
        let mut out = Vec::with_capacity(tokens.len() * self.vocab_size());
        for (c, &t) in caches.iter_mut().zip(tokens) {
            out.extend(self.extend(c, &[t])?);
        }
        Ok(out)
    }
}

/// Turns token ids into text, for stop strings and the `text` field.
pub trait Detokenizer {
    /// Decodes `ids` (skipping special tokens is the implementation's choice).
    fn decode(&self, ids: &[u32]) -> String;
}

/// One generation request: a prompt and its sampling parameters.
#[derive(Debug, Clone)]
pub struct Request {
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Sampling parameters (`n` samples).
    pub params: SamplingParams,
}

/// One generated sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Generated token ids (including the token that triggered a stop).
    pub ids: Vec<u32>,
    /// Decoded text, cut before a matched stop string (empty without a detokenizer).
    pub text: String,
    /// Per-token log-probs as selected by `params.logprob_mode`.
    pub logprobs: Vec<f32>,
    /// Per-token log-probs under the raw model distribution (temperature 1).
    pub logprobs_raw: Vec<f32>,
    /// Per-token log-probs under the distribution actually sampled from.
    pub logprobs_processed: Vec<f32>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
}

/// Engine limits.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Maximum live sequences decoded together.
    pub max_batch: usize,
    /// Budget of cached tokens over all live sequences; beyond it the newest
    /// sequence is preempted (its cache dropped) and recomputed later.
    pub max_cached_tokens: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            max_cached_tokens: 1 << 20,
        }
    }
}

/// Counters of one `generate` call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerateStats {
    /// Prompt tokens prefilled (once per request, not per sample).
    pub prefill_tokens: usize,
    /// Tokens produced by decode steps.
    pub decode_tokens: usize,
    /// Tokens recomputed after preemption.
    pub recomputed_tokens: usize,
    /// Sequences preempted.
    pub preemptions: usize,
    /// Seconds spent in prefill.
    pub prefill_secs: f64,
    /// Seconds spent in decode.
    pub decode_secs: f64,
}

struct Live<C> {
    request: usize,
    cache: Option<C>,
    rng: ChaCha8Rng,
    ids: Vec<u32>,
    lp_raw: Vec<f32>,
    lp_proc: Vec<f32>,
    logits: Vec<f32>,
    text_len_checked: usize,
}

/// The generation engine over a model.
pub struct Engine<'m, M: Lm> {
    model: &'m M,
    config: EngineConfig,
}

/// Per-request outcome: `n` completions, or the request's error (other
/// requests are unaffected).
pub type RequestResult = Result<Vec<Completion>>;

impl<'m, M: Lm> Engine<'m, M> {
    /// An engine over `model`.
    pub fn new(model: &'m M, config: EngineConfig) -> Self {
        Self { model, config }
    }

    /// Generates `n` samples for every request. A bad request yields an `Err`
    /// in its slot and never stops the others.
    pub fn generate(
        &self,
        requests: &[Request],
        detok: Option<&dyn Detokenizer>,
        stats: &mut GenerateStats,
    ) -> Vec<RequestResult> {
        let m = self.model;
        let vocab = m.vocab_size();
        let ctx = m.max_positions();
        let eos = m.eos_token_ids();
        let mut results: Vec<Option<RequestResult>> = (0..requests.len()).map(|_| None).collect();
        let mut done: Vec<Vec<(usize, Completion)>> = vec![Vec::new(); requests.len()];
        let mut waiting: std::collections::VecDeque<usize> = (0..requests.len()).collect();
        let mut live: Vec<(usize, Live<M::Cache>)> = Vec::new(); // (sample index, state)

        loop {
            // Admit waiting requests while there is room (always admit one if idle).
            while let Some(&r) = waiting.front() {
                let need = requests[r].params.n;
                if !live.is_empty() && live.len() + need > self.config.max_batch {
                    break;
                }
                waiting.pop_front();
                let req = &requests[r];
                if let Err(e) = req.params.validate(r, req.prompt_ids.len(), ctx) {
                    results[r] = Some(Err(e));
                    continue;
                }
                if let Some(pos) = req.prompt_ids.iter().position(|&t| t as usize >= vocab) {
                    results[r] = Some(Err(RolloutError::InvalidRequest {
                        request: r,
                        field: "prompt",
                        reason: format!(
                            "token id {} at position {pos} is outside the vocabulary of {vocab}",
                            req.prompt_ids[pos]
                        ),
                    }));
                    continue;
                }
                let t0 = std::time::Instant::now();
                let mut root = m.new_cache();
                let logits = match m.extend(&mut root, &req.prompt_ids) {
                    Ok(l) => l,
                    Err(message) => {
                        results[r] = Some(Err(RolloutError::Model {
                            request: r,
                            message,
                        }));
                        continue;
                    }
                };
                stats.prefill_tokens += req.prompt_ids.len();
                stats.prefill_secs += t0.elapsed().as_secs_f64();
                for j in 0..req.params.n {
                    let mut rng = ChaCha8Rng::seed_from_u64(req.params.seed);
                    rng.set_stream(j as u64);
                    let cache = if j + 1 == req.params.n {
                        None
                    } else {
                        Some(m.fork(&root))
                    };
                    live.push((
                        j,
                        Live {
                            request: r,
                            cache,
                            rng,
                            ids: Vec::new(),
                            lp_raw: Vec::new(),
                            lp_proc: Vec::new(),
                            logits: logits.clone(),
                            text_len_checked: 0,
                        },
                    ));
                }
                // The last sample takes the root cache itself.
                if let Some((_, last)) = live.last_mut() {
                    last.cache = Some(root);
                }
            }
            if live.is_empty() {
                break;
            }

            // Sample one token for every live sequence and check stop conditions.
            let mut keep = Vec::with_capacity(live.len());
            for (j, mut s) in live.drain(..) {
                let p = &requests[s.request].params;
                let suppress_eos = !p.ignore_eos && s.ids.len() < p.min_new_tokens;
                let SampleOut {
                    token,
                    logprob_raw,
                    logprob_processed,
                } = sample_token(&s.logits, p, &eos, suppress_eos, &mut s.rng);
                s.ids.push(token);
                s.lp_raw.push(logprob_raw);
                s.lp_proc.push(logprob_processed);
                let prompt_len = requests[s.request].prompt_ids.len();
                let mut finish = None;
                let mut text = String::new();
                if !p.ignore_eos && eos.contains(&token) {
                    finish = Some(FinishReason::Eos);
                } else if p.stop_token_ids.contains(&token) {
                    finish = Some(FinishReason::Stop);
                } else if !p.stop.is_empty()
                    && let Some(d) = detok
                {
                    text = d.decode(&s.ids);
                    if let Some(cut) = find_stop(&text, &p.stop, s.text_len_checked) {
                        text.truncate(cut);
                        finish = Some(FinishReason::Stop);
                    } else {
                        s.text_len_checked = text.len();
                    }
                }
                if finish.is_none()
                    && (s.ids.len() >= p.max_new_tokens || prompt_len + s.ids.len() >= ctx)
                {
                    finish = Some(FinishReason::Length);
                }
                match finish {
                    Some(reason) => {
                        if text.is_empty()
                            && let Some(d) = detok
                        {
                            text = d.decode(&s.ids);
                        }
                        let logprobs = match p.logprob_mode {
                            LogprobMode::Raw => s.lp_raw.clone(),
                            LogprobMode::Processed => s.lp_proc.clone(),
                        };
                        done[s.request].push((
                            j,
                            Completion {
                                ids: s.ids,
                                text,
                                logprobs,
                                logprobs_raw: s.lp_raw,
                                logprobs_processed: s.lp_proc,
                                finish_reason: reason,
                            },
                        ));
                    }
                    None => keep.push((j, s)),
                }
            }
            live = keep;
            if live.is_empty() {
                continue;
            }

            // Preempt the newest sequences while over the cached-token budget.
            let mut cached: usize = live
                .iter()
                .map(|(_, s)| s.cache.as_ref().map_or(0, |c| m.cache_len(c)))
                .sum();
            let mut idx = live.len();
            while cached > self.config.max_cached_tokens && idx > 1 {
                idx -= 1;
                if let Some(c) = live[idx].1.cache.take() {
                    cached -= m.cache_len(&c);
                    stats.preemptions += 1;
                }
            }

            // Recompute preempted sequences from prompt + generated tokens (their
            // logits are then fresh); decode all others together by one step.
            let t0 = std::time::Instant::now();
            let mut failed: Vec<(usize, String)> = Vec::new();
            let mut fresh = vec![false; live.len()];
            for (i, (_, s)) in live.iter_mut().enumerate() {
                if s.cache.is_some() {
                    continue;
                }
                let mut c = m.new_cache();
                let mut toks = requests[s.request].prompt_ids.clone();
                toks.extend_from_slice(&s.ids);
                match m.extend(&mut c, &toks) {
                    Ok(l) => {
                        stats.recomputed_tokens += toks.len();
                        s.logits = l;
                        s.cache = Some(c);
                        fresh[i] = true;
                    }
                    Err(e) => failed.push((s.request, e)),
                }
            }
            let mut batch: Vec<&mut Live<M::Cache>> = live
                .iter_mut()
                .zip(&fresh)
                .filter(|(_, f)| !**f)
                .map(|((_, s), _)| s)
                .filter(|s| s.cache.is_some())
                .collect();
            let tokens: Vec<u32> = batch
                .iter()
                .map(|s| s.ids.last().copied().unwrap_or(0))
                .collect();
            let decoded = {
                let mut caches: Vec<&mut M::Cache> =
                    batch.iter_mut().filter_map(|s| s.cache.as_mut()).collect();
                if caches.is_empty() {
                    Ok(Vec::new())
                } else {
                    m.decode(&mut caches, &tokens)
                }
            };
            let decoded = decoded.and_then(|l| {
                if l.len() == tokens.len() * vocab {
                    Ok(l)
                } else {
                    Err(format!(
                        "decode returned {} logits for {} rows of vocab {vocab}",
                        l.len(),
                        tokens.len()
                    ))
                }
            });
            match decoded {
                Ok(logits) => {
                    stats.decode_tokens += tokens.len();
                    for (i, s) in batch.iter_mut().enumerate() {
                        s.logits = logits[i * vocab..(i + 1) * vocab].to_vec();
                    }
                }
                Err(e) => {
                    for s in &batch {
                        failed.push((s.request, e.clone()));
                    }
                }
            }
            stats.decode_secs += t0.elapsed().as_secs_f64();
            for (r, message) in failed {
                results[r] = Some(Err(RolloutError::Model {
                    request: r,
                    message,
                }));
                live.retain(|(_, s)| s.request != r);
            }
        }

        results
            .into_iter()
            .zip(done)
            .map(|(res, mut comps)| match res {
                Some(r) => r,
                None => {
                    comps.sort_by_key(|(j, _)| *j);
                    Ok(comps.into_iter().map(|(_, c)| c).collect())
                }
            })
            .collect()
    }
}
