//! The optimiser step: global-norm clipping, then AdamW; non-finite losses or gradients skip
//! the update (and stop the run after `grpo.max_nonfinite_in_a_row` in a row). Weight decay
//! applies to the weight matrices only: norm weights, biases and the token embedding (and so
//! a tied lm_head) are not decayed, as Hugging Face's trainers exclude them.

use grpo_kernels::ops::adamw::{AdamW, adamw_step};
use grpo_kernels::ops::grad_norm::clip_by_global_norm;

use grpo_model::weights::Layout;

use super::Run;
use crate::error::{Result, TrainError};

impl Run<'_> {
    /// Clip, AdamW; returns the pre-clip gradient norm, or None when the update
    /// was skipped because the loss or gradient is not finite.
    pub(super) fn apply_update(
        &mut self,
        grads: &mut [f32],
        loss: f64,
        lr: f64,
    ) -> Result<Option<f64>> {
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
        let no_decay = AdamW {
            weight_decay: 0.0,
            ..hp
        };
        for (range, decays) in decay_groups(&self.model.layout) {
            adamw_step(
                &mut self.model.weights[range.clone()],
                &grads[range.clone()],
                &mut self.moments.m[range.clone()],
                &mut self.moments.v[range],
                self.state.adam_step,
                if decays { &hp } else { &no_decay },
            )
            .map_err(|e| TrainError::Other(e.to_string()))?;
        }
        Ok(Some(norm))
    }
}

/// Each tensor's range in the flat buffer and whether it is decayed: matrices (2-D or more)
/// except the token embedding.
pub(crate) fn decay_groups(layout: &Layout) -> Vec<(std::ops::Range<usize>, bool)> {
    layout
        .tensors
        .iter()
        .map(|t| {
            let decays = grpo_model::optim::decays(&t.name, &t.shape);
            (t.range(), decays)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::decay_groups;
    use crate::config::{DEFAULT_CONFIG, parse};

    #[test]
    fn decay_skips_norms_biases_and_embeddings_and_covers_every_parameter() {
        let cfg = parse(DEFAULT_CONFIG, "default", &[]).unwrap();
        let task = crate::task::TaskSource::new(&cfg.task, 1).unwrap();
        let (m, _) = crate::checkpoint::initial_model(&cfg, &task).unwrap();
        let groups = decay_groups(&m.layout);
        let mut covered = 0;
        for ((r, decays), t) in groups.iter().zip(&m.layout.tensors) {
            covered += r.len();
            let expect = !(t.name.contains("norm")
                || t.name.ends_with("bias")
                || t.name.contains("embed_tokens"));
            assert_eq!(*decays, expect, "{}", t.name);
        }
        assert_eq!(covered, m.layout.total);
        assert!(groups.iter().any(|(_, d)| *d));
        assert!(groups.iter().any(|(_, d)| !*d));
    }
}
