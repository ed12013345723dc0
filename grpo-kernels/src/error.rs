//! The crate's single error type.
//!
//! Every variant names the op and the offending argument so a caller can tell which tensor of
//! which layer was wrong without a debugger.

/// Errors returned by grpo-kernels ops.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum KernelError {
    // ---- shapes and arguments ----
    /// A buffer's length disagrees with the dimensions passed to the op.
    #[error("{op}: argument `{arg}` has length {got}, expected {expected}")]
    ShapeMismatch {
        /// The op that detected the mismatch (e.g. `"matmul"`).
        op: &'static str,
        /// The argument name as it appears in the op's signature.
        arg: &'static str,
        /// Expected number of f32 elements.
        expected: usize,
        /// Actual number of f32 elements.
        got: usize,
    },
    /// A scalar argument or a combination of dimensions is invalid.
    #[error("{op}: invalid argument `{arg}`: {reason}")]
    InvalidArgument {
        /// The op that rejected the argument.
        op: &'static str,
        /// The argument name.
        arg: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A token id is outside the vocabulary (embedding rows or lm_head rows).
    #[error("{op}: token id {id} at position {position} is out of range (vocabulary size {vocab})")]
    TokenOutOfRange {
        /// The op that saw the id.
        op: &'static str,
        /// The offending id.
        id: u32,
        /// Its index in the id slice.
        position: usize,
        /// Vocabulary size (number of table rows).
        vocab: usize,
    },
    /// A position is beyond the precomputed rotary table.
    #[error(
        "{op}: position {position} at token {token} exceeds the rotary table length {max_positions}"
    )]
    PositionOutOfRange {
        /// The op that saw the position.
        op: &'static str,
        /// The offending position.
        position: usize,
        /// Its token index in the positions slice.
        token: usize,
        /// Number of positions the table was built for.
        max_positions: usize,
    },
    /// An input that must be finite is NaN or infinite.
    #[error("{op}: argument `{arg}` has a non-finite value {value} at index {index}")]
    NonFinite {
        /// The op that saw the value.
        op: &'static str,
        /// The argument name.
        arg: &'static str,
        /// Index of the first non-finite element.
        index: usize,
        /// The value itself.
        value: f32,
    },
    // ---- devices ----
    /// A CUDA device was requested but the crate was built without the `cuda` feature.
    #[error("CUDA support was not compiled in (rebuild grpo-kernels with `--features cuda`)")]
    CudaNotCompiled,
    /// A CUDA device could not be opened or used.
    #[error("CUDA error: {0}")]
    Cuda(String),
}

/// Result alias used by every fallible op.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;

/// Checks that `got` equals `expected`, naming the op and argument otherwise.
pub(crate) fn check_len(
    op: &'static str,
    arg: &'static str,
    got: usize,
    expected: usize,
) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(KernelError::ShapeMismatch {
            op,
            arg,
            expected,
            got,
        })
    }
}

/// Multiplies dimensions, reporting overflow as an invalid argument of `op`.
pub(crate) fn checked_size(op: &'static str, arg: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| KernelError::InvalidArgument {
            op,
            arg,
            reason: format!("dimensions {dims:?} overflow usize"),
        })
}

/// Builds an [`KernelError::InvalidArgument`].
pub(crate) fn invalid(
    op: &'static str,
    arg: &'static str,
    reason: impl Into<String>,
) -> KernelError {
    KernelError::InvalidArgument {
        op,
        arg,
        reason: reason.into(),
    }
}
