//! Run state saved with every checkpoint, so `--resume` continues
//! bit-for-bit: stage and step, the data cursor, the optimiser's moments and
//! step count, the advantage estimator's state, the KL controller and R²VPO's dual variable. Every random choice of
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
    /// The KL coefficient controller (`[algorithm.kl]`), with its current coefficient.
    #[serde(default)]
    pub kl_controller: Option<grpo_core::kl::KlController>,
    /// R²VPO's dual variable η when `algorithm.schedule.r2vpo_dual_lr` is set.
    #[serde(default)]
    pub r2vpo_eta: Option<f64>,
    /// SPO with the KL-adaptive ρ: per prompt key, the response it last trained on and that
    /// response's log-probs then (the next visit measures how far the policy moved on it).
    #[serde(default)]
    pub spo_memory: std::collections::BTreeMap<String, SpoMemory>,
    /// The prompt sampler (`[algorithm.sampler]`) with its pool statistics.
    #[serde(default)]
    pub sampler: Option<SamplerRun>,
}

/// A prompt sampler's state and the per-prompt statistics it draws by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerRun {
    /// The sampler (config and state).
    pub sampler: grpo_core::sampler::PromptSampler,
    /// Pass rate per pool prompt (0.5 before its first visit).
    pub pass_rate: Vec<f64>,
    /// Distinct-2 diversity of each pool prompt's last responses (1 before its first visit).
    pub diversity: Vec<f64>,
}

/// A prompt's last trained response and its log-probs at that time (SPO's distance `D_x`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoMemory {
    /// Response token ids.
    pub ids: Vec<u32>,
    /// Their log-probs under the policy of that step.
    pub logprobs: Vec<f32>,
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
