//! Multi-turn sessions for agent environments: a live sequence whose KV blocks persist
//! between turns, so environment tokens are appended and generation continues without
//! prefilling the transcript again.
//!
//! A session is opened with a prompt and sampling parameters (`n` must be 1; the seed's
//! stream 0 drives every turn). [`Sessions::generate`] runs one turn for each listed
//! session, all batched together; a turn ends like a completion (EOS, stop, `max_new_tokens`
//! per turn, or the context). [`Sessions::append`] adds environment tokens to the
//! transcript; the next turn prefills only what is not cached (the last sampled token and
//! the appended tokens). [`Sessions::close`] frees the blocks. When the block budget runs
//! out, idle sessions' caches are dropped first and recomputed at their next turn (then the
//! newest running turn, as in [`crate::Engine::generate`]). All sessions listed in one
//! [`Sessions::generate`] call run together (`max_batch` only limits resuming preempted
//! ones).
//!
//! ```
//! # use grpo_rollout::{Engine, EngineConfig, Lm, PagedSeq, SamplingParams};
//! # struct Count; // logits favour (last token + 1) mod 8
//! # impl Lm for Count {
//! #     type Pool = ();
//! #     fn vocab_size(&self) -> usize { 8 }
//! #     fn max_positions(&self) -> usize { 64 }
//! #     fn eos_token_ids(&self) -> Vec<u32> { vec![] }
//! #     fn new_pool(&self) {}
//! #     fn ensure_blocks(&self, _: &mut (), _: usize) {}
//! #     fn copy_block(&self, _: &mut (), _: u32, _: u32, _: usize) -> Result<(), String> { Ok(()) }
//! #     fn prefill(&self, _: &mut (), seqs: &[PagedSeq<'_>]) -> Result<Vec<f32>, String> {
//! #         Ok(seqs.iter().flat_map(|s| {
//! #             let next = (s.tokens[s.tokens.len() - 1] + 1) % 8;
//! #             (0..8).map(move |v| if v == next { 1.0 } else { 0.0 })
//! #         }).collect())
//! #     }
//! # }
//! let model = Count;
//! let engine = Engine::new(&model, EngineConfig::default());
//! let mut sessions = engine.sessions();
//! let s = sessions.open(vec![1, 2], SamplingParams::greedy(2))?;
//! assert_eq!(sessions.generate(&[s], None).remove(0)?.ids, vec![3, 4]);
//! sessions.append(s, &[6])?; // the environment answers
//! assert_eq!(sessions.generate(&[s], None).remove(0)?.ids, vec![7, 0]);
//! assert_eq!(sessions.close(s)?, vec![1, 2, 3, 4, 6, 7, 0]);
//! # Ok::<(), grpo_rollout::RolloutError>(())
//! ```

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::engine::{Completion, Detokenizer, Engine, EngineConfig, GenerateStats, Lm, Request};
use crate::error::{Result, RolloutError};
use crate::params::SamplingParams;
use crate::progress::Progress;
use crate::scheduler::{Core, Phase, Seq};

/// Handle of an open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub usize);

/// Open sessions over one KV pool (see the module doc).
pub struct Sessions<'m, M: Lm> {
    core: Core<'m, M>,
    /// Session index -> sequence slot in `core` (None once closed).
    slots: Vec<Option<usize>>,
    stats: GenerateStats,
}

impl<'m, M: Lm> Sessions<'m, M> {
    pub(crate) fn new(model: &'m M, config: EngineConfig) -> Self {
        Self {
            core: Core::new(model, config.max_batch, config.max_cached_tokens),
            slots: Vec::new(),
            stats: GenerateStats::default(),
        }
    }

    fn seq_id(&self, s: SessionId) -> Result<usize> {
        self.slots
            .get(s.0)
            .copied()
            .flatten()
            .ok_or(RolloutError::SessionClosed(s.0))
    }

    /// Opens a session with a prompt (prefilled at its first turn). Errors name the
    /// offending field; `params.n` must be 1.
    pub fn open(&mut self, prompt_ids: Vec<u32>, params: SamplingParams) -> Result<SessionId> {
        let index = self.slots.len();
        if params.n != 1 {
            return Err(RolloutError::InvalidRequest {
                request: index,
                field: "n",
                reason: format!(
                    "a session generates one sample per turn, got n = {}",
                    params.n
                ),
            });
        }
        let req = Request { prompt_ids, params };
        Engine::check_request(self.core.model, index, &req)?;
        let mut rng = ChaCha8Rng::seed_from_u64(req.params.seed);
        rng.set_stream(0);
        let id = self
            .core
            .insert(Seq::new((index, 0), req.prompt_ids, req.params, rng));
        self.slots.push(Some(id));
        Ok(SessionId(index))
    }

    /// Runs one turn of every listed session, batched together; each result is that
    /// session's turn (or its error; other sessions are unaffected).
    pub fn generate(
        &mut self,
        sessions: &[SessionId],
        detok: Option<&dyn Detokenizer>,
    ) -> Vec<Result<Completion>> {
        let ctx = self.core.ctx;
        let mut out: Vec<Option<Result<Completion>>> = sessions.iter().map(|_| None).collect();
        let mut live: Vec<(usize, usize)> = Vec::new(); // (position in `sessions`, seq id)
        for (k, &s) in sessions.iter().enumerate() {
            let id = match self.seq_id(s) {
                Ok(id) => id,
                Err(e) => {
                    out[k] = Some(Err(e));
                    continue;
                }
            };
            if live.iter().any(|&(_, other)| other == id) {
                out[k] = Some(Err(RolloutError::InvalidRequest {
                    request: s.0,
                    field: "session",
                    reason: "listed twice in one generate call".into(),
                }));
                continue;
            }
            let Some(seq) = self.core.get_mut(id) else {
                out[k] = Some(Err(RolloutError::SessionClosed(s.0)));
                continue;
            };
            if seq.tokens.len() >= ctx {
                out[k] = Some(Err(RolloutError::InvalidRequest {
                    request: s.0,
                    field: "session",
                    reason: format!(
                        "transcript of {} tokens fills the model's context of {ctx}",
                        seq.tokens.len()
                    ),
                }));
                continue;
            }
            seq.start_turn();
            live.push((k, id));
        }
        let mut progress = Progress::off();
        while self.core.active() > 0 {
            let (finished, failed) = self.core.step(detok, &mut self.stats, &mut progress);
            for id in finished {
                if let Some(&(k, _)) = live.iter().find(|&&(_, i)| i == id)
                    && let Some(c) = self.core.get_mut(id).and_then(|s| s.done.take())
                {
                    out[k] = Some(Ok(c));
                }
            }
            for (id, message) in failed {
                if let Some(s) = self.core.get_mut(id) {
                    s.phase = Phase::Idle;
                    s.logits = None;
                    let request = s.tag.0;
                    if let Some(&(k, _)) = live.iter().find(|&&(_, i)| i == id) {
                        out[k] = Some(Err(RolloutError::Model { request, message }));
                    }
                }
            }
        }
        out.into_iter()
            .zip(sessions)
            .map(|(r, s)| r.unwrap_or(Err(RolloutError::SessionClosed(s.0))))
            .collect()
    }

    /// Appends environment tokens to a session's transcript (they are prefilled, together
    /// with anything else uncached, at the next turn).
    pub fn append(&mut self, s: SessionId, tokens: &[u32]) -> Result<()> {
        let id = self.seq_id(s)?;
        let (vocab, ctx) = (self.core.vocab, self.core.ctx);
        let Some(seq) = self.core.get_mut(id) else {
            return Err(RolloutError::SessionClosed(s.0));
        };
        let bad = |reason: String| RolloutError::InvalidRequest {
            request: s.0,
            field: "append",
            reason,
        };
        if let Some(pos) = tokens.iter().position(|&t| t as usize >= vocab) {
            return Err(bad(format!(
                "token id {} at position {pos} is outside the vocabulary of {vocab}",
                tokens[pos]
            )));
        }
        if seq.tokens.len() + tokens.len() >= ctx {
            return Err(bad(format!(
                "{} + {} tokens leave no room in the model's context of {ctx}",
                seq.tokens.len(),
                tokens.len()
            )));
        }
        seq.tokens.extend_from_slice(tokens);
        Ok(())
    }

    /// The session's transcript: prompt, generated and appended tokens.
    pub fn transcript(&self, s: SessionId) -> Result<&[u32]> {
        let id = self.seq_id(s)?;
        self.core
            .get(id)
            .map(|q| q.tokens.as_slice())
            .ok_or(RolloutError::SessionClosed(s.0))
    }

    /// Transcript positions whose keys/values are cached.
    pub fn cached_len(&self, s: SessionId) -> Result<usize> {
        let id = self.seq_id(s)?;
        self.core
            .get(id)
            .map(|q| q.cached)
            .ok_or(RolloutError::SessionClosed(s.0))
    }

    /// Closes a session, frees its blocks and returns its transcript.
    pub fn close(&mut self, s: SessionId) -> Result<Vec<u32>> {
        let id = self.seq_id(s)?;
        self.slots[s.0] = None;
        self.core
            .remove(id)
            .map(|q| q.tokens)
            .ok_or(RolloutError::SessionClosed(s.0))
    }

    /// KV blocks held by open sessions.
    pub fn blocks_in_use(&self) -> usize {
        self.core.bm.used()
    }

    /// Counters over every turn so far.
    pub fn stats(&self) -> &GenerateStats {
        &self.stats
    }
}
