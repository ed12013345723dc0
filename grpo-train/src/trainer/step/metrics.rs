//! Typed metrics of one GRPO step; [`StepMetrics::into_record`] gives the JSONL record with
//! the keys the plots, TensorBoard and users read (`reward/mean`, `reward/<component>`,
//! `accuracy`, `loss`, `kl`, `time/rollout`, ...).

use std::collections::BTreeMap;

use crate::metrics::{Record, Summary, num};

/// Seconds per phase.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timings {
    pub rollout: f64,
    pub reward: f64,
    pub score: f64,
    pub backward: f64,
    pub optim: f64,
    pub step: f64,
}

/// Everything one GRPO step reports.
#[derive(Debug, Default, Clone)]
pub(crate) struct StepMetrics {
    /// The step number (1-based).
    pub step: usize,
    /// Scalar reward over every sampled completion.
    pub reward: Summary,
    /// Per reward component: mean over sampled completions, failed samples and last reason.
    pub components: Vec<(String, Summary, usize, Option<String>)>,
    /// The task verifier's correctness, format and partial credit.
    pub accuracy: Summary,
    pub format: Summary,
    pub partial: Summary,
    /// Completion lengths in tokens.
    pub response_length: Summary,
    /// Fraction of completions cut at the length limit.
    pub truncated: Summary,
    /// Fraction of sampled groups the filter dropped.
    pub filtered_frac: f64,
    /// Rollout batches sampled (more than 1 with a refilling filter).
    pub rollout_rounds: usize,
    /// Rows trained on.
    pub rows: usize,
    /// Per-row advantage (first token's value).
    pub advantage: Option<Summary>,
    pub advantage_extra: BTreeMap<String, f64>,
    /// Losses and loss diagnostics, one value per minibatch.
    pub loss: Summary,
    pub grad_norm: Summary,
    pub clip_frac: Summary,
    pub ppo_kl: Summary,
    pub kl: Summary,
    pub entropy: Summary,
    pub loss_extra: BTreeMap<String, Summary>,
    /// KL coefficient used this step (with `[algorithm.kl]`).
    pub kl_coef: Option<f64>,
    /// Scheduled loss parameters (`mdpo/t_k`, `r2vpo/eta`).
    pub schedule: BTreeMap<String, f64>,
    /// Optimiser steps taken and skipped (non-finite).
    pub optimizer_steps: usize,
    pub skipped_updates: usize,
    pub lr: f64,
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
    pub time: Timings,
    /// Whether any update ran (otherwise the loss keys are absent).
    pub trained: bool,
}

impl StepMetrics {
    pub fn new(step: usize) -> Self {
        StepMetrics {
            step,
            ..Default::default()
        }
    }

    /// The JSONL record.
    pub fn into_record(self) -> Record {
        let mut rec = Record::new();
        rec.insert("step".into(), self.step.into());
        rec.insert("stage".into(), "grpo".into());
        self.reward.write_into(&mut rec, "reward");
        let names: Vec<&str> = self.components.iter().map(|c| c.0.as_str()).collect();
        rec.insert("reward_components".into(), names.join(",").into());
        for (name, s, errors, last) in &self.components {
            rec.insert(format!("reward/{name}"), num(s.mean()));
            if *errors > 0 {
                rec.insert(format!("reward/{name}/errors"), (*errors).into());
                if let Some(why) = last {
                    rec.insert(format!("reward/{name}/last_error"), why.clone().into());
                }
            }
        }
        rec.insert("accuracy".into(), num(self.accuracy.mean()));
        for (key, s) in [("format", &self.format), ("partial", &self.partial)] {
            let k = format!("reward/{key}");
            rec.entry(k).or_insert_with(|| num(s.mean()));
        }
        self.response_length.write_into(&mut rec, "response_length");
        rec.insert("truncated_frac".into(), num(self.truncated.mean()));
        rec.insert("filtered_frac".into(), num(self.filtered_frac));
        rec.insert("rollout/rounds".into(), self.rollout_rounds.into());
        rec.insert("rows".into(), self.rows.into());
        if let Some(a) = &self.advantage {
            a.write_into(&mut rec, "advantage");
        }
        for (k, v) in &self.advantage_extra {
            rec.insert(format!("advantage/{k}"), num(*v));
        }
        if self.trained {
            rec.insert("loss".into(), num(self.loss.mean()));
            rec.insert("grad_norm".into(), num(self.grad_norm.mean()));
            rec.insert("clip_frac".into(), num(self.clip_frac.mean()));
            rec.insert("ppo_kl".into(), num(self.ppo_kl.mean()));
            rec.insert("kl".into(), num(self.kl.mean()));
            rec.insert("entropy".into(), num(self.entropy.mean()));
            rec.insert("skipped_updates".into(), self.skipped_updates.into());
            rec.insert("optimizer_steps".into(), self.optimizer_steps.into());
            for (k, s) in &self.loss_extra {
                rec.insert(format!("loss/{k}"), num(s.mean()));
            }
        }
        if let Some(c) = self.kl_coef {
            rec.insert("kl_coef".into(), num(c));
        }
        for (k, v) in &self.schedule {
            rec.insert(k.clone(), num(*v));
        }
        rec.insert("lr".into(), num(self.lr));
        let t = &self.time;
        for (k, v) in [
            ("rollout", t.rollout),
            ("reward", t.reward),
            ("score", t.score),
            ("backward", t.backward),
            ("optim", t.optim),
            ("step", t.step),
        ] {
            rec.insert(format!("time/{k}"), num(v));
        }
        rec.insert("rollout/prefill_tokens".into(), self.prefill_tokens.into());
        rec.insert("rollout/decode_tokens".into(), self.decode_tokens.into());
        rec.insert(
            "tokens_per_sec".into(),
            num((self.prefill_tokens + self.decode_tokens) as f64 / t.step.max(1e-9)),
        );
        rec
    }
}
