//! Evaluation: greedy accuracy and pass@k on the held-out set, for a run in progress or a
//! saved checkpoint; the generation helper the rollout uses too.

use std::time::Instant;

use grpo_envs::seed::derive_seed;
use grpo_envs::task::TaskInstance;
use grpo_model::Model;
use grpo_model::tokenizer::Tokenizer;
use grpo_rollout::model::ModelLm;
use grpo_rollout::{Completion, Engine, EngineConfig, GenerateStats, Request, SamplingParams};

use super::Run;
use super::setup::stop_ids_for;
use crate::config::RunConfigFile;
use crate::error::{Result, TrainError};
use crate::metrics::{Record, num};
use crate::task::TaskSource;

/// Accuracy numbers of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Greedy accuracy on the held-out set.
    pub accuracy: f64,
    /// pass@k with k samples at the rollout temperature (None when k = 0).
    pub pass_at_k: Option<f64>,
}

impl Run<'_> {
    /// Generation and scoring against the current weights.
    pub(super) fn eval_ctx(&self) -> EvalContext<'_> {
        EvalContext {
            cfg: self.cfg,
            model: &self.model,
            tok: &self.tok,
            task: &self.task,
            stop_ids: &self.stop_ids,
        }
    }

    /// Greedy accuracy and pass@k on the held-out set; writes an eval record.
    pub(super) fn evaluate(&mut self, stage: &str) -> Result<EvalResult> {
        let t0 = Instant::now();
        let ctx = self.eval_ctx();
        let d = ctx.run(self.state.step)?;
        let mut rec = Record::new();
        rec.insert("step".into(), self.state.step.into());
        rec.insert("stage".into(), stage.into());
        rec.insert("eval/accuracy".into(), num(d.result.accuracy));
        rec.insert("eval/format".into(), num(d.format));
        if let Some(p) = d.result.pass_at_k {
            rec.insert("eval/pass@k".into(), num(p));
            rec.insert("eval/k".into(), self.cfg.eval.pass_k.into());
        }
        rec.insert("eval/prompts".into(), d.prompts.into());
        rec.insert("time/eval".into(), num(t0.elapsed().as_secs_f64()));
        self.metrics.write(rec)?;
        Ok(d.result)
    }
}

/// What one evaluation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalDetail {
    /// Greedy accuracy and pass@k.
    pub result: EvalResult,
    /// Fraction of greedy completions in the task's format.
    pub format: f64,
    /// Held-out prompts evaluated.
    pub prompts: usize,
}

/// A policy plus what evaluating it needs.
pub(super) struct EvalContext<'a> {
    cfg: &'a RunConfigFile,
    model: &'a Model,
    tok: &'a Tokenizer,
    task: &'a TaskSource,
    stop_ids: &'a [u32],
}

impl EvalContext<'_> {
    /// Samples completions for each prompt; seeds derive from (seed, label, step, prompt index).
    pub(super) fn generate(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        seed_label: &str,
        step: usize,
    ) -> Result<(Vec<Vec<Completion>>, GenerateStats)> {
        let lm = ModelLm::new(self.model);
        let engine = Engine::new(
            &lm,
            EngineConfig {
                max_batch: 256,
                max_cached_tokens: 1 << 22,
            },
        );
        let requests: Vec<Request> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut params = params.clone();
                params.seed = derive_seed(self.cfg.seed, seed_label, &[step as u64, i as u64]);
                params.stop_token_ids = self.stop_ids.to_vec();
                Request {
                    prompt_ids: p.clone(),
                    params,
                }
            })
            .collect();
        let mut stats = GenerateStats::default();
        let detok = TokDetok(self.tok);
        let results = engine.generate(&requests, Some(&detok), &mut stats);
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            out.push(r.map_err(|e| TrainError::Other(format!("rollout: {e}")))?);
        }
        Ok((out, stats))
    }

    /// Greedy decoding of `insts`: (accuracy, format rate).
    pub(super) fn greedy(
        &self,
        insts: &[TaskInstance],
        label: &str,
        step: usize,
    ) -> Result<(f64, f64)> {
        let prompts: Vec<Vec<u32>> = insts
            .iter()
            .map(|i| Ok(self.tok.encode(&i.prompt, false)?))
            .collect::<Result<_>>()?;
        let greedy = SamplingParams::greedy(self.cfg.rollout.max_new_tokens);
        let (outs, _) = self.generate(&prompts, &greedy, label, step)?;
        let mut correct = 0.0;
        let mut format = 0.0;
        for (inst, comps) in insts.iter().zip(&outs) {
            if let Some(c) = comps.first() {
                let s = self.task.score(inst, &c.text_or_ids(self.tok));
                correct += s.correct;
                format += s.format;
            }
        }
        let n = insts.len().max(1) as f64;
        Ok((correct / n, format / n))
    }

    /// Greedy accuracy and pass@k (k samples at the rollout temperature) on
    /// the first `eval.num_prompts` held-out instances.
    pub(super) fn run(&self, step: usize) -> Result<EvalDetail> {
        let n = self.cfg.eval.num_prompts.min(self.task.eval_set().len());
        let insts: Vec<TaskInstance> = self.task.eval_set()[..n].to_vec();
        let prompts: Vec<Vec<u32>> = insts
            .iter()
            .map(|i| Ok(self.tok.encode(&i.prompt, false)?))
            .collect::<Result<_>>()?;
        let (accuracy, format) = self.greedy(&insts, "eval-greedy", step)?;
        let k = self.cfg.eval.pass_k;
        let pass_at_k = if k > 0 {
            let ro = &self.cfg.rollout;
            let mut p = SamplingParams::sampled(k, ro.temperature, ro.max_new_tokens, 0);
            p.top_p = ro.top_p;
            p.top_k = ro.top_k;
            let (outs, _) = self.generate(&prompts, &p, "eval-passk", step)?;
            let hits = insts
                .iter()
                .zip(&outs)
                .filter(|(inst, comps)| {
                    comps
                        .iter()
                        .any(|c| self.task.score(inst, &c.text_or_ids(self.tok)).correct > 0.0)
                })
                .count();
            Some(hits as f64 / n.max(1) as f64)
        } else {
            None
        };
        Ok(EvalDetail {
            result: EvalResult {
                accuracy,
                pass_at_k,
            },
            format,
            prompts: n,
        })
    }
}

/// Evaluates the checkpoint in `model_dir` (a Hugging Face model directory
/// with tokenizer.json, e.g. a run's `checkpoint/`) on the held-out set of
/// `cfg`'s task: greedy accuracy and, when `eval.pass_k > 0`, pass@k with
/// `eval.pass_k` samples at the rollout temperature. `cfg.model` is ignored.
pub fn evaluate_checkpoint(cfg: &RunConfigFile, model_dir: &std::path::Path) -> Result<EvalDetail> {
    if !model_dir.join("config.json").exists() {
        return Err(TrainError::Config {
            location: Some("--model".into()),
            message: format!(
                "{} has no config.json (not a Hugging Face model directory)",
                model_dir.display()
            ),
        });
    }
    let mut task = TaskSource::new(&cfg.task, cfg.seed)?;
    let model = Model::load(model_dir)?;
    let tok = Tokenizer::from_dir(model_dir)?;
    if let crate::config::TaskSection::Dataset {
        chat_template: true,
        ..
    } = &cfg.task
    {
        task.apply_chat_template(&tok)?;
    }
    let stop_ids = stop_ids_for(&task, &tok);
    let ctx = EvalContext {
        cfg,
        model: &model,
        tok: &tok,
        task: &task,
        stop_ids: &stop_ids,
    };
    ctx.run(0)
}

/// The tokenizer as the engine's detokenizer.
pub(super) struct TokDetok<'t>(&'t Tokenizer);

impl grpo_rollout::Detokenizer for TokDetok<'_> {
    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids, true).unwrap_or_default()
    }
}

/// Text of a completion for verification.
pub(super) trait CompletionText {
    fn text_or_ids(&self, tok: &Tokenizer) -> String;
}

impl CompletionText for Completion {
    fn text_or_ids(&self, tok: &Tokenizer) -> String {
        if self.text.is_empty() {
            tok.decode(&self.ids, true).unwrap_or_default()
        } else {
            self.text.clone()
        }
    }
}
