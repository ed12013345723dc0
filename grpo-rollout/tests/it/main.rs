//! Integration tests for grpo-rollout (one binary): the engine over a toy
//! model whose logits are a deterministic function of the whole prefix.

mod engine;
