//! `grpo serve`: an OpenAI-compatible HTTP server over a checkpoint
//! (`/v1/models`, `/v1/completions`, `/v1/chat/completions`; see
//! `grpo_rollout::serve` for the parameters), so agent harnesses can drive a
//! policy. The tokenizer and chat template come from the checkpoint directory;
//! without a `tokenizer.json` only token-id prompts are accepted. Binds
//! 127.0.0.1 unless `--host` says otherwise; serves until Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use grpo_model::Model;
use grpo_model::tokenizer::Tokenizer;
use grpo_rollout::serve::{self, Codec, OwnedModelLm, ServerConfig, TokenizerCodec};

/// Arguments of `grpo serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Address to bind (a non-loopback address exposes the model without
    /// authentication).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind (0 = any free port; the log says which).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Model name reported by the API (default: the checkpoint directory's name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Maximum sequences decoded together.
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// KV-cache budget in tokens over all live sequences (past it, sequences
    /// are preempted and recomputed).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_cached_tokens: usize,
    /// Maximum `n` of one request.
    #[arg(long, default_value_t = 256)]
    pub max_n: usize,
    /// Base of the seeds of requests that give no `seed`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `grpo serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.model.clone();
    let codec: Option<Arc<dyn Codec>> = if dir.join("tokenizer.json").exists() {
        let tok = Tokenizer::from_dir(&dir).context("loading tokenizer")?;
        Some(Arc::new(
            TokenizerCodec::new(tok).context("loading the chat template")?,
        ))
    } else {
        tracing::warn!(
            "{} has no tokenizer.json: only token-id prompts are accepted",
            dir.display()
        );
        None
    };
    let model_name = match args.served_model_name {
        Some(n) => n,
        None => std::fs::canonicalize(&dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "grpo-policy".into()),
    };
    let config = ServerConfig {
        host: args.host,
        port: args.port,
        model_name,
        max_batch: args.max_batch,
        max_cached_tokens: args.max_cached_tokens,
        max_n: args.max_n,
        seed: args.seed,
        ..ServerConfig::default()
    };
    serve::run(
        config,
        move || {
            Model::load(&dir)
                .map(OwnedModelLm::new)
                .map_err(|e| format!("{}: {e}", dir.display()))
        },
        codec,
    )
    .context("grpo serve")
}
