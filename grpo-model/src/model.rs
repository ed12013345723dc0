//! [`Model`]: a validated config, its [`Layout`] and the flat f32 parameter buffer, plus the
//! constructors (load a checkpoint directory, seeded random init) and save.

use std::path::Path;

use grpo_kernels::ops::rope::RopeTable;

use crate::backward::{BwdScratch, TilePartial};
use crate::buffers::{BufferPool, ScratchPool};
use crate::checkpoint::{self, SaveOptions};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::{Layout, init_random};

/// A decoder-only transformer (Llama / Qwen2 / Qwen3) with its parameters.
#[derive(Clone)]
pub struct Model {
    /// The validated configuration.
    pub config: ModelConfig,
    /// Names, shapes and offsets of every tensor in `weights`.
    pub layout: Layout,
    /// All parameters, one flat f32 buffer laid out by `layout` (`[layout.total]`).
    pub weights: Vec<f32>,
    pub(crate) rope: RopeTable,
    /// Activation buffers handed back by [`Model::recycle`].
    pub(crate) buffers: BufferPool,
    /// Backward temporaries kept between calls (same lifetime as `buffers`).
    pub(crate) bwd_scratch: ScratchPool<BwdScratch>,
    /// The row-tiled MLP backward's per-task temporaries and weight-gradient partials.
    pub(crate) tile_scratch: ScratchPool<TilePartial>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("parameters", &self.layout.total)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// A model from a config and a flat weight buffer (checked against the layout).
    pub fn new(config: ModelConfig, weights: Vec<f32>) -> Result<Self> {
        config.validate()?;
        let layout = Layout::new(&config);
        if weights.len() != layout.total {
            return Err(Error::InvalidInput(format!(
                "weights have {} values, the config needs {}",
                weights.len(),
                layout.total
            )));
        }
        let rope = RopeTable::new(
            config.head_dim,
            config.rope_theta as f64,
            config.max_position_embeddings,
        )?;
        Ok(Model {
            config,
            layout,
            weights,
            rope,
            buffers: BufferPool::default(),
            bwd_scratch: ScratchPool::default(),
            tile_scratch: ScratchPool::default(),
        })
    }

    /// A new model with seeded random weights (normal(0, 0.02) matrices, unit norms, zero
    /// biases): the same seed gives the same weights on every platform.
    pub fn new_random(config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let weights = init_random(&Layout::new(&config), seed);
        Self::new(config, weights)
    }

    /// Loads a Hugging Face checkpoint directory (config.json + safetensors).
    pub fn load(dir: &Path) -> Result<Self> {
        let (config, weights) = checkpoint::load(dir)?;
        Self::new(config, weights)
    }

    /// Saves as a Hugging Face checkpoint directory (see [`checkpoint::save`]).
    pub fn save(&self, dir: &Path, opts: &SaveOptions) -> Result<()> {
        checkpoint::save(dir, &self.config, &self.weights, opts)
    }

    /// A zeroed gradient buffer with the layout of `weights`.
    pub fn zero_grads(&self) -> Vec<f32> {
        vec![0.0; self.layout.total]
    }

    /// The named tensor's slice of `buf` (weights or gradients), if the layout has it.
    pub fn tensor<'a>(&self, buf: &'a [f32], name: &str) -> Option<&'a [f32]> {
        let t = self.layout.find(name)?;
        buf.get(t.range())
    }

    /// Checks ids against the vocabulary and the length against max_position_embeddings.
    pub fn check_tokens(&self, what: &str, ids: &[u32], total_len: usize) -> Result<()> {
        if let Some((index, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, id)| **id as usize >= self.config.vocab_size)
        {
            return Err(Error::TokenOutOfVocab {
                what: what.into(),
                id,
                index,
                vocab_size: self.config.vocab_size,
            });
        }
        if total_len > self.config.max_position_embeddings {
            return Err(Error::SequenceTooLong {
                what: what.into(),
                len: total_len,
                max: self.config.max_position_embeddings,
            });
        }
        Ok(())
    }

    pub(crate) fn w(&self, offset: usize, len: usize) -> &[f32] {
        &self.weights[offset..offset + len]
    }
}
