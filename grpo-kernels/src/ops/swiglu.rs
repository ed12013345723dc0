//! SwiGLU activation forward/backward: `out = silu(gate) ⊙ up`.
//!
//! # Contract
//!
//! All buffers f32, contiguous, of one common length `n` (elementwise; any shape such as
//! `[tokens, intermediate]`). `silu(g) = g · σ(g)`.
//!
//! - [`swiglu_fwd`]: `out` overwritten.
//! - [`swiglu_bwd`]: `dgate = dout · up · σ(g)·(1 + g·(1 − σ(g)))` and
//!   `dup = dout · silu(g)`, both **overwritten**.

use crate::Result;
use crate::error::check_len;
use crate::pool::min_len;
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 4096;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + super::math::exp(-x))
}

/// `out = silu(gate) ⊙ up`.
pub fn swiglu_fwd(out: &mut [f32], gate: &[f32], up: &[f32]) -> Result<()> {
    const OP: &str = "swiglu_fwd";
    let n = out.len();
    check_len(OP, "gate", gate.len(), n)?;
    check_len(OP, "up", up.len(), n)?;
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK))
        .zip(up.par_chunks(CHUNK))
        .with_min_len(min_len())
        .for_each(|((o, g), u)| fwd_chunk(o, g, u));
    Ok(())
}

/// Backward of [`swiglu_fwd`]; `dgate` and `dup` are overwritten.
pub fn swiglu_bwd(
    dgate: &mut [f32],
    dup: &mut [f32],
    dout: &[f32],
    gate: &[f32],
    up: &[f32],
) -> Result<()> {
    const OP: &str = "swiglu_bwd";
    let n = dout.len();
    check_len(OP, "dgate", dgate.len(), n)?;
    check_len(OP, "dup", dup.len(), n)?;
    check_len(OP, "gate", gate.len(), n)?;
    check_len(OP, "up", up.len(), n)?;
    dgate
        .par_chunks_mut(CHUNK)
        .zip(dup.par_chunks_mut(CHUNK))
        .zip(dout.par_chunks(CHUNK))
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .with_min_len(min_len())
        .for_each(|(((dg, du), d), (g, u))| bwd_chunk(dg, du, d, g, u));
    Ok(())
}

super::math::multiversion! {
fn fwd_chunk(o: &mut [f32], g: &[f32], u: &[f32]) {
    for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
        *o = g * sigmoid(g) * u;
    }
}
}

super::math::multiversion! {
fn bwd_chunk(dg: &mut [f32], du: &mut [f32], d: &[f32], g: &[f32], u: &[f32]) {
    for ((((dg, du), &d), &g), &u) in dg.iter_mut().zip(du.iter_mut()).zip(d).zip(g).zip(u) {
        let s = sigmoid(g);
        let silu = g * s;
        *du = d * silu;
        *dg = d * u * s * (1.0 + g * (1.0 - s));
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silu_of_zero_is_zero_and_large_is_identity() {
        let mut out = [0.0f32; 2];
        swiglu_fwd(&mut out, &[0.0, 30.0], &[5.0, 2.0]).unwrap();
        assert_eq!(out[0], 0.0);
        assert!((out[1] - 60.0).abs() < 1e-4);
        assert!(swiglu_fwd(&mut out, &[0.0], &[0.0, 1.0]).is_err());
    }
}
