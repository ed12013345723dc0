//! `grpo score`: per-token log-probs and entropies of completions under a checkpoint.
//!
//! Each input line is `{"prompt_ids": [...], "completion_ids": [...]}` or
//! `{"prompt": "...", "completion": "..."}` (text is tokenized with the checkpoint's
//! tokenizer: the prompt with the tokenizer's special tokens, e.g. BOS, the completion
//! without). Each output line is `{"logprobs": [...], "entropy": [...]}` with one value per
//! completion token, or `{"error": "line N: ..."}`; any other key fails its line naming
//! the key and the accepted ones; the exit rule is [`super::io::Tally::finish`]'s (see
//! [`LINE_SCHEMA`], printed by `--help`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use grpo_model::tokenizer::Tokenizer;
use grpo_model::{Model, SeqInput};

use super::io::{check_keys, map_jsonl, open_input, open_output, parse_object};

/// The line schema, shown by `grpo score --help`.
const LINE_SCHEMA: &str = r#"Input lines (one JSON object each), either form:
  {"prompt_ids": [int], "completion_ids": [int]}   token ids, used as given
  {"prompt": string, "completion": string}          text, tokenized with the checkpoint's
                                                    tokenizer (prompt with special tokens)
Any other key fails that line with an error naming the key and the accepted ones.
Output: one line per input line, in order: {"logprobs": [float], "entropy": [float]}
(one value per completion token), or {"error": "line N: ..."}.
Exit status: 0 when every line was scored, 2 when any line failed (all lines are still
written; the count is printed on stderr)."#;

/// Keys of an input line.
const LINE_KEYS: &[&str] = &["prompt_ids", "completion_ids", "prompt", "completion"];

/// Arguments of `grpo score`.
#[derive(Debug, clap::Args)]
#[command(after_help = LINE_SCHEMA)]
pub struct Args {
    /// Checkpoint directory (config.json + safetensors; tokenizer.json for text input).
    #[arg(long)]
    pub model: PathBuf,
    /// Input JSONL file.
    #[arg(long)]
    pub input: PathBuf,
    /// Output JSONL file (default: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt_ids: Option<Vec<u32>>,
    completion_ids: Option<Vec<u32>>,
    prompt: Option<String>,
    completion: Option<String>,
}

/// Runs `grpo score`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Model::load(&args.model)
        .with_context(|| format!("loading model from {}", args.model.display()))?;
    let tok_path = args.model.join("tokenizer.json");
    let mut tokenizer: Option<Tokenizer> = None;
    let input = open_input(&args.input)?;
    let mut out = open_output(args.output.as_deref())?;
    map_jsonl(input, &mut *out, |_lineno, line| {
        let obj = parse_object(line)?;
        check_keys(&obj, LINE_KEYS, None)?;
        let l: Line =
            serde_json::from_value(serde_json::Value::Object(obj)).context("invalid line")?;
        let (prompt, completion) = match l {
            Line {
                prompt_ids: Some(p),
                completion_ids: Some(c),
                prompt: None,
                completion: None,
            } => (p, c),
            Line {
                prompt: Some(p),
                completion: Some(c),
                prompt_ids: None,
                completion_ids: None,
            } => {
                if tokenizer.is_none() {
                    let t = Tokenizer::from_dir(&args.model)
                        .with_context(|| format!("text input needs {}", tok_path.display()))?;
                    tokenizer = Some(t);
                }
                let t = tokenizer.as_ref().context("tokenizer")?;
                (t.encode(&p, true)?, t.encode(&c, false)?)
            }
            _ => bail!("expected either prompt_ids + completion_ids or prompt + completion"),
        };
        let res = model.score(&[SeqInput {
            prompt: &prompt,
            completion: &completion,
        }])?;
        Ok(serde_json::json!({
            "logprobs": res.logprobs[0],
            "entropy": res.entropy[0],
        }))
    })?
    .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(name)
    }

    #[test]
    fn scores_ids_like_transformers_and_names_bad_lines() {
        let model = fixture("models/qwen3");
        let parity: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(model.join("parity.json")).unwrap())
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let output = dir.path().join("out.jsonl");
        let mut text = String::new();
        for s in parity["sequences"].as_array().unwrap() {
            text += &serde_json::json!({"prompt_ids": s["prompt_ids"], "completion_ids": s["completion_ids"]}).to_string();
            text += "\n";
        }
        text += "{\"prompt_ids\": [1], \"completion_ids\": [64]}\n\n";
        text += &format!(
            "{{\"prompt_ids\": {:?}, \"completion_ids\": [2]}}\n",
            vec![1u32; 64]
        );
        text += "{\"prompt\": \"hi\"}\n";
        std::fs::write(&input, text).unwrap();
        let err = run(Args {
            model,
            input,
            output: Some(output.clone()),
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("3 of 7 input line(s) failed"),
            "{err}"
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let want = parity["logprobs"].as_array().unwrap();
        for (got, want) in lines.iter().zip(want) {
            let got = got["logprobs"].as_array().unwrap();
            let want = want.as_array().unwrap();
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(want) {
                assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 2e-4);
            }
        }
        let e4 = lines[4]["error"].as_str().unwrap();
        assert!(
            e4.starts_with("line 5:") && e4.contains("outside the vocabulary"),
            "{e4}"
        );
        let e5 = lines[5]["error"].as_str().unwrap();
        assert!(
            e5.starts_with("line 7:") && e5.contains("max_position_embeddings"),
            "{e5}"
        );
        let e6 = lines[6]["error"].as_str().unwrap();
        assert!(e6.starts_with("line 8:"), "{e6}");
    }

    #[test]
    fn scores_text_with_the_checkpoint_tokenizer() {
        // A char-level tokenizer saved next to a random model whose vocabulary covers it.
        let tok = grpo_model::tokenizer::build_char_tokenizer(
            "0123456789+= ",
            &["<|endoftext|>"],
            Some("<|endoftext|>"),
            None,
            None,
            None,
        )
        .unwrap();
        let mut cfg = Model::load(&fixture("models/qwen3")).unwrap().config;
        cfg.vocab_size = tok.vocab_size();
        cfg.bos_token_id = None;
        cfg.eos_token_ids = vec![0];
        cfg.pad_token_id = None;
        let m = Model::new_random(cfg, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path(), &Default::default()).unwrap();
        tok.save(dir.path()).unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"prompt\": \"1+2=\", \"completion\": \"3\"}\n").unwrap();
        let output = dir.path().join("out.jsonl");
        run(Args {
            model: dir.path().to_path_buf(),
            input,
            output: Some(output.clone()),
        })
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&output).unwrap().trim()).unwrap();
        assert_eq!(v["logprobs"].as_array().unwrap().len(), 1);
        assert_eq!(v["entropy"].as_array().unwrap().len(), 1);
    }
}
