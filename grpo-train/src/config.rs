//! Run configuration: `RunConfigFile` mirrors the TOML file (every struct
//! `deny_unknown_fields`, so a typo is an error naming the key, line and
//! column); `--set key=value` overrides are applied to the parsed TOML table
//! before deserialisation, so there is one code path and one error format.
//!
//! Algorithm choices (`advantage`, `loss`, `kl`, `filter`) are tables with a
//! `type` key naming a `grpo-core` registry item; they are checked against
//! grpo-core's own config types when the run is built.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The embedded default run (`cargo xtask train` with no arguments).
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/default.toml");

/// A whole run, as written in the TOML file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfigFile {
    /// Run name; the run directory is `output_dir/name`.
    pub name: String,
    /// Master seed; every random stream of the run derives from it.
    pub seed: u64,
    /// Parent directory of run directories (default `runs`).
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// The policy model: a checkpoint directory or a new small model.
    pub model: ModelSection,
    /// What the policy is trained on.
    pub task: TaskSection,
    /// Optional supervised warm start before GRPO.
    #[serde(default)]
    pub sft: Option<SftSection>,
    /// The GRPO stage.
    pub grpo: GrpoSection,
    /// Sampling parameters for rollouts.
    pub rollout: RolloutSection,
    /// Estimator, loss, KL and filter, each selected by registry name.
    pub algorithm: AlgorithmSection,
    /// Optimiser and learning-rate schedule.
    pub optim: OptimSection,
    /// Reward components (`[[reward]]`), combined by weight into the scalar reward. Absent:
    /// one component `correct` = the task's own verifier.
    #[serde(default)]
    pub reward: Vec<RewardComponentSection>,
    /// Reference policy for the KL term.
    #[serde(default)]
    pub reference: ReferenceSection,
    /// Held-out evaluation.
    pub eval: EvalSection,
    /// Checkpoint cadence.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("runs")
}

/// The policy model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "source", rename_all = "snake_case")]
pub enum ModelSection {
    /// A Hugging Face checkpoint directory (config.json + safetensors + tokenizer.json).
    Checkpoint {
        /// The directory.
        path: PathBuf,
    },
    /// A new model initialised from a seed, with a tokenizer built for the task.
    New(NewModelSection),
}

/// Sizes of a new model (Qwen2-style decoder).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NewModelSection {
    /// `qwen2`, `qwen3` or `llama`.
    pub architecture: String,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (GQA).
    pub num_kv_heads: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Share the embedding and output matrices.
    pub tie_word_embeddings: bool,
}

/// The task: a procedurally generated one, a dataset + verifier, or an environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum TaskSection {
    /// Multi-digit arithmetic generated from the seed (the default run's task).
    Arithmetic {
        /// Smallest operand digit count.
        min_digits: u32,
        /// Largest operand digit count.
        max_digits: u32,
        /// Operators to draw from (`+`, `-`, `*`).
        ops: Vec<String>,
        /// Held-out prompts (drawn from a disjoint seed stream).
        eval_size: usize,
        /// Reward shaping: a well-formed but wrong answer earns `partial_credit` × the
        /// fraction of its digits that are right (compared from the least significant
        /// digit; a missing or extra digit counts as wrong). 0 (the default) rewards exact
        /// answers only. Evaluation is always exact match.
        #[serde(default)]
        partial_credit: f64,
        /// Both operands of `+`/`-` have the drawn digit count (by default the second
        /// operand has up to that many digits, its count drawn uniformly).
        #[serde(default)]
        equal_digits: bool,
    },
    /// Rows of a JSONL file scored by a verifier.
    Dataset {
        /// Training rows.
        train: PathBuf,
        /// Held-out rows.
        test: PathBuf,
        /// Column holding the prompt text.
        prompt_column: String,
        /// Column holding the gold answer.
        answer_column: String,
        /// Verifier name: `math`, `code` (programs run in the sandbox against the row's
        /// tests), `toolcall` (calls checked against the row's function schemas and possible
        /// answers) or `gui` (an action checked against the gold under a profile).
        verifier: String,
        /// The verifier's options, as `grpo verify <verifier>` takes them (math: Math-Verify's
        /// options; toolcall: its options; gui: `profile` and `options`; code: the sandbox
        /// `options`, e.g. `{ timeout_s = 5 }`).
        #[serde(default)]
        verifier_options: Option<toml::Table>,
        /// Extra columns each row carries to the verifier: code needs `test` and
        /// `entry_point` (HumanEval) or `tests` (`{inputs, outputs}` / call-based); toolcall
        /// needs `functions` and `possible_answer`; gui reads `gold` when listed (else the
        /// answer column).
        #[serde(default)]
        columns: Vec<String>,
        /// A text that ends a completion (one token of the tokenizer, e.g. `"\n"` for a
        /// character model); sampling stops there. Absent: at EOS or the length limit.
        #[serde(default)]
        stop: Option<String>,
        /// Render prompts with the checkpoint's chat template (a prompt column holding chat
        /// messages is rendered as a conversation; a text prompt as one user message).
        #[serde(default)]
        chat_template: bool,
    },
}

/// Supervised warm start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SftSection {
    /// Optimiser steps.
    pub steps: usize,
    /// Demonstrations per step.
    pub batch_size: usize,
    /// Peak learning rate for this stage.
    pub lr: f64,
    /// TON thought dropout: probability of replacing the scratchpad by an empty one.
    #[serde(default)]
    pub thought_dropout: f64,
    /// Stop the warm start early once greedy accuracy on a check set drawn from the
    /// *training* distribution (never the held-out eval set) reaches this value: SFT to a
    /// chosen level of partial competence, independent of how fast a seed learns.
    /// `steps` stays the upper bound. Off when absent.
    #[serde(default)]
    pub stop_at_accuracy: Option<f64>,
    /// Steps between two checks of `stop_at_accuracy`.
    #[serde(default = "fifty")]
    pub check_every: usize,
    /// Prompts in the check set.
    #[serde(default = "two_hundred")]
    pub check_size: usize,
}

fn fifty() -> usize {
    50
}
fn two_hundred() -> usize {
    200
}

/// The GRPO stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrpoSection {
    /// Optimiser steps (rollout batches).
    pub steps: usize,
    /// μ: passes over each rollout batch.
    #[serde(default = "one")]
    pub mu: usize,
    /// Sequences per optimiser step within a pass (0 = the whole batch).
    #[serde(default)]
    pub minibatch_size: usize,
    /// Stop after this many consecutive non-finite updates.
    #[serde(default = "five")]
    pub max_nonfinite_in_a_row: usize,
    /// Minibatches whose gradients are summed into one optimiser step (1 = a step per
    /// minibatch). The loss of each minibatch is scaled by 1/N, so N accumulated
    /// minibatches give the gradient of their mean loss.
    #[serde(default = "one")]
    pub gradient_accumulation_steps: usize,
    /// Gradient checkpointing: keep only each layer's input in the forward and recompute
    /// the rest during the backward (less memory, about one more forward of time).
    #[serde(default)]
    pub recompute: bool,
    /// Recompute the old-policy log-probs with a teacher-forced scoring pass before the
    /// updates (as verl does) instead of taking the sampler's; the sampler's stay
    /// available as the rollout log-probs (`rollout_correction`, `off_policy_mask`).
    #[serde(default)]
    pub recompute_old_log_prob: bool,
}

fn one() -> usize {
    1
}
fn five() -> usize {
    5
}

/// Rollout sampling.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    /// Prompts per step.
    pub prompts_per_step: usize,
    /// G: completions per prompt.
    pub group_size: usize,
    /// Maximum generated tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature (> 0 for GRPO).
    pub temperature: f32,
    /// Nucleus threshold (1 = off).
    #[serde(default = "one_f32")]
    pub top_p: f32,
    /// Top-k (0 = off).
    #[serde(default)]
    pub top_k: usize,
}

fn one_f32() -> f32 {
    1.0
}

/// Algorithm choices, each selected by its grpo-core registry name in `type`
/// (see `grpo estimators list`); unknown names and parameters are errors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmSection {
    /// Advantage estimator, e.g. `{ type = "grpo" }`.
    pub advantage: grpo_core::advantage::AdvantageConfig,
    /// Policy loss, e.g. `{ type = "ppo_clip", eps_low = 0.2, eps_high = 0.28, agg = { type = "token_mean" } }`.
    pub loss: grpo_core::loss::LossConfig,
    /// Drop groups whose rewards all agree (DAPO dynamic sampling's filter, without
    /// refill); they carry no GRPO signal. Use `filter` for the other filters and refill.
    #[serde(default)]
    pub drop_zero_variance_groups: bool,
    /// KL to the reference policy as a loss term, with a fixed or controlled coefficient.
    #[serde(default)]
    pub kl: Option<KlSection>,
    /// A group filter by registry name (`dynamic_sampling`, `mask_truncated`, ...);
    /// with `refill`, rollouts are repeated until the batch is full again.
    #[serde(default)]
    pub filter: Option<FilterSection>,
    /// Per-step schedules of loss parameters (MDPO's `t_k`, R²VPO's dual variable).
    #[serde(default)]
    pub schedule: LossScheduleSection,
    /// Which prompts each step trains on, drawn from a fixed pool by per-prompt statistics
    /// (VAS, SPO's prioritised sampling, a difficulty curriculum); absent: the data stream
    /// in order.
    #[serde(default)]
    pub sampler: Option<SamplerSection>,
}

/// `[algorithm.sampler]`: a grpo-core prompt sampler over a fixed pool of training prompts.
/// Each prompt's pass rate (its last group's accuracy; 0.5 before its first visit) and,
/// for VAS with `beta > 0`, its responses' distinct-2 diversity are kept with the checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SamplerSection {
    /// The sampler, e.g. `{ type = "vas", alpha = 1.0, beta = 0.0 }`.
    pub rule: grpo_core::sampler::SamplerConfig,
    /// Prompts in the pool: the first N training instances (required for generated tasks;
    /// a dataset's whole training split when absent).
    #[serde(default)]
    pub pool_size: Option<usize>,
}

/// `[algorithm.kl]`: a KL penalty `coef · Agg(k(ℓ, ℓʳ))` added to the loss (verl
/// `use_kl_loss`), its coefficient set by a controller (grpo-core `KlControllerConfig`:
/// `fixed`, `adaptive`, `grpo_d`, `disco_constrained`). Needs `[reference] mode` ≠ `off`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KlSection {
    /// KL estimator (`k1`, `k2`, `k3`, `k3_unclamped`, `abs`, ...).
    pub estimator: grpo_core::kl::KlEstimator,
    /// Aggregation of the KL term (default `token_mean`).
    #[serde(default = "token_mean")]
    pub agg: grpo_core::loss::Aggregation,
    /// Coefficient controller, e.g. `{ type = "fixed", kl_coef = 0.001 }`.
    pub controller: grpo_core::kl::KlControllerConfig,
}

fn token_mean() -> grpo_core::loss::Aggregation {
    grpo_core::loss::Aggregation::TokenMean
}

/// `[algorithm.filter]`: a grpo-core group filter and whether to refill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// The filter, e.g. `{ type = "dynamic_sampling", metric = "reward" }`.
    pub rule: grpo_core::filter::FilterConfig,
    /// Keep sampling rollout batches until `rollout.prompts_per_step` groups survive (DAPO
    /// dynamic sampling), at most `max_rollout_batches` per step; the surplus is dropped.
    #[serde(default)]
    pub refill: bool,
    /// Upper bound on rollout batches per step with `refill` (DAPO `max_num_gen_batches`).
    #[serde(default = "four")]
    pub max_rollout_batches: usize,
}

fn four() -> usize {
    4
}

/// `[algorithm.schedule]`: loss parameters the trainer sets every step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LossScheduleSection {
    /// MDPO: set the loss's `t_k` to the official anneal `1 − (k−1)/K` at GRPO step k of K.
    #[serde(default)]
    pub mdpo_anneal_t_k: bool,
    /// R²VPO: after every step, dual ascent `η ← max(0, η + lr·(V − δ_V))` on the measured
    /// ratio variance V, with this step size; η is saved with the checkpoint.
    #[serde(default)]
    pub r2vpo_dual_lr: Option<f64>,
}

/// One `[[reward]]` entry: a named, weighted reward component.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RewardComponentSection {
    /// Name in metrics (`reward/<name>`) and in the batch's reward components (GDPO
    /// normalises each separately). Default: the source's type name.
    #[serde(default)]
    pub name: Option<String>,
    /// Weight in the scalar reward (a weighted sum).
    #[serde(default = "one_f64")]
    pub weight: f64,
    /// What computes the component, e.g. `{ type = "format", tags = ["answer"] }`.
    pub source: RewardSource,
}

impl RewardComponentSection {
    /// The component's name.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.source.type_name().to_string())
    }
}

fn one_f64() -> f64 {
    1.0
}

/// What computes a reward component: a verifier or a shaper (grpo-rewards), by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum RewardSource {
    /// The task's own verifier (arithmetic: exact answer plus any partial credit; dataset:
    /// its `verifier`): 1 for a correct answer.
    Task {},
    /// The math verifier against the task's gold answer, with Math-Verify's options.
    Math(grpo_rewards::math::MathConfig),
    /// 1 when the completion matches the format: a regex (full match) or, by default,
    /// `<think>…</think><answer>…</answer>` tags.
    Format {
        /// A regex the whole completion must match; overrides `tags`.
        #[serde(default)]
        pattern: Option<String>,
        /// Tag names in order.
        #[serde(default)]
        tags: Option<Vec<String>>,
    },
    /// DAPO's overlong soft punishment on the completion length in tokens (≤ 0).
    DapoOverlong {
        /// `L_max`.
        max_len: usize,
        /// `L_buf`.
        buffer: usize,
        /// Penalty factor.
        #[serde(default = "one_f64")]
        factor: f64,
        /// Formula variant.
        #[serde(default)]
        mode: grpo_rewards::shaping::OverlongMode,
    },
    /// The cosine length reward (Demystifying long CoT): shorter is better when correct,
    /// longer when wrong; correctness is the `task` verifier's.
    CosineLength(grpo_rewards::shaping::CosineParams),
    /// ProRL's stop-properly penalty: the correctness reward, scaled by `coef` when the
    /// completion was cut at the length limit.
    ProrlStop {
        /// Coefficient applied to truncated completions.
        coef: f64,
    },
    /// RAPO's absolute score reward `exp(−½(|ŝ−s|/0.1)²)` between the number the
    /// completion answers and the numeric gold answer (0 when no number is found).
    RapoAbsolute {},
    /// RAPO's relative (rank-fidelity) reward across the prompts of the batch: how well
    /// each completion's number ranks its prompt's gold against the other prompts' golds.
    RapoRelative {},
    /// OTC's tool-efficiency reward (needs tool-call counts: environment tasks only).
    Otc {
        /// Smoothing `c`.
        #[serde(default = "one_f64")]
        c: f64,
        /// Scale `alpha`.
        #[serde(default = "one_f64")]
        alpha: f64,
    },
    /// Programs run in the sandbox against the task's tests (needs a code dataset).
    Code {},
    /// Tool calls checked against function schemas and possible answers (needs a
    /// tool-call dataset).
    Toolcall(grpo_rewards::toolcall::ToolCallConfig),
    /// GUI actions under an anchor profile (needs a GUI dataset).
    Gui {
        /// The anchor profile.
        profile: grpo_rewards::gui::Profile,
        /// Screen size, frames, scales.
        #[serde(default)]
        options: grpo_rewards::gui::GuiOptions,
    },
}

impl RewardSource {
    /// The `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            RewardSource::Task {} => "task",
            RewardSource::Math(_) => "math",
            RewardSource::Format { .. } => "format",
            RewardSource::DapoOverlong { .. } => "dapo_overlong",
            RewardSource::CosineLength(_) => "cosine_length",
            RewardSource::ProrlStop { .. } => "prorl_stop",
            RewardSource::RapoAbsolute {} => "rapo_absolute",
            RewardSource::RapoRelative {} => "rapo_relative",
            RewardSource::Otc { .. } => "otc",
            RewardSource::Code {} => "code",
            RewardSource::Toolcall(_) => "toolcall",
            RewardSource::Gui { .. } => "gui",
        }
    }
}

/// Optimiser (AdamW) and schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    /// Peak learning rate of the GRPO stage.
    pub lr: f64,
    /// Adam β1.
    pub beta1: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup_steps: usize,
    /// `constant` or `cosine` after warm-up.
    #[serde(default = "constant")]
    pub schedule: String,
}

fn constant() -> String {
    "constant".to_string()
}

/// Reference policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSection {
    /// `off`, `frozen` (the policy at the start of GRPO) or `sync` (copied every `sync_every` steps).
    #[serde(default = "off")]
    pub mode: String,
    /// Sync period for `sync`.
    #[serde(default)]
    pub sync_every: usize,
}

fn off() -> String {
    "off".to_string()
}

// Not derived: an omitted `[reference]` section must mean mode = "off", as
// an omitted `mode` key does (a derived Default would give an empty mode).
impl Default for ReferenceSection {
    fn default() -> Self {
        Self {
            mode: off(),
            sync_every: 0,
        }
    }
}

/// Evaluation on held-out prompts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate every N GRPO steps (0 = only at stage ends).
    pub every: usize,
    /// Held-out prompts per eval (at most the task's eval set).
    pub num_prompts: usize,
    /// k for pass@k (sampled at the rollout temperature); 0 = greedy only.
    #[serde(default)]
    pub pass_k: usize,
}

/// Checkpoint cadence.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Save every N GRPO steps (0 = only at the end of the run).
    #[serde(default)]
    pub every: usize,
    /// Save every N SFT steps (0 = only at the end of SFT, which always saves).
    #[serde(default)]
    pub sft_every: usize,
}

/// Estimators that need no group of completions per prompt (SPO's tracked baseline,
/// REINFORCE++'s batch whitening, ReMax's greedy baseline), so `group_size = 1` is allowed.
fn single_stream(a: &grpo_core::advantage::AdvantageConfig) -> bool {
    use grpo_core::advantage::AdvantageConfig::{ReinforcePlusPlus, Remax, Spo};
    matches!(a, Spo(_) | ReinforcePlusPlus(_) | Remax(_))
}

/// Parses a run config from TOML text, applying `key.path=value` overrides.
/// `origin` names the file in errors.
pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<RunConfigFile> {
    if overrides.is_empty() {
        return toml::from_str(text).map_err(|e| config_error(origin, text, &e));
    }
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| config_error(origin, text, &e))?;
    for ov in overrides {
        apply_override(&mut table, ov)?;
    }
    RunConfigFile::deserialize(toml::Value::Table(table)).map_err(|e| TrainError::Config {
        location: Some(format!("{origin} after --set overrides")),
        message: e.message().to_string(),
    })
}

/// Reads and parses a config file.
pub fn load(path: &Path, overrides: &[String]) -> Result<RunConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse(&text, &path.display().to_string(), overrides)
}

/// [`load`], then [`RunConfigFile::validate`]: what `grpo train` runs before any work starts.
/// A validation error is reported at the file, line and column of the offending key.
pub fn load_validated(path: &Path, overrides: &[String]) -> Result<RunConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse_validated(&text, &path.display().to_string(), overrides)
}

/// [`parse`], then [`RunConfigFile::validate`], with validation errors located in `text`.
pub fn parse_validated(text: &str, origin: &str, overrides: &[String]) -> Result<RunConfigFile> {
    let cfg = parse(text, origin, overrides)?;
    match cfg.validate() {
        Ok(()) => Ok(cfg),
        Err(TrainError::Config {
            location: Some(key),
            message,
        }) => {
            let set_by_override = overrides.iter().any(|o| {
                o.split_once('=')
                    .is_some_and(|(k, _)| key.starts_with(k.trim()))
            });
            let location = match locate(text, &key) {
                Some((line, col)) if !set_by_override => format!("{origin}:{line}:{col} ({key})"),
                _ => format!("{origin} ({key})"),
            };
            Err(TrainError::Config {
                location: Some(location),
                message,
            })
        }
        Err(e) => Err(e),
    }
}

/// Line and column (1-based) of a validation key (`algorithm.loss`, `reward[2].weight`,
/// `rollout.group_size`, ...) in the TOML text, found by its table header and key name.
fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let key = key.split_whitespace().next().unwrap_or(key);
    // `reward[i]...`: the i-th `[[reward]]` entry, then the key inside it.
    if let Some(rest) = key.strip_prefix("reward[") {
        let (i, tail) = rest.split_once(']')?;
        let i: usize = i.parse().ok()?;
        let start = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim() == "[[reward]]")
            .nth(i)?
            .0;
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .map_or(lines.len(), |p| start + 1 + p);
        if let Some(seg) = tail
            .trim_start_matches('.')
            .split('.')
            .find(|s| !s.is_empty())
        {
            for (n, l) in lines.iter().enumerate().take(end).skip(start) {
                if let Some(c) = find_key(l, seg) {
                    return Some((n + 1, c));
                }
            }
        }
        return Some((start + 1, 1));
    }
    let segs: Vec<&str> = key.split('.').collect();
    let first = segs.first()?;
    let header = lines.iter().position(|l| {
        let t = l.trim();
        t == format!("[{first}]") || t.starts_with(&format!("[{first}."))
    });
    let from = header.unwrap_or(0);
    for seg in segs.iter().skip(usize::from(header.is_some())).rev() {
        for (n, l) in lines.iter().enumerate().skip(from) {
            if n > from
                && header.is_some()
                && l.trim_start().starts_with('[')
                && !l.contains(&format!("[{first}."))
            {
                break;
            }
            if let Some(c) = find_key(l, seg) {
                return Some((n + 1, c));
            }
        }
    }
    header.map(|h| (h + 1, 1))
}

/// Column (1-based) of `key =` in `line`, as a whole word.
fn find_key(line: &str, key: &str) -> Option<usize> {
    let mut start = 0;
    while let Some(p) = line[start..].find(key) {
        let at = start + p;
        let before_ok = at == 0
            || !line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after = line[at + key.len()..].trim_start();
        if before_ok && after.starts_with('=') && !after.starts_with("==") {
            return Some(at + 1);
        }
        start = at + key.len();
    }
    None
}

fn config_error(origin: &str, text: &str, e: &toml::de::Error) -> TrainError {
    let location = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before
                .rfind('\n')
                .map_or(before.len(), |i| before.len() - i - 1)
                + 1;
            format!("{origin}:{line}:{col}")
        }
        None => origin.to_string(),
    };
    TrainError::Config {
        location: Some(location),
        message: e.message().to_string(),
    }
}

/// Applies one `a.b.c=value` override; the value is parsed as TOML (so
/// `3e-6`, `true`, `[1, 2]`, `{ type = "grpo" }` work) and falls back to a string.
pub fn apply_override(table: &mut toml::Table, ov: &str) -> Result<()> {
    let bad = |m: &str| TrainError::Config {
        location: Some(format!("--set {ov}")),
        message: m.to_string(),
    };
    let (key, raw) = ov
        .split_once('=')
        .ok_or_else(|| bad("expected key.path=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad("empty key segment"));
    }
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or_else(|| bad("empty key"))?;
    let mut cur = table;
    for p in path {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| bad(&format!("`{p}` is not a table, cannot set a key inside it")))?;
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

impl RunConfigFile {
    /// Checks cross-field constraints that serde cannot express; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let err = |key: &str, m: String| TrainError::Config {
            location: Some(key.to_string()),
            message: m,
        };
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return Err(err(
                "name",
                format!("`{}` must be a non-empty plain name", self.name),
            ));
        }
        if self.rollout.group_size == 0 {
            return Err(err("rollout.group_size", "must be at least 1".into()));
        }
        if self.rollout.group_size < 2 && !single_stream(&self.algorithm.advantage) {
            return Err(err(
                "rollout.group_size",
                format!(
                    "`{}` compares the completions of a prompt, so it needs at least 2 per \
                     prompt (single-stream estimators that allow 1: spo, reinforce_plus_plus, \
                     remax)",
                    self.algorithm.advantage.name()
                ),
            ));
        }
        if self.rollout.prompts_per_step == 0 {
            return Err(err("rollout.prompts_per_step", "must be at least 1".into()));
        }
        if self.rollout.temperature.is_nan() || self.rollout.temperature <= 0.0 {
            return Err(err(
                "rollout.temperature",
                "must be > 0 for GRPO rollouts".into(),
            ));
        }
        if !(self.rollout.top_p > 0.0 && self.rollout.top_p <= 1.0) {
            return Err(err("rollout.top_p", "must be in (0, 1]".into()));
        }
        if self.rollout.max_new_tokens == 0 {
            return Err(err("rollout.max_new_tokens", "must be at least 1".into()));
        }
        if self.grpo.mu == 0 {
            return Err(err("grpo.mu", "must be at least 1".into()));
        }
        if self.optim.lr.is_nan() || self.optim.lr <= 0.0 {
            return Err(err("optim.lr", "must be > 0".into()));
        }
        if !matches!(self.optim.schedule.as_str(), "constant" | "cosine") {
            return Err(err(
                "optim.schedule",
                format!("`{}` is not one of constant, cosine", self.optim.schedule),
            ));
        }
        if !matches!(self.reference.mode.as_str(), "off" | "frozen" | "sync") {
            return Err(err(
                "reference.mode",
                format!("`{}` is not one of off, frozen, sync", self.reference.mode),
            ));
        }
        if self.reference.mode == "sync" && self.reference.sync_every == 0 {
            return Err(err(
                "reference.sync_every",
                "must be > 0 when mode = \"sync\"".into(),
            ));
        }
        if let Some(sft) = &self.sft
            && !(0.0..1.0).contains(&sft.thought_dropout)
        {
            return Err(err("sft.thought_dropout", "must be in [0, 1)".into()));
        }
        if let TaskSection::Arithmetic { partial_credit, .. } = &self.task
            && !(0.0..1.0).contains(partial_credit)
        {
            return Err(err(
                "task.partial_credit",
                format!("must be in [0, 1), got {partial_credit}"),
            ));
        }
        if let Some(sft) = &self.sft
            && let Some(a) = sft.stop_at_accuracy
        {
            if !(a > 0.0 && a <= 1.0) {
                return Err(err(
                    "sft.stop_at_accuracy",
                    format!("must be in (0, 1], got {a}"),
                ));
            }
            if sft.check_every == 0 || sft.check_size == 0 {
                return Err(err(
                    "sft.check_every / sft.check_size",
                    "must be > 0 when sft.stop_at_accuracy is set".into(),
                ));
            }
        }
        self.algorithm.advantage.validate()?;
        self.algorithm.loss.validate_params()?;
        self.validate_algorithm()?;
        Ok(())
    }

    /// Cross-checks of the algorithm with the rest of the run: filters, KL, schedules,
    /// reward components, and the inputs each chosen registry item needs.
    fn validate_algorithm(&self) -> Result<()> {
        let err = |key: &str, m: String| TrainError::Config {
            location: Some(key.to_string()),
            message: m,
        };
        let alg = &self.algorithm;
        if self.grpo.gradient_accumulation_steps == 0 {
            return Err(err(
                "grpo.gradient_accumulation_steps",
                "must be at least 1".into(),
            ));
        }
        let names: Vec<String> = if self.reward.is_empty() {
            vec![crate::reward::DEFAULT_COMPONENT.to_string()]
        } else {
            self.reward
                .iter()
                .map(RewardComponentSection::name)
                .collect()
        };
        for (i, r) in self.reward.iter().enumerate() {
            if !r.weight.is_finite() {
                return Err(err(
                    &format!("reward[{i}].weight"),
                    format!("must be finite, got {}", r.weight),
                ));
            }
        }
        if alg.drop_zero_variance_groups && alg.filter.is_some() {
            return Err(err(
                "algorithm.drop_zero_variance_groups",
                "set either drop_zero_variance_groups or [algorithm.filter], not both \
                 (filter = { rule = { type = \"dynamic_sampling\", metric = \"reward\" } } is \
                 the same filter, with refill available)"
                    .into(),
            ));
        }
        if alg.drop_zero_variance_groups && self.rollout.group_size < 2 {
            return Err(err(
                "algorithm.drop_zero_variance_groups",
                "with one completion per prompt every group has zero variance".into(),
            ));
        }
        if let Some(f) = &alg.filter {
            f.rule
                .validate()
                .map_err(|e| err("algorithm.filter.rule", e.to_string()))?;
            if let Some(metric) = f.rule.metric()
                && metric != "reward"
                && !names.iter().any(|n| n == metric)
            {
                return Err(err(
                    "algorithm.filter.rule.metric",
                    format!(
                        "`{metric}` is not a reward component of this run (known: reward, {})",
                        names.join(", ")
                    ),
                ));
            }
            if f.refill && f.max_rollout_batches == 0 {
                return Err(err(
                    "algorithm.filter.max_rollout_batches",
                    "must be at least 1".into(),
                ));
            }
        }
        if let grpo_core::advantage::AdvantageConfig::Gdpo(g) = &alg.advantage
            && let Some(w) = &g.weights
            && w.len() != names.len()
        {
            return Err(err(
                "algorithm.advantage.weights",
                format!(
                    "gdpo has {} weights but the run has {} reward components ({})",
                    w.len(),
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
        if alg.kl.is_some() && self.reference.mode == "off" {
            return Err(err(
                "algorithm.kl",
                "a KL penalty needs a reference policy: set [reference] mode = \"frozen\" or \
                 \"sync\""
                    .into(),
            ));
        }
        if let Some(kl) = &alg.kl {
            grpo_core::kl::KlController::new(kl.controller.clone())
                .map_err(|e| err("algorithm.kl.controller", e.to_string()))?;
        }
        if alg.schedule.mdpo_anneal_t_k && !crate::chain::has_mdpo(&alg.loss) {
            return Err(err(
                "algorithm.schedule.mdpo_anneal_t_k",
                format!("the loss `{}` has no mdpo term to anneal", alg.loss.name()),
            ));
        }
        if let Some(lr) = alg.schedule.r2vpo_dual_lr {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(err(
                    "algorithm.schedule.r2vpo_dual_lr",
                    format!("must be finite and > 0, got {lr}"),
                ));
            }
            if crate::chain::r2vpo(&alg.loss).is_none() {
                return Err(err(
                    "algorithm.schedule.r2vpo_dual_lr",
                    format!("the loss `{}` has no r2vpo term", alg.loss.name()),
                ));
            }
        }
        if let Some(sm) = &alg.sampler {
            sm.rule
                .validate()
                .map_err(|e| err("algorithm.sampler.rule", e.to_string()))?;
            if matches!(sm.rule, grpo_core::sampler::SamplerConfig::ScafGrpo(_)) {
                return Err(err(
                    "algorithm.sampler.rule",
                    "`scaf_grpo` needs tiered hint texts (knowledge, planning, solution) per \
                     training prompt to run its hinted rollouts; the trainer's tasks carry no \
                     hints yet"
                        .into(),
                ));
            }
            if sm.pool_size == Some(0) {
                return Err(err(
                    "algorithm.sampler.pool_size",
                    "must be at least 1".into(),
                ));
            }
            if sm.pool_size.is_none() && matches!(self.task, TaskSection::Arithmetic { .. }) {
                return Err(err(
                    "algorithm.sampler.pool_size",
                    "a generated task has no finite training set: give the pool size".into(),
                ));
            }
            if alg.filter.as_ref().is_some_and(|f| f.refill) {
                return Err(err(
                    "algorithm.filter.refill",
                    "refill draws more prompts from the data stream; it cannot be combined \
                     with a prompt sampler"
                        .into(),
                ));
            }
        }
        // Reward ranges some methods require, checked on the reward definition.
        let (lo, hi) = self.reward_range();
        if crate::chain::has_disco(&alg.loss) && !self.binary_reward() {
            return Err(err(
                "algorithm.loss",
                "`disco` needs binary rewards (0 or 1): use one verifier component (`task`, \
                 `math` or `format`) with weight 1 and no partial credit"
                    .into(),
            ));
        }
        if matches!(alg.advantage, grpo_core::advantage::AdvantageConfig::Spo(_))
            && !(lo >= 0.0 && hi <= 1.0)
        {
            return Err(err(
                "algorithm.advantage",
                format!(
                    "`spo` tracks success probabilities and needs rewards in [0, 1]; the \
                     [[reward]] components can give [{lo}, {hi}]"
                ),
            ));
        }
        if let grpo_core::advantage::AdvantageConfig::Bnpo(b) = &alg.advantage
            && !(lo >= b.r_min && hi <= b.r_max)
        {
            return Err(err(
                "algorithm.advantage",
                format!(
                    "`bnpo` needs rewards in [r_min, r_max] = [{}, {}]; the [[reward]] \
                     components can give [{lo}, {hi}]",
                    b.r_min, b.r_max
                ),
            ));
        }
        if let Some(m) = crate::inputs::missing(self).into_iter().next() {
            return Err(err(&m.key, m.to_string()));
        }
        Ok(())
    }

    /// The range the scalar reward can take, from the components' value ranges and weights.
    pub fn reward_range(&self) -> (f64, f64) {
        if self.reward.is_empty() {
            return (0.0, self.task_reward_max());
        }
        let mut lo = 0.0;
        let mut hi = 0.0;
        for r in &self.reward {
            let (a, b) = match &r.source {
                RewardSource::Task {} => (0.0, self.task_reward_max()),
                RewardSource::DapoOverlong { factor, .. } => (-factor.abs(), 0.0),
                RewardSource::CosineLength(p) => {
                    let v = [
                        p.min_value_wrong,
                        p.max_value_wrong,
                        p.min_value_correct,
                        p.max_value_correct,
                    ];
                    (
                        v.iter().copied().fold(f64::INFINITY, f64::min).min(0.0),
                        v.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(0.0),
                    )
                }
                RewardSource::ProrlStop { coef } => (coef.min(0.0), coef.max(1.0)),
                _ => (0.0, 1.0),
            };
            let (a, b) = (r.weight * a, r.weight * b);
            lo += a.min(b);
            hi += a.max(b);
        }
        (lo, hi)
    }

    /// The scalar reward is 0 or 1: one verifier or format component with weight 1 (the
    /// task's verifier without partial credit).
    pub fn binary_reward(&self) -> bool {
        let no_partial = self.task_is_binary();
        match self.reward.as_slice() {
            [] => no_partial,
            [r] => {
                r.weight == 1.0
                    && match r.source {
                        RewardSource::Task {} => no_partial,
                        RewardSource::Math(_) | RewardSource::Format { .. } => true,
                        _ => false,
                    }
            }
            _ => false,
        }
    }

    /// The task verifier's reward is in [0, 1], and 0 or 1 without partial credit.
    fn task_reward_max(&self) -> f64 {
        1.0
    }

    fn task_is_binary(&self) -> bool {
        match &self.task {
            TaskSection::Arithmetic { partial_credit, .. } => *partial_credit == 0.0,
            TaskSection::Dataset { .. } => true,
        }
    }

    /// The run directory, `output_dir/name`.
    pub fn run_dir(&self) -> PathBuf {
        self.output_dir.join(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_validates() {
        let c = parse(DEFAULT_CONFIG, "default.toml", &[]).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn unknown_key_is_named_with_line_and_column() {
        let text = DEFAULT_CONFIG.replace("[rollout]\n", "[rollout]\ngroup_sise = 3\n");
        let e = parse(&text, "x.toml", &[]).unwrap_err().to_string();
        assert!(e.contains("group_sise"), "{e}");
        assert!(e.contains("x.toml:"), "{e}");
    }

    #[test]
    fn overrides_apply_and_round_trip() {
        let c = parse(
            DEFAULT_CONFIG,
            "d",
            &[
                "optim.lr=3e-6".into(),
                "name=\"other\"".into(),
                "rollout.group_size=4".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.optim.lr, 3e-6);
        assert_eq!(c.name, "other");
        assert_eq!(c.rollout.group_size, 4);
        let text = toml::to_string(&c).unwrap();
        let back: RunConfigFile = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn omitted_reference_section_means_off() {
        let text = DEFAULT_CONFIG.replace("[reference]\nmode = \"off\"\n", "");
        assert_ne!(text, DEFAULT_CONFIG);
        let c = parse(&text, "d", &[]).unwrap();
        assert_eq!(c.reference.mode, "off");
        c.validate().unwrap();
    }

    #[test]
    fn bad_override_and_bad_values_are_errors() {
        assert!(parse(DEFAULT_CONFIG, "d", &["optim".into()]).is_err());
        assert!(parse(DEFAULT_CONFIG, "d", &["name.x=1".into()]).is_err());
        let c = parse(DEFAULT_CONFIG, "d", &["rollout.group_size=1".into()]).unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("rollout.group_size")
        );
    }
}
