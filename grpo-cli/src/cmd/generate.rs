//! `grpo generate`: sample completions from a checkpoint with the in-process
//! engine (prompt prefilled once per line, `n` samples share it).
//!
//! Input lines: `{"prompt_ids": [...]}`, `{"prompt": "..."}` (tokenized with
//! the checkpoint's tokenizer, special tokens added) or `{"messages": [...]}`
//! (rendered with the chat template, generation prompt added). Output lines:
//! `{"completions": [{"ids", "text", "logprobs", "finish_reason"}]}` or
//! `{"error": "line N: ..."}`; one bad line never stops the others.

use std::path::PathBuf;

use anyhow::{Context, bail};
use grpo_model::Model;
use grpo_model::tokenizer::Tokenizer;
use grpo_rollout::model::ModelLm;
use grpo_rollout::{
    Detokenizer, Engine, EngineConfig, GenerateStats, LogprobMode, Request, SamplingParams,
};
use serde_json::json;

use super::io::open_output;

/// Arguments of `grpo generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Input JSONL file.
    #[arg(long)]
    pub input: PathBuf,
    /// Output JSONL file (default: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Maximum new tokens per sample.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// End-of-sequence is suppressed before this many tokens.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Top-p in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Min-p in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Seed; line i uses seed + i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Report log-probs under the distribution sampled from (after temperature
    /// and truncation) instead of the raw model's.
    #[arg(long)]
    pub processed_logprobs: bool,
    /// No progress bar (it is shown on stderr only when stderr is a terminal).
    #[arg(long)]
    pub quiet: bool,
}

struct Detok<'t>(&'t Tokenizer);

impl Detokenizer for Detok<'_> {
    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids, true).unwrap_or_default()
    }
}

/// Runs `grpo generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Model::load(&args.model)
        .with_context(|| format!("loading model from {}", args.model.display()))?;
    let tok = if args.model.join("tokenizer.json").exists() {
        Some(Tokenizer::from_dir(&args.model).context("loading tokenizer")?)
    } else {
        None
    };
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read input file {}", args.input.display()))?;
    let params = SamplingParams {
        n: args.n,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: args.min_new_tokens,
        stop_token_ids: Vec::new(),
        stop: args.stop.clone(),
        ignore_eos: false,
        seed: args.seed,
        logprob_mode: if args.processed_logprobs {
            LogprobMode::Processed
        } else {
            LogprobMode::Raw
        },
    };
    // Parse every line first: a bad line becomes an error slot, the rest run as one batch.
    let mut slots: Vec<(usize, Result<Request, String>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let req = parse_line(line, tok.as_ref()).map(|prompt_ids| {
            let mut p = params.clone();
            p.seed = args.seed.wrapping_add(slots.len() as u64);
            Request {
                prompt_ids,
                params: p,
            }
        });
        slots.push((i + 1, req.map_err(|e| format!("{e:#}"))));
    }
    let requests: Vec<Request> = slots
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    let lm = ModelLm::new(&model);
    let engine = Engine::new(&lm, EngineConfig::default()).with_progress(!args.quiet);
    let mut stats = GenerateStats::default();
    let detok = tok.as_ref().map(Detok);
    let started = std::time::Instant::now();
    let mut results = engine
        .generate(
            &requests,
            detok.as_ref().map(|d| d as &dyn Detokenizer),
            &mut stats,
        )
        .into_iter();
    let secs = started.elapsed().as_secs_f64();
    let mut out = open_output(args.output.as_deref())?;
    let mut failed = 0usize;
    for (lineno, slot) in &slots {
        let value = match slot {
            Err(e) => {
                failed += 1;
                json!({ "error": format!("line {lineno}: {e}") })
            }
            Ok(_) => match results.next() {
                Some(Ok(comps)) => json!({
                    "completions": comps.iter().map(|c| json!({
                        "ids": c.ids,
                        "text": c.text,
                        "logprobs": c.logprobs,
                        "finish_reason": c.finish_reason.as_str(),
                    })).collect::<Vec<_>>()
                }),
                Some(Err(e)) => {
                    failed += 1;
                    json!({ "error": format!("line {lineno}: {e}") })
                }
                None => bail!("internal error: engine returned fewer results than requests"),
            },
        };
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    tracing::info!(
        "generated {} tokens ({} prefill) in {secs:.2} s: {:.0} decode tok/s",
        stats.decode_tokens,
        stats.prefill_tokens,
        stats.decode_tokens as f64 / stats.decode_secs.max(1e-9)
    );
    if failed > 0 {
        bail!("{failed} input line(s) failed (see the error lines in the output)");
    }
    Ok(())
}

fn parse_line(line: &str, tok: Option<&Tokenizer>) -> anyhow::Result<Vec<u32>> {
    let v: serde_json::Value = serde_json::from_str(line).context("invalid JSON")?;
    let obj = v.as_object().context("expected a JSON object")?;
    let need_tok = || tok.context("this checkpoint has no tokenizer.json; give `prompt_ids`");
    if let Some(ids) = obj.get("prompt_ids") {
        let ids: Vec<u32> = serde_json::from_value(ids.clone())
            .context("field `prompt_ids`: expected an array of token ids")?;
        Ok(ids)
    } else if let Some(p) = obj.get("prompt") {
        let p = p.as_str().context("field `prompt`: expected a string")?;
        Ok(need_tok()?.encode(p, true)?)
    } else if let Some(m) = obj.get("messages") {
        Ok(need_tok()?
            .apply_chat_template(m, true)
            .context("field `messages`")?)
    } else {
        bail!("expected one of `prompt_ids`, `prompt`, `messages`")
    }
}

use std::io::Write as _;
