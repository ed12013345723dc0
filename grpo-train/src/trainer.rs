//! The training loop, readable top to bottom (llm.c's `main` is the model):
//! build or resume → SFT warm start → GRPO steps (sample tasks → rollout
//! groups → rewards → filter → advantages → μ × (forward, loss, backward,
//! clip, AdamW) → metrics → sometimes eval / checkpoint) → final eval,
//! checkpoint, plot, summary.

use std::path::PathBuf;
use std::time::Instant;

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use grpo_core::advantage::AdvantageEstimator;
use grpo_core::batch::ScoredBatch;
use grpo_core::loss::LossInputs;
use grpo_envs::seed::derive_seed;
use grpo_envs::task::TaskInstance;
use grpo_kernels::ops::adamw::{AdamW, adamw_step};
use grpo_kernels::ops::grad_norm::clip_by_global_norm;
use grpo_model::Model;
use grpo_model::forward::{ForwardOptions, GroupInput, SeqInput};
use grpo_model::tokenizer::Tokenizer;
use grpo_rollout::model::ModelLm;
use grpo_rollout::{Completion, Engine, EngineConfig, GenerateStats, Request, SamplingParams};

use crate::checkpoint;
use crate::config::RunConfigFile;
use crate::error::{Result, TrainError};
use crate::metrics::{MetricsSink, Record, Summary, num};
use crate::progress::Progress;
use crate::schedule::lr_at;
use crate::state::{Moments, Stage, TrainerState};
use crate::task::{Score, TaskSource};

/// How `train` treats the run directory.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Replace an existing run directory.
    pub overwrite: bool,
    /// Continue the run in this directory from its checkpoint.
    pub resume: Option<PathBuf>,
    /// No progress bars.
    pub quiet: bool,
    /// Stop this invocation once this many optimiser steps of the run (SFT
    /// steps plus GRPO steps, counted from the start of the run) are done, as
    /// if the process were killed there: no final eval, checkpoint or plot.
    /// The run continues later with `resume` from its last checkpoint
    /// (time-boxed jobs; the resume test).
    pub stop_after: Option<usize>,
}

/// Accuracy numbers of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Greedy accuracy on the held-out set.
    pub accuracy: f64,
    /// pass@k with k samples at the rollout temperature (None when k = 0).
    pub pass_at_k: Option<f64>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The final checkpoint (a Hugging Face model directory).
    pub checkpoint: PathBuf,
    /// The PNG plot.
    pub plot: PathBuf,
    /// Held-out accuracy after SFT (the GRPO starting point), if SFT ran in this run.
    pub after_sft: Option<EvalResult>,
    /// Held-out accuracy at the end (None when `stop_after` stopped the run early).
    pub final_eval: Option<EvalResult>,
    /// The global step (SFT + GRPO) where `stop_after` stopped the run, if it did.
    pub stopped_at: Option<usize>,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "run finished in {:.1} s", self.seconds)?;
        let show = |e: &EvalResult| match e.pass_at_k {
            Some(p) => format!(
                "accuracy {:.1}%  pass@k {:.1}%",
                100.0 * e.accuracy,
                100.0 * p
            ),
            None => format!("accuracy {:.1}%", 100.0 * e.accuracy),
        };
        if let Some(s) = &self.after_sft {
            writeln!(f, "  after SFT : {}", show(s))?;
        }
        match (&self.final_eval, self.stopped_at) {
            (Some(e), _) => writeln!(f, "  after GRPO: {}", show(e))?,
            (None, Some(s)) => writeln!(
                f,
                "  stopped at step {s} (continue with --resume {})",
                self.run_dir.display()
            )?,
            (None, None) => {}
        }
        writeln!(f, "  run dir   : {}", self.run_dir.display())?;
        write!(f, "  checkpoint: {}", self.checkpoint.display())?;
        if self.final_eval.is_some() {
            write!(f, "\n  plot      : {}", self.plot.display())?;
        }
        Ok(())
    }
}

/// Everything a step needs.
struct Run<'c> {
    cfg: &'c RunConfigFile,
    dir: PathBuf,
    model: Model,
    reference: Option<Model>,
    tok: Tokenizer,
    task: TaskSource,
    estimator: AdvantageEstimator,
    moments: Moments,
    state: TrainerState,
    metrics: MetricsSink,
    stop_ids: Vec<u32>,
    quiet: bool,
}

/// Trains according to `cfg`.
///
/// The run executes on a worker thread of rayon's global pool ([`grpo_kernels::on_pool`]).
pub fn train(cfg: RunConfigFile, opts: &TrainOptions) -> Result<RunSummary> {
    grpo_kernels::on_pool(|| train_in_pool(cfg, opts))
}

fn train_in_pool(cfg: RunConfigFile, opts: &TrainOptions) -> Result<RunSummary> {
    let started = Instant::now();
    cfg.validate()?;
    let mut run = Run::build(&cfg, opts)?;
    let mut after_sft = run.after_sft_from_history();
    let sft_steps = cfg.sft.as_ref().map_or(0, |s| s.steps);
    let stopped = |run: &Run<'_>| -> Option<usize> {
        let global = match run.state.stage {
            Stage::Sft => run.state.step,
            Stage::Grpo => sft_steps + run.state.step,
            Stage::Done => return None,
        };
        opts.stop_after.filter(|&s| global >= s)
    };
    let stop_summary = |run: &Run<'_>, at: usize| RunSummary {
        run_dir: run.dir.clone(),
        checkpoint: run.dir.join("checkpoint"),
        plot: run.dir.join("plot.png"),
        after_sft: None,
        final_eval: None,
        stopped_at: Some(at),
        seconds: started.elapsed().as_secs_f64(),
    };

    // ---- Stage 1: supervised warm start ----
    if let (Stage::Sft, Some(sft)) = (run.state.stage, cfg.sft.as_ref()) {
        let bar = Progress::new("sft", sft.steps, run.quiet);
        while run.state.step < sft.steps {
            let rec = run.sft_step()?;
            bar.update(
                run.state.step,
                format!("loss {:.3}", rec["loss"].as_f64().unwrap_or(f64::NAN)),
            );
            run.metrics.write(rec)?;
            let s = run.state.step;
            if let Some(target) = sft.stop_at_accuracy
                && s % sft.check_every == 0
                && s < sft.steps
            {
                let acc = run.sft_check(sft.check_size)?;
                if acc >= target {
                    bar.println(&format!(
                        "SFT check at step {s}: accuracy {:.1}% on training-distribution \
                         prompts reached sft.stop_at_accuracy = {:.1}%: warm start done",
                        100.0 * acc,
                        100.0 * target
                    ));
                    break;
                }
            }
            if cfg.checkpoint.sft_every > 0 && s % cfg.checkpoint.sft_every == 0 && s < sft.steps {
                run.save_checkpoint()?;
            }
            if let Some(at) = stopped(&run)
                && s < sft.steps
            {
                bar.finish();
                return Ok(stop_summary(&run, at));
            }
        }
        bar.finish();
        let e = run.evaluate("sft")?;
        bar.println(&format!(
            "after SFT: greedy accuracy {:.1}%",
            100.0 * e.accuracy
        ));
        after_sft = Some(e);
        run.state.stage = Stage::Grpo;
        run.state.step = 0;
        run.save_checkpoint()?;
        if let Some(at) = stopped(&run)
            && cfg.grpo.steps > 0
        {
            return Ok(stop_summary(&run, at));
        }
    } else if run.state.stage == Stage::Sft {
        run.state.stage = Stage::Grpo;
        run.state.step = 0;
    }

    // ---- Stage 2: GRPO ----
    if run.state.stage == Stage::Grpo {
        if cfg.reference.mode != "off" && run.reference.is_none() {
            run.reference = Some(run.model.clone());
        }
        let total = cfg.grpo.steps;
        let bar = Progress::new("grpo", total, run.quiet);
        while run.state.step < total {
            let rec = run.grpo_step()?;
            bar.update(
                run.state.step,
                format!(
                    "reward {:.3}  acc {:.2}",
                    rec.get("reward/mean")
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0),
                    rec.get("accuracy").and_then(|v| v.as_f64()).unwrap_or(0.0)
                ),
            );
            run.metrics.write(rec)?;
            let s = run.state.step;
            if cfg.reference.mode == "sync" && s % cfg.reference.sync_every == 0 {
                run.reference = Some(run.model.clone());
            }
            if cfg.eval.every > 0 && s % cfg.eval.every == 0 && s < total {
                let e = run.evaluate("grpo")?;
                bar.println(&format!(
                    "step {s}: greedy accuracy {:.1}%",
                    100.0 * e.accuracy
                ));
            }
            if cfg.checkpoint.every > 0 && s % cfg.checkpoint.every == 0 && s < total {
                run.save_checkpoint()?;
            }
            if let Some(at) = stopped(&run)
                && s < total
            {
                bar.finish();
                return Ok(stop_summary(&run, at));
            }
        }
        bar.finish();
        run.state.stage = Stage::Done;
    }

    // ---- Wrap up: final eval, checkpoint, plot ----
    let final_eval = run.evaluate("grpo")?;
    let ckpt = run.save_checkpoint()?;
    let plot = run.dir.join("plot.png");
    crate::plot::plot_run(
        run.metrics.history(),
        &plot,
        &format!("grpo-rs run `{}`", cfg.name),
    )?;
    Ok(RunSummary {
        run_dir: run.dir.clone(),
        checkpoint: ckpt,
        plot,
        after_sft,
        final_eval: Some(final_eval),
        stopped_at: None,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl<'c> Run<'c> {
    /// Creates the run directory (or opens it for resume) and builds the model,
    /// tokenizer, task, estimator and optimiser state.
    fn build(cfg: &'c RunConfigFile, opts: &TrainOptions) -> Result<Self> {
        let task = TaskSource::new(&cfg.task, cfg.seed)?;
        let (dir, model, tok, state, moments, history, reference) = match &opts.resume {
            Some(dir) => {
                let r = checkpoint::load(dir)?;
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
                };
                (dir, model, tok, state, Moments::zeros(n), Vec::new(), None)
            }
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
            moments,
            state,
            metrics,
            stop_ids,
            quiet: opts.quiet,
        })
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tok.encode(text, false)?)
    }

    /// Clip, AdamW; returns the pre-clip gradient norm, or None when the update
    /// was skipped because the loss or gradient is not finite.
    fn apply_update(&mut self, grads: &mut [f32], loss: f64, lr: f64) -> Result<Option<f64>> {
        let o = &self.cfg.optim;
        let norm = if o.grad_clip > 0.0 {
            clip_by_global_norm(&mut [grads], o.grad_clip)
                .map_err(|e| TrainError::Other(e.to_string()))?
        } else {
            grpo_kernels::ops::grad_norm::global_norm(&[grads])
        };
        if !loss.is_finite() || !norm.is_finite() {
            self.state.nonfinite_streak += 1;
            tracing::warn!(
                "skipping update at {} step {}: loss {loss}, grad norm {norm}",
                self.state.stage.as_str(),
                self.state.step
            );
            if self.state.nonfinite_streak >= self.cfg.grpo.max_nonfinite_in_a_row {
                return Err(TrainError::NonFinite {
                    count: self.state.nonfinite_streak,
                    step: self.state.step,
                });
            }
            return Ok(None);
        }
        self.state.nonfinite_streak = 0;
        self.state.adam_step += 1;
        let hp = AdamW {
            lr,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
        };
        adamw_step(
            &mut self.model.weights,
            grads,
            &mut self.moments.m,
            &mut self.moments.v,
            self.state.adam_step,
            &hp,
        )
        .map_err(|e| TrainError::Other(e.to_string()))?;
        Ok(Some(norm))
    }

    /// One SFT step: cross-entropy on gold completions (TON thought dropout optional).
    fn sft_step(&mut self) -> Result<Record> {
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

    /// Generation and scoring against the current weights.
    fn eval_ctx(&self) -> EvalContext<'_> {
        EvalContext {
            cfg: self.cfg,
            model: &self.model,
            tok: &self.tok,
            task: &self.task,
            stop_ids: &self.stop_ids,
        }
    }

    /// Greedy accuracy on `n` check prompts from the training distribution (for
    /// `sft.stop_at_accuracy`); writes a `sft/check_accuracy` record.
    fn sft_check(&mut self, n: usize) -> Result<f64> {
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

    /// Greedy accuracy and pass@k on the held-out set; writes an eval record.
    fn evaluate(&mut self, stage: &str) -> Result<EvalResult> {
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

    /// One GRPO step.
    fn grpo_step(&mut self) -> Result<Record> {
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

    /// Writes the checkpoint (model, tokenizer, optimiser, trainer state) atomically.
    fn save_checkpoint(&mut self) -> Result<PathBuf> {
        self.state.metrics_lines = self.metrics.history().len();
        checkpoint::save(
            &self.dir,
            &self.model,
            &self.tok,
            &self.moments,
            &self.state,
            self.reference.as_ref(),
        )
    }

    /// The after-SFT eval of a resumed run, read back from its metrics history.
    fn after_sft_from_history(&self) -> Option<EvalResult> {
        let rec = self.metrics.history().iter().rev().find(|r| {
            r.get("stage").and_then(|v| v.as_str()) == Some("sft")
                && r.contains_key("eval/accuracy")
        })?;
        Some(EvalResult {
            accuracy: rec.get("eval/accuracy")?.as_f64()?,
            pass_at_k: rec.get("eval/pass@k").and_then(|v| v.as_f64()),
        })
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
struct EvalContext<'a> {
    cfg: &'a RunConfigFile,
    model: &'a Model,
    tok: &'a Tokenizer,
    task: &'a TaskSource,
    stop_ids: &'a [u32],
}

impl EvalContext<'_> {
    /// Samples completions for each prompt; seeds derive from (seed, label, step, prompt index).
    fn generate(
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
    fn greedy(&self, insts: &[TaskInstance], label: &str, step: usize) -> Result<(f64, f64)> {
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
    fn run(&self, step: usize) -> Result<EvalDetail> {
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
    let task = TaskSource::new(&cfg.task, cfg.seed)?;
    let model = Model::load(model_dir)?;
    let tok = Tokenizer::from_dir(model_dir)?;
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

fn stop_ids_for(task: &TaskSource, tok: &Tokenizer) -> Vec<u32> {
    let mut stop_ids = Vec::new();
    if let Some(stop) = task.stop_text()
        && let Some(id) = tok.token_to_id(stop)
    {
        stop_ids.push(id);
    }
    stop_ids
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

/// The tokenizer as the engine's detokenizer.
struct TokDetok<'t>(&'t Tokenizer);

impl grpo_rollout::Detokenizer for TokDetok<'_> {
    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids, true).unwrap_or_default()
    }
}

/// Text of a completion for verification.
trait CompletionText {
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

/// The run directory of a config (exposed for the CLI's messages).
pub fn run_dir_of(cfg: &RunConfigFile) -> PathBuf {
    cfg.run_dir()
}
