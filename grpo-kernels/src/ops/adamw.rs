//! AdamW update on f32 master weights, with PyTorch `torch.optim.AdamW` semantics.
//!
//! # Contract
//!
//! `params`, `grads`, `m` (first moment), `v` (second moment): f32 buffers of one length,
//! updated in place (`grads` is read only). `step` is the 1-based step count *after*
//! incrementing (PyTorch's `state["step"]`). Hyper-parameters are f64 like Python floats and
//! enter the f32 arithmetic the way PyTorch's single-tensor CPU path does:
//!
//! ```text
//! p  *= 1 − lr·wd                         (decoupled weight decay)
//! m  += (1 − β1)·(g − m)                  (lerp)
//! v   = v·β2 + (1 − β2)·g·g
//! p  −= lr / (1 − β1^step) · m / (sqrt(v) / sqrt(1 − β2^step) + eps)
//! ```

use crate::Result;
use crate::error::{check_len, invalid};
use rayon::prelude::*;

/// AdamW hyper-parameters (PyTorch names and meanings; no `Default`, choose explicitly).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay β1 in `[0, 1)`.
    pub beta1: f64,
    /// Second-moment decay β2 in `[0, 1)`.
    pub beta2: f64,
    /// Denominator epsilon (> 0).
    pub eps: f64,
    /// Decoupled weight decay coefficient (>= 0).
    pub weight_decay: f64,
}

impl AdamW {
    /// Checks every hyper-parameter, naming the first invalid one.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "adamw_step";
        let finite_nonneg = |x: f64| x.is_finite() && x >= 0.0;
        if !finite_nonneg(self.lr) {
            return Err(invalid(
                OP,
                "lr",
                format!("must be finite and >= 0, got {}", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(invalid(
                OP,
                "beta1",
                format!("must be in [0, 1), got {}", self.beta1),
            ));
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return Err(invalid(
                OP,
                "beta2",
                format!("must be in [0, 1), got {}", self.beta2),
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(
                OP,
                "eps",
                format!("must be finite and > 0, got {}", self.eps),
            ));
        }
        if !finite_nonneg(self.weight_decay) {
            return Err(invalid(
                OP,
                "weight_decay",
                format!("must be finite and >= 0, got {}", self.weight_decay),
            ));
        }
        Ok(())
    }
}

/// Elements per rayon task.
const CHUNK: usize = 8192;

/// One AdamW step over a parameter buffer. See the module contract.
pub fn adamw_step(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: u64,
    opt: &AdamW,
) -> Result<()> {
    const OP: &str = "adamw_step";
    opt.validate()?;
    let n = params.len();
    check_len(OP, "grads", grads.len(), n)?;
    check_len(OP, "m", m.len(), n)?;
    check_len(OP, "v", v.len(), n)?;
    if step == 0 {
        return Err(invalid(OP, "step", "is 1-based; got 0"));
    }
    let step_i = i32::try_from(step).unwrap_or(i32::MAX);
    let decay = (1.0 - opt.lr * opt.weight_decay) as f32;
    let w1 = (1.0 - opt.beta1) as f32;
    let b2 = opt.beta2 as f32;
    let w2 = (1.0 - opt.beta2) as f32;
    let bc1 = 1.0 - opt.beta1.powi(step_i);
    let bc2_sqrt = (1.0 - opt.beta2.powi(step_i)).sqrt() as f32;
    let neg_step_size = (-(opt.lr / bc1)) as f32;
    let eps = opt.eps as f32;
    params
        .par_chunks_mut(CHUNK)
        .zip(grads.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *p *= decay;
                *m += w1 * (g - *m);
                *v = *v * b2 + w2 * g * g;
                let denom = v.sqrt() / bc2_sqrt + eps;
                *p += neg_step_size * (*m / denom);
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_lr_times_sign() {
        // At step 1, m̂ = g and v̂ = g², so the update is lr · g / (|g| + eps) ≈ lr · sign(g).
        let opt = AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut p = [1.0f32, 1.0];
        let (mut m, mut v) = ([0.0f32; 2], [0.0f32; 2]);
        adamw_step(&mut p, &[2.0, -3.0], &mut m, &mut v, 1, &opt).unwrap();
        assert!(
            (p[0] - 0.9).abs() < 1e-6 && (p[1] - 1.1).abs() < 1e-6,
            "{p:?}"
        );
        assert!(adamw_step(&mut p, &[0.0, 0.0], &mut m, &mut v, 0, &opt).is_err());
    }
}
