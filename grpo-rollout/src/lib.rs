//! An in-process generation engine for GRPO group sampling.
//!
//! For each request (a prompt and `n` samples) the prompt is prefilled once into KV blocks
//! of a paged cache that its `n` samples share (reference counted, copied on write); all
//! live sequences of all requests are decoded together, finished ones free their blocks
//! and waiting requests start (continuous batching); a block budget preempts and
//! recomputes instead of failing. Every sample reports the log-prob of each sampled token
//! under the raw model (what the trainer's scoring pass computes) and under the
//! distribution actually sampled from. Multi-turn [`Sessions`] keep a sequence's blocks
//! between turns so environment tokens are appended without prefilling the transcript
//! again. A sample's tokens and log-probs depend only on its request's seed and the
//! weights, bit for bit, not on what else is in the batch: each sample draws from its own
//! seeded stream, and the model's generation path uses row-invariant matrix products
//! (grpo-kernels' `linear_rows`).
//!
//! Modules, one role each: [`engine`] (requests in, completions out), [`scheduler`] (the
//! step loop: sampling, admission, preemption), [`block`] (block reference counts and the
//! budget), [`session`] (multi-turn), [`model`] (the [`Lm`] backend over a `grpo-model`
//! transformer), [`sampling`], [`params`], [`stop`]. With the `serve` feature, `serve` is an
//! OpenAI-compatible HTTP server over the engine (`grpo serve`).
//!
//! Decoding a small model is thousands of small parallel ops per step: call
//! [`Engine::generate`] from inside rayon's pool (e.g. `grpo_kernels::on_pool(|| ...)`, as the
//! `grpo` binary and `grpo_train::train` do) so the calling thread takes part in them instead of
//! handing each one over and sleeping.
//!
//! The engine is generic over the [`Lm`] trait, so it can be tested with a toy model and
//! driven by a `grpo-model` transformer:
//!
//! ```
//! use grpo_model::{Arch, Model, ModelConfig};
//! use grpo_rollout::model::ModelLm;
//! use grpo_rollout::{Engine, EngineConfig, GenerateStats, Request, SamplingParams};
//!
//! let config = ModelConfig {
//!     arch: Arch::Qwen2, vocab_size: 32, hidden_size: 16, intermediate_size: 32,
//!     num_layers: 2, num_heads: 4, num_kv_heads: 2, head_dim: 4,
//!     max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000.0,
//!     tie_word_embeddings: true, bos_token_id: None, eos_token_ids: vec![1], pad_token_id: None,
//! };
//! let model = Model::new_random(config, 0)?;
//! let lm = ModelLm::new(&model);
//! let engine = Engine::new(&lm, EngineConfig::default());
//! let request = Request { prompt_ids: vec![3, 4, 5], params: SamplingParams::sampled(4, 1.0, 8, 7) };
//! let mut stats = GenerateStats::default();
//! let out = engine.generate(&[request], None, &mut stats).remove(0).unwrap();
//! assert_eq!(out.len(), 4); // the group
//! assert_eq!(stats.prefill_tokens, 3); // the prompt ran once
//! # Ok::<(), grpo_model::Error>(())
//! ```
#![deny(missing_docs)]

pub mod block;
pub mod engine;
pub mod error;
pub mod model;
pub mod params;
mod progress;
pub mod sampling;
pub mod scheduler;
#[cfg(feature = "serve")]
pub mod serve;
pub mod session;
pub mod stop;

pub use engine::{
    Completion, Detokenizer, Engine, EngineConfig, GenerateStats, Lm, PagedSeq, Request,
};
pub use error::{Result, RolloutError};
pub use params::{LogprobMode, SamplingParams};
pub use session::{SessionId, Sessions};
pub use stop::FinishReason;
