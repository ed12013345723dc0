//! Llama/Qwen transformer forward/backward, HF checkpoints, tokenizer and chat templates.
//!
//! This crate is being built; see the open issues and ARCHITECTURE.md.
#![deny(missing_docs)]
