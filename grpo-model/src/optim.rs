//! AdamW state over the flat parameter buffer, and global-norm gradient clipping.
//!
//! One moment pair per parameter, laid out like the weights. Weight decay is applied to the
//! weight matrices only (attention and MLP projections, an untied lm_head), not to norm
//! weights, biases or the token embedding ([`decays`]); the trainer uses the same rule.

use grpo_kernels::ops::adamw::{AdamW, adamw_step};
use grpo_kernels::ops::grad_norm::clip_by_global_norm;

use crate::error::{Error, Result};
use crate::weights::Layout;

/// Whether AdamW's weight decay applies to a tensor: matrices (2-D or more) except the
/// token embedding (and so a tied lm_head); never norm weights or biases.
pub fn decays(name: &str, shape: &[usize]) -> bool {
    shape.len() >= 2 && !name.contains("embed_tokens")
}

/// AdamW moments and step count for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    /// Hyper-parameters (the learning rate may be changed between steps).
    pub hp: AdamW,
    /// `[layout.total]` first moments.
    pub m: Vec<f32>,
    /// `[layout.total]` second moments.
    pub v: Vec<f32>,
    /// Steps taken so far.
    pub step: u64,
    /// (range, decays) per tensor.
    groups: Vec<(std::ops::Range<usize>, bool)>,
}

impl Optimizer {
    /// Zeroed state for `layout`.
    pub fn new(layout: &Layout, hp: AdamW) -> Result<Self> {
        hp.validate()?;
        Ok(Optimizer {
            hp,
            m: vec![0.0; layout.total],
            v: vec![0.0; layout.total],
            step: 0,
            groups: layout
                .tensors
                .iter()
                .map(|t| (t.range(), decays(&t.name, &t.shape)))
                .collect(),
        })
    }

    /// One update of `params` with `grads` (both `[layout.total]`).
    pub fn update(&mut self, params: &mut [f32], grads: &[f32]) -> Result<()> {
        if params.len() != self.m.len() || grads.len() != self.m.len() {
            return Err(Error::InvalidInput(format!(
                "optimizer holds {} parameters, got params {} and grads {}",
                self.m.len(),
                params.len(),
                grads.len()
            )));
        }
        self.step += 1;
        let no_decay = AdamW {
            weight_decay: 0.0,
            ..self.hp
        };
        for (r, decays) in &self.groups {
            let hp = if *decays { &self.hp } else { &no_decay };
            adamw_step(
                &mut params[r.clone()],
                &grads[r.clone()],
                &mut self.m[r.clone()],
                &mut self.v[r.clone()],
                self.step,
                hp,
            )?;
        }
        Ok(())
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm`; returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f64) -> Result<f64> {
    Ok(clip_by_global_norm(&mut [grads], max_norm)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, ModelConfig};

    #[test]
    fn decays_matrices_only_and_counts_steps() {
        let cfg = ModelConfig {
            arch: Arch::Qwen2,
            vocab_size: 5,
            hidden_size: 4,
            intermediate_size: 6,
            num_layers: 1,
            num_heads: 2,
            num_kv_heads: 1,
            head_dim: 2,
            max_position_embeddings: 8,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_ids: vec![],
            pad_token_id: None,
        };
        let layout = Layout::new(&cfg);
        let hp = AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.5,
        };
        let mut opt = Optimizer::new(&layout, hp).unwrap();
        let mut p = vec![1.0f32; layout.total];
        let g = vec![0.0f32; layout.total];
        opt.update(&mut p, &g).unwrap();
        assert_eq!(opt.step, 1);
        assert_eq!(p[layout.final_norm], 1.0);
        assert_eq!(p[layout.embed], 1.0);
        let proj = layout
            .tensors
            .iter()
            .find(|t| t.name.contains("q_proj.weight"))
            .unwrap();
        assert!((p[proj.range().start] - 0.95).abs() < 1e-6);
        let mut g = vec![3.0f32; layout.total];
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 3.0 * (layout.total as f64).sqrt()).abs() < 1e-3);
    }
}
