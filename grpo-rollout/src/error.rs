//! The engine's error type; request errors name the request and the field.

use thiserror::Error;

/// Errors returned by grpo-rollout.
#[derive(Debug, Error)]
pub enum RolloutError {
    /// A request is invalid (empty prompt, bad sampling parameter, too long).
    #[error("request {request}: {field}: {reason}")]
    InvalidRequest {
        /// Index of the request in the batch.
        request: usize,
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The model failed while running a request.
    #[error("request {request}: model error: {message}")]
    Model {
        /// Index of the request in the batch.
        request: usize,
        /// The model's error, rendered.
        message: String,
    },
    /// A session was used after it finished or was freed.
    #[error("session {0} is closed")]
    SessionClosed(usize),
}

/// Result alias for grpo-rollout.
pub type Result<T, E = RolloutError> = std::result::Result<T, E>;
