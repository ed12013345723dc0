//! The crate's error type. Every public function that takes user data returns
//! `Result<_, CoreError>`; variants name the offending input and carry values.
//!
//! Shared by every module of the crate: add variants with small edits, keep
//! them grouped by the comment headers below.

use thiserror::Error;

/// Errors returned by grpo-core.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    // ---- shapes and layout ----
    /// Two arrays that must agree in shape do not.
    #[error("shape mismatch for `{what}`: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// Name of the input (e.g. `old_log_prob`).
        what: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Actual shape.
        got: Vec<usize>,
    },
    /// An input that must not be empty is empty.
    #[error("`{what}` is empty")]
    Empty {
        /// Name of the input.
        what: String,
    },
    /// A row of the response mask has no valid token.
    #[error("row {row} of the response mask has no valid token")]
    EmptyMaskRow {
        /// Row index.
        row: usize,
    },
    /// A mask value other than 0 or 1.
    #[error("`{what}` must be 0/1, found {value} at row {row}, position {col}")]
    InvalidMask {
        /// Name of the input.
        what: String,
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
        /// The offending value.
        value: f64,
    },

    // ---- values ----
    /// A reward is NaN or infinite.
    #[error("reward `{component}` of row {row} is not finite ({value})")]
    NonFiniteReward {
        /// Row index.
        row: usize,
        /// Reward component name (`reward` for the scalar reward).
        component: String,
        /// The offending value.
        value: f64,
    },
    /// A per-token input (log-prob, entropy, advantage) is NaN or infinite on a valid token.
    #[error("`{what}` is not finite ({value}) at row {row}, position {col}")]
    NonFinite {
        /// Name of the input.
        what: String,
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
        /// The offending value.
        value: f64,
    },

    /// A per-row input value is outside the domain the method accepts (e.g. a
    /// non-binary reward for DisCO).
    #[error("invalid input `{what}` at row {row}: {reason}")]
    InvalidInput {
        /// Name of the input.
        what: String,
        /// Row index.
        row: usize,
        /// Why it is invalid.
        reason: String,
    },

    // ---- groups ----
    /// A group has fewer members than the estimator needs.
    #[error("group {group} has {size} member(s); `{method}` needs at least {min}")]
    GroupTooSmall {
        /// Group id.
        group: usize,
        /// Its size.
        size: usize,
        /// Minimum required.
        min: usize,
        /// The method that requires it.
        method: String,
    },
    /// A group id refers to no row, or the group index is malformed.
    #[error("invalid group index: {reason}")]
    InvalidGroupIndex {
        /// What is wrong.
        reason: String,
    },

    // ---- configuration ----
    /// A hyper-parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: String,
        /// The value given, as text.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A required input for the chosen method is missing.
    #[error("`{method}` needs input `{what}`, which was not given")]
    MissingInput {
        /// Method name.
        method: String,
        /// Missing input name.
        what: String,
    },
    /// A registry name that does not exist.
    #[error("unknown {kind} `{name}`; known: {known}")]
    UnknownName {
        /// What kind of item (advantage, loss, ...).
        kind: String,
        /// The name given.
        name: String,
        /// Known names, comma separated.
        known: String,
    },
    /// A field of an `eval` request (`compat::eval`) is missing, malformed or unknown.
    #[error("field {field}: {reason}")]
    InvalidField {
        /// Dotted field path (`fn`, `params`, `inputs.log_prob`, ...).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Saved state could not be restored.
    #[error("invalid saved state for `{what}`: {reason}")]
    InvalidState {
        /// Which stateful component.
        what: String,
        /// Why.
        reason: String,
    },
}

/// Result alias for grpo-core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
