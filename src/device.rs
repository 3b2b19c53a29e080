//! Device and seeding: the one place that decides where tensors live and how
//! libtorch's generators are seeded (style.md rule 7).

use tch::Device;

use crate::error::{Error, Result};

/// Parses `auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" | "" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(Error::invalid("device", "'cuda' was requested but no CUDA device is available (libtorch sees none)"))
            }
        }
        other => {
            if let Some(n) = other.strip_prefix("cuda:") {
                let i: usize = n.parse().map_err(|_| Error::invalid("device", format!("'{other}' is not cuda:N")))?;
                if (i as i64) < tch::Cuda::device_count() {
                    return Ok(Device::Cuda(i));
                }
                return Err(Error::invalid("device", format!("'{other}': only {} CUDA devices", tch::Cuda::device_count())));
            }
            Err(Error::unknown("device", other, &["auto", "cpu", "cuda", "cuda:N"]))
        }
    }
}

/// A short name for a device (`cpu`, `cuda:0`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

/// Seeds libtorch's CPU and CUDA generators.
pub fn seed_everything(seed: u64) {
    tch::manual_seed(seed as i64);
    if tch::Cuda::is_available() {
        tch::Cuda::manual_seed_all(seed);
    }
}
