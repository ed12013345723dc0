//! Run state saved with every checkpoint, so `--resume` continues
//! bit-for-bit: stage and step, the data cursor, the optimiser's moments and
//! step count, and the advantage estimator's state. Every random choice of
//! the trainer is derived from (seed, stage, step, index), so no generator
//! position needs saving.

use std::path::Path;

use serde::{Deserialize, Serialize};

use grpo_core::advantage::AdvantageState;

use crate::error::{Result, TrainError};

/// Which stage the run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Supervised warm start.
    Sft,
    /// GRPO.
    Grpo,
    /// Finished.
    Done,
}

impl Stage {
    /// Name used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Sft => "sft",
            Stage::Grpo => "grpo",
            Stage::Done => "done",
        }
    }
}

/// The trainer's resumable state (besides weights and optimiser moments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Current stage.
    pub stage: Stage,
    /// Steps completed in the current stage.
    pub step: usize,
    /// Next training-data index.
    pub cursor: u64,
    /// AdamW steps taken (continues across stages).
    pub adam_step: u64,
    /// Consecutive skipped (non-finite) updates.
    pub nonfinite_streak: usize,
    /// The advantage estimator's state.
    pub advantage_state: AdvantageState,
    /// Number of metrics lines written up to this checkpoint.
    pub metrics_lines: usize,
}

/// AdamW first and second moments, flat like the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// First moment `[params]`.
    pub m: Vec<f32>,
    /// Second moment `[params]`.
    pub v: Vec<f32>,
}

impl Moments {
    /// Zeros for `n` parameters.
    pub fn zeros(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// Little-endian f32 bytes: `m` then `v`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * self.m.len());
        for x in self.m.iter().chain(&self.v) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Reads moments for `n` parameters from `path`.
    pub fn read(path: &Path, n: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        if bytes.len() != 8 * n {
            return Err(TrainError::Other(format!(
                "{}: optimizer state has {} bytes, the model needs {} ({} parameters)",
                path.display(),
                bytes.len(),
                8 * n,
                n
            )));
        }
        let vals: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self {
            m: vals[..n].to_vec(),
            v: vals[n..].to_vec(),
        })
    }
}
