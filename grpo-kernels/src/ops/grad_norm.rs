//! Global gradient norm and clipping (PyTorch `clip_grad_norm_` with the L2 norm).
//!
//! # Contract
//!
//! `grads`: any number of f32 buffers (one per parameter). The norm is
//! `sqrt(Σ_buffers Σ_i g_i²)` accumulated in f64. [`clip_by_global_norm`] multiplies every
//! gradient by `min(1, max_norm / (norm + 1e-6))` in place (PyTorch's formula) and returns the
//! norm *before* clipping. A non-finite norm leaves the gradients untouched and is returned
//! as is, so the caller can skip the step and report it.

use crate::Result;
use crate::error::invalid;
use rayon::prelude::*;

/// Sum of squares in f64. Chunks are summed in parallel but combined in index order:
/// rayon's `sum` combines partial sums in whatever order work stealing produced, which made
/// the norm (and so the clipped update) differ in the last bits between identical runs.
fn sum_squares(g: &[f32]) -> f64 {
    let partial: Vec<f64> = g
        .par_chunks(1 << 14)
        .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
        .collect();
    partial.iter().sum()
}

/// L2 norm over all buffers, accumulated in f64.
pub fn global_norm(grads: &[&[f32]]) -> f64 {
    grads.iter().map(|g| sum_squares(g)).sum::<f64>().sqrt()
}

/// Scales all gradients so their global norm is at most `max_norm` (finite, > 0); returns the
/// norm before clipping.
pub fn clip_by_global_norm(grads: &mut [&mut [f32]], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(invalid(
            "clip_by_global_norm",
            "max_norm",
            format!("must be finite and > 0, got {max_norm}"),
        ));
    }
    let norm = grads.iter().map(|g| sum_squares(g)).sum::<f64>().sqrt();
    if !norm.is_finite() {
        return Ok(norm);
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let c = coef as f32;
        for g in grads.iter_mut() {
            g.par_chunks_mut(1 << 14)
                .for_each(|ch| ch.iter_mut().for_each(|x| *x *= c));
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_and_clip() {
        let mut a = vec![3.0f32];
        let mut b = vec![4.0f32];
        assert_eq!(global_norm(&[&a, &b]), 5.0);
        let n = clip_by_global_norm(&mut [&mut a, &mut b], 1.0).unwrap();
        assert_eq!(n, 5.0);
        assert!((a[0] - 0.6).abs() < 1e-5 && (b[0] - 0.8).abs() < 1e-5);
        let n = clip_by_global_norm(&mut [&mut a, &mut b], 10.0).unwrap();
        assert!((n - 1.0).abs() < 1e-5);
        assert!((a[0] - 0.6).abs() < 1e-5, "no clipping below max_norm");
        assert!(clip_by_global_norm(&mut [&mut a], 0.0).is_err());
    }
}
