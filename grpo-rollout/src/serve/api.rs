//! The OpenAI wire format: request bodies parsed and validated field by field (so every
//! error names its field), engine requests built from them, and response bodies built from
//! completions.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::ModelInfo;
use super::codec::Codec;
use crate::engine::{Completion, Request};
use crate::params::{LogprobMode, SamplingParams};
use crate::stop::FinishReason;

/// An error answered to the client: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) kind: &'static str,
    pub(crate) param: Option<String>,
}

impl ApiError {
    /// 400 naming `param`.
    pub(crate) fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
        }
    }

    /// 400 for `field`, with the message prefixed by the field name.
    pub(crate) fn field(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::invalid(Some(field), format!("{field}: {reason}"))
    }

    /// 500.
    pub(crate) fn server(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
        }
    }

    pub(crate) fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": Value::Null,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Which endpoint a body is for (names of fields and defaults differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Completions,
    Chat,
}

/// A validated request: one engine request per prompt plus output options.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) requests: Vec<Request>,
    /// Report per-token log-probs.
    pub(crate) logprobs: bool,
    /// Add `token_ids` / `prompt_token_ids` to each choice.
    pub(crate) return_token_ids: bool,
    /// `stream: true`: answer as server-sent events; the flag is
    /// `stream_options.include_usage`.
    pub(crate) stream: Option<bool>,
}

/// Server-side facts a request is checked against.
pub(crate) struct Limits<'a> {
    pub(crate) info: ModelInfo,
    pub(crate) max_n: usize,
    /// Seed for a request without `seed`.
    pub(crate) default_seed: u64,
    pub(crate) codec: Option<&'a dyn Codec>,
}

/// Field access on a JSON object with errors naming the field (`null` counts as absent).
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    fn usize(&self, k: &str) -> ApiResult<Option<usize>> {
        self.get(k)
            .map(|v| {
                v.as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .ok_or_else(|| ApiError::field(k, format!("expected an integer >= 0, got {v}")))
            })
            .transpose()
    }

    fn i64(&self, k: &str) -> ApiResult<Option<i64>> {
        self.get(k)
            .map(|v| {
                v.as_i64()
                    .or_else(|| v.as_u64().map(|x| x as i64))
                    .ok_or_else(|| ApiError::field(k, format!("expected an integer, got {v}")))
            })
            .transpose()
    }

    fn f32(&self, k: &str) -> ApiResult<Option<f32>> {
        self.get(k)
            .map(|v| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| ApiError::field(k, format!("expected a number, got {v}")))
            })
            .transpose()
    }

    fn bool(&self, k: &str) -> ApiResult<Option<bool>> {
        self.get(k)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| ApiError::field(k, format!("expected true or false, got {v}")))
            })
            .transpose()
    }

    fn str(&self, k: &str) -> ApiResult<Option<&'a str>> {
        self.get(k)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| ApiError::field(k, format!("expected a string, got {v}")))
            })
            .transpose()
    }

    /// A string or a list of strings.
    fn strings(&self, k: &str) -> ApiResult<Vec<String>> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::field(k, format!("expected strings, got {v}")))
                })
                .collect(),
            Some(v) => Err(ApiError::field(
                k,
                format!("expected a string or a list of strings, got {v}"),
            )),
        }
    }
}

/// Parses a body into a JSON object.
fn object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("invalid JSON body: {e}")))?;
    match v {
        Value::Object(o) => Ok(o),
        other => Err(ApiError::invalid(
            None,
            format!("the body must be a JSON object, got {}", kind_name(&other)),
        )),
    }
}

/// How a JSON value is named in error messages: "an object", "a string", ...
pub fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `stream` and `stream_options.include_usage`.
fn stream(f: &Fields<'_>) -> ApiResult<Option<bool>> {
    if f.bool("stream")? != Some(true) {
        return Ok(None);
    }
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(Value::Object(o)) => Fields(o)
            .bool("include_usage")
            .map_err(|_| ApiError::field("stream_options", "include_usage must be true or false"))?
            .unwrap_or(false),
        Some(v) => {
            return Err(ApiError::field(
                "stream_options",
                format!("expected an object, got {}", kind_name(v)),
            ));
        }
    };
    Ok(Some(include_usage))
}

/// Options the server does not implement: rejected unless they have their neutral value.
fn reject_unsupported(f: &Fields<'_>, endpoint: Endpoint, n: usize) -> ApiResult<()> {
    for k in ["frequency_penalty", "presence_penalty"] {
        if let Some(x) = f.f32(k)?
            && x != 0.0
        {
            return Err(ApiError::field(k, "is not supported (only 0)"));
        }
    }
    if let Some(x) = f.f32("repetition_penalty")?
        && x != 1.0
    {
        return Err(ApiError::field(
            "repetition_penalty",
            "is not supported (only 1)",
        ));
    }
    match f.get("logit_bias") {
        None => {}
        Some(Value::Object(o)) if o.is_empty() => {}
        Some(_) => return Err(ApiError::field("logit_bias", "is not supported")),
    }
    match endpoint {
        Endpoint::Completions => {
            if f.bool("echo")? == Some(true) {
                return Err(ApiError::field("echo", "is not supported"));
            }
            if let Some(s) = f.str("suffix")?
                && !s.is_empty()
            {
                return Err(ApiError::field("suffix", "is not supported"));
            }
            if let Some(b) = f.usize("best_of")?
                && b != n
            {
                return Err(ApiError::field(
                    "best_of",
                    "is not supported (only equal to n)",
                ));
            }
        }
        Endpoint::Chat => {
            if let Some(rf) = f.get("response_format") {
                let t = rf.get("type").and_then(Value::as_str);
                if t != Some("text") {
                    return Err(ApiError::field(
                        "response_format",
                        "only {\"type\": \"text\"} is supported",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The sampling parameters shared by both endpoints (`max_new_tokens` and the prompt are
/// filled in by the caller).
fn sampling(f: &Fields<'_>, limits: &Limits<'_>) -> ApiResult<(SamplingParams, usize)> {
    if let Some(m) = f.get("model")
        && !m.is_string()
    {
        return Err(ApiError::field(
            "model",
            format!("expected a string, got {m}"),
        ));
    }
    let n = f.usize("n")?.unwrap_or(1);
    if n == 0 {
        return Err(ApiError::field("n", "must be at least 1"));
    }
    if n > limits.max_n {
        return Err(ApiError::field(
            "n",
            format!("{n} exceeds this server's limit of {}", limits.max_n),
        ));
    }
    let top_k = match f.i64("top_k")? {
        None | Some(-1) => 0,
        Some(k) => usize::try_from(k)
            .map_err(|_| ApiError::field("top_k", format!("{k} is not >= 0 (or -1 = off)")))?,
    };
    let logprob_mode = match f.str("logprob_mode")? {
        None | Some("raw") => LogprobMode::Raw,
        Some("processed") => LogprobMode::Processed,
        Some(other) => {
            return Err(ApiError::field(
                "logprob_mode",
                format!("{other:?} is not \"raw\" or \"processed\""),
            ));
        }
    };
    let mut stop_token_ids: Vec<u32> = match f.get("stop_token_ids") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            ApiError::field(
                "stop_token_ids",
                format!("expected a list of token ids, got {v}"),
            )
        })?,
    };
    if let Some(c) = limits.codec {
        for id in c.stop_token_ids() {
            if !stop_token_ids.contains(&id) {
                stop_token_ids.push(id);
            }
        }
    }
    let params = SamplingParams {
        n,
        temperature: f.f32("temperature")?.unwrap_or(1.0),
        top_k,
        top_p: f.f32("top_p")?.unwrap_or(1.0),
        min_p: f.f32("min_p")?.unwrap_or(0.0),
        max_new_tokens: 0,
        min_new_tokens: f.usize("min_tokens")?.unwrap_or(0),
        stop_token_ids,
        stop: f.strings("stop")?,
        ignore_eos: f.bool("ignore_eos")?.unwrap_or(false),
        seed: f.i64("seed")?.map_or(limits.default_seed, |s| s as u64),
        logprob_mode,
        top_logprobs: 0,
    };
    Ok((params, n))
}

/// Most alternatives per token a request may ask for (OpenAI's limit for chat).
pub(crate) const MAX_TOP_LOGPROBS: usize = 20;

/// Sets `params.top_logprobs` to `k`, asked for by the client's `field`.
fn set_top_logprobs(params: &mut SamplingParams, k: usize, field: &str) -> ApiResult<()> {
    if k > MAX_TOP_LOGPROBS {
        return Err(ApiError::field(
            field,
            format!("{k} alternatives per token exceed the limit of {MAX_TOP_LOGPROBS}"),
        ));
    }
    if k > 0 && params.logprob_mode == LogprobMode::Processed {
        return Err(ApiError::field(
            field,
            "alternatives are reported under the raw model distribution only; \
             drop `logprob_mode: \"processed\"` or ask for 0 alternatives",
        ));
    }
    params.top_logprobs = k;
    Ok(())
}

/// Checks one prompt's request like the engine would, naming the client's fields.
fn check(
    req: &Request,
    limits: &Limits<'_>,
    prompt_field: &str,
    max_tokens_field: &str,
    which: Option<usize>,
) -> ApiResult<()> {
    let context = limits.info.context;
    if let Err(crate::RolloutError::InvalidRequest { field, reason, .. }) =
        req.params.validate(0, req.prompt_ids.len(), context)
    {
        let name = match field {
            "max_new_tokens" => max_tokens_field,
            "min_new_tokens" => "min_tokens",
            "prompt" => prompt_field,
            other => other,
        };
        let reason = match (field, which) {
            ("prompt", Some(i)) => format!("prompt {i}: {reason}"),
            _ => reason,
        };
        return Err(ApiError::field(name, reason));
    }
    let vocab = limits.info.vocab_size;
    if let Some(pos) = req.prompt_ids.iter().position(|&t| t as usize >= vocab) {
        let at = which.map_or(String::new(), |i| format!("prompt {i}, "));
        return Err(ApiError::field(
            prompt_field,
            format!(
                "token id {} ({at}position {pos}) is outside the vocabulary of {vocab}",
                req.prompt_ids[pos]
            ),
        ));
    }
    Ok(())
}

fn need_codec<'a>(limits: &Limits<'a>, field: &str) -> ApiResult<&'a dyn Codec> {
    limits.codec.ok_or_else(|| {
        ApiError::field(
            field,
            "this model is served without a tokenizer: give token ids (completions only)",
        )
    })
}

/// Token ids of `prompt`: a string, a list of token ids, or a list of either.
fn prompts(v: &Value, limits: &Limits<'_>) -> ApiResult<Vec<Vec<u32>>> {
    let ids = |a: &[Value]| -> ApiResult<Vec<u32>> {
        a.iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|t| u32::try_from(t).ok())
                    .ok_or_else(|| ApiError::field("prompt", format!("{x} is not a token id")))
            })
            .collect()
    };
    let text = |s: &str| -> ApiResult<Vec<u32>> {
        need_codec(limits, "prompt")?
            .encode(s)
            .map_err(|e| ApiError::field("prompt", e))
    };
    match v {
        Value::String(s) => Ok(vec![text(s)?]),
        Value::Array(a) if a.is_empty() => Err(ApiError::field("prompt", "is empty")),
        Value::Array(a) if a.iter().all(Value::is_number) => Ok(vec![ids(a)?]),
        Value::Array(a) => a
            .iter()
            .map(|p| match p {
                Value::String(s) => text(s),
                Value::Array(x) => ids(x),
                other => Err(ApiError::field(
                    "prompt",
                    format!(
                        "expected a string or a list of token ids per prompt, got {}",
                        kind_name(other)
                    ),
                )),
            })
            .collect(),
        other => Err(ApiError::field(
            "prompt",
            format!(
                "expected a string, a list of token ids, or a list of those; got {}",
                kind_name(other)
            ),
        )),
    }
}

/// Parses and validates a `/v1/completions` body.
pub(crate) fn parse_completions(body: &[u8], limits: &Limits<'_>) -> ApiResult<Parsed> {
    let obj = object(body)?;
    let f = Fields(&obj);
    let (mut base, n) = sampling(&f, limits)?;
    reject_unsupported(&f, Endpoint::Completions, n)?;
    // An integer k asks for the k most likely alternatives per token as well (`true` is
    // accepted as 0 alternatives).
    let (logprobs, top) = match f.get("logprobs") {
        None | Some(Value::Bool(false)) => (false, 0),
        Some(Value::Bool(true)) => (true, 0),
        Some(_) => (true, f.usize("logprobs")?.unwrap_or(0)),
    };
    set_top_logprobs(&mut base, top, "logprobs")?;
    let max_tokens = f.usize("max_tokens")?.unwrap_or(16);
    let prompt = f
        .get("prompt")
        .ok_or_else(|| ApiError::field("prompt", "is required"))?;
    let prompts = prompts(prompt, limits)?;
    let several = prompts.len() > 1;
    let mut requests = Vec::with_capacity(prompts.len());
    for (i, prompt_ids) in prompts.into_iter().enumerate() {
        let mut params = base.clone();
        params.max_new_tokens = max_tokens;
        params.seed = base.seed.wrapping_add(i as u64);
        let req = Request { prompt_ids, params };
        check(&req, limits, "prompt", "max_tokens", several.then_some(i))?;
        requests.push(req);
    }
    Ok(Parsed {
        requests,
        logprobs,
        return_token_ids: f.bool("return_token_ids")?.unwrap_or(false),
        stream: stream(&f)?,
    })
}

/// Normalises message contents for the template: a list of text parts becomes one string.
fn messages(v: &Value) -> ApiResult<Value> {
    let Value::Array(list) = v else {
        return Err(ApiError::field(
            "messages",
            format!("expected a list of messages, got {}", kind_name(v)),
        ));
    };
    if list.is_empty() {
        return Err(ApiError::field("messages", "is empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(ApiError::field(
                "messages",
                format!("message {i} is not an object"),
            ));
        };
        if !m.get("role").is_some_and(Value::is_string) {
            return Err(ApiError::field(
                "messages",
                format!("message {i} has no string `role`"),
            ));
        }
        let mut m = m.clone();
        if let Some(Value::Array(parts)) = m.get("content") {
            let mut text = String::new();
            for p in parts {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::field(
                            "messages",
                            format!("message {i}: only text content parts are supported"),
                        ));
                    }
                }
            }
            m.insert("content".into(), Value::String(text));
        }
        match m.get("content") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(ApiError::field(
                    "messages",
                    format!(
                        "message {i}: content must be a string or a list of text parts, got {}",
                        kind_name(other)
                    ),
                ));
            }
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

/// Parses and validates a `/v1/chat/completions` body.
pub(crate) fn parse_chat(body: &[u8], limits: &Limits<'_>) -> ApiResult<Parsed> {
    let obj = object(body)?;
    let f = Fields(&obj);
    let (mut params, n) = sampling(&f, limits)?;
    reject_unsupported(&f, Endpoint::Chat, n)?;
    let logprobs = f.bool("logprobs")?.unwrap_or(false);
    let top = f.usize("top_logprobs")?.unwrap_or(0);
    if top > 0 && !logprobs {
        return Err(ApiError::field(
            "top_logprobs",
            "needs `logprobs: true` (as in the OpenAI API)",
        ));
    }
    set_top_logprobs(&mut params, top, "top_logprobs")?;
    let (max_field, max_tokens) = match f.usize("max_completion_tokens")? {
        Some(m) => ("max_completion_tokens", Some(m)),
        None => ("max_tokens", f.usize("max_tokens")?),
    };
    let msgs = messages(
        f.get("messages")
            .ok_or_else(|| ApiError::field("messages", "is required"))?,
    )?;
    let tools = match f.get("tools") {
        None => None,
        Some(t @ Value::Array(_)) => Some(t),
        Some(t) => {
            return Err(ApiError::field(
                "tools",
                format!("expected a list, got {}", kind_name(t)),
            ));
        }
    };
    let prompt_ids = need_codec(limits, "messages")?
        .chat(&msgs, tools)
        .map_err(|e| ApiError::field("messages", e))?;
    params.max_new_tokens =
        max_tokens.unwrap_or_else(|| limits.info.context.saturating_sub(prompt_ids.len()).max(1));
    let req = Request { prompt_ids, params };
    check(&req, limits, "messages", max_field, None)?;
    Ok(Parsed {
        requests: vec![req],
        logprobs,
        return_token_ids: f.bool("return_token_ids")?.unwrap_or(false),
        stream: stream(&f)?,
    })
}

/// OpenAI's name of a finish reason (end-of-sequence counts as `stop`).
pub(crate) fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Eos | FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// The completion's text. A stop string that starts the completion leaves the engine's
/// `text` uncut (the scheduler re-decodes an empty cut), so a stop-string finish is cut
/// here again at the first stop string (a no-op when the engine already cut it).
fn text<'c>(c: &'c Completion, req: &Request) -> &'c str {
    if c.finish_reason == FinishReason::Stop
        && let Some(at) = crate::stop::find_stop(&c.text, &req.params.stop, 0)
    {
        return &c.text[..at];
    }
    &c.text
}

/// The text of one token for log-prob listings (special tokens kept).
fn token_text(codec: Option<&dyn Codec>, id: u32) -> String {
    match codec {
        Some(c) => c.decode(&[id], false),
        None => format!("token_id:{id}"),
    }
}

/// What a response needs besides the completions.
pub(crate) struct Header<'a> {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
}

fn usage(parsed: &Parsed, results: &[Vec<Completion>]) -> Value {
    let prompt: usize = parsed.requests.iter().map(|r| r.prompt_ids.len()).sum();
    let completion: usize = results.iter().flatten().map(|c| c.ids.len()).sum();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// The `/v1/completions` response.
pub(crate) fn completions_response(
    h: &Header<'_>,
    parsed: &Parsed,
    results: &[Vec<Completion>],
    codec: Option<&dyn Codec>,
) -> Value {
    response(h, "text_completion", parsed, results, |req, c| {
        // OpenAI's legacy shape: per token an object from token text to log-prob, the k
        // most likely first, then the sampled token when it is not among them (so up to
        // k + 1 entries; tokens with the same text keep the first, likelier, value).
        let top = if req.params.top_logprobs == 0 {
            Value::Null
        } else {
            let per_token: Vec<Value> = c
                .ids
                .iter()
                .zip(&c.logprobs)
                .zip(&c.top_logprobs)
                .map(|((&t, &lp), alts)| {
                    let mut m = Map::new();
                    for &(a, alp) in alts {
                        m.entry(token_text(codec, a)).or_insert(json!(alp));
                    }
                    if !alts.iter().any(|&(a, _)| a == t) {
                        m.entry(token_text(codec, t)).or_insert(json!(lp));
                    }
                    Value::Object(m)
                })
                .collect();
            Value::Array(per_token)
        };
        let logprobs = json!({
            "tokens": c.ids.iter().map(|&t| token_text(codec, t)).collect::<Vec<_>>(),
            "token_logprobs": c.logprobs,
            "top_logprobs": top,
        });
        (json!({ "text": text(c, req) }), logprobs)
    })
}

/// The `/v1/chat/completions` response.
pub(crate) fn chat_response(
    h: &Header<'_>,
    parsed: &Parsed,
    results: &[Vec<Completion>],
    codec: Option<&dyn Codec>,
) -> Value {
    response(h, "chat.completion", parsed, results, |req, c| {
        let content: Vec<Value> = c
            .ids
            .iter()
            .zip(&c.logprobs)
            .enumerate()
            .map(|(i, (&t, &lp))| {
                let token = token_text(codec, t);
                let top: Vec<Value> = c
                    .top_logprobs
                    .get(i)
                    .into_iter()
                    .flatten()
                    .map(|&(a, alp)| {
                        let text = token_text(codec, a);
                        json!({"token": text, "logprob": alp, "bytes": text.as_bytes()})
                    })
                    .collect();
                json!({
                    "token": token,
                    "logprob": lp,
                    "bytes": token.as_bytes(),
                    "top_logprobs": top,
                })
            })
            .collect();
        let message = json!({
            "message": {"role": "assistant", "content": text(c, req)},
        });
        (message, json!({ "content": content }))
    })
}

/// The response envelope shared by both endpoints: one choice per completion in request
/// order, each built from `body(request, completion)` = (the choice's own fields, its
/// `logprobs` object, used only when log-probs were requested), plus finish reason, token
/// ids on request, and usage.
fn response(
    h: &Header<'_>,
    object: &str,
    parsed: &Parsed,
    results: &[Vec<Completion>],
    body: impl Fn(&Request, &Completion) -> (Value, Value),
) -> Value {
    let mut choices = Vec::new();
    for (req, comps) in parsed.requests.iter().zip(results) {
        for c in comps {
            let (mut choice, logprobs) = body(req, c);
            choice["index"] = json!(choices.len());
            choice["logprobs"] = if parsed.logprobs {
                logprobs
            } else {
                Value::Null
            };
            choice["finish_reason"] = json!(finish_reason(c.finish_reason));
            if parsed.return_token_ids {
                choice["token_ids"] = json!(c.ids);
                choice["prompt_token_ids"] = json!(req.prompt_ids);
            }
            choices.push(choice);
        }
    }
    json!({
        "id": h.id,
        "object": object,
        "created": h.created,
        "model": h.model,
        "choices": choices,
        "usage": usage(parsed, results),
    })
}

/// A complete response as server-sent events: one chunk per choice holding its whole
/// text (chat: `delta` with role and content) and its finish reason, then (with
/// `include_usage`) a chunk with empty `choices` and the `usage`, then `data: [DONE]`.
/// Everything is sent after generation ends: the events are not incremental.
pub(crate) fn to_sse(response: &Value, include_usage: bool) -> String {
    let chat = response["object"] == "chat.completion";
    let mut out = String::new();
    let mut push = |v: &Value| {
        out.push_str("data: ");
        out.push_str(&v.to_string());
        out.push_str("\n\n");
    };
    let chunk = |choices: Value| {
        let mut c = json!({
            "id": response["id"],
            "object": if chat { "chat.completion.chunk" } else { "text_completion" },
            "created": response["created"],
            "model": response["model"],
            "choices": choices,
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    for choice in response["choices"].as_array().into_iter().flatten() {
        let mut choice = choice.clone();
        if chat && let Some(obj) = choice.as_object_mut() {
            let message = obj.remove("message").unwrap_or(Value::Null);
            obj.insert("delta".into(), message);
        }
        push(&chunk(json!([choice])));
    }
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = response["usage"].clone();
        push(&last);
    }
    out.push_str("data: [DONE]\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits<'static> {
        Limits {
            info: ModelInfo {
                vocab_size: 32,
                context: 16,
            },
            max_n: 8,
            default_seed: 77,
            codec: None,
        }
    }

    fn err(body: Value) -> ApiError {
        parse_completions(body.to_string().as_bytes(), &limits()).unwrap_err()
    }

    #[test]
    fn several_prompts_get_consecutive_seeds() {
        let body = json!({"prompt": [[1, 2], [3]], "n": 2, "max_tokens": 4});
        let p = parse_completions(body.to_string().as_bytes(), &limits()).unwrap();
        assert_eq!(p.requests.len(), 2);
        assert_eq!(p.requests[0].params.seed, 77);
        assert_eq!(p.requests[1].params.seed, 78);
        assert_eq!(p.requests[1].prompt_ids, vec![3]);
        assert_eq!(p.requests[0].params.max_new_tokens, 4);
        assert!(!p.logprobs);
    }

    #[test]
    fn errors_name_their_field() {
        let cases = [
            (json!({"prompt": [1], "n": 0}), "n"),
            (json!({"prompt": [1], "n": 9}), "n"),
            (json!({"prompt": [1], "temperature": -1}), "temperature"),
            (json!({"prompt": [1], "temperature": "hot"}), "temperature"),
            (json!({"prompt": [1], "top_p": 0}), "top_p"),
            (json!({"prompt": [1], "top_k": -2}), "top_k"),
            (json!({"prompt": [1], "max_tokens": 0}), "max_tokens"),
            (
                json!({"prompt": [1], "min_tokens": 9, "max_tokens": 2}),
                "min_tokens",
            ),
            (json!({"prompt": [1], "stop": [""]}), "stop"),
            (json!({"prompt": [1], "stop": 3}), "stop"),
            (json!({"prompt": [1], "echo": true}), "echo"),
            (
                json!({"prompt": [1], "stream": true, "stream_options": 1}),
                "stream_options",
            ),
            (json!({"prompt": [1], "logprobs": -1}), "logprobs"),
            (json!({"prompt": [1], "logprobs": 21}), "logprobs"),
            (
                json!({"prompt": [1], "presence_penalty": 0.5}),
                "presence_penalty",
            ),
            (json!({"prompt": [1], "model": 5}), "model"),
            (json!({"prompt": []}), "prompt"),
            (json!({"prompt": [[1], []]}), "prompt"),
            (json!({"prompt": [40]}), "prompt"),
            (json!({"prompt": vec![1; 16]}), "prompt"),
            (json!({"prompt": "text needs a tokenizer"}), "prompt"),
            (json!({"n": 1}), "prompt"),
        ];
        for (body, field) in cases {
            let e = err(body.clone());
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.param.as_deref(), Some(field), "{body}: {}", e.message);
            assert!(e.message.contains(field), "{body}: {}", e.message);
        }
    }

    #[test]
    fn non_objects_and_bad_json_are_rejected_without_a_field() {
        for body in ["{", "[1, 2]", "null"] {
            let e = parse_completions(body.as_bytes(), &limits()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.param, None);
            assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn chat_needs_a_tokenizer_and_messages() {
        let parse = |b: Value| parse_chat(b.to_string().as_bytes(), &limits()).unwrap_err();
        assert_eq!(parse(json!({})).param.as_deref(), Some("messages"));
        let e = parse(json!({"messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("tokenizer"), "{}", e.message);
        let e = parse(json!({"messages": [], "top_logprobs": 2}));
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
        assert!(e.message.contains("logprobs: true"), "{}", e.message);
        let e = parse(json!({"messages": [], "logprobs": true, "top_logprobs": 21}));
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
        let e = parse(json!({"messages": [], "logprobs": true, "top_logprobs": 2,
                             "logprob_mode": "processed"}));
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
        assert!(e.message.contains("raw"), "{}", e.message);
    }

    #[test]
    fn content_parts_are_joined() {
        let m = messages(&json!([{"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}
        ]}]))
        .unwrap();
        assert_eq!(m[0]["content"], "ab");
        let e = messages(&json!([{"role": "user", "content": [{"type": "image_url"}]}]));
        assert_eq!(e.unwrap_err().param.as_deref(), Some("messages"));
    }

    #[test]
    fn eos_is_reported_as_stop() {
        assert_eq!(finish_reason(FinishReason::Eos), "stop");
        assert_eq!(finish_reason(FinishReason::Stop), "stop");
        assert_eq!(finish_reason(FinishReason::Length), "length");
    }
}
