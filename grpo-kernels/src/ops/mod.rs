//! Op index: one file per op family, each with its CPU implementation and a documented
//! contract (shapes, layout, overwritten vs accumulated outputs) that the CUDA twin matches.
//!
//! | module | forward | backward |
//! |---|---|---|
//! | [`gemm`] | [`gemm::matmul`] (transposes, `=`/`+=`), [`gemm::linear_rows`] (row-invariant `x·wᵀ`, for generation) | — (use matmul) |
//! | [`rmsnorm`] | [`rmsnorm::rmsnorm_fwd`] | [`rmsnorm::rmsnorm_bwd`] |
//! | [`rope`] | [`rope::rope_fwd`] | [`rope::rope_bwd`] |
//! | [`attention`] | [`attention::attention_fwd`] | [`attention::attention_bwd`] |
//! | [`swiglu`] | [`swiglu::swiglu_fwd`] | [`swiglu::swiglu_bwd`] |
//! | [`embedding`] | [`embedding::embedding_fwd`] | [`embedding::embedding_bwd`] |
//! | [`logprob`] | [`logprob::logprob_fwd`] | [`logprob::logprob_bwd`] |
//! | [`paged`] | [`paged::paged_attention_row`] (decode over a paged KV cache) | — |
//! | [`sample`] | [`sample::sample`] | — |
//! | [`adamw`] | [`adamw::adamw_step`] | — |
//! | [`grad_norm`] | [`grad_norm::global_norm`], [`grad_norm::clip_by_global_norm`] | — |
//!
//! Conventions: every tensor is f32, row-major and contiguous; dimensions are passed
//! explicitly and checked once on entry (errors name the op and the argument); outputs are
//! overwritten unless the op's doc says "accumulated", which means `+=` (gradients of weights
//! that several calls contribute to).

pub mod adamw;
pub mod attention;
mod attn_tiles;
pub mod embedding;
pub mod gemm;
pub mod grad_norm;
pub mod logprob;
mod math;
pub mod paged;
pub mod rmsnorm;
pub mod rope;
pub mod sample;
pub mod swiglu;
