//! Integration tests for grpo-rollout (one binary): the engine over a toy
//! model whose logits are a deterministic function of the whole prefix
//! (`engine`, multi-turn `session`), and over the committed transformers parity
//! fixtures (`model`); with the `serve` feature, the HTTP server (`serve`).

mod engine;
mod model;
#[cfg(feature = "serve")]
mod serve;
mod session;
