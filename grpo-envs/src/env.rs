//! The `Env` trait (text level: messages in, messages out) and its types:
//! resets, step outcomes, reward breakdowns, end signals and limits.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::dataset::TaskRecord;
use crate::error::Result;
use crate::message::{Message, ToolSpec};
use crate::tool::ToolCallRecord;

/// What an episode is instantiated from: the instance seed (shared by the G
/// members of a GRPO group) and, for dataset-backed envs, a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Instance seed: the instance is a pure function of (env config, seed, record).
    pub seed: u64,
    /// Seed of the per-sample noise stream (slips, opponent moves); defaults to `seed`.
    #[serde(default)]
    pub noise_seed: Option<u64>,
    /// Dataset record for dataset-backed envs.
    #[serde(default)]
    pub record: Option<TaskRecord>,
}

impl TaskSpec {
    /// A task with only an instance seed.
    pub fn seed(seed: u64) -> Self {
        TaskSpec {
            seed,
            noise_seed: None,
            record: None,
        }
    }
    /// The noise seed (explicit or derived from the instance seed).
    pub fn noise(&self) -> u64 {
        self.noise_seed
            .unwrap_or_else(|| crate::seed::derive_seed(self.seed, "noise", &[]))
    }
}

/// A reward with named components. `total` is our reward (the sum of the
/// components); `anchor` is the reward the anchor implementation gives the same
/// behaviour (e.g. TinyZero's 0/0.1/1 for Countdown), for parity runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardBreakdown {
    /// Our reward.
    pub total: f64,
    /// The anchor's reward for the same behaviour.
    pub anchor: f64,
    /// Named components of `total` (e.g. `success`, `format`, `invalid_action`).
    pub components: BTreeMap<String, f64>,
}

impl RewardBreakdown {
    /// Zero reward.
    pub fn zero() -> Self {
        Self::default()
    }
    /// Adds a component (also to `total`).
    pub fn add(&mut self, name: &str, value: f64) -> &mut Self {
        *self.components.entry(name.to_string()).or_insert(0.0) += value;
        self.total += value;
        self
    }
    /// Builder form of [`RewardBreakdown::add`].
    pub fn with(mut self, name: &str, value: f64) -> Self {
        self.add(name, value);
        self
    }
    /// Sets the anchor reward.
    pub fn anchor(mut self, value: f64) -> Self {
        self.anchor = value;
        self
    }
    /// A component's value (0 when absent).
    pub fn get(&self, name: &str) -> f64 {
        self.components.get(name).copied().unwrap_or(0.0)
    }
    /// Adds another breakdown into this one (totals, anchors and components).
    pub fn accumulate(&mut self, other: &RewardBreakdown) {
        self.total += other.total;
        self.anchor += other.anchor;
        for (k, v) in &other.components {
            *self.components.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    /// The first non-finite value, if any, as `(component, value)`.
    pub fn non_finite(&self) -> Option<(String, f64)> {
        if !self.total.is_finite() {
            return Some(("total".into(), self.total));
        }
        if !self.anchor.is_finite() {
            return Some(("anchor".into(), self.anchor));
        }
        self.components
            .iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(k, v)| (k.clone(), *v))
    }
}

/// Whether the episode continues after a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EndSignal {
    /// The episode goes on.
    Continue,
    /// MDP terminal state.
    Terminated {
        /// Whether the task was solved.
        success: bool,
    },
    /// Cut short by a budget (not an MDP terminal).
    Truncated {
        /// Why.
        reason: String,
    },
}

impl EndSignal {
    /// Whether the episode ends.
    pub fn is_done(&self) -> bool {
        !matches!(self, EndSignal::Continue)
    }
}

/// Default limits of an env; the run config may tighten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Maximum policy turns.
    pub max_turns: usize,
    /// Maximum sampled tokens per turn.
    pub max_tokens_per_turn: usize,
    /// Maximum tokens of one observation (env/tool content).
    pub max_observation_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_turns: 1,
            max_tokens_per_turn: 1024,
            max_observation_tokens: 512,
        }
    }
}

impl Limits {
    /// Limits for a multi-turn env.
    pub fn turns(max_turns: usize) -> Self {
        Limits {
            max_turns,
            ..Limits::default()
        }
    }
}

/// What `reset` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reset {
    /// Initial messages (system + user).
    pub messages: Vec<Message>,
    /// Tools offered to the policy.
    pub tools: Vec<ToolSpec>,
    /// Stop strings the env wants (e.g. `</answer>`).
    pub stop: Vec<String>,
    /// Canonical state key of the initial state.
    pub state_key: Option<String>,
}

/// How the policy's turn ended (also the sampler's finish reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// The model emitted an end-of-turn/EOS id.
    Eos,
    /// A stop string completed.
    Stop(String),
    /// The per-turn token cap was hit.
    Length,
}

/// The policy's turn, as given to [`Env::step`].
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    /// Turn index (0-based).
    pub index: usize,
    /// Decoded text of the policy-sampled ids of this turn (nothing else).
    pub text: &'a str,
    /// How the turn ended.
    pub finish: &'a FinishReason,
}

impl<'a> Turn<'a> {
    /// A turn that ended normally (for tests and the CLI).
    pub fn text(index: usize, text: &'a str) -> Self {
        Turn {
            index,
            text,
            finish: &FinishReason::Eos,
        }
    }
    /// Whether the turn was cut at the token limit.
    pub fn truncated(&self) -> bool {
        matches!(self.finish, FinishReason::Length)
    }
}

/// What `step` returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepOutcome {
    /// Observation messages (possibly empty).
    pub observation: Vec<Message>,
    /// This step's reward.
    pub reward: RewardBreakdown,
    /// Continue / terminated / truncated.
    pub end: Option<EndSignal>,
    /// Whether the action parsed and was legal.
    pub action_valid: bool,
    /// State key after the step.
    pub state_key: Option<String>,
    /// Canonical action key.
    pub action_key: Option<String>,
    /// Byte range of the action in the turn text.
    pub action_span: Option<Range<usize>>,
    /// Byte range of the final answer in the turn text.
    pub answer_span: Option<Range<usize>>,
    /// Tool calls made in this step.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Numeric metrics.
    pub metrics: BTreeMap<String, f64>,
}

impl StepOutcome {
    /// The end signal (`Continue` when unset).
    pub fn end_signal(&self) -> EndSignal {
        self.end.clone().unwrap_or(EndSignal::Continue)
    }
    /// An invalid-action outcome: an explanatory observation, `action_valid = false`.
    pub fn invalid(message: impl Into<String>, penalty: f64) -> Self {
        let mut reward = RewardBreakdown::zero();
        if penalty != 0.0 {
            reward.add("invalid_action", penalty);
        }
        StepOutcome {
            observation: vec![Message::env(message)],
            reward,
            end: Some(EndSignal::Continue),
            action_valid: false,
            ..Default::default()
        }
    }
}

/// A read-only view of a finished episode, for [`Env::final_reward`].
#[derive(Debug, Clone, Copy)]
pub struct EpisodeView<'a> {
    /// Policy-owned text of each turn (nothing env- or prompt-owned).
    pub turns: &'a [String],
    /// All tool calls made.
    pub tool_calls: &'a [ToolCallRecord],
    /// How the episode ended (`None` when the env itself terminated it).
    pub ended_by_limit: bool,
}

/// A text-level environment. One instance per episode; `Send` so a driver can step
/// instances on worker threads. Single-turn envs implement `reset` and
/// `final_reward` only: the default `step` ends the episode after the first turn.
pub trait Env: Send {
    /// Stable name used in configs and metrics.
    fn name(&self) -> &str;
    /// Starts an episode. Pure function of the env's config and `task`.
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset>;
    /// Applies the policy's turn. Bad actions return an explanatory observation,
    /// never an error; errors are reserved for protocol misuse (step before reset).
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let _ = turn;
        Ok(StepOutcome {
            end: Some(EndSignal::Terminated { success: false }),
            action_valid: true,
            ..Default::default()
        })
    }
    /// The outcome reward, computed once after the episode ends.
    fn final_reward(&self, view: &EpisodeView<'_>) -> RewardBreakdown;
    /// Canonical key of the current state (nothing history-dependent), or `None`.
    fn state_key(&self) -> Option<String> {
        None
    }
    /// Default limits.
    fn limits(&self) -> Limits {
        Limits::default()
    }
    /// A human-readable rendering of the state for logs and `grpo env play`.
    fn render_debug(&self) -> Option<String> {
        None
    }
    /// A gold next turn for the current state (a planner's or solver's action), if
    /// the env has one: for SFT warm starts, scripted policies and tests.
    fn oracle_action(&self) -> Option<String> {
        None
    }
    /// Releases resources; idempotent.
    fn close(&mut self) {}
}
