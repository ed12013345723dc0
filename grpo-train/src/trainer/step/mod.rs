//! One GRPO step, top to bottom: collect (rollout → rewards → filter, repeated while a
//! refilling filter asks for more) → the training batch (every input the math can use) →
//! advantages → μ passes of minibatch updates → KL controller and loss schedules → metrics.

mod batch;
mod collect;
mod metrics;
mod update;

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use grpo_core::advantage::AdvantageConfig;
use grpo_core::advantage::spo::{SpoRho, SpoUpdate, mean_abs_logprob_change};
use grpo_core::loss::{KlPenaltyConfig, LossConfig};
use grpo_envs::seed::derive_seed;
use grpo_model::forward::GroupInput;

use super::Run;
use crate::error::{Result, TrainError};
use crate::metrics::{Record, Summary};
use crate::schedule::lr_at;
use crate::state::SpoMemory;

pub(crate) use metrics::StepMetrics;

impl Run<'_> {
    /// One GRPO step; returns its metrics record.
    pub(super) fn grpo_step(&mut self) -> Result<Record> {
        let cfg = self.cfg;
        let t_start = Instant::now();
        let mut m = StepMetrics::new(self.state.step + 1);
        m.lr = lr_at(
            cfg.optim.lr,
            self.state.step,
            cfg.grpo.steps,
            cfg.optim.warmup_steps,
            &cfg.optim.schedule,
        );

        // 1-3. Rollout, rewards, filter.
        let collected = self.collect(&mut m)?;
        if !collected.rows.is_empty() {
            // 4. The training batch and its advantages.
            let batch = self.train_batch(&collected, &mut m)?;
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
                cfg.seed,
                "advantage",
                &[self.state.step as u64],
            ));
            let adv = self.estimator.compute(&batch.scored, &mut rng)?;
            let mut a = Summary::default();
            for r in 0..adv.advantages.nrows() {
                a.push(adv.advantages[[r, 0]]);
            }
            m.advantage = Some(a);
            m.advantage_extra = adv.metrics.clone();

            // 5. Updates with this step's loss (scheduled parameters, KL coefficient).
            let loss = self.step_loss(&mut m)?;
            self.update(&collected, &batch, &adv, &loss, m.lr, &mut m)?;

            // 6. Controllers and trackers that learn from this step.
            self.after_update(&m)?;
            if matches!(cfg.algorithm.advantage, AdvantageConfig::Spo(_)) {
                self.spo_update(&collected, &batch)?;
            }
        }
        self.state.step += 1;
        self.state.advantage_state = self.estimator.state().clone();
        m.time.step = t_start.elapsed().as_secs_f64();
        Ok(m.into_record())
    }

    /// The configured loss with this step's scheduled parameters, wrapped in the KL penalty
    /// when `[algorithm.kl]` is set.
    fn step_loss(&self, m: &mut StepMetrics) -> Result<LossConfig> {
        let cfg = self.cfg;
        let mut loss = cfg.algorithm.loss.clone();
        if cfg.algorithm.schedule.mdpo_anneal_t_k {
            let t_k = grpo_core::loss::MdpoConfig::annealed_t_k(
                self.state.step as u64 + 1,
                cfg.grpo.steps as u64,
            );
            crate::chain::set_in_chain(&mut loss, &mut |l| {
                if let LossConfig::Mdpo(c) = l {
                    c.t_k = t_k;
                }
            });
            m.schedule.insert("mdpo/t_k".into(), t_k);
        }
        if let Some(eta) = self.state.r2vpo_eta {
            crate::chain::set_in_chain(&mut loss, &mut |l| {
                if let LossConfig::R2vpo(c) = l {
                    c.eta = eta;
                }
            });
            m.schedule.insert("r2vpo/eta".into(), eta);
        }
        if let (Some(kl), Some(ctl)) = (&cfg.algorithm.kl, &self.state.kl_controller) {
            m.kl_coef = Some(ctl.value());
            loss = LossConfig::KlPenalty(KlPenaltyConfig {
                coef: ctl.value(),
                estimator: kl.estimator,
                agg: kl.agg,
                base: Box::new(loss),
            });
        }
        Ok(loss)
    }

    /// SPO's tracker update after the step: one Beta update per trained row (reward in
    /// [0, 1]). With the KL-adaptive ρ the decay depends on `D_x`, the mean absolute change
    /// of the log-probs of the prompt's previously trained response since then; that
    /// response is re-scored under the current weights.
    fn spo_update(&mut self, c: &collect::Collected, batch: &batch::TrainBatch) -> Result<()> {
        let AdvantageConfig::Spo(spo) = &self.cfg.algorithm.advantage else {
            return Ok(());
        };
        let kl_rho = matches!(spo.rho, SpoRho::Kl { .. });
        // Distances for the prompts seen before (one scoring pass for all of them).
        let mut distance: std::collections::BTreeMap<String, f64> = Default::default();
        if kl_rho {
            let revisited: Vec<(usize, &SpoMemory)> = c
                .items
                .iter()
                .enumerate()
                .filter_map(|(k, it)| {
                    self.state
                        .spo_memory
                        .get(&it.inst.prompt)
                        .map(|mem| (k, mem))
                })
                .filter(|(_, mem)| !mem.ids.is_empty())
                .collect();
            if !revisited.is_empty() {
                let gi: Vec<GroupInput<'_>> = revisited
                    .iter()
                    .map(|(k, mem)| GroupInput {
                        prompt: &c.items[*k].prompt,
                        completions: vec![mem.ids.as_slice()],
                    })
                    .collect();
                let now = self.model.score_grouped(&gi)?;
                for ((k, mem), lp) in revisited.iter().zip(&now.logprobs) {
                    let now: Vec<f64> = lp.iter().map(|&x| f64::from(x)).collect();
                    let then: Vec<f64> = mem.logprobs.iter().map(|&x| f64::from(x)).collect();
                    let d = mean_abs_logprob_change(&now, &then, &vec![1.0; now.len()])?;
                    distance.insert(c.items[*k].inst.prompt.clone(), d);
                }
            }
        }
        let updates: Vec<SpoUpdate> = c
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.masked)
            .map(|(i, r)| {
                let key = c.items[r.item].inst.prompt.clone();
                SpoUpdate {
                    distance: distance.get(&key).copied(),
                    key,
                    reward: batch.scored.reward[i],
                }
            })
            .collect();
        self.estimator.spo_update(&updates)?;
        if kl_rho {
            // Remember each prompt's first trained response with its log-probs of this step.
            for (k, rows) in batch.item_rows.iter().enumerate() {
                if let Some(i) = rows.clone().find(|&i| !c.rows[i].masked) {
                    let r = c.rows[i];
                    let comp = &c.items[r.item].completions[r.j];
                    self.state.spo_memory.insert(
                        c.items[k].inst.prompt.clone(),
                        SpoMemory {
                            ids: comp.ids.clone(),
                            logprobs: comp.logprobs_raw.clone(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// KL controller step on the measured KL; R²VPO dual step on the measured ratio variance.
    fn after_update(&mut self, m: &StepMetrics) -> Result<()> {
        if let Some(ctl) = self.state.kl_controller.as_mut() {
            ctl.update(m.kl.mean(), 1)
                .map_err(|e| TrainError::Other(format!("algorithm.kl.controller: {e}")))?;
        }
        if let (Some(lr), Some(eta)) = (
            self.cfg.algorithm.schedule.r2vpo_dual_lr,
            self.state.r2vpo_eta,
        ) {
            let v = m
                .loss_extra
                .get("ratio_variance")
                .map_or(0.0, Summary::mean);
            let delta_v = crate::chain::r2vpo(&self.cfg.algorithm.loss).map_or(0.0, |c| c.delta_v);
            let mut dual = grpo_core::loss::R2vpoDual { eta, lr, delta_v };
            self.state.r2vpo_eta = Some(
                dual.update(v)
                    .map_err(|e| TrainError::Other(format!("algorithm.schedule: {e}")))?,
            );
        }
        Ok(())
    }
}
