//! Integration tests for grpo-model (one binary per crate).

mod checkpoint;
mod common;
mod hf_parity;
mod kv;
mod tiling;
mod tokenizer_chat;
