//! Numeric ops for the grpo-rs transformer: every op has a CPU implementation here and a
//! documented contract that its CUDA twin (a later issue, behind the `cuda` feature) matches.
//!
//! The ops, one module each under [`ops`]: matrix multiply ([`ops::gemm`]), RMSNorm, RoPE,
//! causal GQA attention (training, KV-cache decode and shared-prefix forward), SwiGLU,
//! embedding, the fused LM-head log-prob/entropy that never materialises `[tokens, vocab]`
//! logits, sampling, AdamW and global-norm clipping. All tensors are f32 slices in row-major
//! layout with explicit dimensions; ops check shapes on entry and return [`KernelError`]
//! naming the op and the argument. CPU ops are parallelised with rayon and use the `gemm`
//! crate for matrix products.
//!
//! [`Device`] names where ops run; [`CudaDevice`] exists in every build and fails with
//! [`KernelError::CudaNotCompiled`] without the `cuda` feature, so callers never need `cfg`.
//!
//! # Example
//!
//! ```
//! use grpo_kernels::ops::{gemm::matmul, logprob::logprob_fwd};
//!
//! // Two tokens, hidden size 2, vocabulary 3: the identity-like LM head makes logits = hidden.
//! let hidden = [1.0f32, 0.0, 0.0, 2.0];
//! let lm_head = [1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0]; // [v = 3, h = 2]
//! let mut logits = [0.0f32; 6];
//! matmul(&mut logits, &hidden, &lm_head, 2, 2, 3, false, true, false)?;
//! assert_eq!(logits, [1.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
//!
//! // Fused log-prob of targets [0, 1], in vocabulary chunks of 2.
//! let (mut logp, mut entropy, mut lse) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
//! logprob_fwd(&mut logp, &mut entropy, &mut lse, &hidden, &lm_head, &[0, 1], 2, 2, 3, 2)?;
//! let want0 = 1.0 - (1f32.exp() + 2.0).ln();
//! assert!((logp[0] - want0).abs() < 1e-6);
//! # Ok::<(), grpo_kernels::KernelError>(())
//! ```
#![deny(missing_docs)]

mod cuda_stub;
pub mod device;
pub mod error;
pub mod ops;
mod pool;

pub use device::{CudaDevice, Device};
pub use error::{KernelError, Result};
pub use pool::{on_pool, on_this_thread};
