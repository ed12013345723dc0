//! Loads a checkpoint with grpo-model and saves it again (used by
//! `scripts/make_fixtures.py --check-saved` to prove transformers loads what we write).
//!
//! `cargo run -p grpo-model --example resave -- SRC DST [f32|bf16|sharded]`

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst, rest @ ..] = args.as_slice() else {
        return Err("usage: resave SRC DST [f32|bf16|sharded]".into());
    };
    let (config, weights) = grpo_model::checkpoint::load(&PathBuf::from(src))?;
    let mut opts = grpo_model::checkpoint::SaveOptions {
        copy_from: Some(PathBuf::from(src)),
        ..Default::default()
    };
    match rest.first().map(String::as_str) {
        None | Some("f32") => {}
        Some("bf16") => opts.dtype = grpo_model::checkpoint::StoreDtype::Bf16,
        Some("sharded") => opts.max_shard_bytes = Some(8 * 1024),
        Some(other) => return Err(format!("unknown variant {other}").into()),
    }
    grpo_model::checkpoint::save(&PathBuf::from(dst), &config, &weights, &opts)?;
    Ok(())
}
