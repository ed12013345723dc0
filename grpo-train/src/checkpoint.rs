//! Checkpoints: `run_dir/checkpoint/` is a Hugging Face model directory
//! (config.json, model.safetensors in f32, tokenizer files) plus
//! `optimizer.bin` (AdamW moments) and `trainer_state.json`. A checkpoint is
//! written to a fresh temporary directory and swapped in by rename, so a
//! crash leaves either the old or the new checkpoint, never a mix.

use std::path::{Path, PathBuf};

use grpo_model::Model;
use grpo_model::checkpoint::{SaveOptions, StoreDtype};
use grpo_model::config::{HfConfig, ModelConfig};
use grpo_model::tokenizer::{Tokenizer, build_char_tokenizer};

use crate::config::{ModelSection, RunConfigFile};
use crate::error::{Result, TrainError};
use crate::metrics::Record;
use crate::state::{Moments, TrainerState};
use crate::task::TaskSource;

/// End-of-text token of tokenizers built for a task.
pub const EOS: &str = "<|endoftext|>";

/// The model and tokenizer a new run starts from.
pub fn initial_model(cfg: &RunConfigFile, task: &TaskSource) -> Result<(Model, Tokenizer)> {
    match &cfg.model {
        ModelSection::Checkpoint { path } => {
            if !path.join("config.json").exists() {
                return Err(TrainError::Config {
                    location: Some("model.path".into()),
                    message: format!(
                        "{} has no config.json (not a Hugging Face model directory)",
                        path.display()
                    ),
                });
            }
            let model = Model::load(path)?;
            let tok = Tokenizer::from_dir(path)?;
            Ok((model, tok))
        }
        ModelSection::New(n) => {
            let alphabet = task.alphabet();
            if alphabet.is_empty() {
                return Err(TrainError::Config {
                    location: Some("model.source".into()),
                    message: "a new model needs a task with a known alphabet (arithmetic); use source = \"checkpoint\"".into(),
                });
            }
            let tok = build_char_tokenizer(&alphabet, &[EOS], Some(EOS), None, Some(EOS), None)?;
            let eos = tok.token_to_id(EOS).unwrap_or(0);
            let arch = match n.architecture.as_str() {
                "qwen2" => "Qwen2ForCausalLM",
                "qwen3" => "Qwen3ForCausalLM",
                "llama" => "LlamaForCausalLM",
                other => {
                    return Err(TrainError::Config {
                        location: Some("model.architecture".into()),
                        message: format!("`{other}` is not one of qwen2, qwen3, llama"),
                    });
                }
            };
            let json = serde_json::json!({
                "architectures": [arch],
                "vocab_size": tok.vocab_size(),
                "hidden_size": n.hidden_size,
                "intermediate_size": n.intermediate_size,
                "num_hidden_layers": n.num_layers,
                "num_attention_heads": n.num_heads,
                "num_key_value_heads": n.num_kv_heads,
                "head_dim": n.hidden_size / n.num_heads.max(1),
                "max_position_embeddings": n.max_position_embeddings,
                "rms_norm_eps": 1e-6,
                "rope_theta": n.rope_theta,
                "tie_word_embeddings": n.tie_word_embeddings,
                "hidden_act": "silu",
                "bos_token_id": eos,
                "eos_token_id": eos,
                "pad_token_id": eos,
            });
            let hf: HfConfig =
                serde_json::from_value(json).map_err(|e| TrainError::Other(e.to_string()))?;
            let config = ModelConfig::from_hf(&hf)?;
            check_model_size(n, &config)?;
            let model = Model::new_random(config, cfg.seed)?;
            Ok((model, tok))
        }
    }
}

/// Refuses a new model whose training state (f32 weights, gradients and two AdamW moments:
/// 16 bytes per parameter) cannot be allocated, before anything is allocated.
fn check_model_size(n: &crate::config::NewModelSection, config: &ModelConfig) -> Result<()> {
    let err = |m: String| TrainError::Config {
        location: Some("model".into()),
        message: m,
    };
    let Some(params) = grpo_model::weights::Layout::parameter_count(config) else {
        return Err(err(format!(
            "the parameter count of hidden_size = {}, intermediate_size = {}, num_layers = {} \
             overflows",
            n.hidden_size, n.intermediate_size, n.num_layers
        )));
    };
    let bytes = params.saturating_mul(16);
    let limit = memory_bytes().unwrap_or(u64::MAX as u128);
    if bytes > limit || params > isize::MAX as u128 / 4 {
        return Err(err(format!(
            "a model of {params} parameters needs {bytes} bytes ({:.1} GiB) for f32 weights, \
             gradients and AdamW moments; this machine has {:.1} GiB",
            bytes as f64 / (1u64 << 30) as f64,
            limit as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

/// Physical memory in bytes (Linux `/proc/meminfo`), if known.
fn memory_bytes() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Writes the checkpoint into `run_dir/checkpoint` atomically; returns its path.
pub fn save(
    run_dir: &Path,
    model: &Model,
    tok: &Tokenizer,
    moments: &Moments,
    state: &TrainerState,
    reference: Option<&Model>,
) -> Result<PathBuf> {
    let final_dir = run_dir.join("checkpoint");
    let tmp = tempfile::Builder::new()
        .prefix(".checkpoint-tmp-")
        .tempdir_in(run_dir)
        .map_err(|e| TrainError::io(run_dir, e))?;
    let opts = SaveOptions {
        dtype: StoreDtype::F32,
        max_shard_bytes: None,
        copy_from: None,
    };
    model.save(tmp.path(), &opts)?;
    tok.save(tmp.path())?;
    let opt_path = tmp.path().join("optimizer.bin");
    std::fs::write(&opt_path, moments.to_bytes()).map_err(|e| TrainError::io(&opt_path, e))?;
    if let Some(r) = reference {
        let ref_path = tmp.path().join(REFERENCE_FILE);
        std::fs::write(&ref_path, f32_bytes(&r.weights))
            .map_err(|e| TrainError::io(&ref_path, e))?;
    }
    let st_path = tmp.path().join("trainer_state.json");
    let st = serde_json::to_string_pretty(state).map_err(|e| TrainError::Other(e.to_string()))?;
    std::fs::write(&st_path, st).map_err(|e| TrainError::io(&st_path, e))?;
    // Swap: move the old checkpoint aside, the new one in, then delete the old.
    let old = run_dir.join(".checkpoint-old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old).map_err(|e| TrainError::io(&final_dir, e))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &final_dir).map_err(|e| TrainError::io(&kept, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(final_dir)
}

/// File holding the reference policy's weights (raw little-endian f32, the
/// model's flat parameter layout) when the run has one.
pub const REFERENCE_FILE: &str = "reference.bin";

fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * xs.len());
    for x in xs {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// What `--resume` restores.
pub struct Restored {
    /// The model.
    pub model: Model,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Optimiser moments.
    pub moments: Moments,
    /// Trainer state.
    pub state: TrainerState,
    /// The reference policy's weights, when the run had one at the checkpoint.
    pub reference_weights: Option<Vec<f32>>,
}

/// Loads `run_dir/checkpoint` (or the pre-swap copy if a crash interrupted a swap).
pub fn load(run_dir: &Path) -> Result<Restored> {
    let mut dir = run_dir.join("checkpoint");
    if !dir.exists() {
        let old = run_dir.join(".checkpoint-old");
        if old.exists() {
            dir = old;
        } else {
            return Err(TrainError::Other(format!(
                "{} has no checkpoint to resume from",
                run_dir.display()
            )));
        }
    }
    let model = Model::load(&dir)?;
    let tokenizer = Tokenizer::from_dir(&dir)?;
    let moments = Moments::read(&dir.join("optimizer.bin"), model.weights.len())?;
    let st_path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&st_path).map_err(|e| TrainError::io(&st_path, e))?;
    let state: TrainerState = serde_json::from_str(&text)
        .map_err(|e| TrainError::Other(format!("{}: {e}", st_path.display())))?;
    let ref_path = dir.join(REFERENCE_FILE);
    let reference_weights = if ref_path.exists() {
        let bytes = std::fs::read(&ref_path).map_err(|e| TrainError::io(&ref_path, e))?;
        if bytes.len() != 4 * model.weights.len() {
            return Err(TrainError::Other(format!(
                "{}: {} bytes, the model needs {} ({} parameters)",
                ref_path.display(),
                bytes.len(),
                4 * model.weights.len(),
                model.weights.len()
            )));
        }
        Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    } else {
        None
    };
    Ok(Restored {
        model,
        tokenizer,
        moments,
        state,
        reference_weights,
    })
}

/// Rewrites `metrics.jsonl` to hold exactly `history` (drops lines written
/// after the checkpoint that is being resumed).
pub fn truncate_metrics(run_dir: &Path, history: &[Record]) -> Result<()> {
    let path = run_dir.join("metrics.jsonl");
    let mut text = String::new();
    for r in history {
        text.push_str(&serde_json::to_string(r).map_err(|e| TrainError::Other(e.to_string()))?);
        text.push('\n');
    }
    grpo_model::checkpoint::write_atomic(&path, text.as_bytes())?;
    Ok(())
}
