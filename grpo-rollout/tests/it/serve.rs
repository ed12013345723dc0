//! The OpenAI-compatible server (feature `serve`) over a tiny random transformer and a
//! character tokenizer with a ChatML-style template, called through the axum router
//! (`tower::ServiceExt::oneshot`) and once over a real socket: greedy output is
//! deterministic and equals the engine called directly, `n` samples, stop strings,
//! log-probs, chat completions, and every bad input answered with 400 naming its field.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode};
use grpo_model::Model;
use grpo_model::tokenizer::{Tokenizer, build_char_tokenizer};
use grpo_rollout::model::ModelLm;
use grpo_rollout::serve::{Codec, OwnedModelLm, Server, ServerConfig, TokenizerCodec};
use grpo_rollout::{Detokenizer, Engine, EngineConfig, GenerateStats, Request, SamplingParams};
use serde_json::{Value, json};
use tower::ServiceExt;

const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const CONTEXT: usize = 96;

fn tokenizer() -> Tokenizer {
    let alphabet: String = ('a'..='z')
        .chain('0'..='9')
        .chain(" \n.,!?".chars())
        .collect();
    build_char_tokenizer(
        &alphabet,
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        Some("<|im_end|>"),
        None,
        Some("<|endoftext|>"),
        Some(TEMPLATE),
    )
    .unwrap()
}

fn model() -> Model {
    let vocab = tokenizer().vocab_size();
    // End-of-turn token 2; the tokenizer adds it as a stop id too.
    let config = crate::qwen2_config(vocab, 32, 64, 8, CONTEXT);
    Model::new_random(config, 11).unwrap()
}

fn codec() -> Arc<dyn Codec> {
    Arc::new(TokenizerCodec::new(tokenizer()).unwrap())
}

fn server(with_codec: bool) -> Server {
    let config = ServerConfig {
        model_name: "tiny".into(),
        max_n: 8,
        body_limit: 4096,
        ..ServerConfig::default()
    };
    Server::start(
        config,
        || Ok(OwnedModelLm::new(model())),
        with_codec.then(codec),
    )
    .unwrap()
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (StatusCode, Value) {
    let req = HttpRequest::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// The `data:` payloads of a server-sent-events response (the last must be `[DONE]`).
async fn post_sse(router: &Router, path: &str, body: Value) -> Vec<Value> {
    let req = HttpRequest::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

async fn post(router: &Router, path: &str, body: Value) -> (StatusCode, Value) {
    call(router, "POST", path, Some(body.to_string())).await
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

struct Detok(Tokenizer);

impl Detokenizer for Detok {
    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids, true).unwrap()
    }
}

#[tokio::test]
async fn models_lists_the_served_name() {
    let router = server(false).router();
    let (status, v) = call(&router, "GET", "/v1/models", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "tiny");
    assert_eq!(v["data"][0]["max_model_len"], CONTEXT);
    let (status, _) = call(&router, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = call(&router, "GET", "/v2/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn greedy_token_prompt_is_deterministic_and_equals_the_engine() {
    let router = server(true).router();
    let prompt = vec![5u32, 6, 7, 8, 9];
    let body = json!({
        "model": "some-other-name",
        "prompt": prompt,
        "max_tokens": 12,
        "temperature": 0,
        "logprobs": 1,
        "return_token_ids": true,
    });
    let (status, a) = post(&router, "/v1/completions", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (_, b) = post(&router, "/v1/completions", body).await;
    assert_eq!(a["object"], "text_completion");
    assert_eq!(a["model"], "tiny", "the served name is reported");
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["choices"], b["choices"], "greedy is deterministic");

    // The engine called directly on the same weights gives the same tokens and text.
    let m = model();
    let lm = ModelLm::new(&m);
    let engine = Engine::new(&lm, EngineConfig::default());
    let mut params = SamplingParams::greedy(12);
    params.stop_token_ids = vec![2];
    let want = engine
        .generate(
            &[Request {
                prompt_ids: prompt.clone(),
                params,
            }],
            Some(&Detok(tokenizer())),
            &mut GenerateStats::default(),
        )
        .remove(0)
        .unwrap()
        .remove(0);
    let choice = &a["choices"][0];
    assert_eq!(ids(&choice["token_ids"]), want.ids);
    assert_eq!(ids(&choice["prompt_token_ids"]), prompt);
    assert_eq!(choice["text"], want.text.as_str());
    let lps = choice["logprobs"]["token_logprobs"].as_array().unwrap();
    assert_eq!(lps.len(), want.ids.len());
    for (got, w) in lps.iter().zip(&want.logprobs) {
        let got = got.as_f64().unwrap();
        assert!(got.is_finite() && got <= 0.0);
        assert!((got - f64::from(*w)).abs() < 1e-5, "{got} vs {w}");
    }
    assert_eq!(
        choice["logprobs"]["tokens"].as_array().unwrap().len(),
        want.ids.len()
    );
    let reason = if want.ids.len() == 12 {
        "length"
    } else {
        "stop"
    };
    assert_eq!(choice["finish_reason"], reason);
    assert_eq!(a["usage"]["prompt_tokens"], 5);
    assert_eq!(a["usage"]["completion_tokens"], want.ids.len());
    assert_eq!(a["usage"]["total_tokens"], 5 + want.ids.len());
}

#[tokio::test]
async fn n_samples_seeds_and_several_prompts() {
    let router = server(true).router();
    let body = json!({
        "prompt": "hello",
        "n": 4,
        "max_tokens": 6,
        "temperature": 1.5,
        "seed": 3,
        "return_token_ids": true,
    });
    let (status, a) = post(&router, "/v1/completions", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let choices = a["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["logprobs"], Value::Null);
        assert!(c["finish_reason"] == "stop" || c["finish_reason"] == "length");
    }
    let samples: Vec<Vec<u32>> = choices.iter().map(|c| ids(&c["token_ids"])).collect();
    assert!(
        samples.iter().any(|s| s != &samples[0]),
        "4 samples at temperature 1.5 all equal: {samples:?}"
    );
    let (_, b) = post(&router, "/v1/completions", body).await;
    assert_eq!(
        a["choices"], b["choices"],
        "a seeded request is reproducible"
    );

    // Two prompts (text and ids): choices flattened prompt-major.
    let (status, v) = post(
        &router,
        "/v1/completions",
        json!({"prompt": ["hi", [5, 6, 7]], "n": 2, "max_tokens": 3, "return_token_ids": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4);
    assert_eq!(ids(&choices[2]["prompt_token_ids"]), vec![5, 6, 7]);
    assert_eq!(v["usage"]["prompt_tokens"], 2 + 3);
}

/// A seeded sample (reproducible; more varied than greedy on a random model).
async fn seeded_text(router: &Router, prompt: &str, stop: Value) -> (String, Value) {
    let (status, v) = post(
        router,
        "/v1/completions",
        json!({"prompt": prompt, "max_tokens": 16, "seed": 5, "stop": stop}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let c = &v["choices"][0];
    (
        c["text"].as_str().unwrap().to_string(),
        c["finish_reason"].clone(),
    )
}

#[tokio::test]
async fn stop_strings_cut_the_text() {
    let router = server(true).router();
    // Some prompt's sampled text has a 2-character substring first occurring past its start.
    let prompts = [
        "a", "b", "cd", "hello", "xyz", "42", "the end", "q", "z 7", "hi there", "ok",
    ];
    let mut mid = None;
    let mut first = None;
    for p in prompts {
        let (text, _) = seeded_text(&router, p, Value::Null).await;
        let chars: Vec<char> = text.chars().collect();
        if first.is_none() && chars.len() >= 3 {
            first = Some((p, text.clone(), chars[..2].iter().collect::<String>()));
        }
        for k in 2..chars.len().saturating_sub(1) {
            let sub: String = chars[k..k + 2].iter().collect();
            let at: usize = chars[..k].iter().map(|c| c.len_utf8()).sum();
            if text.find(&sub) == Some(at) {
                mid = Some((p, text.clone(), sub));
                break;
            }
        }
        if mid.is_some() && first.is_some() {
            break;
        }
    }
    let (prompt, text, stop) = mid.expect("some text has a later stop candidate");
    let cut = &text[..text.find(&stop).unwrap()];
    assert!(!cut.is_empty());
    for stop_field in [json!(stop), json!(["never-appears", stop])] {
        let (got, reason) = seeded_text(&router, prompt, stop_field).await;
        assert_eq!(got, cut, "stop {stop:?} in {text:?}");
        assert_eq!(reason, "stop");
    }
    // A stop string at the very start leaves an empty text.
    let (prompt, text, stop) = first.expect("some text has 3 characters");
    let (got, reason) = seeded_text(&router, prompt, json!(stop)).await;
    assert_eq!(got, "", "stop {stop:?} at the start of {text:?}");
    assert_eq!(reason, "stop");
}

#[tokio::test]
async fn chat_completion_renders_the_template() {
    let router = server(true).router();
    let messages = json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is 2+2?"}]},
    ]);
    let body = json!({
        "model": "tiny",
        "messages": messages,
        "max_completion_tokens": 10,
        "temperature": 0,
        "logprobs": true,
        "return_token_ids": true,
    });
    let (status, v) = post(&router, "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string());
    // The prompt is the template's rendering with the generation prompt.
    let tok = tokenizer();
    let want_prompt = tok
        .encode(
            "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nwhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            false,
        )
        .unwrap();
    assert_eq!(ids(&choice["prompt_token_ids"]), want_prompt);
    assert_eq!(v["usage"]["prompt_tokens"], want_prompt.len());
    let content = choice["logprobs"]["content"].as_array().unwrap();
    let out = ids(&choice["token_ids"]);
    assert_eq!(content.len(), out.len());
    for (item, &id) in content.iter().zip(&out) {
        assert!(item["logprob"].as_f64().unwrap().is_finite());
        assert_eq!(item["token"], tok.decode(&[id], false).unwrap().as_str());
        assert_eq!(item["top_logprobs"], json!([]));
    }
    let (_, again) = post(&router, "/v1/chat/completions", body).await;
    assert_eq!(v["choices"], again["choices"]);
    // Without max tokens the reply may use the rest of the context.
    let (status, v) = post(
        &router,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "ignore_eos": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let used = v["usage"]["total_tokens"].as_u64().unwrap() as usize;
    assert!(
        used == CONTEXT || v["choices"][0]["finish_reason"] == "stop",
        "{v}"
    );
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_answer() {
    let router = server(true).router();
    let bodies: Vec<Value> = (0..6)
        .map(|i| json!({"prompt": [5 + i, 6, 7], "max_tokens": 5, "temperature": 0, "return_token_ids": true}))
        .collect();
    let mut alone = Vec::new();
    for b in &bodies {
        alone.push(post(&router, "/v1/completions", b.clone()).await.1);
    }
    let together = futures_join(&router, &bodies).await;
    for (a, t) in alone.iter().zip(&together) {
        assert_eq!(a["choices"][0]["token_ids"], t["choices"][0]["token_ids"]);
        assert_eq!(
            a["choices"][0]["prompt_token_ids"],
            t["choices"][0]["prompt_token_ids"]
        );
    }
}

async fn futures_join(router: &Router, bodies: &[Value]) -> Vec<Value> {
    let handles: Vec<_> = bodies
        .iter()
        .map(|b| {
            let r = router.clone();
            let b = b.clone();
            tokio::spawn(async move { post(&r, "/v1/completions", b).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        let (status, v) = h.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
        out.push(v);
    }
    out
}

#[tokio::test]
async fn bad_requests_get_400_naming_the_field() {
    let router = server(true).router();
    let long = "a".repeat(CONTEXT);
    let cases = [
        ("/v1/completions", json!({"prompt": [5], "n": 0}), Some("n")),
        (
            "/v1/completions",
            json!({"prompt": [5], "temperature": -0.5}),
            Some("temperature"),
        ),
        (
            "/v1/completions",
            json!({"prompt": [5], "top_p": 1.5}),
            Some("top_p"),
        ),
        (
            "/v1/completions",
            json!({"prompt": [5], "top_p": 0.0}),
            Some("top_p"),
        ),
        ("/v1/completions", json!({"prompt": ""}), Some("prompt")),
        ("/v1/completions", json!({"prompt": []}), Some("prompt")),
        ("/v1/completions", json!({"prompt": long}), Some("prompt")),
        (
            "/v1/completions",
            json!({"prompt": [100000]}),
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": [5], "echo": true}),
            Some("echo"),
        ),
        (
            "/v1/completions",
            json!({"prompt": [5], "stream": true, "stream_options": []}),
            Some("stream_options"),
        ),
        (
            "/v1/completions",
            json!({"prompt": [5], "max_tokens": "many"}),
            Some("max_tokens"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": []}),
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": "hi"}),
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"content": "x"}]}),
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": long}]}),
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0}),
            Some("max_completion_tokens"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "n": 9}),
            Some("n"),
        ),
    ];
    for (path, body, field) in cases {
        let (status, v) = post(&router, path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {v}");
        let err = &v["error"];
        assert_eq!(err["type"], "invalid_request_error", "{v}");
        assert_eq!(err["param"].as_str(), field, "{path} {body}: {v}");
        assert!(
            err["message"].as_str().unwrap().contains(field.unwrap()),
            "{v}"
        );
        assert_eq!(err["code"], Value::Null);
    }
    // Invalid JSON, and a body over the limit.
    let (status, v) = call(
        &router,
        "POST",
        "/v1/completions",
        Some("{\"prompt\": [1,".into()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("JSON"),
        "{v}"
    );
    let big = json!({"prompt": "a".repeat(5000)}).to_string();
    let (status, v) = call(&router, "POST", "/v1/completions", Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // The server still answers good requests.
    let (status, _) = post(
        &router,
        "/v1/completions",
        json!({"prompt": [5], "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_tokenizer_only_token_ids_are_accepted() {
    let router = server(false).router();
    let (status, v) = post(&router, "/v1/completions", json!({"prompt": "text"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "prompt");
    let (status, v) = post(
        &router,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "messages");
    let (status, v) = post(
        &router,
        "/v1/completions",
        json!({"prompt": [5, 6], "max_tokens": 3, "logprobs": 0, "ignore_eos": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let c = &v["choices"][0];
    assert_eq!(c["text"], "");
    assert_eq!(c["finish_reason"], "length");
    let tokens = c["logprobs"]["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3);
    assert!(tokens[0].as_str().unwrap().starts_with("token_id:"));
}

#[test]
fn a_failing_model_factory_is_an_error() {
    let r = Server::start(
        ServerConfig::default(),
        || Err::<OwnedModelLm, _>("no weights here".to_string()),
        None,
    );
    let e = r.err().expect("start fails");
    assert!(e.to_string().contains("no weights here"), "{e}");
    let bad = ServerConfig {
        max_batch: 0,
        ..ServerConfig::default()
    };
    let e = Server::start(bad, || Ok(OwnedModelLm::new(model())), None)
        .err()
        .expect("max_batch 0 is rejected");
    assert!(e.to_string().contains("max_batch"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_a_socket() {
    use std::io::{Read, Write};

    let listener = grpo_rollout::serve::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server(false).serve(listener, async {
        let _ = stop_rx.await;
    }));
    let body = json!({"prompt": [5, 6], "max_tokens": 2}).to_string();
    let resp = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let req = format!(
            "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        stream.read_to_string(&mut resp).unwrap();
        resp
    })
    .await
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let json_start = resp.find("\r\n\r\n").unwrap() + 4;
    let v: Value = serde_json::from_str(&resp[json_start..]).unwrap();
    assert_eq!(v["choices"].as_array().unwrap().len(), 1);
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn stream_sends_the_same_choices_as_events() {
    let router = server(true).router();
    let body = json!({"prompt": "hello", "n": 2, "max_tokens": 6, "seed": 9, "logprobs": 1});
    let (_, plain) = post(&router, "/v1/completions", body.clone()).await;
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let chunks = post_sse(&router, "/v1/completions", streamed).await;
    assert_eq!(chunks.len(), 2);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["object"], "text_completion");
        assert_eq!(c["model"], "tiny");
        let choice = &c["choices"][0];
        assert_eq!(choice["index"], i);
        assert_eq!(choice["text"], plain["choices"][i]["text"]);
        assert_eq!(
            choice["finish_reason"],
            plain["choices"][i]["finish_reason"]
        );
        assert_eq!(choice["logprobs"], plain["choices"][i]["logprobs"]);
    }

    let body = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "seed": 2,
    });
    let (_, plain) = post(&router, "/v1/chat/completions", body.clone()).await;
    let mut streamed = body;
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let chunks = post_sse(&router, "/v1/chat/completions", streamed).await;
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    let delta = &chunks[0]["choices"][0]["delta"];
    assert_eq!(delta["role"], "assistant");
    assert_eq!(delta["content"], plain["choices"][0]["message"]["content"]);
    assert_eq!(chunks[0]["usage"], Value::Null);
    assert_eq!(chunks[1]["choices"], json!([]));
    assert_eq!(chunks[1]["usage"], plain["usage"]);
}
