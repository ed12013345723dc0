//! [`ModelLm`]: the engine's [`Lm`] trait over a `grpo-model` transformer,
//! using its KV-cache forward (`forward_step` for prefill, `decode_step` for
//! batched decode steps).

use grpo_model::{KvCache, Model};

use crate::engine::Lm;

/// A borrowed model as an engine backend.
pub struct ModelLm<'m> {
    model: &'m Model,
}

impl<'m> ModelLm<'m> {
    /// Wraps `model`.
    pub fn new(model: &'m Model) -> Self {
        Self { model }
    }
}

impl Lm for ModelLm<'_> {
    type Cache = KvCache;

    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.model.config.max_position_embeddings
    }

    fn eos_token_ids(&self) -> Vec<u32> {
        self.model.config.eos_token_ids.clone()
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(&self.model.config)
    }

    fn fork(&self, cache: &KvCache) -> KvCache {
        cache.clone()
    }

    fn cache_len(&self, cache: &KvCache) -> usize {
        cache.len()
    }

    fn extend(&self, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<f32>, String> {
        self.model
            .forward_step(cache, tokens)
            .map_err(|e| e.to_string())
    }

    fn decode(&self, caches: &mut [&mut KvCache], tokens: &[u32]) -> Result<Vec<f32>, String> {
        self.model
            .decode_step(caches, tokens)
            .map_err(|e| e.to_string())
    }
}
