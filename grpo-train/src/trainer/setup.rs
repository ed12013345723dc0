//! Run set-up: a new run directory (model built first, so a bad model path fails before
//! anything is written) or a resumed one (weights, optimiser moments, trainer state and the
//! metrics history up to the checkpoint), plus the estimator and metrics sink.

use grpo_core::advantage::AdvantageEstimator;
use grpo_model::tokenizer::Tokenizer;

use super::{Run, TrainOptions};
use crate::checkpoint;
use crate::config::RunConfigFile;
use crate::error::{Result, TrainError};
use crate::metrics::{MetricsSink, Record};
use crate::reward::RewardFns;
use crate::state::{Moments, Stage, TrainerState};
use crate::task::TaskSource;

impl<'c> Run<'c> {
    /// Creates the run directory (or opens it for resume) and builds the model,
    /// tokenizer, task, estimator and optimiser state.
    pub(super) fn build(cfg: &'c RunConfigFile, opts: &TrainOptions) -> Result<Self> {
        let mut task = TaskSource::new(&cfg.task, cfg.seed)?;
        // Reward components are checked before anything is written.
        RewardFns::new(&cfg.reward, &task)?;
        let chat = matches!(
            cfg.task,
            crate::config::TaskSection::Dataset {
                chat_template: true,
                ..
            }
        );
        let pool_len = cfg
            .algorithm
            .sampler
            .as_ref()
            .map_or(0, |sm| task.pool(sm.pool_size).len());
        let (dir, model, tok, state, moments, history, reference) = match &opts.resume {
            Some(dir) => {
                let r = checkpoint::load(dir)?;
                if chat {
                    task.apply_chat_template(&r.tokenizer)?;
                }
                // The reference policy (frozen or last synced) is part of the state.
                let reference = match r.reference_weights {
                    Some(w) => {
                        let mut m = r.model.clone();
                        m.weights = w;
                        Some(m)
                    }
                    None => None,
                };
                let history =
                    crate::metrics::read_jsonl(&dir.join("metrics.jsonl")).unwrap_or_default();
                let history: Vec<Record> =
                    history.into_iter().take(r.state.metrics_lines).collect();
                checkpoint::truncate_metrics(dir, &history)?;
                (
                    dir.clone(),
                    r.model,
                    r.tokenizer,
                    r.state,
                    r.moments,
                    history,
                    reference,
                )
            }
            None => {
                let dir = cfg.run_dir();
                // Build the model first: a bad model path must fail before the
                // run directory is touched.
                let (model, tok) = checkpoint::initial_model(cfg, &task)?;
                if chat {
                    task.apply_chat_template(&tok)?;
                }
                if dir.exists() {
                    if !opts.overwrite {
                        return Err(TrainError::OutputExists(dir));
                    }
                    std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
                }
                std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
                let text = toml::to_string(cfg).map_err(|e| TrainError::Other(e.to_string()))?;
                std::fs::write(dir.join("config.toml"), text)
                    .map_err(|e| TrainError::io(&dir, e))?;
                let n = model.weights.len();
                let state = TrainerState {
                    stage: if cfg.sft.is_some() {
                        Stage::Sft
                    } else {
                        Stage::Grpo
                    },
                    step: 0,
                    cursor: 0,
                    adam_step: 0,
                    nonfinite_streak: 0,
                    advantage_state: cfg.algorithm.advantage.initial_state(),
                    metrics_lines: 0,
                    kl_controller: match &cfg.algorithm.kl {
                        Some(kl) => Some(
                            grpo_core::kl::KlController::new(kl.controller.clone()).map_err(
                                |e| TrainError::Config {
                                    location: Some("algorithm.kl.controller".into()),
                                    message: e.to_string(),
                                },
                            )?,
                        ),
                        None => None,
                    },
                    r2vpo_eta: cfg
                        .algorithm
                        .schedule
                        .r2vpo_dual_lr
                        .and(crate::chain::r2vpo(&cfg.algorithm.loss).map(|c| c.eta)),
                    spo_memory: Default::default(),
                    sampler: match &cfg.algorithm.sampler {
                        Some(sm) => Some(crate::state::SamplerRun {
                            sampler: grpo_core::sampler::PromptSampler::new(sm.rule.clone())
                                .map_err(|e| TrainError::Config {
                                    location: Some("algorithm.sampler.rule".into()),
                                    message: e.to_string(),
                                })?,
                            pass_rate: vec![0.5; pool_len],
                            diversity: vec![1.0; pool_len],
                        }),
                        None => None,
                    },
                };
                (dir, model, tok, state, Moments::zeros(n), Vec::new(), None)
            }
        };
        let rewards = RewardFns::new(&cfg.reward, &task)?;
        let pool = match &cfg.algorithm.sampler {
            Some(sm) => task.pool(sm.pool_size),
            None => Vec::new(),
        };
        let estimator = AdvantageEstimator::with_state(
            cfg.algorithm.advantage.clone(),
            state.advantage_state.clone(),
        )?;
        let metrics = MetricsSink::open(&dir, history)?;
        let stop_ids = stop_ids_for(&task, &tok);
        Ok(Run {
            cfg,
            dir,
            model,
            reference,
            tok,
            task,
            estimator,
            rewards,
            pool,
            moments,
            state,
            metrics,
            stop_ids,
            quiet: opts.quiet,
        })
    }
}

pub(super) fn stop_ids_for(task: &TaskSource, tok: &Tokenizer) -> Vec<u32> {
    let mut stop_ids = Vec::new();
    if let Some(stop) = task.stop_text()
        && let Some(id) = tok.token_to_id(stop)
    {
        stop_ids.push(id);
    }
    stop_ids
}
