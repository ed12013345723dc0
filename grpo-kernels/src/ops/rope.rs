//! Rotary position embedding (default RoPE, Hugging Face "rotate_half" convention).
//!
//! # Contract
//!
//! `x`/`dx`: `[tokens, heads, head_dim]` f32, row-major, contiguous, modified **in place**;
//! `positions`: `[tokens]` absolute positions (so a KV-cache decode step passes the cache
//! length, and a shared-prefix completion passes `prompt_len + i`).
//!
//! With `half = head_dim / 2`, `inv_freq[i] = 1 / theta^(2i / head_dim)` and
//! `angle = position · inv_freq[i]` (both rounded to f32 as transformers does), each head
//! vector is split into a first half `x1 = x[..half]` and a second half `x2 = x[half..]`:
//!
//! - [`rope_fwd`]: `x1' = x1·cos − x2·sin`, `x2' = x2·cos + x1·sin`;
//! - [`rope_bwd`]: the transpose rotation, `dx1' = dx1·cos + dx2·sin`,
//!   `dx2' = dx2·cos − dx1·sin`, applied in place to the incoming gradient.
//!
//! Positions at or beyond the table's `max_positions` are a named error.

use crate::error::{check_len, checked_size, invalid};
use crate::pool::min_len;
use crate::{KernelError, Result};
use rayon::prelude::*;

/// Precomputed `cos`/`sin` table `[max_positions, head_dim / 2]`.
#[derive(Debug, Clone)]
pub struct RopeTable {
    head_dim: usize,
    max_positions: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Builds the table for `head_dim` (even, > 0), base `theta` (> 0) and positions
    /// `0..max_positions`.
    pub fn new(head_dim: usize, theta: f64, max_positions: usize) -> Result<Self> {
        const OP: &str = "RopeTable::new";
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(invalid(
                OP,
                "head_dim",
                format!("must be even and positive, got {head_dim}"),
            ));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(invalid(
                OP,
                "theta",
                format!("must be finite and positive, got {theta}"),
            ));
        }
        let half = head_dim / 2;
        let n = checked_size(OP, "max_positions", &[max_positions, half])?;
        // transformers: inv_freq = 1 / base ** (arange(0, dim, 2).float() / dim) in f32,
        // freqs = position.float() * inv_freq in f32, then cos/sin in f32.
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let expo = ((2 * i) as f32 / head_dim as f32) as f64;
                (1.0 / theta.powf(expo)) as f32
            })
            .collect();
        let mut cos = Vec::with_capacity(n);
        let mut sin = Vec::with_capacity(n);
        for p in 0..max_positions {
            for &f in &inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Ok(Self {
            head_dim,
            max_positions,
            cos,
            sin,
        })
    }

    /// Head dimension the table was built for.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Number of positions covered (valid positions are `0..max_positions`).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// `(cos, sin)` rows of length `head_dim / 2` for `position` (caller checked the range).
    fn row(&self, position: usize) -> (&[f32], &[f32]) {
        let half = self.head_dim / 2;
        let s = position * half;
        (&self.cos[s..s + half], &self.sin[s..s + half])
    }
}

/// Applies the rotary embedding in place to `x[tokens, heads, head_dim]`.
pub fn rope_fwd(
    x: &mut [f32],
    positions: &[usize],
    heads: usize,
    head_dim: usize,
    table: &RopeTable,
) -> Result<()> {
    rope_apply("rope_fwd", x, positions, heads, head_dim, table, false)
}

/// Back-propagates through [`rope_fwd`] in place: `dx` holds d loss / d output on entry and
/// d loss / d input on return.
pub fn rope_bwd(
    dx: &mut [f32],
    positions: &[usize],
    heads: usize,
    head_dim: usize,
    table: &RopeTable,
) -> Result<()> {
    rope_apply("rope_bwd", dx, positions, heads, head_dim, table, true)
}

fn rope_apply(
    op: &'static str,
    x: &mut [f32],
    positions: &[usize],
    heads: usize,
    head_dim: usize,
    table: &RopeTable,
    inverse: bool,
) -> Result<()> {
    if head_dim != table.head_dim {
        return Err(invalid(
            op,
            "head_dim",
            format!("{head_dim} but the table was built for {}", table.head_dim),
        ));
    }
    let tokens = positions.len();
    check_len(
        op,
        "x",
        x.len(),
        checked_size(op, "x", &[tokens, heads, head_dim])?,
    )?;
    if let Some((token, &position)) = positions
        .iter()
        .enumerate()
        .find(|(_, p)| **p >= table.max_positions)
    {
        return Err(KernelError::PositionOutOfRange {
            op,
            position,
            token,
            max_positions: table.max_positions,
        });
    }
    if tokens == 0 || heads == 0 {
        return Ok(());
    }
    let sign = if inverse { -1.0f32 } else { 1.0 };
    x.par_chunks_mut(TOKENS_PER_TASK * heads * head_dim)
        .zip(positions.par_chunks(TOKENS_PER_TASK))
        .with_min_len(min_len())
        .for_each(|(toks, ps)| rotate_block(toks, ps, table, head_dim, sign));
    Ok(())
}

/// Tokens per rayon task (a task per token cost more in scheduling than in arithmetic).
const TOKENS_PER_TASK: usize = 64;

super::math::multiversion! {
/// Rotates a block of tokens `[n, heads, head_dim]` at `positions` (`sign` −1: inverse).
fn rotate_block(x: &mut [f32], positions: &[usize], table: &RopeTable, head_dim: usize, sign: f32) {
    let half = head_dim / 2;
    let per_token = x.len() / positions.len().max(1);
    for (tok, &p) in x.chunks_mut(per_token).zip(positions) {
        let (cos, sin) = table.row(p);
        for head in tok.chunks_exact_mut(head_dim) {
            let (x1, x2) = head.split_at_mut(half);
            for (((a, b), &c), &s) in x1.iter_mut().zip(x2.iter_mut()).zip(cos).zip(sin) {
                let (u, v, s) = (*a, *b, sign * s);
                *a = u * c - v * s;
                *b = v * c + u * s;
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity_and_bwd_inverts_fwd() {
        let t = RopeTable::new(4, 10000.0, 8).unwrap();
        let orig = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut x = orig;
        rope_fwd(&mut x, &[0, 5], 1, 4, &t).unwrap();
        assert_eq!(&x[..4], &orig[..4]);
        assert_ne!(&x[4..], &orig[4..]);
        rope_bwd(&mut x, &[0, 5], 1, 4, &t).unwrap();
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn out_of_range_position_is_named() {
        let t = RopeTable::new(4, 10000.0, 2).unwrap();
        let err = rope_fwd(&mut [0.0; 8], &[0, 2], 1, 4, &t).unwrap_err();
        assert!(matches!(
            err,
            KernelError::PositionOutOfRange {
                position: 2,
                token: 1,
                ..
            }
        ));
        assert!(RopeTable::new(3, 1e4, 2).is_err());
    }
}
