//! An OpenAI-compatible HTTP server over the engine (feature `serve`), so agent harnesses
//! written against the OpenAI API can drive a policy checkpoint.
//!
//! # Design
//!
//! One dedicated generation thread owns the model and an [`Engine`](crate::Engine) (the
//! model is built *on* that thread by a factory closure, so it need not be `Send`). HTTP
//! handlers run on a tokio runtime: they parse and validate a request, tokenize it with the
//! [`Codec`], send a job over a channel and await a oneshot reply, so generation never
//! blocks the runtime. When the thread picks up a job it also takes every job queued
//! behind it and runs them all in one [`Engine::generate`](crate::Engine::generate) call
//! (the engine batches their samples; `max_batch` limits live sequences). Jobs arriving
//! during a call wait for the next one. Jobs whose client has gone away are skipped.
//!
//! # Endpoints
//!
//! - `GET /v1/models`: the served model (`id` = the served name, `max_model_len`).
//! - `POST /v1/completions`: `prompt` is a string, an array of token ids, or an array of
//!   either (several prompts: the choices are flattened prompt-major, choice `index` =
//!   `prompt_index × n + j`, as OpenAI does). Parameters: `n`, `max_tokens` (default 16),
//!   `temperature` (default 1; 0 = greedy), `top_p`, `seed`, `stop` (string or list),
//!   `logprobs` (an integer k from 0 to 20: `logprobs.tokens` and `logprobs.token_logprobs`
//!   of the sampled tokens, and for k > 0 `logprobs.top_logprobs`, per token an object from
//!   token text to log-prob holding the k most likely tokens, most likely first, plus the
//!   sampled token when it is not among them; for k = 0 `top_logprobs` is `null`;
//!   `text_offset` is omitted). `echo: true`, `suffix`, `best_of` ≠ `n` and non-zero
//!   penalties / `logit_bias` are rejected with 400.
//! - `POST /v1/chat/completions`: `messages` rendered with the checkpoint's chat template
//!   with the generation prompt (`tools`, when given, are passed to the template; tool calls
//!   in the output are *not* parsed: the reply is the raw text as `content`). Parameters as
//!   above with `max_completion_tokens` (or `max_tokens`; default: the rest of the
//!   context), `logprobs: true` → `choices[].logprobs.content[{token, logprob, bytes,
//!   top_logprobs}]`, where `top_logprobs` (0 to 20, needs `logprobs: true`) lists the k
//!   most likely tokens of each position as `{token, logprob, bytes}`, most likely first
//!   (the sampled token's entry, when it is among them, has its `logprob`); a
//!   `response_format` other than text is rejected.
//!
//! Alternatives are ranked and reported under the raw model distribution (temperature 1,
//! no truncation), the same as the default `logprob_mode`; asking for alternatives with
//! `logprob_mode: "processed"` is rejected with 400.
//! - `GET /health`: 200 once the model is loaded.
//!
//! Extensions (vLLM names): `top_k` (0 or -1 = off), `min_p`, `min_tokens`,
//! `stop_token_ids`, `ignore_eos`, `return_token_ids` (adds `token_ids` and
//! `prompt_token_ids` to each choice), and `logprob_mode`: `"raw"` (default: the
//! log-prob under the unmodified model, what a trainer uses as π_old) or `"processed"`
//! (under the distribution actually sampled from).
//!
//! Responses carry `id`, `object`, `created`, `model` (always the served name: any
//! requested `model` is accepted), `choices` (`finish_reason` is `"stop"` for an
//! end-of-sequence token, stop token or stop string, `"length"` at `max_tokens` or a full
//! context) and `usage`. Other request fields are ignored.
//!
//! `stream: true` answers with server-sent events in OpenAI's chunk format (`data: {chunk}`
//! lines, chat chunks carry `delta`, then `data: [DONE]`; `stream_options.include_usage`
//! adds a last chunk with the usage), but *buffered*: the events are sent when generation
//! has finished, one chunk per choice holding its whole text. Clients that require
//! streaming work; they get no lower time-to-first-token.
//!
//! Seeds: a request without `seed` gets one from a counter mixed with
//! [`ServerConfig::seed`]; prompt `i` of a request uses `seed + i`, and sample `j` of a
//! prompt stream `j` of that seed (see [`crate::engine`]), so a seeded request's output is
//! reproducible.
//!
//! Bad input (invalid JSON, wrong types, `n` = 0, negative `temperature`, `top_p` outside
//! (0, 1], empty prompt, a prompt that fills the context, token ids outside the vocabulary,
//! unsupported options) is answered with HTTP 400 and an OpenAI-style body
//! `{"error": {"message", "type": "invalid_request_error", "param", "code": null}}` whose
//! `param` names the field; such a request never reaches the generation thread. Bodies
//! over [`ServerConfig::body_limit`] get 413.
//!
//! ```
//! use std::sync::Arc;
//! use grpo_model::{Arch, Model, ModelConfig};
//! use grpo_rollout::serve::{OwnedModelLm, Server, ServerConfig};
//!
//! let config = ModelConfig {
//!     arch: Arch::Qwen2, vocab_size: 32, hidden_size: 16, intermediate_size: 32,
//!     num_layers: 1, num_heads: 2, num_kv_heads: 1, head_dim: 8,
//!     max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000.0,
//!     tie_word_embeddings: true, bos_token_id: None, eos_token_ids: vec![1], pad_token_id: None,
//! };
//! // The model is built on the generation thread; no tokenizer: token-id prompts only.
//! let server = Server::start(ServerConfig::default(), move || {
//!     Model::new_random(config, 0).map(OwnedModelLm::new).map_err(|e| e.to_string())
//! }, None)?;
//! assert_eq!(server.info().context, 64);
//! let router = server.router(); // serve it with `serve`, or call it with tower's `oneshot`
//! # drop(router);
//! # Ok::<(), grpo_rollout::serve::ServeError>(())
//! ```

mod api;

pub use api::kind_name;
mod codec;
mod routes;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use thiserror::Error;

pub use codec::{Codec, TokenizerCodec};
pub use worker::{ModelInfo, OwnedModelLm};

use crate::engine::{EngineConfig, Lm};

/// Settings of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to bind (`127.0.0.1` by default; a non-loopback address logs a warning).
    pub host: String,
    /// Port to bind (0 = any free port).
    pub port: u16,
    /// The model name reported in responses and by `/v1/models`.
    pub model_name: String,
    /// Maximum live sequences the engine decodes together.
    pub max_batch: usize,
    /// The engine's KV budget in tokens (see [`EngineConfig::max_cached_tokens`]).
    pub max_cached_tokens: usize,
    /// Maximum `n` of one request.
    pub max_n: usize,
    /// Maximum request body in bytes (larger bodies get 413).
    pub body_limit: usize,
    /// Base of the seeds given to requests without `seed`.
    pub seed: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            model_name: "grpo-policy".into(),
            max_batch: EngineConfig::default().max_batch,
            max_cached_tokens: EngineConfig::default().max_cached_tokens,
            max_n: 256,
            body_limit: 4 << 20,
            seed: 0,
        }
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ServeError> {
        let bad = |field, reason: &str| {
            Err(ServeError::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.model_name.trim().is_empty() {
            return bad("model_name", "is empty");
        }
        if self.max_batch == 0 {
            return bad("max_batch", "must be at least 1");
        }
        if self.max_n == 0 {
            return bad("max_n", "must be at least 1");
        }
        if self.max_cached_tokens == 0 {
            return bad("max_cached_tokens", "must be at least 1");
        }
        if self.body_limit == 0 {
            return bad("body_limit", "must be at least 1");
        }
        Ok(())
    }
}

/// Errors of the server (request errors are HTTP responses, not these).
#[derive(Debug, Error)]
pub enum ServeError {
    /// A [`ServerConfig`] field is invalid.
    #[error("server config: {field}: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The model factory failed (or the generation thread died while loading).
    #[error("loading the model: {0}")]
    Model(String),
    /// The address could not be resolved or bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// `host:port` as given.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Starting a thread or the runtime, or serving, failed.
    #[error("server i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared state of the HTTP handlers.
pub(crate) struct AppState {
    pub(crate) config: ServerConfig,
    pub(crate) info: ModelInfo,
    pub(crate) codec: Option<Arc<dyn Codec>>,
    pub(crate) jobs: worker::JobSender,
    /// Counter for response ids and default seeds.
    pub(crate) counter: AtomicU64,
    /// Unix seconds at start (`created` of the model object).
    pub(crate) started: u64,
}

/// A started generation thread plus the state the HTTP routes share.
///
/// The thread ends when the server and every [`axum::Router`] built from it are dropped.
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// Starts the generation thread, builds the model on it with `make_model` and waits
    /// until it is ready. `codec` tokenizes text prompts and chat messages and detokenizes
    /// completions; without one only token-id prompts are accepted and `text` is empty.
    pub fn start<M, F>(
        config: ServerConfig,
        make_model: F,
        codec: Option<Arc<dyn Codec>>,
    ) -> Result<Self, ServeError>
    where
        M: Lm + 'static,
        F: FnOnce() -> Result<M, String> + Send + 'static,
    {
        config.validate()?;
        let engine_config = EngineConfig {
            max_batch: config.max_batch,
            max_cached_tokens: config.max_cached_tokens,
        };
        let (jobs, info) = worker::spawn(make_model, codec.clone(), engine_config)?;
        if let Some(c) = &codec
            && let Some(v) = c.vocab_size()
            && v > info.vocab_size
        {
            tracing::warn!(
                "the tokenizer has {v} ids but the model only {}: prompts with larger ids are rejected",
                info.vocab_size
            );
        }
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Self {
            state: Arc::new(AppState {
                config,
                info,
                codec,
                jobs,
                counter: AtomicU64::new(0),
                started,
            }),
        })
    }

    /// What the generation thread reported about the model.
    pub fn info(&self) -> ModelInfo {
        self.state.info
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// The HTTP routes (see the module doc), with the body limit applied.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serves the routes on `listener` until `shutdown` completes (then finishes the
    /// requests in flight).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let router = self.router();
        drop(self);
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Binds `config.host:config.port` on a new tokio runtime, starts the server (see
/// [`Server::start`]) and serves until Ctrl-C. Logs the bound address (`listening on
/// http://ADDR`) and warns when it is not a loopback address.
pub fn run<M, F>(
    config: ServerConfig,
    make_model: F,
    codec: Option<Arc<dyn Codec>>,
) -> Result<(), ServeError>
where
    M: Lm + 'static,
    F: FnOnce() -> Result<M, String> + Send + 'static,
{
    let addr = format!("{}:{}", config.host, config.port);
    let server = Server::start(config, make_model, codec)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let info = server.info();
    tracing::info!(
        "serving {} (context {}, vocab {})",
        server.config().model_name,
        info.context,
        info.vocab_size
    );
    runtime.block_on(async move {
        let listener = bind(&addr).await?;
        server
            .serve(listener, async {
                if tokio::signal::ctrl_c().await.is_err() {
                    // No signal handler: serve until the process is killed.
                    std::future::pending::<()>().await;
                }
                tracing::info!("shutting down");
            })
            .await
    })
}

/// Binds `addr` (`host:port`), logs `listening on http://ADDR` and warns when the bound
/// address is not a loopback address.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(
            "binding {local}, which is not a loopback address: anyone who can reach this \
             host can use the model (the server has no authentication)"
        );
    }
    tracing::info!("listening on http://{local}");
    Ok(listener)
}
