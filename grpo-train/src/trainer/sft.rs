//! The supervised warm start: cross-entropy on gold completions (TON thought dropout
//! optional), and the greedy check on training-distribution prompts that can end it early.

use std::time::Instant;

use grpo_envs::seed::derive_seed;
use grpo_model::forward::{ForwardOptions, SeqInput};

use super::Run;
use crate::error::{Result, TrainError};
use crate::metrics::{Record, num};
use crate::schedule::lr_at;

impl Run<'_> {
    /// One SFT step: cross-entropy on gold completions (TON thought dropout optional).
    pub(super) fn sft_step(&mut self) -> Result<Record> {
        let t0 = Instant::now();
        let sft = self
            .cfg
            .sft
            .as_ref()
            .ok_or_else(|| TrainError::Other("no sft section".into()))?;
        let mut pairs: Vec<(Vec<u32>, Vec<u32>)> = Vec::with_capacity(sft.batch_size);
        for i in 0..sft.batch_size {
            let (inst, next) = self.task.train_instance(self.state.cursor);
            self.state.cursor = next;
            let mut completion = inst.gold_completion.clone();
            if sft.thought_dropout > 0.0 {
                let u = derive_seed(self.cfg.seed, "ton", &[self.state.step as u64, i as u64])
                    as f64
                    / u64::MAX as f64;
                if u < sft.thought_dropout
                    && let Some((_, ans)) = completion.split_once(';')
                {
                    completion = format!(";{ans}");
                }
            }
            pairs.push((self.encode(&inst.prompt)?, self.encode(&completion)?));
        }
        let batch: Vec<SeqInput<'_>> = pairs
            .iter()
            .map(|(p, c)| SeqInput {
                prompt: p,
                completion: c,
            })
            .collect();
        let (out, acts) = self.model.forward(&batch, ForwardOptions::default())?;
        let n_tok: usize = out.logprobs.iter().map(Vec::len).sum();
        let loss = -out
            .logprobs
            .iter()
            .flatten()
            .map(|&x| f64::from(x))
            .sum::<f64>()
            / n_tok.max(1) as f64;
        let dlogp: Vec<Vec<f32>> = out
            .logprobs
            .iter()
            .map(|r| vec![-1.0 / n_tok.max(1) as f32; r.len()])
            .collect();
        let mut grads = self.model.zero_grads();
        self.model.backward(&acts, &dlogp, None, &mut grads)?;
        self.model.recycle(acts);
        let lr = lr_at(
            sft.lr,
            self.state.step,
            sft.steps,
            self.cfg.optim.warmup_steps,
            &self.cfg.optim.schedule,
        );
        let norm = self.apply_update(&mut grads, loss, lr)?;
        self.state.step += 1;
        let mut rec = Record::new();
        rec.insert("step".into(), self.state.step.into());
        rec.insert("stage".into(), "sft".into());
        rec.insert("loss".into(), num(loss));
        rec.insert("grad_norm".into(), num(norm.unwrap_or(f64::NAN)));
        rec.insert("lr".into(), num(lr));
        rec.insert("tokens".into(), n_tok.into());
        rec.insert("time/step".into(), num(t0.elapsed().as_secs_f64()));
        Ok(rec)
    }

    /// Greedy accuracy on `n` check prompts from the training distribution (for
    /// `sft.stop_at_accuracy`); writes a `sft/check_accuracy` record.
    pub(super) fn sft_check(&mut self, n: usize) -> Result<f64> {
        let t0 = Instant::now();
        let insts = self.task.check_set(n);
        let ctx = self.eval_ctx();
        let (acc, _) = ctx.greedy(&insts, "sft-check", self.state.step)?;
        let mut rec = Record::new();
        rec.insert("step".into(), self.state.step.into());
        rec.insert("stage".into(), "sft".into());
        rec.insert("sft/check_accuracy".into(), num(acc));
        rec.insert("sft/check_prompts".into(), insts.len().into());
        rec.insert("time/check".into(), num(t0.elapsed().as_secs_f64()));
        self.metrics.write(rec)?;
        Ok(acc)
    }
}
