//! The generation thread: owns the model and the engine, takes jobs from a channel, runs
//! every queued job in one [`Engine::generate`] call and answers each over its oneshot.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;

use grpo_model::Model;
use tokio::sync::oneshot;

use super::ServeError;
use super::codec::Codec;
use crate::engine::{Detokenizer, Engine, EngineConfig, GenerateStats, Lm, Request, RequestResult};
use crate::model::ModelLm;

/// Most jobs (HTTP requests) run in one engine call.
const MAX_JOBS_PER_CALL: usize = 256;

/// What the generation thread reports about its model once it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// Vocabulary size (token ids must be below it).
    pub vocab_size: usize,
    /// Maximum sequence length (prompt + completion).
    pub context: usize,
}

/// An owned `grpo-model` transformer as an engine backend (the generation thread owns it).
pub type OwnedModelLm = ModelLm<Model>;

/// One HTTP request's prompts, and where to send their results.
pub(crate) struct Job {
    pub(crate) requests: Vec<Request>,
    pub(crate) reply: oneshot::Sender<Vec<RequestResult>>,
}

/// The handlers' end of the job channel.
pub(crate) type JobSender = mpsc::Sender<Job>;

struct CodecDetok<'c>(&'c dyn Codec);

impl Detokenizer for CodecDetok<'_> {
    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids, true)
    }
}

/// Starts the generation thread, builds the model there and waits for it.
pub(crate) fn spawn<M, F>(
    make_model: F,
    codec: Option<Arc<dyn Codec>>,
    config: EngineConfig,
) -> Result<(JobSender, ModelInfo), ServeError>
where
    M: Lm + 'static,
    F: FnOnce() -> Result<M, String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<ModelInfo, String>>();
    std::thread::Builder::new()
        .name("grpo-serve-generate".into())
        .spawn(move || {
            let model = match make_model() {
                Ok(m) => m,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let info = ModelInfo {
                vocab_size: model.vocab_size(),
                context: model.max_positions(),
            };
            if ready_tx.send(Ok(info)).is_err() {
                return;
            }
            run_jobs(&model, codec.as_deref(), config, &rx);
        })?;
    match ready_rx.recv() {
        Ok(Ok(info)) => Ok((tx, info)),
        Ok(Err(e)) => Err(ServeError::Model(e)),
        Err(_) => Err(ServeError::Model(
            "the generation thread stopped while loading the model".into(),
        )),
    }
}

/// The thread's loop: until every sender is dropped.
fn run_jobs<M: Lm>(
    model: &M,
    codec: Option<&dyn Codec>,
    config: EngineConfig,
    rx: &mpsc::Receiver<Job>,
) {
    let engine = Engine::new(model, config);
    let detok = codec.map(CodecDetok);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_JOBS_PER_CALL {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // A client that went away does not need its answer.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let sizes: Vec<usize> = jobs.iter().map(|j| j.requests.len()).collect();
        let requests: Vec<Request> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.requests))
            .collect();
        let mut stats = GenerateStats::default();
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            engine.generate(
                &requests,
                detok.as_ref().map(|d| d as &dyn Detokenizer),
                &mut stats,
            )
        }));
        match outcome {
            Ok(results) => {
                tracing::debug!(
                    "{} request(s), {} prompt(s): {} prefill + {} decode tokens in {:.2} s",
                    jobs.len(),
                    requests.len(),
                    stats.prefill_tokens,
                    stats.decode_tokens,
                    started.elapsed().as_secs_f64()
                );
                let mut results = results.into_iter();
                for (job, size) in jobs.into_iter().zip(sizes) {
                    let mine: Vec<RequestResult> = results.by_ref().take(size).collect();
                    let _ = job.reply.send(mine);
                }
            }
            Err(_) => {
                tracing::error!(
                    "generation panicked on a batch of {} request(s); they get an error",
                    jobs.len()
                );
                // Dropping the reply senders makes the handlers answer with a server error.
                drop(jobs);
            }
        }
    }
}
