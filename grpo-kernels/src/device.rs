//! Where an op runs.
//!
//! [`Device::Cpu`] is always available. [`CudaDevice`] exists in every build so callers never
//! need `cfg`: without the `cuda` feature its constructor returns
//! [`KernelError::CudaNotCompiled`](crate::KernelError::CudaNotCompiled) (candle's dummy-backend
//! pattern). The CUDA kernels themselves are a later issue; every op in [`crate::ops`] documents
//! the contract its CUDA twin must match.

pub use crate::cuda_stub::CudaDevice;

/// The device an op or a model runs on.
#[derive(Debug, Clone, Default)]
pub enum Device {
    /// Host CPU, parallelised with rayon.
    #[default]
    Cpu,
    /// A CUDA GPU (only constructible when the `cuda` feature is compiled in).
    Cuda(CudaDevice),
}

impl Device {
    /// Opens CUDA device `ordinal`; fails with `CudaNotCompiled` in a CPU-only build.
    pub fn cuda(ordinal: usize) -> crate::Result<Self> {
        Ok(Device::Cuda(CudaDevice::new(ordinal)?))
    }

    /// Whether this is the CPU device.
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    /// A short human-readable name (`"cpu"`, `"cuda:0"`).
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(d) => format!("cuda:{}", d.ordinal()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_default_and_named() {
        let d = Device::default();
        assert!(d.is_cpu());
        assert_eq!(d.name(), "cpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_named_error() {
        let err = Device::cuda(0).unwrap_err();
        assert_eq!(err, crate::KernelError::CudaNotCompiled);
    }
}
