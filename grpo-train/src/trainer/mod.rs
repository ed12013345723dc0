//! The training loop, readable top to bottom (llm.c's `main` is the model):
//! build or resume → SFT warm start → GRPO steps (sample tasks → rollout
//! groups → rewards → filter → advantages → μ × (forward, loss, backward,
//! clip, AdamW) → metrics → sometimes eval / checkpoint) → final eval,
//! checkpoint, plot, summary.

mod eval;
mod optim;
mod setup;
mod sft;
mod step;

use std::path::PathBuf;
use std::time::Instant;

use grpo_core::advantage::AdvantageEstimator;
use grpo_model::Model;
use grpo_model::tokenizer::Tokenizer;

use crate::checkpoint;
use crate::config::RunConfigFile;
use crate::error::Result;
use crate::metrics::MetricsSink;
use crate::progress::Progress;
use crate::reward::RewardFns;
use crate::state::{Moments, Stage, TrainerState};
use crate::task::TaskSource;

pub use eval::{EvalDetail, EvalResult, evaluate_checkpoint};

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
    rewards: RewardFns,
    /// The prompt pool of `[algorithm.sampler]` (empty without one).
    pool: Vec<grpo_envs::task::TaskInstance>,
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
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tok.encode(text, false)?)
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

/// The run directory of a config (exposed for the CLI's messages).
pub fn run_dir_of(cfg: &RunConfigFile) -> PathBuf {
    cfg.run_dir()
}
