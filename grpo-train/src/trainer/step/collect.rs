//! Rollout → rewards → filter. Samples `rollout.prompts_per_step` prompts with G completions
//! each, scores them with every reward component, and keeps what the filter keeps; with a
//! refilling filter (DAPO dynamic sampling) it samples again until enough groups survive.

use std::time::Instant;

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use grpo_core::batch::ScoredBatch;
use grpo_core::sampler::{PromptPool, distinct_n};
use grpo_envs::seed::derive_seed;
use grpo_envs::task::TaskInstance;
use grpo_rollout::{Completion, FinishReason, SamplingParams};

use super::StepMetrics;
use crate::error::{Result, TrainError};
use crate::reward::SampleView;
use crate::task::Score;
use crate::trainer::Run;
use crate::trainer::eval::CompletionText;

/// One prompt and its sampled completions with their rewards.
pub(crate) struct Item {
    pub inst: TaskInstance,
    pub prompt: Vec<u32>,
    pub completions: Vec<Completion>,
    /// Reward per completion.
    pub reward: Vec<f64>,
    /// `components[c][j]`: component `c` of completion `j`.
    pub components: Vec<Vec<f64>>,
}

impl Item {
    /// Completion `j` was cut at the length limit.
    pub fn truncated(&self, j: usize) -> bool {
        self.completions[j].finish_reason == FinishReason::Length
    }
}

/// A training row: completion `j` of `items[item]`; `masked` rows stay in the batch with a
/// zero loss mask (`mask_truncated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub item: usize,
    pub j: usize,
    pub masked: bool,
}

/// What survives the filter: items, and rows grouped by item in item order.
pub(crate) struct Collected {
    pub items: Vec<Item>,
    pub rows: Vec<Row>,
    /// Reward component names.
    pub names: Vec<String>,
}

impl Run<'_> {
    pub(super) fn collect(&mut self, m: &mut StepMetrics) -> Result<Collected> {
        let cfg = self.cfg;
        let want = cfg.rollout.prompts_per_step;
        let (refill, max_rounds) = match &cfg.algorithm.filter {
            Some(f) if f.refill => (true, f.max_rollout_batches.max(1)),
            _ => (false, 1),
        };
        let mut out = Collected {
            items: Vec::new(),
            rows: Vec::new(),
            names: self.rewards.names(),
        };
        let mut sampled_groups = 0usize;
        for round in 0..max_rounds {
            let items = self.rollout_round(round, m)?;
            sampled_groups += items.len();
            let rows = self.filter_round(&items, round)?;
            m.rollout_rounds = round + 1;
            // Rows are grouped by item; move each item with a surviving row over.
            let mut by_item: Vec<Vec<Row>> = (0..items.len()).map(|_| Vec::new()).collect();
            for r in rows {
                by_item[r.item].push(r);
            }
            for (item, rows) in items.into_iter().zip(by_item) {
                if rows.is_empty() || (refill && out.items.len() >= want) {
                    continue;
                }
                let k = out.items.len();
                out.rows
                    .extend(rows.into_iter().map(|r| Row { item: k, ..r }));
                out.items.push(item);
            }
            if !refill || out.items.len() >= want {
                break;
            }
        }
        m.filtered_frac = 1.0 - out.items.len() as f64 / sampled_groups.max(1) as f64;
        m.rows = out.rows.len();
        Ok(out)
    }

    /// Samples a batch of prompts and G completions each, and scores them.
    fn rollout_round(&mut self, round: usize, m: &mut StepMetrics) -> Result<Vec<Item>> {
        let cfg = self.cfg;
        let ro = &cfg.rollout;
        let g = ro.group_size;
        let t0 = Instant::now();
        let mut insts = Vec::with_capacity(ro.prompts_per_step);
        let mut pool_index: Vec<Option<usize>> = Vec::with_capacity(ro.prompts_per_step);
        if let Some(sr) = self.state.sampler.as_mut() {
            let pool = PromptPool {
                pass_rate: sr.pass_rate.clone(),
                diversity: Some(sr.diversity.clone()),
            };
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
                cfg.seed,
                "sampler",
                &[self.state.step as u64, round as u64],
            ));
            let picks = sr
                .sampler
                .draw(&pool, ro.prompts_per_step, &mut rng)
                .map_err(|e| TrainError::Other(format!("algorithm.sampler: {e}")))?;
            for i in picks {
                insts.push(self.pool[i].clone());
                pool_index.push(Some(i));
            }
        } else {
            for _ in 0..ro.prompts_per_step {
                let (inst, next) = self.task.train_instance(self.state.cursor);
                self.state.cursor = next;
                insts.push(inst);
                pool_index.push(None);
            }
        }
        let prompts: Vec<Vec<u32>> = insts
            .iter()
            .map(|i| self.encode(&i.prompt))
            .collect::<Result<_>>()?;
        let mut params = SamplingParams::sampled(g, ro.temperature, ro.max_new_tokens, 0);
        params.top_p = ro.top_p;
        params.top_k = ro.top_k;
        // Round 0 keeps the seed stream of runs without refill.
        let label = if round == 0 {
            "rollout".to_string()
        } else {
            format!("rollout-refill-{round}")
        };
        let ctx = self.eval_ctx();
        let (groups, stats) = ctx.generate(&prompts, &params, &label, self.state.step)?;
        m.prefill_tokens += stats.prefill_tokens;
        m.decode_tokens += stats.decode_tokens;
        m.time.rollout += t0.elapsed().as_secs_f64();

        let t0 = Instant::now();
        let texts: Vec<Vec<String>> = groups
            .iter()
            .map(|cs| cs.iter().map(|c| c.text_or_ids(&self.tok)).collect())
            .collect();
        let scores: Vec<Vec<Score>> = insts
            .iter()
            .zip(&texts)
            .map(|(inst, ts)| ts.iter().map(|t| self.task.score(inst, t)).collect())
            .collect();
        let mut views = Vec::with_capacity(insts.len() * g);
        for (k, inst) in insts.iter().enumerate() {
            for (j, c) in groups[k].iter().enumerate() {
                views.push(SampleView {
                    inst,
                    prompt: k,
                    text: &texts[k][j],
                    len_tokens: c.ids.len(),
                    truncated: c.finish_reason == FinishReason::Length,
                    task: scores[k][j],
                });
            }
        }
        let table = self.rewards.score(&self.task, &views);
        if m.components.is_empty() {
            m.components = table
                .names
                .iter()
                .map(|n| (n.clone(), Default::default(), 0, None))
                .collect();
        }
        for (c, (_, s, errors, last)) in m.components.iter_mut().enumerate() {
            table.values[c].iter().for_each(|&x| s.push(x));
            *errors += table.errors[c].0;
            if table.errors[c].1.is_some() {
                last.clone_from(&table.errors[c].1);
            }
        }
        // The sampler's per-prompt statistics: pass rate and response diversity.
        if let Some(sr) = self.state.sampler.as_mut() {
            for (k, idx) in pool_index.iter().enumerate() {
                if let Some(i) = *idx {
                    let acc: Vec<f64> = scores[k].iter().map(|s| s.correct).collect();
                    sr.pass_rate[i] =
                        (acc.iter().sum::<f64>() / acc.len().max(1) as f64).clamp(0.0, 1.0);
                    let ids: Vec<Vec<u32>> = groups[k].iter().map(|c| c.ids.clone()).collect();
                    sr.diversity[i] = distinct_n(&ids, 2);
                }
            }
        }
        let mut items = Vec::with_capacity(insts.len());
        for (k, ((inst, prompt), completions)) in
            insts.into_iter().zip(prompts).zip(groups).enumerate()
        {
            let rows = k * g..k * g + completions.len();
            for (j, c) in completions.iter().enumerate() {
                let s = scores[k][j];
                m.reward.push(table.scalar[k * g + j]);
                m.accuracy.push(s.correct);
                m.format.push(s.format);
                m.partial.push(s.partial);
                m.response_length.push(c.ids.len() as f64);
                m.truncated
                    .push(f64::from(u8::from(c.finish_reason == FinishReason::Length)));
            }
            items.push(Item {
                reward: table.scalar[rows.clone()].to_vec(),
                components: table
                    .values
                    .iter()
                    .map(|v| v[rows.clone()].to_vec())
                    .collect(),
                inst,
                prompt,
                completions,
            });
        }
        m.time.reward += t0.elapsed().as_secs_f64();
        Ok(items)
    }

    /// The rows of `items` the filter keeps, grouped by item in item order.
    fn filter_round(&self, items: &[Item], round: usize) -> Result<Vec<Row>> {
        let alg = &self.cfg.algorithm;
        let all = || {
            items
                .iter()
                .enumerate()
                .flat_map(|(k, it)| {
                    (0..it.completions.len()).map(move |j| Row {
                        item: k,
                        j,
                        masked: false,
                    })
                })
                .collect::<Vec<_>>()
        };
        // `drop_zero_variance_groups` is grpo-core's DAPO filter on the scalar reward.
        let zero_variance = grpo_core::filter::FilterConfig::DynamicSampling(
            grpo_core::filter::DynamicSamplingConfig {
                metric: "reward".into(),
            },
        );
        let rule = match &alg.filter {
            Some(f) => &f.rule,
            None if alg.drop_zero_variance_groups => &zero_variance,
            None => return Ok(all()),
        };
        // The round as a scored batch (one token column suffices: filters read rewards,
        // components, groups and truncation, and the mask only to zero rows).
        let rows = all();
        let b = rows.len();
        let mut mask = Array2::<f64>::zeros((b, 1));
        let mut reward = Array1::<f64>::zeros(b);
        let mut group = Vec::with_capacity(b);
        let mut truncated = Vec::with_capacity(b);
        for (i, r) in rows.iter().enumerate() {
            let it = &items[r.item];
            mask[[i, 0]] = 1.0;
            reward[i] = it.reward[r.j];
            group.push(r.item);
            truncated.push(it.truncated(r.j));
        }
        let mut batch = ScoredBatch::new(mask, group, reward)?.with_truncated(truncated)?;
        for (c, name) in self.rewards.names().iter().enumerate() {
            let v: Vec<f64> = rows
                .iter()
                .map(|r| items[r.item].components[c][r.j])
                .collect();
            batch = batch.with_component(name, Array1::from(v))?;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
            self.cfg.seed,
            "filter",
            &[self.state.step as u64, round as u64],
        ));
        let sel = rule
            .select(&batch, &mut rng)
            .map_err(|e| TrainError::Other(format!("algorithm.filter: {e}")))?;
        let mut kept: Vec<(usize, Row)> = sel
            .rows
            .iter()
            .map(|&i| {
                let masked = sel
                    .mask
                    .as_ref()
                    .is_some_and(|mk| mk.row(i).iter().all(|&x| x == 0.0));
                (i, Row { masked, ..rows[i] })
            })
            .collect();
        // Grouped by item for the shared-prefix forward; stable, so resampled rows keep
        // their draw order within an item.
        kept.sort_by_key(|(_, r)| r.item);
        Ok(kept.into_iter().map(|(_, r)| r).collect())
    }
}
