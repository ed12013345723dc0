//! [`ModelLm`]: the engine's [`Lm`] trait over a `grpo-model` transformer with a paged KV
//! cache ([`KvPool`], 16 positions per block): batched prefill with
//! [`Model::prefill_paged`], decode steps with [`Model::decode_paged`] (attention reads the
//! block tables directly).

use std::borrow::Borrow;

use grpo_model::Model;
use grpo_model::kv::{KvPool, PagedSeq};

use crate::engine::Lm;

/// Positions per KV block.
pub const BLOCK_SIZE: usize = 16;

/// A `grpo-model` transformer as an engine backend, borrowed (`ModelLm<&Model>`, the usual
/// `ModelLm::new(&model)`) or owned (`ModelLm<Model>`, e.g. by a server's generation thread).
pub struct ModelLm<M: Borrow<Model>> {
    model: M,
}

impl<M: Borrow<Model>> ModelLm<M> {
    /// Wraps `model`.
    pub fn new(model: M) -> Self {
        Self { model }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        self.model.borrow()
    }
}

impl<M: Borrow<Model>> Lm for ModelLm<M> {
    type Pool = KvPool;

    fn vocab_size(&self) -> usize {
        self.model().config.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.model().config.max_position_embeddings
    }

    fn eos_token_ids(&self) -> Vec<u32> {
        self.model().config.eos_token_ids.clone()
    }

    fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    fn new_pool(&self) -> KvPool {
        KvPool::new(&self.model().config, BLOCK_SIZE)
    }

    fn ensure_blocks(&self, pool: &mut KvPool, blocks: usize) {
        pool.ensure_blocks(blocks);
    }

    fn copy_block(
        &self,
        pool: &mut KvPool,
        src: u32,
        dst: u32,
        positions: usize,
    ) -> Result<(), String> {
        pool.copy_block(src, dst, positions)
            .map_err(|e| e.to_string())
    }

    fn prefill(&self, pool: &mut KvPool, seqs: &[PagedSeq<'_>]) -> Result<Vec<f32>, String> {
        self.model()
            .prefill_paged(pool, seqs)
            .map_err(|e| e.to_string())
    }

    fn decode(&self, pool: &mut KvPool, seqs: &[PagedSeq<'_>]) -> Result<Vec<f32>, String> {
        self.model()
            .decode_paged(pool, seqs)
            .map_err(|e| e.to_string())
    }
}
