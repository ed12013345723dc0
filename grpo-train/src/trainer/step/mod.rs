//! One GRPO step.

use std::time::Instant;

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use grpo_core::batch::ScoredBatch;
use grpo_core::loss::LossInputs;
use grpo_envs::seed::derive_seed;
use grpo_model::forward::{ForwardOptions, GroupInput};
use grpo_rollout::{Completion, SamplingParams};

use super::Run;
use super::eval::CompletionText;
use crate::error::Result;
use crate::metrics::{Record, Summary, num};
use crate::schedule::lr_at;
use crate::task::Score;

impl Run<'_> {
    /// One GRPO step.
    pub(super) fn grpo_step(&mut self) -> Result<Record> {
        let cfg = self.cfg;
        let ro = &cfg.rollout;
        let g = ro.group_size;
        let t_start = Instant::now();

        // 1. Sample tasks.
        let mut insts = Vec::with_capacity(ro.prompts_per_step);
        for _ in 0..ro.prompts_per_step {
            let (inst, next) = self.task.train_instance(self.state.cursor);
            self.state.cursor = next;
            insts.push(inst);
        }
        let prompts: Vec<Vec<u32>> = insts
            .iter()
            .map(|i| self.encode(&i.prompt))
            .collect::<Result<_>>()?;

        // 2. Roll out G completions per prompt (log-probs under the current weights = π_old).
        let mut params = SamplingParams::sampled(g, ro.temperature, ro.max_new_tokens, 0);
        params.top_p = ro.top_p;
        params.top_k = ro.top_k;
        let ctx = self.eval_ctx();
        let (groups, gen_stats) = ctx.generate(&prompts, &params, "rollout", self.state.step)?;
        let t_rollout = t_start.elapsed().as_secs_f64();

        // 3. Rewards.
        let t0 = Instant::now();
        let mut scores: Vec<Score> = Vec::with_capacity(g * insts.len());
        for (inst, comps) in insts.iter().zip(&groups) {
            for c in comps {
                scores.push(self.task.score(inst, &c.text_or_ids(&self.tok)));
            }
        }
        let t_reward = t0.elapsed().as_secs_f64();

        // 4. Filter: optionally drop groups whose rewards all agree.
        let mut keep: Vec<usize> = Vec::new();
        for (k, _) in insts.iter().enumerate() {
            let r: Vec<f64> = scores[k * g..(k + 1) * g]
                .iter()
                .map(Score::reward)
                .collect();
            let zero_var = r.iter().all(|&x| x == r[0]);
            if !(cfg.algorithm.drop_zero_variance_groups && zero_var) {
                keep.push(k);
            }
        }
        let filtered_frac = 1.0 - keep.len() as f64 / insts.len().max(1) as f64;

        // Flatten kept groups into rows.
        let rows: Vec<(usize, usize)> = keep
            .iter()
            .flat_map(|&k| (0..g).map(move |j| (k, j)))
            .collect();
        let mut rec = Record::new();
        rec.insert("step".into(), (self.state.step + 1).into());
        rec.insert("stage".into(), "grpo".into());
        let mut reward = Summary::default();
        let mut acc = Summary::default();
        let mut fmt = Summary::default();
        let mut partial = Summary::default();
        let mut len = Summary::default();
        for (i, s) in scores.iter().enumerate() {
            reward.push(s.reward());
            acc.push(s.correct);
            fmt.push(s.format);
            partial.push(s.partial);
            len.push(groups[i / g][i % g].ids.len() as f64);
        }
        reward.write_into(&mut rec, "reward");
        rec.insert("accuracy".into(), num(acc.mean()));
        rec.insert("reward/format".into(), num(fmt.mean()));
        rec.insert("reward/partial".into(), num(partial.mean()));
        len.write_into(&mut rec, "response_length");
        rec.insert("filtered_frac".into(), num(filtered_frac));

        let mut t_score = 0.0;
        let mut t_backward = 0.0;
        let mut t_optim = 0.0;
        let lr = lr_at(
            cfg.optim.lr,
            self.state.step,
            cfg.grpo.steps,
            cfg.optim.warmup_steps,
            &cfg.optim.schedule,
        );
        if !rows.is_empty() {
            // 5. Advantages over the kept rows.
            let t_len = rows
                .iter()
                .map(|&(k, j)| groups[k][j].ids.len())
                .max()
                .unwrap_or(1)
                .max(1);
            let b = rows.len();
            let mut mask = Array2::<f64>::zeros((b, t_len));
            let mut old = Array2::<f64>::zeros((b, t_len));
            let mut rew = Array1::<f64>::zeros(b);
            let mut group_idx = Vec::with_capacity(b);
            for (r, &(k, j)) in rows.iter().enumerate() {
                let c = &groups[k][j];
                for (t, &lp) in c.logprobs_raw.iter().enumerate() {
                    mask[[r, t]] = 1.0;
                    old[[r, t]] = f64::from(lp);
                }
                rew[r] = scores[k * g + j].reward();
                group_idx.push(k);
            }
            let batch = ScoredBatch::new(mask.clone(), group_idx.clone(), rew.clone())?;
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
                cfg.seed,
                "advantage",
                &[self.state.step as u64],
            ));
            let adv = self.estimator.compute(&batch, &mut rng)?;
            let mut adv_s = Summary::default();
            for r in 0..b {
                adv_s.push(adv.advantages[[r, 0]]);
            }
            adv_s.write_into(&mut rec, "advantage");

            // Reference log-probs (KL terms), computed once per step.
            let t0 = Instant::now();
            let ref_lp = match &self.reference {
                Some(reference) => {
                    let gi = group_inputs(&keep, &prompts, &groups);
                    let out = reference.score_grouped(&gi)?;
                    Some(to_padded(&out.logprobs, t_len))
                }
                None => None,
            };
            t_score += t0.elapsed().as_secs_f64();

            // 6. μ passes of minibatch updates.
            let mb_groups = if cfg.grpo.minibatch_size == 0 {
                keep.len()
            } else {
                (cfg.grpo.minibatch_size / g).max(1)
            };
            let mut loss_s = Summary::default();
            let mut norm_s = Summary::default();
            let mut clip_s = Summary::default();
            let mut kl_s = Summary::default();
            let mut ent_s = Summary::default();
            let mut ppo_kl_s = Summary::default();
            let mut skipped = 0usize;
            for _pass in 0..cfg.grpo.mu {
                for (mb_i, chunk) in keep.chunks(mb_groups).enumerate() {
                    let t0 = Instant::now();
                    let gi = group_inputs(chunk, &prompts, &groups);
                    let (out, acts) = self.model.forward_grouped(&gi, ForwardOptions::default())?;
                    let r0 = mb_i * mb_groups * g;
                    let r1 = r0 + chunk.len() * g;
                    let new = to_padded(&out.logprobs, t_len);
                    let ent = to_padded(&out.entropy, t_len);
                    let m = mask.slice(ndarray::s![r0..r1, ..]);
                    let o = old.slice(ndarray::s![r0..r1, ..]);
                    let a = adv.advantages.slice(ndarray::s![r0..r1, ..]);
                    let rw = rew.slice(ndarray::s![r0..r1]);
                    let idx = &group_idx[r0..r1];
                    let mut inputs = LossInputs::new(new.view(), o, m, a)
                        .with_entropy(ent.view())
                        .with_index(idx)
                        .with_rewards(rw);
                    if let Some(rl) = &ref_lp {
                        inputs = inputs.with_ref_log_prob(rl.slice(ndarray::s![r0..r1, ..]));
                    }
                    let mut lrng = ChaCha8Rng::seed_from_u64(derive_seed(
                        cfg.seed,
                        "loss",
                        &[self.state.step as u64, mb_i as u64],
                    ));
                    let lo = cfg.algorithm.loss.compute(&inputs, &mut lrng)?;
                    let dlogp = from_padded(&lo.grad_logp, &out.logprobs);
                    let dent = lo
                        .grad_entropy
                        .as_ref()
                        .map(|ge| from_padded(ge, &out.entropy));
                    let mut grads = self.model.zero_grads();
                    self.model
                        .backward(&acts, &dlogp, dent.as_deref(), &mut grads)?;
                    self.model.recycle(acts);
                    t_backward += t0.elapsed().as_secs_f64();
                    let t1 = Instant::now();
                    match self.apply_update(&mut grads, lo.loss, lr)? {
                        Some(norm) => norm_s.push(norm),
                        None => skipped += 1,
                    }
                    t_optim += t1.elapsed().as_secs_f64();
                    loss_s.push(lo.loss);
                    clip_s.push(lo.metrics.clip_frac);
                    ppo_kl_s.push(lo.metrics.ppo_kl);
                    if let Some(k) = lo.metrics.kl {
                        kl_s.push(k);
                    }
                    if let Some(e) = lo.metrics.entropy {
                        ent_s.push(e);
                    }
                }
            }
            rec.insert("loss".into(), num(loss_s.mean()));
            rec.insert("grad_norm".into(), num(norm_s.mean()));
            rec.insert("clip_frac".into(), num(clip_s.mean()));
            rec.insert("ppo_kl".into(), num(ppo_kl_s.mean()));
            rec.insert("kl".into(), num(kl_s.mean()));
            rec.insert("entropy".into(), num(ent_s.mean()));
            rec.insert("skipped_updates".into(), skipped.into());
            for (k, v) in &adv.metrics {
                rec.insert(format!("advantage/{k}"), num(*v));
            }
        }
        self.state.step += 1;
        self.state.advantage_state = self.estimator.state().clone();
        let total = t_start.elapsed().as_secs_f64();
        rec.insert("lr".into(), num(lr));
        rec.insert("time/rollout".into(), num(t_rollout));
        rec.insert("time/reward".into(), num(t_reward));
        rec.insert("time/score".into(), num(t_score));
        rec.insert("time/backward".into(), num(t_backward));
        rec.insert("time/optim".into(), num(t_optim));
        rec.insert("time/step".into(), num(total));
        rec.insert(
            "rollout/prefill_tokens".into(),
            gen_stats.prefill_tokens.into(),
        );
        rec.insert(
            "rollout/decode_tokens".into(),
            gen_stats.decode_tokens.into(),
        );
        rec.insert(
            "tokens_per_sec".into(),
            num((gen_stats.prefill_tokens + gen_stats.decode_tokens) as f64 / total.max(1e-9)),
        );
        Ok(rec)
    }
}

/// Per-kept-group inputs for the shared-prefix forward.
fn group_inputs<'a>(
    keep: &[usize],
    prompts: &'a [Vec<u32>],
    groups: &'a [Vec<Completion>],
) -> Vec<GroupInput<'a>> {
    keep.iter()
        .map(|&k| GroupInput {
            prompt: &prompts[k],
            completions: groups[k].iter().map(|c| c.ids.as_slice()).collect(),
        })
        .collect()
}

/// Ragged rows → padded `[rows, t]` (zeros past each row's end).
fn to_padded(rows: &[Vec<f32>], t: usize) -> Array2<f64> {
    let mut a = Array2::zeros((rows.len(), t));
    for (i, r) in rows.iter().enumerate() {
        for (j, &x) in r.iter().enumerate().take(t) {
            a[[i, j]] = f64::from(x);
        }
    }
    a
}

/// Padded `[rows, t]` → ragged rows shaped like `like`.
fn from_padded(a: &Array2<f64>, like: &[Vec<f32>]) -> Vec<Vec<f32>> {
    like.iter()
        .enumerate()
        .map(|(i, r)| (0..r.len()).map(|j| a[[i, j]] as f32).collect())
        .collect()
}
