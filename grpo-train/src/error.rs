//! The trainer's error type.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors returned by grpo-train.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The run config is invalid (the message names the key, with line and column where known).
    #[error("invalid run config{}: {message}", location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default())]
    Config {
        /// File (and line/column) where known.
        location: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The output directory exists and neither `--overwrite` nor `--resume` was given.
    #[error("output directory {} already exists; pass --overwrite to replace it or --resume to continue it", .0.display())]
    OutputExists(PathBuf),
    /// Too many consecutive non-finite losses or gradients.
    #[error(
        "stopping: {count} consecutive updates had a non-finite loss or gradient (last at step {step})"
    )]
    NonFinite {
        /// Consecutive skipped updates.
        count: usize,
        /// The step of the last one.
        step: usize,
    },
    /// An error from the model crate.
    #[error(transparent)]
    Model(#[from] grpo_model::Error),
    /// An error from grpo-core.
    #[error(transparent)]
    Core(#[from] grpo_core::CoreError),
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

impl TrainError {
    /// Wraps an I/O error with its path.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias for grpo-train.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
