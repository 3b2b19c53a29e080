//! Device and seeding: the one place that decides where tensors live and how
//! libtorch's generators are seeded, and how the seeds of a run's steps,
//! epochs and streams derive from its one seed (style.md rule 7).

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
                Err(Error::invalid(
                    "device",
                    "'cuda' was requested but no CUDA device is available (libtorch sees none)",
                ))
            }
        }
        other => {
            if let Some(n) = other.strip_prefix("cuda:") {
                let i: usize = n
                    .parse()
                    .map_err(|_| Error::invalid("device", format!("'{other}' is not cuda:N")))?;
                if (i as i64) < tch::Cuda::device_count() {
                    return Ok(Device::Cuda(i));
                }
                return Err(Error::invalid(
                    "device",
                    format!("'{other}': only {} CUDA devices", tch::Cuda::device_count()),
                ));
            }
            Err(Error::unknown(
                "device",
                other,
                &["auto", "cpu", "cuda", "cuda:N"],
            ))
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

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from `seed` and a list of tags (e.g. `[STEP, step,
/// micro]`); distinct tag lists give unrelated seeds. The result fits in 63
/// bits, so libtorch's signed seed takes it unchanged.
pub fn derive_seed(seed: u64, tags: &[u64]) -> u64 {
    let mut h = mix64(seed);
    for &t in tags {
        h = mix64(h ^ mix64(t));
    }
    h >> 1
}

/// Tags that separate the random streams of a run.
pub mod tags {
    /// Shuffling of epoch `e`: `[EPOCH, e]`.
    pub const EPOCH: u64 = 1;
    /// Noise of micro-batch `a` of step `s`: `[STEP, s, a]`.
    pub const STEP: u64 = 2;
    /// Validation subset and noise: `[VAL, batch]`.
    pub const VAL: u64 = 3;
    /// Initial weights: `[INIT]`.
    pub const INIT: u64 = 4;
    /// Chunk order of streamed epoch `e`: `[STREAM, e]`.
    pub const STREAM: u64 = 5;
    /// Shuffle of buffer `g` of streamed epoch `e`: `[STREAM_BUFFER, e, g]`.
    pub const STREAM_BUFFER: u64 = 6;
    /// Control cells kept for the `k`-th control set of a model's data
    /// statistics: `[CONTROLS, k]`.
    pub const CONTROLS: u64 = 0x00c0_47a0;
}

/// Exclusive use of libtorch's process-wide random generators.
///
/// libtorch draws every random number (initialisation, noise, dropout) from
/// one global generator per device, so two seeded computations running on two
/// threads at once would interleave their draws and neither would reproduce.
/// Every stochastic entry point of the library (model initialisation, a
/// training run, a sampling run) holds this guard for its whole duration. It
/// is re-entrant: a thread that holds it may take it again (e.g. sampling
/// inside a training run).
pub struct RngGuard {
    _private: (),
}

static RNG_OWNER: std::sync::Mutex<Option<(std::thread::ThreadId, usize)>> =
    std::sync::Mutex::new(None);
static RNG_FREE: std::sync::Condvar = std::sync::Condvar::new();

/// Takes the generator guard (blocking while another thread holds it) and,
/// when `seed` is given, seeds the generators.
pub fn rng_guard(seed: Option<u64>) -> RngGuard {
    let me = std::thread::current().id();
    let mut owner = RNG_OWNER.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        match *owner {
            None => {
                *owner = Some((me, 1));
                break;
            }
            Some((id, n)) if id == me => {
                *owner = Some((id, n + 1));
                break;
            }
            Some(_) => {
                owner = RNG_FREE.wait(owner).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
    drop(owner);
    if let Some(s) = seed {
        seed_everything(s);
    }
    RngGuard { _private: () }
}

impl Drop for RngGuard {
    fn drop(&mut self) {
        let mut owner = RNG_OWNER.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, n)) = *owner {
            *owner = if n > 1 { Some((id, n - 1)) } else { None };
        }
        if owner.is_none() {
            RNG_FREE.notify_all();
        }
    }
}

/// The machine's available memory in bytes (`MemAvailable` of
/// `/proc/meminfo`, capped by a cgroup v2 `memory.max`), when known.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let mut bytes = kb * 1024;
    if let Ok(max) = std::fs::read_to_string("/sys/fs/cgroup/memory.max") {
        if let Ok(limit) = max.trim().parse::<u64>() {
            let used = std::fs::read_to_string("/sys/fs/cgroup/memory.current")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0);
            bytes = bytes.min(limit.saturating_sub(used));
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_guard_is_reentrant_and_reproducible() {
        let a = {
            let _g = rng_guard(Some(7));
            let _inner = rng_guard(None);
            tch::Tensor::randn([4], (tch::Kind::Float, Device::Cpu))
        };
        let b = {
            let _g = rng_guard(Some(7));
            tch::Tensor::randn([4], (tch::Kind::Float, Device::Cpu))
        };
        assert_eq!(a, b);
    }
}
