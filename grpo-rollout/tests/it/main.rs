//! Integration tests for grpo-rollout (one binary): the engine over a toy
//! model whose logits are a deterministic function of the whole prefix
//! (`engine`, multi-turn `session`), and over the committed transformers parity
//! fixtures (`model`); with the `serve` feature, the HTTP server (`serve`).

mod engine;
mod model;
#[cfg(feature = "serve")]
mod serve;
mod session;

use grpo_model::{Arch, ModelConfig};

/// A 2-layer tied Qwen2 config (4 query heads, 2 KV heads, end-of-turn token 2) with the
/// given sizes, for random test models.
pub(crate) fn qwen2_config(
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    head_dim: usize,
    max_position_embeddings: usize,
) -> ModelConfig {
    ModelConfig {
        arch: Arch::Qwen2,
        vocab_size,
        hidden_size,
        intermediate_size,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim,
        max_position_embeddings,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: vec![2],
        pad_token_id: None,
    }
}
