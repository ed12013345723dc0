//! Single- and multi-turn environments for agentic RL, episode transcripts with
//! exact loss masks, and dataset loaders.
//!
//! An [`Env`] is text level (messages in, messages out). The [`EpisodeRunner`]
//! drives envs against two small traits it defines — a [`ChatRenderer`] (messages
//! → token ids) and a [`TurnSampler`] (ids → one sampled turn) — so this crate
//! depends on no model. Every episode yields a [`Transcript`] of owned token
//! segments (loss mask = 1 exactly on policy-sampled ids), [`StepRecord`]s for
//! step-level estimators, and reward breakdowns (ours and the anchor's).
//!
//! Task files load through [`load_tasks`]: JSONL always, Parquet (Hugging Face
//! dataset shards, Snappy or Zstd) with the `parquet` cargo feature, both mapped
//! to [`TaskRecord`]s by one [`ColumnMap`] and visited by a seeded, resumable
//! [`Cursor`].
//!
//! ```
//! use grpo_envs::{envs, EpisodeRunner, EpisodeSpec, RunConfig, TaskSpec, ViewKind};
//! use grpo_envs::testing::{ByteRenderer, ScriptedSampler};
//!
//! // FrozenLake, played by a scripted policy that always answers "Down".
//! let env = envs::make("frozenlake", &serde_json::json!({"slippery": false}))?;
//! let mut sampler = ScriptedSampler::new(|_ctx| "<answer>Down</answer>".to_string());
//! let runner = EpisodeRunner::new(RunConfig::default());
//! let spec = EpisodeSpec { env, task: TaskSpec::seed(7), group: 0, sample: 0 };
//! let ep = runner.run_one(spec, &ByteRenderer, &mut sampler, 0)?;
//! let row = &ep.rows(ViewKind::Interleaved)?[0];
//! // Only the sampled ids are trained.
//! let trained: usize = row.mask.iter().map(|&m| m as usize).sum();
//! assert_eq!(trained, ep.transcript.policy_tokens());
//! assert!(ep.steps.len() >= 1);
//! # Ok::<(), grpo_envs::EnvError>(())
//! ```
#![deny(missing_docs)]

pub mod dataset;
pub mod env;
pub mod envs;
pub mod error;
pub mod exec;
pub mod message;
pub mod parse;
pub mod rational;
pub mod runner;
pub mod seed;
pub mod task;
pub mod testing;
pub mod tool;
pub mod transcript;

#[cfg(feature = "parquet")]
pub use dataset::load_parquet;
pub use dataset::{ColumnMap, Cursor, TaskRecord, load_jsonl, load_tasks};
pub use env::{
    EndSignal, Env, EpisodeView, FinishReason, Limits, Reset, RewardBreakdown, StepOutcome,
    TaskSpec, Turn,
};
pub use error::{EnvError, Result};
pub use message::{Message, Role, ToolSpec};
pub use runner::{
    ChatRenderer, EndReason, Episode, EpisodeCounts, EpisodeRunner, EpisodeSpec, ObservationStyle,
    Piece, RunConfig, SampleRequest, SampledTurn, StepRecord, TurnSampler,
};
pub use tool::{Tool, ToolCallRecord, ToolRegistry, ToolResult};
pub use transcript::{Owner, Segment, TrainingRow, Transcript, ViewKind};
