//! The GRPO trainer: run config, SFT warm start and GRPO stages, evaluation,
//! checkpoints with bit-exact resume, metrics (JSONL, TensorBoard, PNG plots).
//!
//! ```no_run
//! use grpo_train::{config, train, TrainOptions};
//! let cfg = config::parse(config::DEFAULT_CONFIG, "default", &["grpo.steps=5".into()])?;
//! let summary = train(cfg, &TrainOptions::default())?;
//! println!("{summary}");
//! # Ok::<(), grpo_train::TrainError>(())
//! ```
#![deny(missing_docs)]

pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod inputs;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod reward;
pub mod schedule;
pub mod state;
pub mod task;
pub mod tfevents;
pub mod trainer;

pub use error::{Result, TrainError};
pub use trainer::{EvalDetail, EvalResult, RunSummary, TrainOptions, evaluate_checkpoint, train};
