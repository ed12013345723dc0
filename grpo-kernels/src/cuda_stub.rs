//! The CUDA device handle as seen by a build without (or, for now, with) the `cuda` feature.
//!
//! Following candle's `dummy_cuda_backend`, the type exists in every build so callers never
//! write `cfg`; constructing it without the feature fails with
//! [`KernelError::CudaNotCompiled`]. The real device (cudarc context, stream, cuBLAS handle,
//! NVRTC module cache) is a later issue and will replace this file under `cfg(feature = "cuda")`.

use crate::{KernelError, Result};

/// Handle to a CUDA device. In this build it cannot be constructed.
#[derive(Debug, Clone)]
pub struct CudaDevice {
    ordinal: usize,
}

impl CudaDevice {
    /// Opens CUDA device `ordinal`.
    ///
    /// Always returns [`KernelError::CudaNotCompiled`] without the `cuda` feature; with the
    /// feature it returns [`KernelError::Cuda`] until the CUDA backend lands.
    pub fn new(ordinal: usize) -> Result<Self> {
        let _ = ordinal;
        if cfg!(feature = "cuda") {
            Err(KernelError::Cuda(
                "the CUDA backend is not implemented yet".to_string(),
            ))
        } else {
            Err(KernelError::CudaNotCompiled)
        }
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
}
