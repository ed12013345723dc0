//! Shared helpers: a tiny run config and readers for run outputs.

use std::path::Path;

use grpo_train::config::{self, RunConfigFile};
use grpo_train::metrics::{Record, read_jsonl};

/// A tiny run (seconds in the dev profile): 2-layer width-32 model, 1-digit
/// addition, a few SFT and GRPO steps.
pub const TINY: &str = r#"
name = "tiny"
seed = 7
output_dir = "OUT"

[model]
source = "new"
architecture = "qwen2"
hidden_size = 32
intermediate_size = 64
num_layers = 2
num_heads = 2
num_kv_heads = 1
max_position_embeddings = 32
rope_theta = 10000.0
tie_word_embeddings = true

[task]
type = "arithmetic"
min_digits = 1
max_digits = 1
ops = ["+"]
eval_size = 16

[sft]
steps = 4
batch_size = 8
lr = 3e-3

[grpo]
steps = 4

[rollout]
prompts_per_step = 4
group_size = 4
max_new_tokens = 6
temperature = 1.0

[algorithm]
advantage = { type = "grpo" }
loss = { type = "ppo_clip", eps_low = 0.2, eps_high = 0.28, agg = { type = "token_mean" } }

[optim]
lr = 1e-3
beta1 = 0.9
beta2 = 0.99
eps = 1e-8
weight_decay = 0.01
grad_clip = 1.0
schedule = "cosine"

[eval]
every = 2
num_prompts = 8
pass_k = 2

[checkpoint]
every = 2
sft_every = 2
"#;

/// Overrides that shrink any example config to a tiny model on the toy task.
pub fn tiny_overrides(out: &Path) -> Vec<String> {
    [
        format!("output_dir=\"{}\"", out.display()),
        "model={ source = \"new\", architecture = \"qwen2\", hidden_size = 32, intermediate_size = 64, num_layers = 2, num_heads = 2, num_kv_heads = 1, max_position_embeddings = 32, rope_theta = 10000.0, tie_word_embeddings = true }".into(),
        "task={ type = \"arithmetic\", min_digits = 1, max_digits = 1, ops = [\"+\"], eval_size = 8 }".into(),
        "sft={ steps = 2, batch_size = 4, lr = 3e-3 }".into(),
        "grpo.steps=2".into(),
        "grpo.minibatch_size=0".into(),
        "rollout.prompts_per_step=3".into(),
        "rollout.group_size=4".into(),
        "rollout.max_new_tokens=6".into(),
        "eval={ every = 0, num_prompts = 4, pass_k = 0 }".into(),
        "checkpoint={ every = 0 }".into(),
    ]
    .to_vec()
}

/// The tiny config writing under `out`, with extra overrides.
pub fn tiny(out: &Path, extra: &[&str]) -> RunConfigFile {
    let mut ov = vec![format!("output_dir=\"{}\"", out.display())];
    ov.extend(extra.iter().map(|s| s.to_string()));
    config::parse(TINY, "tiny.toml", &ov).unwrap()
}

/// Quiet options.
pub fn quiet() -> grpo_train::TrainOptions {
    grpo_train::TrainOptions {
        quiet: true,
        ..Default::default()
    }
}

/// The run's metrics lines.
pub fn metrics(run_dir: &Path) -> Vec<Record> {
    read_jsonl(&run_dir.join("metrics.jsonl")).unwrap()
}

/// A record without its wall-clock keys.
pub fn without_timing(r: &Record) -> Record {
    r.iter()
        .filter(|(k, _)| !k.starts_with("time/") && k.as_str() != "tokens_per_sec")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
