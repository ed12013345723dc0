//! The scheduler core shared by [`crate::Engine::generate`] and [`crate::Sessions`]: live
//! sequences over one paged KV pool, and [`Core::step`], one engine iteration.
//!
//! A sequence is a transcript (`tokens`), how much of it is cached (`cached`), its block
//! table and its sampling state. A running sequence always has uncached tokens (at least
//! the token it sampled last); one step:
//!
//! 1. samples a token for every running sequence that has fresh logits and checks its stop
//!    conditions (a finished turn is reported to the caller);
//! 2. resumes preempted sequences, oldest first, while blocks and batch slots allow;
//! 3. gives every running sequence, oldest first, the blocks its transcript needs, copying
//!    a shared block before writing into it; when the budget is spent, it preempts an idle
//!    session's cache, else the newest running sequence (its blocks are freed and it is
//!    recomputed from its transcript later; the oldest running sequence may exceed the
//!    budget, so there is always progress);
//! 4. runs the model: sequences with one uncached token in one batched decode step, the
//!    others (new session turns, recomputations) in one batched prefill.
//!
//! Prefill and decode are separate calls so a sequence's numbers never depend on which
//! other sequences share its batch (both model paths compute rows independently).

use rand_chacha::ChaCha8Rng;

use crate::Lm;
use crate::block::BlockManager;
use crate::engine::{Completion, Detokenizer, GenerateStats};
use crate::params::{LogprobMode, SamplingParams};
use crate::progress::Progress;
use crate::sampling::{SampleOut, sample_token, top_logprobs};
use crate::stop::{FinishReason, find_stop};
use grpo_model::kv::PagedSeq;

/// Most new tokens run through one batched prefill (bounds activation memory); a single
/// longer sequence still runs alone.
pub(crate) const PREFILL_TOKENS: usize = 4096;

/// Where a sequence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Generating a turn.
    Running,
    /// Generating a turn, but its cache was dropped; waits for blocks to be recomputed.
    Preempted,
    /// Between turns (a session); may hold blocks.
    Idle,
}

/// One live sequence.
pub(crate) struct Seq {
    /// The caller's label (request and sample index, or session id).
    pub tag: (usize, usize),
    /// Admission order; the newest running sequence is preempted first.
    pub order: u64,
    pub phase: Phase,
    /// Full transcript: prompt, generated and appended tokens.
    pub tokens: Vec<u32>,
    /// Tokens whose keys/values are in `blocks`.
    pub cached: usize,
    pub blocks: Vec<u32>,
    pub params: SamplingParams,
    pub rng: ChaCha8Rng,
    /// Logits predicting the token after `tokens` (when the last run produced them).
    pub logits: Option<Vec<f32>>,
    /// Index in `tokens` where the current turn's output starts.
    pub turn_start: usize,
    pub lp_raw: Vec<f32>,
    pub lp_proc: Vec<f32>,
    /// Per generated token of this turn, the most likely alternatives (when requested).
    pub lp_top: Vec<Vec<(u32, f32)>>,
    pub text_len_checked: usize,
    /// Uncached tokens are a recomputation (counted as such in the stats).
    pub recompute: bool,
    /// Set when the current turn ended: the finished completion.
    pub done: Option<Completion>,
    /// The next token drawn from `logits` ahead of the serial stop checks (see
    /// [`Core::draw_all`]).
    pub drawn: Option<SampleOut>,
}

impl Seq {
    pub(crate) fn new(
        tag: (usize, usize),
        tokens: Vec<u32>,
        params: SamplingParams,
        rng: ChaCha8Rng,
    ) -> Self {
        let turn_start = tokens.len();
        Seq {
            tag,
            order: 0,
            phase: Phase::Idle,
            tokens,
            cached: 0,
            blocks: Vec::new(),
            params,
            rng,
            logits: None,
            turn_start,
            lp_raw: Vec::new(),
            lp_proc: Vec::new(),
            lp_top: Vec::new(),
            text_len_checked: 0,
            recompute: false,
            done: None,
            drawn: None,
        }
    }

    /// Starts a new turn at the end of the transcript.
    pub(crate) fn start_turn(&mut self) {
        self.turn_start = self.tokens.len();
        self.lp_raw.clear();
        self.lp_proc.clear();
        self.lp_top.clear();
        self.text_len_checked = 0;
        self.done = None;
        self.phase = Phase::Running;
    }
}

/// Live sequences over one KV pool.
pub(crate) struct Core<'m, M: Lm> {
    pub model: &'m M,
    pub pool: M::Pool,
    pub bm: BlockManager,
    pub seqs: Vec<Option<Seq>>,
    free_slots: Vec<usize>,
    next_order: u64,
    pub max_batch: usize,
    pub block_size: usize,
    pub eos: Vec<u32>,
    pub vocab: usize,
    pub ctx: usize,
}

impl<'m, M: Lm> Core<'m, M> {
    pub(crate) fn new(model: &'m M, max_batch: usize, max_cached_tokens: usize) -> Self {
        let block_size = model.block_size().max(1);
        Core {
            model,
            pool: model.new_pool(),
            bm: BlockManager::new((max_cached_tokens / block_size).max(1)),
            seqs: Vec::new(),
            free_slots: Vec::new(),
            next_order: 0,
            max_batch: max_batch.max(1),
            block_size,
            eos: model.eos_token_ids(),
            vocab: model.vocab_size(),
            ctx: model.max_positions(),
        }
    }

    /// Adds a sequence and returns its slot.
    pub(crate) fn insert(&mut self, mut seq: Seq) -> usize {
        seq.order = self.next_order;
        self.next_order += 1;
        match self.free_slots.pop() {
            Some(i) => {
                self.seqs[i] = Some(seq);
                i
            }
            None => {
                self.seqs.push(Some(seq));
                self.seqs.len() - 1
            }
        }
    }

    /// Removes a sequence, freeing its blocks.
    pub(crate) fn remove(&mut self, id: usize) -> Option<Seq> {
        let mut s = self.seqs.get_mut(id)?.take()?;
        self.bm.release_all(&mut s.blocks);
        self.free_slots.push(id);
        Some(s)
    }

    pub(crate) fn get(&self, id: usize) -> Option<&Seq> {
        self.seqs.get(id)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: usize) -> Option<&mut Seq> {
        self.seqs.get_mut(id)?.as_mut()
    }

    /// Sequences in `phase`, oldest first.
    fn ids_in(&self, phase: Phase) -> Vec<usize> {
        let mut ids: Vec<usize> = self
            .seqs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.phase == phase))
            .map(|(i, _)| i)
            .collect();
        ids.sort_by_key(|&i| self.seqs[i].as_ref().map_or(0, |s| s.order));
        ids
    }

    /// Running or preempted sequences (those that still owe tokens this turn).
    pub(crate) fn active(&self) -> usize {
        self.seqs
            .iter()
            .flatten()
            .filter(|s| s.phase != Phase::Idle)
            .count()
    }

    pub(crate) fn running(&self) -> usize {
        self.seqs
            .iter()
            .flatten()
            .filter(|s| s.phase == Phase::Running)
            .count()
    }

    pub(crate) fn has_preempted(&self) -> bool {
        self.seqs
            .iter()
            .flatten()
            .any(|s| s.phase == Phase::Preempted)
    }

    /// Drops a sequence's cache (it will be recomputed from its transcript).
    fn preempt(&mut self, id: usize, stats: &mut GenerateStats) {
        if let Some(s) = self.seqs[id].as_mut() {
            self.bm.release_all(&mut s.blocks);
            s.cached = 0;
            s.logits = None;
            s.recompute = true;
            if s.phase == Phase::Running {
                s.phase = Phase::Preempted;
            }
            stats.preemptions += 1;
            tracing::debug!(seq = id, tokens = s.tokens.len(), "preempted");
        }
    }

    /// A block for sequence `id`, preempting others (idle caches first, then the newest
    /// running sequence) when the budget is spent. `None` when `id` itself was preempted.
    fn alloc_for(&mut self, id: usize, oldest: bool, stats: &mut GenerateStats) -> Option<u32> {
        loop {
            if let Some(b) = self.bm.alloc() {
                return Some(b);
            }
            if oldest {
                return Some(self.bm.alloc_over_budget());
            }
            let idle = self.ids_in(Phase::Idle).into_iter().rev().find(|&i| {
                // Not a turn that just ended (its caller still collects it).
                self.seqs[i]
                    .as_ref()
                    .is_some_and(|s| !s.blocks.is_empty() && s.done.is_none())
            });
            let victim = idle.or_else(|| self.ids_in(Phase::Running).last().copied())?;
            self.preempt(victim, stats);
            if victim == id {
                return None;
            }
        }
    }

    /// Gives running sequence `id` blocks for its whole transcript, copying a shared block
    /// before its first write. False when `id` was preempted instead.
    fn reserve(&mut self, id: usize, oldest: bool, stats: &mut GenerateStats) -> bool {
        let bs = self.block_size;
        let (cached, nblocks, need) = match self.get(id) {
            Some(s) => (s.cached, s.blocks.len(), s.tokens.len().div_ceil(bs)),
            None => return false,
        };
        // Copy on write: the block receiving position `cached` is partly filled and shared.
        if !cached.is_multiple_of(bs) && cached / bs < nblocks {
            let old = self.seqs[id].as_ref().map_or(0, |s| s.blocks[cached / bs]);
            if self.bm.is_shared(old) {
                let Some(new) = self.alloc_for(id, oldest, stats) else {
                    return false;
                };
                self.model.ensure_blocks(&mut self.pool, self.bm.total());
                // The pool was sized for `new`, so the copy cannot fail on range.
                let _ = self.model.copy_block(&mut self.pool, old, new, cached % bs);
                self.bm.release(old);
                if let Some(s) = self.seqs[id].as_mut() {
                    s.blocks[cached / bs] = new;
                }
            }
        }
        for _ in nblocks..need {
            let Some(b) = self.alloc_for(id, oldest, stats) else {
                return false;
            };
            match self.seqs[id].as_mut() {
                Some(s) => s.blocks.push(b),
                None => self.bm.release(b),
            }
        }
        true
    }

    /// Draws the next token of every running sequence that has logits, in parallel when
    /// the rows are large (the vocabulary-wide softmax dominates); each sequence uses only
    /// its own RNG, so the draws are the same serial or parallel, in any batch.
    fn draw_all(&mut self) {
        use rayon::prelude::*;
        let eos = &self.eos;
        let draw = |s: &mut Seq| {
            let Seq {
                phase,
                logits,
                params,
                rng,
                tokens,
                turn_start,
                drawn,
                ..
            } = s;
            if *phase != Phase::Running {
                return;
            }
            if let Some(logits) = logits {
                let produced = tokens.len() - *turn_start;
                let suppress_eos = !params.ignore_eos && produced < params.min_new_tokens;
                *drawn = Some(sample_token(logits, params, eos, suppress_eos, rng));
            }
        };
        let work: usize = self
            .seqs
            .iter()
            .flatten()
            .filter(|s| s.phase == Phase::Running)
            .filter_map(|s| s.logits.as_ref().map(Vec::len))
            .sum();
        if work >= 1 << 17 {
            self.seqs.par_iter_mut().flatten().for_each(draw);
        } else {
            self.seqs.iter_mut().flatten().for_each(draw);
        }
    }

    /// Samples the next token of a running sequence from its logits (or takes the token
    /// [`Core::draw_all`] drew) and checks the stop conditions; sets `done` when the turn
    /// ends.
    fn sample(&mut self, id: usize, detok: Option<&dyn Detokenizer>) -> usize {
        let (eos, ctx) = (&self.eos, self.ctx);
        let Some(s) = self.seqs[id].as_mut() else {
            return 0;
        };
        let Some(logits) = s.logits.take() else {
            return 0;
        };
        let p = &s.params;
        let SampleOut {
            token,
            logprob_raw,
            logprob_processed,
        } = match s.drawn.take() {
            Some(d) => d,
            None => {
                let produced = s.tokens.len() - s.turn_start;
                let suppress_eos = !p.ignore_eos && produced < p.min_new_tokens;
                sample_token(&logits, p, eos, suppress_eos, &mut s.rng)
            }
        };
        s.tokens.push(token);
        s.lp_raw.push(logprob_raw);
        s.lp_proc.push(logprob_processed);
        if p.top_logprobs > 0 {
            let mut top = top_logprobs(&logits, p.top_logprobs);
            // The sampled token reports the kernel's log-prob in both places; that moves
            // its value by a rounding error at most, so it moves a place at most rarely.
            if let Some(mut i) = top.iter().position(|e| e.0 == token) {
                top[i].1 = logprob_raw;
                while i > 0 && top[i].1 > top[i - 1].1 {
                    top.swap(i, i - 1);
                    i -= 1;
                }
                while i + 1 < top.len() && top[i].1 < top[i + 1].1 {
                    top.swap(i, i + 1);
                    i += 1;
                }
            }
            s.lp_top.push(top);
        }
        let ids = &s.tokens[s.turn_start..];
        let mut finish = None;
        // The decoded turn, once computed (it may legitimately be empty: a stop string at
        // the very start of the output cuts everything).
        let mut text: Option<String> = None;
        if !p.ignore_eos && eos.contains(&token) {
            finish = Some(FinishReason::Eos);
        } else if p.stop_token_ids.contains(&token) {
            finish = Some(FinishReason::Stop);
        } else if !p.stop.is_empty()
            && let Some(d) = detok
        {
            let mut t = d.decode(ids);
            if let Some(cut) = find_stop(&t, &p.stop, s.text_len_checked) {
                t.truncate(cut);
                finish = Some(FinishReason::Stop);
            } else {
                s.text_len_checked = t.len();
            }
            text = Some(t);
        }
        if finish.is_none() && (ids.len() >= p.max_new_tokens || s.tokens.len() >= ctx) {
            finish = Some(FinishReason::Length);
        }
        if let Some(reason) = finish {
            let text = match (text, detok) {
                (Some(t), _) => t,
                (None, Some(d)) => d.decode(ids),
                (None, None) => String::new(),
            };
            let logprobs = match p.logprob_mode {
                LogprobMode::Raw => s.lp_raw.clone(),
                LogprobMode::Processed => s.lp_proc.clone(),
            };
            s.done = Some(Completion {
                ids: ids.to_vec(),
                text,
                logprobs,
                logprobs_raw: std::mem::take(&mut s.lp_raw),
                logprobs_processed: std::mem::take(&mut s.lp_proc),
                top_logprobs: std::mem::take(&mut s.lp_top),
                finish_reason: reason,
            });
            s.phase = Phase::Idle;
        }
        1
    }

    /// One engine iteration (see the module doc). Returns the sequences whose turn ended
    /// and the sequences that failed with a model error (with the message); both are left
    /// in place for the caller to collect.
    pub(crate) fn step(
        &mut self,
        detok: Option<&dyn Detokenizer>,
        stats: &mut GenerateStats,
        progress: &mut Progress,
    ) -> (Vec<usize>, Vec<(usize, String)>) {
        // 1. Sample.
        self.draw_all();
        let mut finished = Vec::new();
        let mut produced = 0;
        for id in self.ids_in(Phase::Running) {
            produced += self.sample(id, detok);
            if self.get(id).is_some_and(|s| s.done.is_some()) {
                finished.push(id);
            }
        }
        progress.produced(produced);

        // 2. Resume preempted sequences while blocks and slots allow.
        let bs = self.block_size;
        let mut running = self.running();
        for id in self.ids_in(Phase::Preempted) {
            let need = self.get(id).map_or(0, |s| s.tokens.len().div_ceil(bs));
            if running > 0 && (running >= self.max_batch || self.bm.available() < need + 1) {
                break;
            }
            if let Some(s) = self.get_mut(id) {
                s.phase = Phase::Running;
                running += 1;
            }
        }

        // 3. Blocks for every running sequence, oldest first.
        let ids = self.ids_in(Phase::Running);
        for (k, &id) in ids.iter().enumerate() {
            if self.get(id).is_some_and(|s| s.phase == Phase::Running) {
                self.reserve(id, k == 0, stats);
            }
        }
        self.model.ensure_blocks(&mut self.pool, self.bm.total());

        // 4. Run: one batched prefill, one batched decode step.
        let ids = self.ids_in(Phase::Running);
        let (mut pre, mut dec) = (Vec::new(), Vec::new());
        let mut pre_tokens = 0;
        for id in ids {
            let Some(s) = self.get(id) else { continue };
            let new = s.tokens.len() - s.cached;
            if s.logits.is_some() || new == 0 {
                continue;
            }
            if new == 1 {
                dec.push(id);
            } else if pre.is_empty() || pre_tokens + new <= PREFILL_TOKENS {
                pre_tokens += new;
                pre.push(id);
            }
        }
        let mut failed = Vec::new();
        if !pre.is_empty() {
            let t0 = std::time::Instant::now();
            failed.extend(self.run(&pre, true, stats));
            stats.prefill_secs += t0.elapsed().as_secs_f64();
        }
        if !dec.is_empty() {
            let t0 = std::time::Instant::now();
            failed.extend(self.run(&dec, false, stats));
            stats.decode_secs += t0.elapsed().as_secs_f64();
        }
        progress.update(stats);
        (finished, failed)
    }

    /// Runs the uncached tokens of `ids` (prefill or one decode step) and stores logits.
    fn run(
        &mut self,
        ids: &[usize],
        prefill: bool,
        stats: &mut GenerateStats,
    ) -> Vec<(usize, String)> {
        let vocab = self.vocab;
        let result = {
            let seqs: Vec<PagedSeq<'_>> = ids
                .iter()
                .filter_map(|&id| self.seqs[id].as_ref())
                .map(|s| PagedSeq {
                    blocks: &s.blocks,
                    pos0: s.cached,
                    tokens: &s.tokens[s.cached..],
                })
                .collect();
            let out = if prefill {
                self.model.prefill(&mut self.pool, &seqs)
            } else {
                self.model.decode(&mut self.pool, &seqs)
            };
            out.and_then(|l| {
                if l.len() == seqs.len() * vocab {
                    Ok(l)
                } else {
                    Err(format!(
                        "model returned {} logits for {} rows of vocab {vocab}",
                        l.len(),
                        seqs.len()
                    ))
                }
            })
        };
        match result {
            Ok(logits) => {
                for (i, &id) in ids.iter().enumerate() {
                    if let Some(s) = self.seqs[id].as_mut() {
                        let new = s.tokens.len() - s.cached;
                        if !prefill {
                            stats.decode_tokens += new;
                        } else if s.recompute {
                            stats.recomputed_tokens += new;
                        } else {
                            stats.prefill_tokens += new;
                        }
                        s.recompute = false;
                        s.cached = s.tokens.len();
                        s.logits = Some(logits[i * vocab..(i + 1) * vocab].to_vec());
                    }
                }
                Vec::new()
            }
            // A batched prefill failed: run each alone so only the culprits fail.
            Err(_) if prefill && ids.len() > 1 => ids
                .iter()
                .flat_map(|&id| self.run(&[id], true, stats))
                .collect(),
            Err(e) => ids.iter().map(|&id| (id, e.clone())).collect(),
        }
    }

    /// Prefills the prompts of new requests together (blocks come from the budget, or past
    /// it when nothing else is live), returning per prompt its block table and last
    /// logits, or the model's error.
    pub(crate) fn prefill_roots(
        &mut self,
        prompts: &[&[u32]],
        stats: &mut GenerateStats,
    ) -> Vec<Result<(Vec<u32>, Vec<f32>), String>> {
        let bs = self.block_size;
        let tables: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                (0..p.len().div_ceil(bs))
                    .map(|_| self.bm.alloc_over_budget())
                    .collect()
            })
            .collect();
        self.model.ensure_blocks(&mut self.pool, self.bm.total());
        let t0 = std::time::Instant::now();
        let seqs: Vec<PagedSeq<'_>> = prompts
            .iter()
            .zip(&tables)
            .map(|(p, t)| PagedSeq {
                blocks: t,
                pos0: 0,
                tokens: p,
            })
            .collect();
        let vocab = self.vocab;
        let batched = self.model.prefill(&mut self.pool, &seqs).and_then(|l| {
            if l.len() == seqs.len() * vocab {
                Ok(l)
            } else {
                Err(format!(
                    "model returned {} logits for {} prompts of vocab {vocab}",
                    l.len(),
                    seqs.len()
                ))
            }
        });
        let rows: Vec<Result<Vec<f32>, String>> = match batched {
            Ok(l) => l.chunks(vocab).map(|r| Ok(r.to_vec())).collect(),
            Err(e) if seqs.len() == 1 => vec![Err(e)],
            // Find the failing prompts by running each alone.
            Err(_) => seqs
                .iter()
                .map(|s| self.model.prefill(&mut self.pool, std::slice::from_ref(s)))
                .collect(),
        };
        stats.prefill_secs += t0.elapsed().as_secs_f64();
        let mut out = Vec::with_capacity(prompts.len());
        for ((mut t, r), p) in tables.into_iter().zip(rows).zip(prompts) {
            match r {
                Ok(l) => {
                    stats.prefill_tokens += p.len();
                    out.push(Ok((t, l)));
                }
                Err(e) => {
                    self.bm.release_all(&mut t);
                    out.push(Err(e));
                }
            }
        }
        out
    }
}
