//! The optimiser step: global-norm clipping, then AdamW; non-finite losses or gradients skip
//! the update (and stop the run after `grpo.max_nonfinite_in_a_row` in a row).

use grpo_kernels::ops::adamw::{AdamW, adamw_step};
use grpo_kernels::ops::grad_norm::clip_by_global_norm;

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
}
