//! The generation engine: requests in, `n` completions per request out.
//!
//! For each request the prompt is prefilled once into KV blocks that its `n` samples then
//! share (reference counted; a partly filled last prompt block is copied on the first write
//! of each sample, see [`crate::block`]). All live samples of all requests decode together;
//! a finished sample frees its blocks and waiting requests start (continuous batching).
//! `max_cached_tokens` is a budget of blocks: when it is spent the newest running sample is
//! preempted and recomputed later, never failed (see [`crate::scheduler`]).
//!
//! Determinism: sample `j` of a request draws from ChaCha8 stream `j` of the request's
//! seed, so its tokens depend only on the seed and the weights, provided the model computes
//! each row of a batch independently ([`Lm`] implementations must keep that promise).
//! Recomputation after preemption runs the transcript through prefill instead of decode,
//! which for a real model agrees to float rounding (tokens equal in practice, log-probs to
//! about 1e-6); for a model whose logits are exact the outputs are identical.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use grpo_model::kv::PagedSeq;

use crate::error::{Result, RolloutError};
use crate::params::SamplingParams;
use crate::progress::Progress;
use crate::scheduler::{Core, PREFILL_TOKENS, Seq};
use crate::session::Sessions;
use crate::stop::FinishReason;

/// What the engine needs from a causal language model with a paged KV cache.
///
/// The model owns the block storage (`Pool`); the engine decides which blocks each
/// sequence uses ([`PagedSeq::blocks`], `block_size` positions each) and never writes a
/// block another sequence still reads.
pub trait Lm {
    /// Paged key/value storage.
    type Pool;
    /// Vocabulary size (length of a logits row).
    fn vocab_size(&self) -> usize;
    /// Maximum sequence length (prompt + generated).
    fn max_positions(&self) -> usize;
    /// End-of-sequence token ids.
    fn eos_token_ids(&self) -> Vec<u32>;
    /// Positions per KV block.
    fn block_size(&self) -> usize {
        16
    }
    /// An empty pool.
    fn new_pool(&self) -> Self::Pool;
    /// Grows `pool` to hold at least `blocks` blocks.
    fn ensure_blocks(&self, pool: &mut Self::Pool, blocks: usize);
    /// Copies the first `positions` slots of block `src` into block `dst`.
    fn copy_block(
        &self,
        pool: &mut Self::Pool,
        src: u32,
        dst: u32,
        positions: usize,
    ) -> std::result::Result<(), String>;
    /// Runs each sequence's `tokens` at positions `pos0..` (attending to its cached
    /// positions), stores their keys/values in its blocks and returns the logits of each
    /// sequence's last new token, `[seqs.len(), vocab]`.
    fn prefill(
        &self,
        pool: &mut Self::Pool,
        seqs: &[PagedSeq<'_>],
    ) -> std::result::Result<Vec<f32>, String>;
    /// One decode step: like [`Lm::prefill`] with exactly one token per sequence.
    /// Row `i` must not depend on the other rows.
    fn decode(
        &self,
        pool: &mut Self::Pool,
        seqs: &[PagedSeq<'_>],
    ) -> std::result::Result<Vec<f32>, String> {
        self.prefill(pool, seqs)
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
    /// Per generated token, the `params.top_logprobs` most likely tokens with their
    /// log-probs under the raw model distribution, most likely first (see
    /// [`crate::sampling::top_logprobs`]); the sampled token's entry, when it is among
    /// them, equals its `logprobs_raw` value. Empty when `top_logprobs` is 0.
    pub top_logprobs: Vec<Vec<(u32, f32)>>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
}

/// Engine limits.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Maximum live sequences decoded together (a request's `n` samples are admitted
    /// together).
    pub max_batch: usize,
    /// Budget of cached tokens over all live sequences, counted in whole KV blocks
    /// (`max_cached_tokens / block_size` blocks; storage grows on demand up to it). When a
    /// sequence needs a block past it, the newest running sequence is preempted (its
    /// blocks freed) and recomputed later; the oldest may exceed it so there is always
    /// progress.
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
    /// Prompt tokens prefilled (once per request, not per sample), and for sessions the
    /// uncached tokens of each new turn.
    pub prefill_tokens: usize,
    /// Tokens produced by decode steps.
    pub decode_tokens: usize,
    /// Tokens recomputed after preemption (a preempted sample recomputes its prompt too:
    /// it no longer shares the prompt's blocks).
    pub recomputed_tokens: usize,
    /// Sequences preempted (caches dropped).
    pub preemptions: usize,
    /// Seconds spent in prefill (prompts, session turns and recomputation).
    pub prefill_secs: f64,
    /// Seconds spent in decode.
    pub decode_secs: f64,
}

/// The generation engine over a model.
pub struct Engine<'m, M: Lm> {
    model: &'m M,
    config: EngineConfig,
    progress: bool,
}

/// Per-request outcome: `n` completions, or the request's error (other
/// requests are unaffected).
pub type RequestResult = Result<Vec<Completion>>;

impl<'m, M: Lm> Engine<'m, M> {
    /// An engine over `model` (progress display off).
    pub fn new(model: &'m M, config: EngineConfig) -> Self {
        Self {
            model,
            config,
            progress: false,
        }
    }

    /// Shows a progress bar (generated tokens, prefill and decode tokens/s) on stderr
    /// during [`Engine::generate`] when `on` and stderr is a terminal. Off by default, so
    /// library callers stay quiet. (A builder rather than an [`EngineConfig`] field so
    /// existing `EngineConfig { .. }` literals keep compiling.)
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// The model.
    pub fn model(&self) -> &'m M {
        self.model
    }

    /// The limits.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// A multi-turn session store over this engine's model (its own KV pool and budget).
    pub fn sessions(&self) -> Sessions<'m, M> {
        Sessions::new(self.model, self.config)
    }

    /// Checks a request against the model (parameters, prompt ids).
    pub(crate) fn check_request(model: &M, r: usize, req: &Request) -> Result<()> {
        let vocab = model.vocab_size();
        req.params
            .validate(r, req.prompt_ids.len(), model.max_positions())?;
        if let Some(pos) = req.prompt_ids.iter().position(|&t| t as usize >= vocab) {
            return Err(RolloutError::InvalidRequest {
                request: r,
                field: "prompt",
                reason: format!(
                    "token id {} at position {pos} is outside the vocabulary of {vocab}",
                    req.prompt_ids[pos]
                ),
            });
        }
        Ok(())
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
        let mut core = Core::new(m, self.config.max_batch, self.config.max_cached_tokens);
        let bs = core.block_size;
        let mut results: Vec<Option<RequestResult>> = (0..requests.len()).map(|_| None).collect();
        let mut done: Vec<Vec<(usize, Completion)>> = vec![Vec::new(); requests.len()];
        let mut waiting: std::collections::VecDeque<usize> = (0..requests.len()).collect();
        let total: usize = requests
            .iter()
            .map(|r| r.params.n.saturating_mul(r.params.max_new_tokens))
            .fold(0, usize::saturating_add);
        let mut progress = if self.progress {
            Progress::new(true, total as u64)
        } else {
            Progress::off()
        };

        loop {
            // Admit waiting requests while slots and blocks allow (always one when idle);
            // preempted samples go first.
            let mut batch: Vec<usize> = Vec::new();
            let (mut slots, mut blocks, mut tokens) = (core.running(), core.bm.available(), 0);
            while !core.has_preempted()
                && let Some(&r) = waiting.front()
            {
                let req = &requests[r];
                if let Err(e) = Self::check_request(m, r, req) {
                    waiting.pop_front();
                    progress.skip(req.params.n.saturating_mul(req.params.max_new_tokens));
                    results[r] = Some(Err(e));
                    continue;
                }
                let (n, plen) = (req.params.n, req.prompt_ids.len());
                let need = plen.div_ceil(bs) + n;
                let idle = core.active() == 0 && batch.is_empty();
                if !idle
                    && (slots + n > self.config.max_batch
                        || need > blocks
                        || tokens + plen > PREFILL_TOKENS)
                {
                    break;
                }
                waiting.pop_front();
                batch.push(r);
                slots += n;
                blocks = blocks.saturating_sub(need);
                tokens += plen;
            }
            if !batch.is_empty() {
                let prompts: Vec<&[u32]> = batch
                    .iter()
                    .map(|&r| requests[r].prompt_ids.as_slice())
                    .collect();
                let roots = core.prefill_roots(&prompts, stats);
                for (&r, root) in batch.iter().zip(roots) {
                    let p = &requests[r].params;
                    let (mut table, logits) = match root {
                        Ok(x) => x,
                        Err(message) => {
                            progress.skip(p.n.saturating_mul(p.max_new_tokens));
                            results[r] = Some(Err(RolloutError::Model {
                                request: r,
                                message,
                            }));
                            continue;
                        }
                    };
                    for j in 0..p.n {
                        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
                        rng.set_stream(j as u64);
                        let mut seq =
                            Seq::new((r, j), requests[r].prompt_ids.clone(), p.clone(), rng);
                        seq.start_turn();
                        seq.blocks = core.bm.fork(&table);
                        seq.cached = seq.tokens.len();
                        seq.logits = Some(logits.clone());
                        core.insert(seq);
                    }
                    core.bm.release_all(&mut table);
                }
            }
            if core.active() == 0 {
                if waiting.is_empty() {
                    break;
                }
                continue;
            }

            let (finished, failed) = core.step(detok, stats, &mut progress);
            for id in finished {
                if let Some(s) = core.remove(id)
                    && let Some(c) = s.done
                {
                    progress.skip(s.params.max_new_tokens.saturating_sub(c.ids.len()));
                    done[s.tag.0].push((s.tag.1, c));
                }
            }
            for (id, message) in failed {
                let Some(r) = core.get(id).map(|s| s.tag.0) else {
                    continue;
                };
                // Drop every sample of the failed request.
                let ids: Vec<usize> = (0..core.seqs.len())
                    .filter(|&i| core.get(i).is_some_and(|s| s.tag.0 == r))
                    .collect();
                for i in ids {
                    core.remove(i);
                }
                results[r] = Some(Err(RolloutError::Model {
                    request: r,
                    message,
                }));
            }
        }
        progress.finish();

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
