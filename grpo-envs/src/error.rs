//! The crate's error type: one enum whose variants name the offending input.

use thiserror::Error;

/// Errors returned by grpo-envs.
#[derive(Debug, Error)]
pub enum EnvError {
    /// An environment or task parameter is invalid.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The offending parameter.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No environment with this name is registered.
    #[error("unknown environment `{0}` (see `grpo env list`)")]
    UnknownEnv(String),
    /// A dataset record is malformed.
    #[error("{path}:{line}: field `{field}`: {reason}")]
    BadRecord {
        /// The file being read.
        path: String,
        /// 1-based line (or row) number.
        line: usize,
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row of a columnar task file (Parquet) is malformed.
    #[error("{path}: row {row}: column `{column}`: {reason}")]
    BadRow {
        /// The file being read.
        path: String,
        /// 1-based row number (across row groups).
        row: usize,
        /// The offending column.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A column named in the column map is not in the file.
    #[error("{path}: no column `{column}` for `{role}` (the file has: {available})")]
    MissingColumn {
        /// The file being read.
        path: String,
        /// The missing column.
        column: String,
        /// What the map uses it for (`prompt`, `answer`, `id`, `extra`).
        role: String,
        /// The file's top-level columns, comma-separated.
        available: String,
    },
    /// A column has a type the map cannot use (e.g. a non-string prompt column).
    #[error("{path}: column `{column}` is {found}; {expected}")]
    ColumnType {
        /// The file being read.
        path: String,
        /// The offending column.
        column: String,
        /// Its type in the file.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// A file cannot be decoded at all (corrupt, truncated, not the expected format).
    #[error("{path}: {reason}")]
    BadFile {
        /// The file being read.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A generator could not build an instance for this seed.
    #[error("environment `{env}` could not generate an instance for seed {seed}: {reason}")]
    Generation {
        /// The environment.
        env: String,
        /// The instance seed.
        seed: u64,
        /// Why generation failed.
        reason: String,
    },
    /// The environment was stepped in a state where that is not allowed.
    #[error("environment `{env}`: {reason}")]
    Protocol {
        /// The environment.
        env: String,
        /// What was wrong.
        reason: String,
    },
    /// A renderer or sampler supplied to the runner failed or broke an invariant.
    #[error("episode {episode}: {reason}")]
    Runner {
        /// The episode id.
        episode: u64,
        /// What went wrong.
        reason: String,
    },
    /// A reward was NaN or infinite.
    #[error("environment `{env}` returned a non-finite reward `{component}` = {value}")]
    NonFiniteReward {
        /// The environment.
        env: String,
        /// The reward component.
        component: String,
        /// The value.
        value: f64,
    },
    /// A transcript cannot be turned into the requested view.
    #[error("transcript view `{view}`: {reason}")]
    View {
        /// The requested view.
        view: String,
        /// Why it is impossible.
        reason: String,
    },
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl EnvError {
    /// Shorthand for [`EnvError::InvalidParam`].
    pub fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        EnvError::InvalidParam {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for grpo-envs.
pub type Result<T, E = EnvError> = std::result::Result<T, E>;
