//! Compute backends: the seam between the models and the hardware.
//!
//! Burn 0.22 tensors carry their backend in their [`Device`], so model code has no backend type
//! parameter; choosing a backend means choosing a device at run time. The default is Burn's
//! pure-Rust `flex` CPU backend; CUDA is available with the `cuda` cargo feature of this crate
//! (CubeCL compiles its kernels at run time). A new backend is one more [`BackendKind`] variant
//! and one arm in [`BackendKind::device`].
//!
//! ## Building with CUDA
//!
//! On a machine with the NVIDIA driver and internet access:
//!
//! ```text
//! cargo build --release --features cuda      # sightline-cli forwards it to this crate
//! sightline predict --device cuda:0 …          # or train --device cuda
//! ```
//!
//! (from the workspace root; `-p sightline-vision --features cuda` builds the library alone).
//! Internet is needed at build time: Burn's `cuda` backend pulls `cubecl-cuda` 0.11, which
//! depends on `cubecl-llvm`, whose build script (`tracel-llvm-bundler`) downloads a prebuilt
//! LLVM 23 bundle from GitHub; no cubecl release avoids it. Kernels themselves are compiled at
//! run time by CubeCL.
//!
//! Without internet (CI, this project's build machines) the feature can only be
//! **type-checked**: with `DOCS_RS=1` the native build scripts (the LLVM bundler among them)
//! skip their downloads, and `DOCS_RS=1 cargo check -p sightline-vision --features cuda`
//! checks every `cfg(feature = "cuda")` path against the real Burn/CubeCL APIs; what such a
//! build produces cannot link, so nothing is built or run with CUDA there. `.ci/run` does not run
//! this check: from a cold cache it takes about 13 minutes on the 2-core build machine (over 5
//! even on idle cores; docs/perf.md, "Build"), so run it by hand after touching CUDA code.

use std::fmt;
use std::str::FromStr;

pub use burn::tensor::Device;

use crate::error::{Result, VisionError};

/// Which compute backend runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// Burn `flex`: portable CPU backend (SIMD, multi-threaded with rayon).
    #[default]
    Flex,
    /// NVIDIA GPU through CubeCL CUDA (needs the `cuda` feature).
    Cuda {
        /// GPU index.
        index: usize,
    },
}

impl BackendKind {
    /// Whether this build can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            BackendKind::Flex => true,
            BackendKind::Cuda { .. } => cfg!(feature = "cuda"),
        }
    }

    /// The Burn device of this backend.
    pub fn device(self) -> Result<Device> {
        match self {
            BackendKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda { index } => Ok(Device::cuda(index)),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda { .. } => Err(VisionError::InvalidArgument(
                "this build has no CUDA support (rebuild with the `cuda` feature)".into(),
            )),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendKind::Flex => f.write_str("cpu"),
            BackendKind::Cuda { index } => write!(f, "cuda:{index}"),
        }
    }
}

impl FromStr for BackendKind {
    type Err = VisionError;

    /// Parses `cpu` / `flex`, `cuda`, `cuda:N` (also a bare GPU index `N`, as Ultralytics' `device=0`).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            VisionError::InvalidArgument(format!(
                "unknown device `{s}` (expected cpu, cuda or cuda:N)"
            ))
        };
        match s.as_str() {
            "cpu" | "flex" => Ok(BackendKind::Flex),
            "cuda" | "gpu" => Ok(BackendKind::Cuda { index: 0 }),
            other => {
                let index = other.strip_prefix("cuda:").unwrap_or(other);
                index
                    .parse::<usize>()
                    .map(|index| BackendKind::Cuda { index })
                    .map_err(|_| bad())
            }
        }
    }
}

/// The default device: the `flex` CPU backend.
pub fn default_device() -> Device {
    Device::flex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<BackendKind>().ok(), Some(BackendKind::Flex));
        assert_eq!(
            "CUDA:1".parse::<BackendKind>().ok(),
            Some(BackendKind::Cuda { index: 1 })
        );
        assert_eq!(
            "0".parse::<BackendKind>().ok(),
            Some(BackendKind::Cuda { index: 0 })
        );
        assert!("tpu".parse::<BackendKind>().is_err());
        assert_eq!(BackendKind::Cuda { index: 2 }.to_string(), "cuda:2");
    }

    #[test]
    fn flex_is_always_available() {
        assert!(BackendKind::Flex.is_available());
        assert!(BackendKind::Flex.device().is_ok());
        #[cfg(not(feature = "cuda"))]
        assert!(BackendKind::Cuda { index: 0 }.device().is_err());
    }
}
