//! The crate's error type: every variant names the offending file, tensor, field or input.

use std::path::PathBuf;

/// Everything that can go wrong in grpo-model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON file (config.json, index, tokenizer_config.json) did not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `architectures` names a model we do not implement.
    #[error(
        "unsupported architecture {arch:?} (supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"
    )]
    UnsupportedArchitecture {
        /// The architecture string from config.json.
        arch: String,
    },
    /// The config asks for a feature we do not implement (sliding window, rope scaling, ...).
    #[error("unsupported config feature: {feature}")]
    UnsupportedFeature {
        /// What the feature is, with its value.
        feature: String,
    },
    /// A config field is missing or has an impossible value.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// The config.json key.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A safetensors file is truncated or corrupt.
    #[error("{file}: corrupt or truncated safetensors file: {reason}")]
    CorruptSafetensors {
        /// The file.
        file: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// A tensor's shape disagrees with the config.
    #[error("{file}: tensor `{name}` has shape {found:?}, config implies {expected:?}")]
    ShapeMismatch {
        /// The file holding the tensor.
        file: PathBuf,
        /// HF tensor name.
        name: String,
        /// Shape implied by config.json.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype we cannot read.
    #[error("{file}: tensor `{name}` has dtype {dtype}, expected F32, BF16 or F16")]
    UnsupportedDtype {
        /// The file holding the tensor.
        file: PathBuf,
        /// HF tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A tensor the config requires is not in the checkpoint.
    #[error("{dir}: tensor `{name}` is missing from the checkpoint")]
    MissingTensor {
        /// The checkpoint directory.
        dir: PathBuf,
        /// HF tensor name.
        name: String,
    },
    /// The checkpoint holds a tensor this architecture does not have.
    #[error("{file}: unexpected tensor `{name}` for this config")]
    UnexpectedTensor {
        /// The file holding the tensor.
        file: PathBuf,
        /// HF tensor name.
        name: String,
    },
    /// A token id is not in the vocabulary.
    #[error("{what}: token id {id} at index {index} is outside the vocabulary (size {vocab_size})")]
    TokenOutOfVocab {
        /// Which input (e.g. "sequence 3 completion").
        what: String,
        /// The id.
        id: u32,
        /// Its index in that input.
        index: usize,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A sequence is longer than the model's position limit.
    #[error("{what}: {len} tokens exceed max_position_embeddings = {max}")]
    SequenceTooLong {
        /// Which input.
        what: String,
        /// Its length in tokens.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An input has the wrong length or is otherwise malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tokenizer failed to load or to encode/decode.
    #[error("tokenizer {path}: {msg}")]
    Tokenizer {
        /// tokenizer.json path (or "<built>" for an in-memory one).
        path: String,
        /// The message from the tokenizers crate.
        msg: String,
    },
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
    /// A kernel rejected its arguments.
    #[error("kernel: {0}")]
    Kernel(#[from] grpo_kernels::KernelError),
}

/// Result alias for grpo-model.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
