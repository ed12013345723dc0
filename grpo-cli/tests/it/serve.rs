//! `grpo serve` end to end: started on port 0 over a committed parity fixture
//! (no tokenizer: token-id prompts), it lists the model, answers a greedy
//! completion with transformers' greedy tokens, and rejects a bad request
//! with an OpenAI-style 400.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
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

#[test]
fn serve_answers_greedy_completions_over_http() {
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
            .arg(fixture("qwen3"))
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
