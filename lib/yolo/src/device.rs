//! Choosing the device the model runs on.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

/// Where to run: parsed from `cpu`, `cuda` (device 0), `cuda:N` or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevicePreference {
    /// The CPU.
    Cpu,
    /// The CUDA device with this ordinal (needs the `cuda` feature).
    Cuda(usize),
    /// CUDA device 0 when the `cuda` feature is on and a device is present, else the CPU.
    #[default]
    Auto,
}

/// Why a device preference could not be satisfied or parsed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The text is not a device name.
    #[error("unknown device `{0}`: expected cpu, cuda, cuda:N or auto")]
    Parse(String),
    /// CUDA was asked for, but this build has no CUDA support.
    #[error(
        "device cuda:{0} requested, but safecity-yolo was built without CUDA support; \
         rebuild with `--features cuda` (or `cudnn`), or use `cpu`"
    )]
    CudaNotCompiled(usize),
    /// The CUDA device could not be opened.
    #[error("cannot open CUDA device {ordinal}: {source}")]
    Cuda {
        /// The ordinal asked for.
        ordinal: usize,
        /// candle's error.
        source: candle_core::Error,
    },
}

impl FromStr for DevicePreference {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_ascii_lowercase();
        match text.as_str() {
            "cpu" => Ok(DevicePreference::Cpu),
            "cuda" | "gpu" => Ok(DevicePreference::Cuda(0)),
            "auto" => Ok(DevicePreference::Auto),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DevicePreference::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl fmt::Display for DevicePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevicePreference::Cpu => f.write_str("cpu"),
            DevicePreference::Cuda(n) => write!(f, "cuda:{n}"),
            DevicePreference::Auto => f.write_str("auto"),
        }
    }
}

/// Opens the preferred device.
pub fn select(pref: DevicePreference) -> Result<Device, DeviceError> {
    match pref {
        DevicePreference::Cpu => Ok(Device::Cpu),
        DevicePreference::Cuda(ordinal) => open_cuda(ordinal),
        DevicePreference::Auto => {
            if cfg!(feature = "cuda") && candle_core::utils::cuda_is_available() {
                open_cuda(0)
            } else {
                Ok(Device::Cpu)
            }
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, DeviceError> {
    Device::new_cuda(ordinal).map_err(|source| DeviceError::Cuda { ordinal, source })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::CudaNotCompiled(ordinal))
}
