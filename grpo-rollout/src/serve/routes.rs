//! The axum routes: each handler parses its body (see [`super::api`]), hands the engine
//! requests to the generation thread and awaits the reply without blocking the runtime.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::AppState;
use super::api::{self, ApiError, Header, Limits, Parsed};
use super::worker::Job;
use crate::engine::{Completion, Request};
use crate::error::RolloutError;

type Shared = State<Arc<AppState>>;

/// All routes over `state`, with its body limit.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route (this server has /v1/models, /v1/completions, \
                  /v1/chat/completions and /health)"
            .into(),
        kind: "invalid_request_error",
        param: None,
    }
}

async fn models(State(s): Shared) -> axum::Json<Value> {
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": s.config.model_name,
            "object": "model",
            "created": s.started,
            "owned_by": "grpo-rs",
            "max_model_len": s.info.context,
        }],
    }))
}

/// A counter value for ids and default seeds.
fn next(s: &AppState) -> u64 {
    s.counter.fetch_add(1, Ordering::Relaxed)
}

fn limits(s: &AppState, k: u64) -> Limits<'_> {
    Limits {
        info: s.info,
        max_n: s.config.max_n,
        // Distinct, reproducible seeds for unseeded requests (golden-ratio stride).
        default_seed: s
            .config
            .seed
            .wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        codec: s.codec.as_deref(),
    }
}

fn body_error(e: BytesRejection) -> ApiError {
    ApiError {
        status: e.status(),
        message: format!("cannot read the request body: {}", e.body_text()),
        kind: "invalid_request_error",
        param: None,
    }
}

/// Sends `requests` to the generation thread and waits for their completions.
async fn generate(s: &AppState, requests: Vec<Request>) -> Result<Vec<Vec<Completion>>, ApiError> {
    let (reply, rx) = oneshot::channel();
    s.jobs
        .send(Job { requests, reply })
        .map_err(|_| ApiError::server("the generation thread has stopped"))?;
    let results = rx
        .await
        .map_err(|_| ApiError::server("generation failed (see the server log)"))?;
    results
        .into_iter()
        .map(|r| {
            r.map_err(|e| match e {
                // Checked before queueing; kept for safety.
                RolloutError::InvalidRequest { field, reason, .. } => {
                    ApiError::field(field, reason)
                }
                other => ApiError::server(other.to_string()),
            })
        })
        .collect()
}

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn run(
    s: Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&[u8], &Limits<'_>) -> Result<Parsed, ApiError>,
    respond: fn(&Header<'_>, &Parsed, &[Vec<Completion>], Option<&dyn super::Codec>) -> Value,
    prefix: &str,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let k = next(&s);
    // Tokenizing and rendering a template is CPU work: keep it off the runtime's threads.
    let state = s.clone();
    let parsed = tokio::task::spawn_blocking(move || parse(&body, &limits(&state, k)))
        .await
        .map_err(|_| ApiError::server("parsing the request failed (see the server log)"))??;
    let results = generate(&s, parsed.requests.clone()).await?;
    let header = Header {
        id: format!("{prefix}-{:x}{k:06x}", s.started),
        created: created(),
        model: &s.config.model_name,
    };
    let value = respond(&header, &parsed, &results, s.codec.as_deref());
    Ok(match parsed.stream {
        None => axum::Json(value).into_response(),
        Some(include_usage) => (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            api::to_sse(&value, include_usage),
        )
            .into_response(),
    })
}

async fn completions(State(s): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    run(
        s,
        body,
        api::parse_completions,
        api::completions_response,
        "cmpl",
    )
    .await
    .into_response()
}

async fn chat(State(s): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    run(s, body, api::parse_chat, api::chat_response, "chatcmpl")
        .await
        .into_response()
}
