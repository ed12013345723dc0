//! `grpo serve` end to end: started on port 0 over a committed parity fixture
//! (no tokenizer: token-id prompts), it lists the model, answers a greedy
//! completion with transformers' greedy tokens, and rejects a bad request
//! with an OpenAI-style 400; over a small checkpoint with a tokenizer and a
//! chat template, it reports `top_logprobs` on both endpoints in OpenAI's shapes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/models")
        .join(name)
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, JSON body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let start = resp.find("\r\n\r\n").unwrap() + 4;
    (status, serde_json::from_str(&resp[start..]).unwrap())
}

/// Kills the server when the test ends, passing or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `grpo serve` on a free port over `model`; returns the child and its address.
fn start(model: &Path) -> (Child, String) {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_grpo"))
            .args([
                "serve",
                "--port",
                "0",
                "--served-model-name",
                "fixture",
                "--model",
            ])
            .arg(model)
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The log names the bound address; keep draining stderr afterwards.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("listening on http://") {
                let addr = line[i + "listening on http://".len()..].trim().to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server logs its address");
    (child, addr)
}

#[test]
fn serve_answers_greedy_completions_over_http() {
    let (_child, addr) = start(&fixture("qwen3"));

    let (status, models) = http(&addr, "GET", "/v1/models", "");
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "fixture");

    let parity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("qwen3").join("parity.json")).unwrap(),
    )
    .unwrap();
    let case = &parity["generate"][0];
    let n = case["greedy_ids"].as_array().unwrap().len();
    let body = serde_json::json!({
        "model": "anything",
        "prompt": case["prompt_ids"],
        "max_tokens": n,
        "temperature": 0,
        "logprobs": 0,
        "return_token_ids": true,
    });
    let (status, v) = http(&addr, "POST", "/v1/completions", &body.to_string());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], "fixture");
    let choice = &v["choices"][0];
    assert_eq!(choice["token_ids"], case["greedy_ids"]);
    assert_eq!(
        choice["logprobs"]["token_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        n
    );

    let (status, v) = http(
        &addr,
        "POST",
        "/v1/completions",
        r#"{"prompt": [1, 2], "top_p": 1.5}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "top_p");
}

/// A random model with a character tokenizer and a chat template, saved in `dir`.
fn char_checkpoint(dir: &Path) {
    let template = "{% for m in messages %}{{ m['role'] }}:{{ m['content'] }};{% endfor %}\
                    {% if add_generation_prompt %}assistant:{% endif %}";
    let tok = grpo_model::tokenizer::build_char_tokenizer(
        "abcdefghijklmnopqrstuvwxyz0123456789+=:; ",
        &["<|endoftext|>"],
        // No end-of-sequence token in the tokenizer, so `ignore_eos` gives full lengths.
        None,
        None,
        None,
        Some(template),
    )
    .unwrap();
    let mut cfg = grpo_model::Model::load(&fixture("qwen3")).unwrap().config;
    cfg.vocab_size = tok.vocab_size();
    cfg.bos_token_id = None;
    cfg.eos_token_ids = vec![0];
    cfg.pad_token_id = None;
    let m = grpo_model::Model::new_random(cfg, 3).unwrap();
    m.save(dir, &Default::default()).unwrap();
    tok.save(dir).unwrap();
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn serve_reports_sorted_top_logprobs_on_both_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    char_checkpoint(dir.path());
    let (_child, addr) = start(dir.path());
    let k = 3;

    // Chat, as the openai client sends `logprobs=True, top_logprobs=k`; greedy first, so
    // the sampled token is the most likely one, then sampled.
    for temperature in [0.0, 1.0] {
        let body = serde_json::json!({
            "model": "fixture",
            "messages": [{"role": "user", "content": "1+2="}],
            "max_completion_tokens": 8,
            "temperature": temperature,
            "seed": 5,
            "ignore_eos": true,
            "logprobs": true,
            "top_logprobs": k,
        });
        let (status, v) = http(&addr, "POST", "/v1/chat/completions", &body.to_string());
        assert_eq!(status, 200, "{v}");
        let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
        assert_eq!(content.len(), 8);
        let mut among = 0;
        for tok in content {
            let top = tok["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), k, "{tok}");
            for alt in top {
                assert!(alt["token"].is_string() && alt["bytes"].is_array(), "{alt}");
                assert!(f(&alt["logprob"]) <= 0.0, "{alt}");
            }
            assert!(
                top.windows(2)
                    .all(|w| f(&w[0]["logprob"]) >= f(&w[1]["logprob"])),
                "sorted most likely first: {tok}"
            );
            if let Some(alt) = top.iter().find(|a| a["token"] == tok["token"]) {
                among += 1;
                assert_eq!(alt["logprob"], tok["logprob"], "{tok}");
            }
            if temperature == 0.0 {
                assert_eq!(top[0]["token"], tok["token"], "greedy takes the top token");
            }
            let low = f(&top[k - 1]["logprob"]);
            assert!(
                top.iter().any(|a| a["token"] == tok["token"]) || f(&tok["logprob"]) <= low,
                "a token left out is not likelier than the k-th: {tok}"
            );
        }
        assert!(among > 0, "some sampled token is among the top {k}");
    }

    // Completions, as the openai client sends `logprobs=k`: per token an object from token
    // text to log-prob, the k most likely first, then the sampled token when not among them.
    let body = serde_json::json!({
        "prompt": "1+2=",
        "max_tokens": 8,
        "temperature": 1.0,
        "seed": 9,
        "ignore_eos": true,
        "logprobs": k,
    });
    let (status, v) = http(&addr, "POST", "/v1/completions", &body.to_string());
    assert_eq!(status, 200, "{v}");
    let lp = &v["choices"][0]["logprobs"];
    let tokens = lp["tokens"].as_array().unwrap();
    let tops = lp["top_logprobs"].as_array().unwrap();
    assert_eq!(tops.len(), tokens.len());
    for ((tok, top), sampled) in tokens
        .iter()
        .zip(tops)
        .zip(lp["token_logprobs"].as_array().unwrap())
    {
        let top = top.as_object().unwrap();
        let values: Vec<f64> = top.values().map(f).collect();
        assert!(values[..k].windows(2).all(|w| w[0] >= w[1]), "{top:?}");
        let tok = tok.as_str().unwrap();
        assert_eq!(
            top.get(tok),
            Some(sampled),
            "the sampled token is listed: {top:?}"
        );
        let pos = top.keys().position(|t| t == tok).unwrap();
        if pos == k {
            assert!(f(sampled) <= values[k - 1], "{top:?}");
        } else {
            assert_eq!(top.len(), k, "{top:?}");
        }
    }

    // `top_logprobs` without `logprobs: true` is refused, as by the OpenAI API.
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": "1"}], "top_logprobs": 2,
    });
    let (status, v) = http(&addr, "POST", "/v1/chat/completions", &body.to_string());
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "top_logprobs");
}
