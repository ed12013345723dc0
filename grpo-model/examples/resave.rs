//! Loads a checkpoint with grpo-model and saves it again (used by
//! `scripts/make_fixtures.py --check-saved` to prove transformers loads what we write).
//!
//! `cargo run -p grpo-model --example resave -- SRC DST [f32|bf16|f16|sharded]`
//!
//! `resave --char-tokenizer DST TEXT...` instead builds a character-level tokenizer with a
//! ChatML template, saves it to DST and prints the ids of each TEXT as a JSON line (the
//! fixture script checks transformers loads it and agrees).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--char-tokenizer") {
        return char_tokenizer(&args[1..]);
    }
    let [src, dst, rest @ ..] = args.as_slice() else {
        return Err("usage: resave SRC DST [f32|bf16|f16|sharded]".into());
    };
    let (config, weights) = grpo_model::checkpoint::load(&PathBuf::from(src))?;
    let mut opts = grpo_model::checkpoint::SaveOptions {
        copy_from: Some(PathBuf::from(src)),
        ..Default::default()
    };
    match rest.first().map(String::as_str) {
        None | Some("f32") => {}
        Some("bf16") => opts.dtype = grpo_model::checkpoint::StoreDtype::Bf16,
        Some("f16") => opts.dtype = grpo_model::checkpoint::StoreDtype::F16,
        Some("sharded") => opts.max_shard_bytes = Some(8 * 1024),
        Some(other) => return Err(format!("unknown variant {other}").into()),
    }
    grpo_model::checkpoint::save(&PathBuf::from(dst), &config, &weights, &opts)?;
    Ok(())
}

fn char_tokenizer(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [dst, texts @ ..] = args else {
        return Err("usage: resave --char-tokenizer DST TEXT...".into());
    };
    let template = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    let tok = grpo_model::tokenizer::build_char_tokenizer(
        "abcdefghijklmnopqrstuvwxyz0123456789+-*=?., \n",
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        Some("<|im_end|>"),
        None,
        Some("<|endoftext|>"),
        Some(template),
    )?;
    tok.save(&PathBuf::from(dst))?;
    for t in texts {
        let ids = tok.encode(t, true)?;
        println!(
            "{}",
            serde_json::json!({"text": t, "ids": ids, "decoded": tok.decode(&ids, false)?})
        );
    }
    let msgs = serde_json::json!([{"role": "user", "content": "2+2=?"}]);
    println!(
        "{}",
        serde_json::json!({"chat_ids": tok.apply_chat_template(&msgs, true)?})
    );
    Ok(())
}
