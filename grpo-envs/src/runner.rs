//! The episode runner: a multi-turn state machine generic over two small traits
//! (a [`ChatRenderer`] that turns messages into token ids, and a [`TurnSampler`]
//! that samples one policy turn), so this crate depends on no model or engine.
//! A batch of episodes is stepped together: each round sends one batched sampler
//! call for every live episode, then steps each env.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::env::{EndSignal, Env, EpisodeView, FinishReason, RewardBreakdown, TaskSpec, Turn};
use crate::error::{EnvError, Result};
use crate::message::{Message, ToolSpec};
use crate::seed::{chain_key, derive_seed};
use crate::tool::ToolCallRecord;
use crate::transcript::{Owner, Segment, TrainingRow, Transcript, ViewKind};

/// A rendered piece of a continuation: ids with their owner (`Scaffold`, `Env` or `Tool`).
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Owner of the ids.
    pub owner: Owner,
    /// Token ids.
    pub ids: Vec<u32>,
    /// Debug text.
    pub text: String,
}

/// Renders messages to token ids (implemented over a tokenizer + chat template by
/// the trainer; by [`crate::testing::ByteRenderer`] in tests).
pub trait ChatRenderer {
    /// Template name and version (recorded in transcripts).
    fn name(&self) -> String;
    /// Messages + tools → ids ending with the generation prompt.
    fn render_prompt(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Vec<u32>>;
    /// The delta after a policy turn that ended with `finish`: the assistant-turn
    /// close if the model did not emit it, the observation messages with role
    /// scaffolding, and the next generation prompt. Content ids must be owned
    /// `Env`/`Tool`, template ids `Scaffold`.
    fn render_continuation(
        &self,
        finish: &FinishReason,
        observation: &[Message],
    ) -> Result<Vec<Piece>>;
    /// Raw observation text → ids with no role scaffolding (Search-R1 inline style).
    fn render_inline(&self, text: &str) -> Result<Vec<u32>>;
    /// Bytes of one token id (so parser byte spans map to token spans exactly).
    fn decode_piece(&self, id: u32) -> Vec<u8>;
}

/// One request to the sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Session (episode) id: the engine may keep this sequence's KV cache.
    pub session: u64,
    /// Ids to append since this session's last call.
    pub append: Vec<u32>,
    /// Length of the session's sequence before `append` (exact-prefix check).
    pub prefix_len: usize,
    /// Max new tokens for this turn.
    pub max_new_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Per-request sampling seed.
    pub seed: u64,
}

/// The sampler's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledTurn {
    /// Sampled ids, exactly as sampled.
    pub ids: Vec<u32>,
    /// Behaviour log-probs, one per id.
    pub logprobs: Vec<f32>,
    /// Why sampling stopped.
    pub finish: FinishReason,
}

/// Samples policy turns (implemented over the engine by the trainer; by
/// [`crate::testing::ScriptedSampler`] in tests).
pub trait TurnSampler {
    /// One result per request, in order.
    fn sample(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampledTurn>>;
    /// The session finished; free its state.
    fn release(&mut self, session: u64) {
        let _ = session;
    }
}

/// How observations are inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationStyle {
    /// Env messages rendered as chat turns with template scaffolding.
    #[default]
    Chat,
    /// Observation text appended inside the assistant message (Search-R1).
    Inline,
}

/// Run-level limits and options (env defaults are tightened by these).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Cap on policy turns (min with the env's).
    pub max_turns: Option<usize>,
    /// Cap on sampled tokens per turn (min with the env's).
    pub max_tokens_per_turn: Option<usize>,
    /// Cap on tokens per observation piece (min with the env's).
    pub max_observation_tokens: Option<usize>,
    /// Budget of all ids after the prompt (policy + env + scaffold).
    pub max_response_tokens: usize,
    /// Model context limit (prompt + response).
    pub max_context_tokens: usize,
    /// Chat or inline observations.
    pub style: ObservationStyle,
    /// Base seed of per-request sampling seeds.
    pub sampling_seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            max_turns: None,
            max_tokens_per_turn: None,
            max_observation_tokens: None,
            max_response_tokens: 8192,
            max_context_tokens: 16384,
            style: ObservationStyle::Chat,
            sampling_seed: 0,
        }
    }
}

/// Why an episode ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EndReason {
    /// MDP terminal state reported by the env.
    Terminated {
        /// Whether the task was solved.
        success: bool,
    },
    /// The env truncated the episode.
    EnvTruncated {
        /// The env's reason.
        reason: String,
    },
    /// The turn limit was reached.
    TurnLimit,
    /// The response token budget is spent.
    PolicyTokenBudget,
    /// The next turn would not fit in the context.
    ContextLimit,
    /// The env or renderer failed; the message says how.
    EnvError {
        /// What failed.
        message: String,
    },
}

impl EndReason {
    /// Whether this is an MDP terminal (only `Terminated`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, EndReason::Terminated { .. })
    }
    /// Whether the episode succeeded.
    pub fn success(&self) -> bool {
        matches!(self, EndReason::Terminated { success: true })
    }
}

/// What the runner records per policy turn (for GiGPO, SALT, LLDS, OTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Turn index.
    pub turn: usize,
    /// Context index.
    pub context: usize,
    /// Policy token range in the whole sequence (interleaved row: subtract `response_offset`).
    pub span: Range<usize>,
    /// Token range of the parsed action, if any.
    pub action_span: Option<Range<usize>>,
    /// Token range of the final answer, if this turn holds it.
    pub answer_span: Option<Range<usize>>,
    /// State key before the step.
    pub state_key_before: Option<String>,
    /// Canonical action key.
    pub action_key: Option<String>,
    /// State key after the step.
    pub state_key_after: Option<String>,
    /// Stable hash chaining every earlier `(state_key, action_key)` pair (SALT node identity).
    pub prefix_key: u64,
    /// The env's step reward.
    pub reward: RewardBreakdown,
    /// Whether the action was valid.
    pub action_valid: bool,
    /// Tool calls made in this step.
    pub tool_calls: Vec<ToolCallRecord>,
    /// `None` while the episode continues; the end reason on the last turn.
    pub end: Option<EndReason>,
    /// How the turn's sampling ended.
    pub finish: FinishReason,
    /// Number of policy tokens in the turn.
    pub policy_tokens: usize,
}

/// Counts over an episode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeCounts {
    /// Policy turns.
    pub turns: usize,
    /// Tool calls (all, including failed).
    pub tool_calls: usize,
    /// Invalid actions.
    pub invalid_actions: usize,
    /// Policy ids.
    pub policy_tokens: usize,
    /// Env/tool content ids.
    pub env_tokens: usize,
    /// Observation pieces cut to the observation cap.
    pub truncated_observations: usize,
}

/// A finished episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Episode (session) id.
    pub id: u64,
    /// Env name.
    pub env: String,
    /// GRPO group index.
    pub group: usize,
    /// Sample index within the group.
    pub sample: usize,
    /// Seat (multi-agent; 0 otherwise).
    pub seat: usize,
    /// The task it was reset with.
    pub task: TaskSpec,
    /// Token segments.
    pub transcript: Transcript,
    /// One record per policy turn.
    pub steps: Vec<StepRecord>,
    /// The outcome reward from `final_reward`.
    pub outcome: RewardBreakdown,
    /// Sum of the step rewards.
    pub step_rewards: RewardBreakdown,
    /// Why it ended.
    pub end: EndReason,
    /// Counts.
    pub counts: EpisodeCounts,
    /// Policy text of each turn.
    pub turn_texts: Vec<String>,
    /// Summed env metrics.
    pub metrics: BTreeMap<String, f64>,
}

impl Episode {
    /// Our episode return: outcome total + sum of step totals.
    pub fn total_reward(&self) -> f64 {
        self.outcome.total + self.step_rewards.total
    }
    /// The anchor's episode return.
    pub fn anchor_reward(&self) -> f64 {
        self.outcome.anchor + self.step_rewards.anchor
    }
    /// Training rows of a view, labelled with group, sample and seat.
    pub fn rows(&self, kind: ViewKind) -> Result<Vec<TrainingRow>> {
        let mut rows = self.transcript.view(kind)?;
        for r in &mut rows {
            r.group = self.group;
            r.sample = self.sample;
            r.seat = self.seat;
        }
        Ok(rows)
    }
    /// Per-position rewards over the whole sequence: each step's reward on the last
    /// policy id of its turn, the outcome on the last policy id of the episode;
    /// never on a prompt, env, tool or scaffold position.
    pub fn token_rewards(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.transcript.len()];
        for s in &self.steps {
            if let Some(p) = s
                .span
                .end
                .checked_sub(1)
                .and_then(|e| self.transcript.last_policy_at_or_before(e))
            {
                out[p] += s.reward.total;
            }
        }
        if let Some(p) = self
            .transcript
            .len()
            .checked_sub(1)
            .and_then(|e| self.transcript.last_policy_at_or_before(e))
        {
            out[p] += self.outcome.total;
        }
        out
    }
}

/// One episode to run.
pub struct EpisodeSpec {
    /// The env instance (fresh; the runner resets it).
    pub env: Box<dyn Env>,
    /// Task to reset with.
    pub task: TaskSpec,
    /// GRPO group index.
    pub group: usize,
    /// Sample index within the group.
    pub sample: usize,
}

impl std::fmt::Debug for EpisodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeSpec")
            .field("env", &self.env.name())
            .field("task", &self.task)
            .field("group", &self.group)
            .field("sample", &self.sample)
            .finish()
    }
}

struct Live {
    id: u64,
    spec: EpisodeSpec,
    transcript: Transcript,
    pending: Vec<u32>,
    seq_len: usize,
    prompt_len: usize,
    turn: usize,
    steps: Vec<StepRecord>,
    step_rewards: RewardBreakdown,
    end: Option<EndReason>,
    state_key: Option<String>,
    prefix_key: u64,
    stop: Vec<String>,
    max_turns: usize,
    per_turn: usize,
    max_obs: usize,
    counts: EpisodeCounts,
    texts: Vec<String>,
    tool_calls: Vec<ToolCallRecord>,
    metrics: BTreeMap<String, f64>,
}

/// Runs episodes against a renderer and a sampler.
#[derive(Debug, Clone, Default)]
pub struct EpisodeRunner {
    /// Limits and options.
    pub config: RunConfig,
}

impl EpisodeRunner {
    /// A runner with this config.
    pub fn new(config: RunConfig) -> Self {
        EpisodeRunner { config }
    }

    /// Runs one episode.
    pub fn run_one(
        &self,
        spec: EpisodeSpec,
        renderer: &dyn ChatRenderer,
        sampler: &mut dyn TurnSampler,
        episode_id: u64,
    ) -> Result<Episode> {
        let mut v = self.run_batch(vec![spec], renderer, sampler, episode_id)?;
        v.pop().ok_or_else(|| EnvError::Runner {
            episode: episode_id,
            reason: "no episode produced".into(),
        })
    }

    /// Runs a batch of episodes to completion; episode ids are
    /// `first_id, first_id + 1, …` in input order, and results keep that order.
    /// Env failures end only their episode (`EndReason::EnvError`); sampler
    /// failures and broken invariants are errors for the batch.
    pub fn run_batch(
        &self,
        specs: Vec<EpisodeSpec>,
        renderer: &dyn ChatRenderer,
        sampler: &mut dyn TurnSampler,
        first_id: u64,
    ) -> Result<Vec<Episode>> {
        let cfg = self.config;
        let mut live: Vec<Live> = Vec::with_capacity(specs.len());
        for (k, mut spec) in specs.into_iter().enumerate() {
            let id = first_id + k as u64;
            let mut transcript = Transcript::new(renderer.name());
            let lim = spec.env.limits();
            let mut end = None;
            let (mut seq_len, mut pending, mut state_key, mut stop) =
                (0, Vec::new(), None, Vec::new());
            match spec.env.reset(&spec.task) {
                Ok(reset) => match renderer.render_prompt(&reset.messages, &reset.tools) {
                    Ok(ids) => {
                        let text = reset
                            .messages
                            .iter()
                            .map(|m| m.content.as_str())
                            .collect::<Vec<_>>()
                            .join("\n");
                        seq_len = ids.len();
                        pending = ids.clone();
                        transcript.push(Segment::new(Owner::Prompt, 0, ids, text));
                        state_key = reset.state_key;
                        stop = reset.stop;
                    }
                    Err(e) => {
                        end = Some(EndReason::EnvError {
                            message: format!("rendering the prompt failed: {e}"),
                        })
                    }
                },
                Err(e) => {
                    end = Some(EndReason::EnvError {
                        message: format!("reset failed: {e}"),
                    })
                }
            }
            let max_turns = cfg
                .max_turns
                .map_or(lim.max_turns, |m| m.min(lim.max_turns));
            if max_turns == 0 && end.is_none() {
                end = Some(EndReason::TurnLimit);
            }
            let l = Live {
                id,
                transcript,
                pending,
                seq_len,
                prompt_len: seq_len,
                turn: 0,
                steps: Vec::new(),
                step_rewards: RewardBreakdown::zero(),
                end,
                state_key,
                prefix_key: 0,
                stop,
                max_turns,
                per_turn: cfg
                    .max_tokens_per_turn
                    .map_or(lim.max_tokens_per_turn, |m| m.min(lim.max_tokens_per_turn)),
                max_obs: cfg
                    .max_observation_tokens
                    .map_or(lim.max_observation_tokens, |m| {
                        m.min(lim.max_observation_tokens)
                    }),
                counts: EpisodeCounts::default(),
                texts: Vec::new(),
                tool_calls: Vec::new(),
                metrics: BTreeMap::new(),
                spec,
            };
            live.push(l);
        }

        loop {
            // Build requests for live episodes.
            let mut reqs = Vec::new();
            let mut idx = Vec::new();
            for (i, l) in live.iter_mut().enumerate() {
                if l.end.is_some() {
                    continue;
                }
                if l.transcript.len() != l.seq_len {
                    return Err(EnvError::Runner {
                        episode: l.id,
                        reason: format!(
                            "exact-prefix invariant broken: transcript has {} ids, session has {}",
                            l.transcript.len(),
                            l.seq_len
                        ),
                    });
                }
                let used = l.seq_len - l.prompt_len;
                let budget = cfg.max_response_tokens.saturating_sub(used);
                let ctx = cfg.max_context_tokens.saturating_sub(l.seq_len);
                if budget == 0 {
                    l.end = Some(EndReason::PolicyTokenBudget);
                    continue;
                }
                if ctx == 0 {
                    l.end = Some(EndReason::ContextLimit);
                    continue;
                }
                let max_new = l.per_turn.min(budget).min(ctx);
                if max_new == 0 {
                    l.end = Some(EndReason::PolicyTokenBudget);
                    continue;
                }
                let append = std::mem::take(&mut l.pending);
                reqs.push(SampleRequest {
                    session: l.id,
                    prefix_len: l.seq_len - append.len(),
                    append,
                    max_new_tokens: max_new,
                    stop: l.stop.clone(),
                    seed: derive_seed(
                        cfg.sampling_seed,
                        "sample",
                        &[l.spec.task.seed, l.spec.sample as u64, l.turn as u64],
                    ),
                });
                idx.push(i);
            }
            if reqs.is_empty() {
                break;
            }
            let results = sampler.sample(&reqs)?;
            if results.len() != reqs.len() {
                return Err(EnvError::Runner {
                    episode: reqs[0].session,
                    reason: format!(
                        "sampler returned {} results for {} requests",
                        results.len(),
                        reqs.len()
                    ),
                });
            }
            for ((i, res), req) in idx.into_iter().zip(results).zip(&reqs) {
                let l = &mut live[i];
                if res.ids.len() != res.logprobs.len() {
                    return Err(EnvError::Runner {
                        episode: l.id,
                        reason: format!(
                            "sampler returned {} ids but {} log-probs",
                            res.ids.len(),
                            res.logprobs.len()
                        ),
                    });
                }
                if res.ids.len() > req.max_new_tokens {
                    return Err(EnvError::Runner {
                        episode: l.id,
                        reason: format!(
                            "sampler returned {} ids, more than max_new_tokens {}",
                            res.ids.len(),
                            req.max_new_tokens
                        ),
                    });
                }
                step_live(l, res, renderer, &cfg);
            }
        }

        let mut out = Vec::with_capacity(live.len());
        for mut l in live {
            sampler.release(l.id);
            let end = l.end.clone().unwrap_or(EndReason::TurnLimit);
            let view = EpisodeView {
                turns: &l.texts,
                tool_calls: &l.tool_calls,
                ended_by_limit: !matches!(end, EndReason::Terminated { .. }),
            };
            let outcome = l.spec.env.final_reward(&view);
            if let Some((component, value)) = outcome.non_finite() {
                return Err(EnvError::NonFiniteReward {
                    env: l.spec.env.name().to_string(),
                    component,
                    value,
                });
            }
            l.spec.env.close();
            if let Some(last) = l.steps.last_mut() {
                last.end = Some(end.clone());
            }
            l.counts.policy_tokens = l.transcript.policy_tokens();
            out.push(Episode {
                id: l.id,
                env: l.spec.env.name().to_string(),
                group: l.spec.group,
                sample: l.spec.sample,
                seat: 0,
                task: l.spec.task,
                transcript: l.transcript,
                steps: l.steps,
                outcome,
                step_rewards: l.step_rewards,
                end,
                counts: l.counts,
                turn_texts: l.texts,
                metrics: l.metrics,
            });
        }
        Ok(out)
    }
}

fn step_live(l: &mut Live, res: SampledTurn, renderer: &dyn ChatRenderer, cfg: &RunConfig) {
    let style = cfg.style;
    let mut bytes = Vec::new();
    let mut offsets = Vec::with_capacity(res.ids.len() + 1);
    for &id in &res.ids {
        offsets.push(bytes.len());
        bytes.extend_from_slice(&renderer.decode_piece(id));
    }
    offsets.push(bytes.len());
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let span_start = l.seq_len;
    let n = res.ids.len();
    l.seq_len += n;
    l.counts.turns += 1;
    let turn = l.turn;
    l.transcript.push(Segment {
        owner: Owner::Policy,
        turn,
        context: 0,
        ids: res.ids,
        logprobs: res.logprobs,
        finish: Some(res.finish.clone()),
        byte_offsets: offsets,
        text: text.clone(),
    });
    let outcome = l.spec.env.step(&Turn {
        index: turn,
        text: &text,
        finish: &res.finish,
    });
    l.texts.push(text);
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            l.end = Some(EndReason::EnvError {
                message: e.to_string(),
            });
            l.steps.push(StepRecord {
                turn,
                context: 0,
                span: span_start..span_start + n,
                action_span: None,
                answer_span: None,
                state_key_before: l.state_key.clone(),
                action_key: None,
                state_key_after: None,
                prefix_key: l.prefix_key,
                reward: RewardBreakdown::zero(),
                action_valid: false,
                tool_calls: Vec::new(),
                end: None,
                finish: res.finish,
                policy_tokens: n,
            });
            return;
        }
    };
    if let Some((component, value)) = outcome.reward.non_finite() {
        l.end = Some(EndReason::EnvError {
            message: format!("non-finite reward `{component}` = {value}"),
        });
    }
    let map = |r: &Option<Range<usize>>| {
        r.clone()
            .and_then(|b| l.transcript.byte_span_to_tokens(turn, b))
    };
    let action_span = map(&outcome.action_span);
    let answer_span = map(&outcome.answer_span);
    if !outcome.action_valid {
        l.counts.invalid_actions += 1;
    }
    l.counts.tool_calls += outcome.tool_calls.len();
    l.tool_calls.extend(outcome.tool_calls.iter().cloned());
    for (k, v) in &outcome.metrics {
        *l.metrics.entry(k.clone()).or_insert(0.0) += v;
    }
    l.step_rewards.accumulate(&outcome.reward);
    let before = l.state_key.clone();
    let after = outcome.state_key.clone();
    l.prefix_key = chain_key(
        l.prefix_key,
        &format!(
            "{}\u{1f}{}",
            before.as_deref().unwrap_or(""),
            outcome.action_key.as_deref().unwrap_or("")
        ),
    );
    l.steps.push(StepRecord {
        turn,
        context: 0,
        span: span_start..span_start + n,
        action_span,
        answer_span,
        state_key_before: before,
        action_key: outcome.action_key.clone(),
        state_key_after: after.clone(),
        prefix_key: l.prefix_key,
        reward: outcome.reward.clone(),
        action_valid: outcome.action_valid,
        tool_calls: outcome.tool_calls.clone(),
        end: None,
        finish: res.finish.clone(),
        policy_tokens: n,
    });
    l.state_key = after;
    l.turn += 1;
    if l.end.is_some() {
        return;
    }
    match outcome.end_signal() {
        EndSignal::Terminated { success } => {
            l.end = Some(EndReason::Terminated { success });
            return;
        }
        EndSignal::Truncated { reason } => {
            l.end = Some(EndReason::EnvTruncated { reason });
            return;
        }
        EndSignal::Continue => {}
    }
    if l.turn >= l.max_turns {
        l.end = Some(EndReason::TurnLimit);
        return;
    }
    let pieces = match style {
        ObservationStyle::Chat => renderer.render_continuation(&res.finish, &outcome.observation),
        ObservationStyle::Inline => {
            let text: String = outcome
                .observation
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            renderer.render_inline(&text).map(|ids| {
                vec![Piece {
                    owner: Owner::Env,
                    ids,
                    text,
                }]
            })
        }
    };
    let pieces = match pieces {
        Ok(p) => p,
        Err(e) => {
            l.end = Some(EndReason::EnvError {
                message: format!("rendering the observation failed: {e}"),
            });
            return;
        }
    };
    let mut pieces = pieces;
    for p in &mut pieces {
        if matches!(p.owner, Owner::Env | Owner::Tool) && p.ids.len() > l.max_obs {
            p.ids.truncate(l.max_obs);
            l.counts.truncated_observations += 1;
        }
    }
    // The next turn needs at least one sampled id: end now rather than append an
    // observation that leaves no room (the row never exceeds the limits).
    let added: usize = pieces.iter().map(|p| p.ids.len()).sum();
    if l.seq_len + added >= cfg.max_context_tokens {
        l.end = Some(EndReason::ContextLimit);
        return;
    }
    if l.seq_len + added - l.prompt_len >= cfg.max_response_tokens {
        l.end = Some(EndReason::PolicyTokenBudget);
        return;
    }
    for mut p in pieces {
        if matches!(p.owner, Owner::Env | Owner::Tool) {
            l.counts.env_tokens += p.ids.len();
        }
        if p.owner == Owner::Policy {
            // A renderer must never claim policy ownership.
            p.owner = Owner::Scaffold;
        }
        l.seq_len += p.ids.len();
        l.pending.extend_from_slice(&p.ids);
        l.transcript
            .push(Segment::new(p.owner, turn, p.ids, p.text));
    }
}
