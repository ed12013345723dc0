//! The policy update: μ passes over the batch in minibatches of whole prompts (the
//! shared-prefix forward needs a prompt's rows together); each minibatch runs forward,
//! loss, backward; `grpo.gradient_accumulation_steps` minibatches are summed into one
//! clipped AdamW step.

use std::time::Instant;

use ndarray::s;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use grpo_core::advantage::AdvantageOutput;
use grpo_core::loss::{LossConfig, LossInputs};
use grpo_envs::seed::derive_seed;
use grpo_model::forward::ForwardOptions;

use super::StepMetrics;
use super::batch::{TrainBatch, from_padded, group_inputs, to_padded};
use super::collect::Collected;
use crate::error::Result;
use crate::trainer::Run;

/// Items `[start, end)` per minibatch: whole prompts, at least `minibatch_size` rows each
/// (0 = the whole batch in one).
fn minibatches(item_rows: &[std::ops::Range<usize>], minibatch_size: usize) -> Vec<(usize, usize)> {
    let n = item_rows.len();
    if minibatch_size == 0 {
        return vec![(0, n)];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut rows = 0;
    for (k, r) in item_rows.iter().enumerate() {
        rows += r.len();
        if rows >= minibatch_size {
            out.push((start, k + 1));
            start = k + 1;
            rows = 0;
        }
    }
    if start < n {
        out.push((start, n));
    }
    out
}

impl Run<'_> {
    pub(super) fn update(
        &mut self,
        c: &Collected,
        batch: &TrainBatch,
        adv: &AdvantageOutput,
        loss_cfg: &LossConfig,
        lr: f64,
        m: &mut StepMetrics,
    ) -> Result<()> {
        let cfg = self.cfg;
        let t = batch.scored.mask.ncols();
        let mbs = minibatches(&batch.item_rows, cfg.grpo.minibatch_size);
        let accum = cfg.grpo.gradient_accumulation_steps.max(1);
        let opts = ForwardOptions {
            recompute: cfg.grpo.recompute,
            ..ForwardOptions::default()
        };
        let scores = batch.scored.reward.clone();
        let mut mb_index = 0usize;
        for _pass in 0..cfg.grpo.mu {
            for chunk in mbs.chunks(accum) {
                let scale = 1.0 / chunk.len() as f64;
                let mut grads = self.model.zero_grads();
                let mut loss_sum = 0.0;
                let t0 = Instant::now();
                for &(k0, k1) in chunk {
                    let r0 = batch.item_rows[k0].start;
                    let r1 = batch.item_rows[k1 - 1].end;
                    let gi = group_inputs(c, &batch.item_rows, k0..k1);
                    let (out, acts) = self.model.forward_grouped(&gi, opts)?;
                    let new = to_padded(&out.logprobs, t);
                    let ent = to_padded(&out.entropy, t);
                    let rows = s![r0..r1, ..];
                    let idx = &batch.scored.group[r0..r1];
                    let mut inputs = LossInputs::new(
                        new.view(),
                        batch.old_lp.slice(rows),
                        batch.scored.mask.slice(rows),
                        adv.advantages.slice(rows),
                    )
                    .with_entropy(ent.view())
                    .with_index(idx)
                    .with_rewards(batch.scored.reward.slice(s![r0..r1]))
                    .with_rollout_log_prob(batch.rollout_lp.slice(rows))
                    .with_token_ids(batch.token_ids.slice(rows))
                    .with_scores(scores.slice(s![r0..r1]));
                    if let Some(rl) = &batch.ref_lp {
                        inputs = inputs.with_ref_log_prob(rl.slice(rows));
                    }
                    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
                        cfg.seed,
                        "loss",
                        &[self.state.step as u64, mb_index as u64],
                    ));
                    mb_index += 1;
                    let lo = loss_cfg.compute(&inputs, &mut rng)?;
                    let dlogp = from_padded(&lo.grad_logp, &out.logprobs, scale);
                    let dent = lo
                        .grad_entropy
                        .as_ref()
                        .map(|ge| from_padded(ge, &out.entropy, scale));
                    self.model
                        .backward(&acts, &dlogp, dent.as_deref(), &mut grads)?;
                    self.model.recycle(acts);
                    loss_sum += lo.loss;
                    m.loss.push(lo.loss);
                    m.clip_frac.push(lo.metrics.clip_frac);
                    m.ppo_kl.push(lo.metrics.ppo_kl);
                    if let Some(k) = lo.metrics.kl {
                        m.kl.push(k);
                    }
                    if let Some(e) = lo.metrics.entropy {
                        m.entropy.push(e);
                    }
                    for (k, v) in &lo.metrics.extra {
                        m.loss_extra.entry(k.clone()).or_default().push(*v);
                    }
                }
                m.time.backward += t0.elapsed().as_secs_f64();
                let t1 = Instant::now();
                match self.apply_update(&mut grads, loss_sum * scale, lr)? {
                    Some(norm) => {
                        m.grad_norm.push(norm);
                        m.optimizer_steps += 1;
                    }
                    None => m.skipped_updates += 1,
                }
                m.time.optim += t1.elapsed().as_secs_f64();
            }
        }
        m.trained = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::minibatches;

    #[test]
    fn minibatches_keep_prompts_whole() {
        let rows = vec![0..4, 4..8, 8..10, 10..14];
        assert_eq!(minibatches(&rows, 0), vec![(0, 4)]);
        assert_eq!(minibatches(&rows, 8), vec![(0, 2), (2, 4)]);
        assert_eq!(minibatches(&rows, 5), vec![(0, 2), (2, 4)]);
        assert_eq!(minibatches(&rows, 100), vec![(0, 4)]);
        assert_eq!(minibatches(&rows, 1), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
    }
}
