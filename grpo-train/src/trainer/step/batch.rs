//! The training batch: the surviving rows as a grpo-core [`ScoredBatch`] carrying every
//! input the math can use (rewards and named components, group ids, prompt keys, old
//! log-probs, truncation, ReMax's greedy baseline when asked for), plus the per-token arrays
//! the loss reads (rollout, old and reference log-probs, token ids), padded `[rows, T]`.

use std::time::Instant;

use ndarray::{Array1, Array2};

use grpo_core::advantage::AdvantageConfig;
use grpo_core::batch::ScoredBatch;
use grpo_model::forward::GroupInput;
use grpo_rollout::SamplingParams;

use super::StepMetrics;
use super::collect::{Collected, Row};
use crate::error::Result;
use crate::reward::SampleView;
use crate::trainer::Run;
use crate::trainer::eval::CompletionText;

/// The rows of a step, ready for the estimator and the loss.
pub(crate) struct TrainBatch {
    /// Rows with mask, group, reward and every batch-level input.
    pub scored: ScoredBatch,
    /// The sampler's per-token log-probs (temperature 1).
    pub rollout_lp: Array2<f64>,
    /// Old-policy log-probs: the sampler's, or recomputed by a scoring pass.
    pub old_lp: Array2<f64>,
    /// Reference-policy log-probs (with a reference model).
    pub ref_lp: Option<Array2<f64>>,
    /// Sampled token ids (0 past each row's end).
    pub token_ids: Array2<i64>,
    /// Row range of each item (rows are grouped by item).
    pub item_rows: Vec<std::ops::Range<usize>>,
}

/// Shared-prefix forward inputs for the rows of items `items`.
pub(crate) fn group_inputs<'a>(
    c: &'a Collected,
    item_rows: &[std::ops::Range<usize>],
    items: std::ops::Range<usize>,
) -> Vec<GroupInput<'a>> {
    items
        .map(|k| GroupInput {
            prompt: &c.items[k].prompt,
            completions: c.rows[item_rows[k].clone()]
                .iter()
                .map(|r| c.items[r.item].completions[r.j].ids.as_slice())
                .collect(),
        })
        .collect()
}

/// Ragged rows → padded `[rows, t]` (zeros past each row's end).
pub(crate) fn to_padded(rows: &[Vec<f32>], t: usize) -> Array2<f64> {
    let mut a = Array2::zeros((rows.len(), t));
    for (i, r) in rows.iter().enumerate() {
        for (j, &x) in r.iter().enumerate().take(t) {
            a[[i, j]] = f64::from(x);
        }
    }
    a
}

/// Padded `[rows, t]` → ragged rows shaped like `like`, times `scale`.
pub(crate) fn from_padded(a: &Array2<f64>, like: &[Vec<f32>], scale: f64) -> Vec<Vec<f32>> {
    like.iter()
        .enumerate()
        .map(|(i, r)| (0..r.len()).map(|j| (a[[i, j]] * scale) as f32).collect())
        .collect()
}

impl Run<'_> {
    pub(super) fn train_batch(&self, c: &Collected, m: &mut StepMetrics) -> Result<TrainBatch> {
        let rows: &[Row] = &c.rows;
        let b = rows.len();
        let comp = |r: &Row| &c.items[r.item].completions[r.j];
        let t = rows
            .iter()
            .map(|r| comp(r).ids.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut item_rows = vec![0..0; c.items.len()];
        let mut start = 0;
        for i in 1..=b {
            if i == b || rows[i].item != rows[start].item {
                item_rows[rows[start].item] = start..i;
                start = i;
            }
        }
        let mut mask = Array2::<f64>::zeros((b, t));
        let mut rollout_lp = Array2::<f64>::zeros((b, t));
        let mut token_ids = Array2::<i64>::zeros((b, t));
        let mut reward = Array1::<f64>::zeros(b);
        let mut group = Vec::with_capacity(b);
        let mut keys = Vec::with_capacity(b);
        let mut truncated = Vec::with_capacity(b);
        for (i, r) in rows.iter().enumerate() {
            let cm = comp(r);
            let item = &c.items[r.item];
            for (j, (&lp, &id)) in cm.logprobs_raw.iter().zip(&cm.ids).enumerate() {
                mask[[i, j]] = if r.masked { 0.0 } else { 1.0 };
                rollout_lp[[i, j]] = f64::from(lp);
                token_ids[[i, j]] = i64::from(id);
            }
            reward[i] = item.reward[r.j];
            group.push(r.item);
            keys.push(item.inst.prompt.clone());
            truncated.push(item.truncated(r.j));
        }
        // Old log-probs: the sampler's, or a teacher-forced pass under the same weights.
        let t0 = Instant::now();
        let old_lp = if self.cfg.grpo.recompute_old_log_prob {
            let gi = group_inputs(c, &item_rows, 0..c.items.len());
            to_padded(&self.model.score_grouped(&gi)?.logprobs, t)
        } else {
            rollout_lp.clone()
        };
        let ref_lp = match &self.reference {
            Some(reference) => {
                let gi = group_inputs(c, &item_rows, 0..c.items.len());
                Some(to_padded(&reference.score_grouped(&gi)?.logprobs, t))
            }
            None => None,
        };
        m.time.score += t0.elapsed().as_secs_f64();

        let mut scored = ScoredBatch::new(mask, group, reward)?
            .with_old_log_prob(old_lp.clone())?
            .with_prompt_keys(keys)?
            .with_truncated(truncated)?;
        for (k, name) in c.names.iter().enumerate() {
            let v: Vec<f64> = rows
                .iter()
                .map(|r| c.items[r.item].components[k][r.j])
                .collect();
            scored = scored.with_component(name, Array1::from(v))?;
        }
        if matches!(self.cfg.algorithm.advantage, AdvantageConfig::Remax(_)) {
            let base = self.greedy_baseline(c, m)?;
            let per_row: Vec<f64> = rows.iter().map(|r| base[r.item]).collect();
            scored = scored.with_baseline_reward(Array1::from(per_row))?;
        }
        Ok(TrainBatch {
            scored,
            rollout_lp,
            old_lp,
            ref_lp,
            token_ids,
            item_rows,
        })
    }

    /// ReMax's baseline: the scalar reward of the greedy completion of each item's prompt.
    fn greedy_baseline(&self, c: &Collected, m: &mut StepMetrics) -> Result<Vec<f64>> {
        let t0 = Instant::now();
        let prompts: Vec<Vec<u32>> = c.items.iter().map(|it| it.prompt.clone()).collect();
        let greedy = SamplingParams::greedy(self.cfg.rollout.max_new_tokens);
        let (outs, stats) =
            self.eval_ctx()
                .generate(&prompts, &greedy, "remax-greedy", self.state.step)?;
        m.prefill_tokens += stats.prefill_tokens;
        m.decode_tokens += stats.decode_tokens;
        let texts: Vec<String> = outs
            .iter()
            .map(|cs| {
                cs.first()
                    .map(|x| x.text_or_ids(&self.tok))
                    .unwrap_or_default()
            })
            .collect();
        let views: Vec<SampleView<'_>> = c
            .items
            .iter()
            .zip(&outs)
            .zip(&texts)
            .enumerate()
            .map(|(k, ((it, cs), text))| SampleView {
                inst: &it.inst,
                prompt: k,
                text,
                len_tokens: cs.first().map_or(0, |x| x.ids.len()),
                truncated: cs
                    .first()
                    .is_some_and(|x| x.finish_reason == grpo_rollout::FinishReason::Length),
                task: self.task.score(&it.inst, text),
            })
            .collect();
        m.time.rollout += t0.elapsed().as_secs_f64();
        Ok(self.rewards.score(&self.task, &views).scalar)
    }
}
