//! `grpo generate`: sample completions from a checkpoint with the in-process
//! engine (prompt prefilled once per line, `n` samples share it).
//!
//! Input lines give a prompt (`{"prompt_ids": [...]}`, `{"prompt": "..."}` tokenized
//! with the checkpoint's tokenizer, special tokens added, or `{"messages": [...]}`
//! rendered with the chat template, generation prompt added) and, optionally, sampling
//! parameters under their OpenAI names that override the command-line defaults for that
//! line (see [`LINE_SCHEMA`], printed by `--help`). Any other key fails the line naming
//! the key and the accepted ones. Output lines: `{"completions": [{"ids", "text",
//! "logprobs", "finish_reason"}]}` (plus `top_logprobs` when asked for) or `{"error":
//! "line N: ..."}`; one bad line never stops the others, and the exit rule is
//! [`super::io::Tally::finish`]'s.

use std::path::PathBuf;

use anyhow::{Context, bail};
use grpo_model::Model;
use grpo_model::tokenizer::Tokenizer;
use grpo_rollout::model::ModelLm;
use grpo_rollout::{
    Completion, Detokenizer, Engine, EngineConfig, GenerateStats, Lm, LogprobMode, Request,
    RolloutError, SamplingParams,
};
use serde_json::{Map, Value, json};

use super::io::{Tally, check_keys, error_line, kind_name, open_output, parse_object, write_line};

/// The line schema, shown by `grpo generate --help`.
const LINE_SCHEMA: &str = r#"Input lines (one JSON object each). The prompt, exactly one of:
  "prompt_ids": [int]       token ids, used as given
  "prompt": string          tokenized with the checkpoint's tokenizer (special tokens added)
  "messages": [object]      rendered with the checkpoint's chat template (generation prompt)
Sampling parameters (optional; OpenAI / vLLM names; each overrides its flag for that line):
  "n": int                  samples (default --n)
  "max_tokens": int         maximum new tokens per sample (default --max-new-tokens)
  "min_tokens": int         end-of-sequence suppressed before this many (--min-new-tokens)
  "temperature": number     0 = greedy (default --temperature)
  "top_p": number           in (0, 1] (default --top-p)
  "top_k": int              0 or -1 = off (default --top-k)
  "min_p": number           in [0, 1] (default --min-p)
  "seed": int               this line's seed (default: --seed + the line's index)
  "stop": string | [string] stop strings, replacing --stop
  "stop_token_ids": [int]   extra token ids that stop a sample (default none)
  "ignore_eos": bool        do not stop at end-of-sequence (default false)
  "logprobs": int | bool    int k: also report the k most likely tokens per position
                            ("top_logprobs"); the sampled tokens' log-probs are always
                            reported (default 0)
  "top_logprobs": int       the same k, under OpenAI's chat name
null counts as absent. Any other key fails that line with an error naming the key and the
accepted ones.
Output: one line per input line, in order: {"completions": [{"ids", "text", "logprobs",
"finish_reason", "top_logprobs"?}]} or {"error": "line N: ..."}. "top_logprobs" (when
k > 0) has per generated token the k most likely tokens under the raw model distribution,
most likely first: [{"id", "token" (with a tokenizer), "logprob"}].
Exit status: 0 when every line succeeded, 2 when any line failed (all lines are still
written; the count is printed on stderr)."#;

/// Keys of an input line.
const LINE_KEYS: &[&str] = &[
    "prompt_ids",
    "prompt",
    "messages",
    "n",
    "max_tokens",
    "min_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "logprobs",
    "top_logprobs",
];

/// Arguments of `grpo generate`.
#[derive(Debug, clap::Args)]
#[command(after_help = LINE_SCHEMA)]
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
    /// Maximum new tokens per sample (a line's `max_tokens` overrides it).
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// End-of-sequence is suppressed before this many tokens (line: `min_tokens`).
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Temperature (0 = greedy; line: `temperature`).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Top-k (0 = off; line: `top_k`).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Top-p in (0, 1] (line: `top_p`).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Min-p in [0, 1] (line: `min_p`).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Samples per prompt (line: `n`).
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Seed; line i uses seed + i unless it gives its own `seed`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop string (repeatable; a line's `stop` replaces them).
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
    let defaults = default_params(&args)?;
    let model = Model::load(&args.model)
        .with_context(|| format!("loading model from {}", args.model.display()))?;
    let tok = if args.model.join("tokenizer.json").exists() {
        Some(Tokenizer::from_dir(&args.model).context("loading tokenizer")?)
    } else {
        None
    };
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read input file {}", args.input.display()))?;
    let lm = ModelLm::new(&model);
    let limits = Limits {
        vocab: lm.vocab_size(),
        context: lm.max_positions(),
    };
    // Parse every line first: a bad line becomes an error slot, the rest run as one batch.
    let mut slots: Vec<(usize, Result<Request, String>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let seed = args.seed.wrapping_add(slots.len() as u64);
        let req = parse_line(line, tok.as_ref(), &defaults, seed, limits);
        slots.push((i + 1, req.map_err(|e| format!("{e:#}"))));
    }
    let requests: Vec<Request> = slots
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
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
    let mut tally = Tally::default();
    for (lineno, slot) in &slots {
        let value = match slot {
            Err(e) => Err(e.clone()),
            Ok(req) => match results.next() {
                Some(Ok(comps)) => Ok(json!({
                    "completions": comps
                        .iter()
                        .map(|c| completion_json(c, req.params.top_logprobs, tok.as_ref()))
                        .collect::<Vec<_>>()
                })),
                Some(Err(e)) => Err(engine_error(&e)),
                None => bail!("internal error: engine returned fewer results than requests"),
            },
        };
        tally.count(value.is_ok());
        let value = value.unwrap_or_else(|e| error_line(*lineno, &e));
        write_line(&mut *out, &value)?;
    }
    out.flush()?;
    tracing::info!(
        "generated {} tokens ({} prefill) in {secs:.2} s: {:.0} decode tok/s",
        stats.decode_tokens,
        stats.prefill_tokens,
        stats.decode_tokens as f64 / stats.decode_secs.max(1e-9)
    );
    tally.finish()
}

/// The model's limits a line is checked against.
#[derive(Debug, Clone, Copy)]
struct Limits {
    vocab: usize,
    context: usize,
}

/// The command-line defaults, checked up front (an error names the flag).
fn default_params(args: &Args) -> anyhow::Result<SamplingParams> {
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
        top_logprobs: 0,
    };
    if let Err(RolloutError::InvalidRequest { field, reason, .. }) =
        params.validate(0, 1, usize::MAX)
    {
        let flag = match field {
            "max_new_tokens" => "--max-new-tokens",
            "min_new_tokens" => "--min-new-tokens",
            "top_p" => "--top-p",
            "min_p" => "--min-p",
            "temperature" => "--temperature",
            "n" => "--n",
            "stop" => "--stop",
            other => other,
        };
        bail!("{flag}: {reason}");
    }
    Ok(params)
}

/// One output completion; `top_logprobs` alternatives per token when `k` > 0.
fn completion_json(c: &Completion, k: usize, tok: Option<&Tokenizer>) -> Value {
    let mut v = json!({
        "ids": c.ids,
        "text": c.text,
        "logprobs": c.logprobs,
        "finish_reason": c.finish_reason.as_str(),
    });
    if k > 0 {
        let top: Vec<Vec<Value>> = c
            .top_logprobs
            .iter()
            .map(|alts| {
                alts.iter()
                    .map(|&(id, lp)| match tok {
                        Some(t) => json!({
                            "id": id,
                            "token": t.decode(&[id], false).unwrap_or_default(),
                            "logprob": lp,
                        }),
                        None => json!({"id": id, "logprob": lp}),
                    })
                    .collect()
            })
            .collect();
        v["top_logprobs"] = json!(top);
    }
    v
}

/// An engine error as a line's message (the request index is meaningless to the user).
fn engine_error(e: &RolloutError) -> String {
    match e {
        RolloutError::InvalidRequest { field, reason, .. } => {
            format!("{}: {reason}", line_field(field))
        }
        RolloutError::Model { message, .. } => format!("model error: {message}"),
        other => other.to_string(),
    }
}

/// The line key of an engine field.
fn line_field(field: &str) -> &str {
    match field {
        "max_new_tokens" => "max_tokens",
        "min_new_tokens" => "min_tokens",
        other => other,
    }
}

/// Reads a line's optional typed values; `null` counts as absent.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    fn uint(&self, k: &str) -> anyhow::Result<Option<usize>> {
        self.get(k)
            .map(|v| {
                v.as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .with_context(|| format!("field `{k}`: expected an integer >= 0, got {v}"))
            })
            .transpose()
    }

    fn num(&self, k: &str) -> anyhow::Result<Option<f32>> {
        self.get(k)
            .map(|v| {
                v.as_f64()
                    .map(|x| x as f32)
                    .with_context(|| format!("field `{k}`: expected a number, got {v}"))
            })
            .transpose()
    }

    fn boolean(&self, k: &str) -> anyhow::Result<Option<bool>> {
        self.get(k)
            .map(|v| {
                v.as_bool()
                    .with_context(|| format!("field `{k}`: expected true or false, got {v}"))
            })
            .transpose()
    }

    fn int(&self, k: &str) -> anyhow::Result<Option<i64>> {
        self.get(k)
            .map(|v| {
                v.as_i64()
                    .or_else(|| v.as_u64().map(|x| x as i64))
                    .with_context(|| format!("field `{k}`: expected an integer, got {v}"))
            })
            .transpose()
    }

    fn ids(&self, k: &str) -> anyhow::Result<Option<Vec<u32>>> {
        self.get(k)
            .map(|v| {
                serde_json::from_value::<Vec<u32>>(v.clone())
                    .with_context(|| format!("field `{k}`: expected an array of token ids"))
            })
            .transpose()
    }

    fn strings(&self, k: &str) -> anyhow::Result<Option<Vec<String>>> {
        Ok(match self.get(k) {
            None => None,
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .with_context(|| format!("field `{k}`: expected strings, got {x}"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            ),
            Some(v) => bail!(
                "field `{k}`: expected a string or a list of strings, got {}",
                kind_name(v)
            ),
        })
    }
}

/// One input line as an engine request: its prompt and its sampling parameters (the
/// defaults with the line's overrides; `seed` unless the line gives one), checked
/// against the model.
fn parse_line(
    line: &str,
    tok: Option<&Tokenizer>,
    defaults: &SamplingParams,
    seed: u64,
    limits: Limits,
) -> anyhow::Result<Request> {
    let obj = parse_object(line)?;
    check_keys(&obj, LINE_KEYS, None)?;
    let f = Fields(&obj);
    let (prompt_key, prompt_ids) = prompt(&f, tok)?;

    let mut p = defaults.clone();
    p.seed = seed;
    if let Some(n) = f.uint("n")? {
        p.n = n;
    }
    if let Some(m) = f.uint("max_tokens")? {
        p.max_new_tokens = m;
    }
    if let Some(m) = f.uint("min_tokens")? {
        p.min_new_tokens = m;
    }
    if let Some(t) = f.num("temperature")? {
        p.temperature = t;
    }
    if let Some(t) = f.num("top_p")? {
        p.top_p = t;
    }
    if let Some(k) = f.int("top_k")? {
        p.top_k = match k {
            -1 => 0,
            k => usize::try_from(k)
                .with_context(|| format!("field `top_k`: {k} is not >= 0 (or -1 = off)"))?,
        };
    }
    if let Some(m) = f.num("min_p")? {
        p.min_p = m;
    }
    if let Some(s) = f.int("seed")? {
        // Negative seeds (accepted by some clients) keep their bits.
        p.seed = s as u64;
    }
    if let Some(s) = f.strings("stop")? {
        p.stop = s;
    }
    if let Some(ids) = f.ids("stop_token_ids")? {
        p.stop_token_ids = ids;
    }
    if let Some(b) = f.boolean("ignore_eos")? {
        p.ignore_eos = b;
    }
    p.top_logprobs = top_logprobs(&f)?;
    if p.top_logprobs > 0 && p.logprob_mode == LogprobMode::Processed {
        bail!(
            "field `logprobs`: alternatives are reported under the raw model distribution \
             only; run without --processed-logprobs or ask for 0"
        );
    }

    if let Err(RolloutError::InvalidRequest { field, reason, .. }) =
        p.validate(0, prompt_ids.len(), limits.context)
    {
        let key = match field {
            "prompt" => prompt_key,
            other => line_field(other),
        };
        // The engine's reasons use its own names; a line uses OpenAI's.
        let reason = reason.replace("max_new_tokens", "max_tokens");
        bail!("field `{key}`: {reason}");
    }
    if let Some(pos) = prompt_ids.iter().position(|&t| t as usize >= limits.vocab) {
        bail!(
            "field `{prompt_key}`: token id {} at position {pos} is outside the vocabulary of {}",
            prompt_ids[pos],
            limits.vocab
        );
    }
    for &t in &p.stop_token_ids {
        if t as usize >= limits.vocab {
            bail!(
                "field `stop_token_ids`: token id {t} is outside the vocabulary of {}",
                limits.vocab
            );
        }
    }
    Ok(Request {
        prompt_ids,
        params: p,
    })
}

/// The line's prompt: exactly one of `prompt_ids`, `prompt`, `messages`; returns the
/// key used and the token ids.
fn prompt(f: &Fields<'_>, tok: Option<&Tokenizer>) -> anyhow::Result<(&'static str, Vec<u32>)> {
    let given: Vec<&'static str> = ["prompt_ids", "prompt", "messages"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    let need_tok = || tok.context("this checkpoint has no tokenizer.json; give `prompt_ids`");
    match given.as_slice() {
        ["prompt_ids"] => Ok(("prompt_ids", f.ids("prompt_ids")?.unwrap_or_default())),
        ["prompt"] => {
            let v = f.get("prompt").unwrap_or(&Value::Null);
            let text = v.as_str().with_context(|| {
                format!("field `prompt`: expected a string, got {}", kind_name(v))
            })?;
            Ok(("prompt", need_tok()?.encode(text, true)?))
        }
        ["messages"] => {
            let m = f.get("messages").unwrap_or(&Value::Null);
            let ids = need_tok()?
                .apply_chat_template(m, true)
                .context("field `messages`")?;
            Ok(("messages", ids))
        }
        [] => bail!("expected one of `prompt_ids`, `prompt`, `messages`"),
        several => bail!(
            "give exactly one of `prompt_ids`, `prompt`, `messages` (got {})",
            several
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Alternatives per token: `logprobs` as an integer (vLLM, OpenAI completions) or
/// `top_logprobs` (OpenAI chat); `logprobs: true/false` asks for none (the sampled
/// tokens' log-probs are always reported).
fn top_logprobs(f: &Fields<'_>) -> anyhow::Result<usize> {
    let from_logprobs = match f.get("logprobs") {
        None | Some(Value::Bool(_)) => None,
        Some(_) => f.uint("logprobs")?,
    };
    let from_top = f.uint("top_logprobs")?;
    match (from_logprobs, from_top) {
        (Some(a), Some(b)) if a != b => {
            bail!("fields `logprobs` ({a}) and `top_logprobs` ({b}) disagree; give one of them")
        }
        (a, b) => Ok(a.or(b).unwrap_or(0)),
    }
}

use std::io::Write as _;
