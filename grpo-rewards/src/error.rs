//! The crate's error type. Shared by every module: add variants with small,
//! targeted edits (two people write this crate at once).

use thiserror::Error;

/// Errors returned by grpo-rewards.
#[derive(Debug, Error)]
pub enum RewardError {
    /// An input record is malformed (missing field, wrong type, bad value).
    #[error("invalid input `{field}`: {reason}")]
    InvalidInput {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error while running a verifier.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for grpo-rewards.
pub type Result<T, E = RewardError> = std::result::Result<T, E>;
