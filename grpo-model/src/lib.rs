//! Llama/Qwen transformer forward/backward, HF checkpoints, tokenizer and chat templates.
#![deny(missing_docs)]

pub mod backward;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod forward;
pub mod kv;
pub mod model;
pub mod tokenizer;
pub mod weights;

pub use config::{Arch, ModelConfig};
pub use error::{Error, Result};
pub use forward::{Activations, ForwardOptions, ForwardOutput, GroupInput, SeqInput};
pub use kv::KvCache;
pub use model::Model;
