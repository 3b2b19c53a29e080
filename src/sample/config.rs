//! Sampling settings ([`SampleConfig`]) and the memory budget that sizes
//! the sampler's forward batches.

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::sample::solver::{Solver, Tolerance};

/// Sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    /// ODE steps (paper: 100); dopri5's first step is `1 / steps`.
    pub steps: usize,
    /// `euler` (paper), `midpoint`, `heun` or `dopri5`.
    pub solver: Solver,
    /// Relative tolerance of dopri5.
    pub rtol: f64,
    /// Absolute tolerance of dopri5.
    pub atol: f64,
    /// Guidance weight w (paper: 1, 3 or 5; 1 = purely conditional).
    pub guidance: f64,
    /// Cells generated per condition / unit (paper: 1000).
    pub cells_per_unit: usize,
    /// Bytes of activations one forward pass may use; `null`: a quarter of
    /// the available memory (at most 8 GiB) on the CPU, 4 GiB on CUDA.
    pub memory: Option<u64>,
    /// At most this many rows per network forward (a guided row counts
    /// twice); `null`: no cap beyond `memory`.
    pub max_batch: Option<usize>,
    /// Seed of the source noise.
    pub seed: u64,
    /// Clamp generated values at 0 (choice: false). Log1p expression is
    /// never negative, but on sparse data the flow spreads mostly-zero genes
    /// symmetrically around 0, and clamping inflates their means (devel.h5ad
    /// norman19: mean 0.39 clamped vs 0.032 unclamped vs 0.035 true).
    /// `evaluate` scores predictions as generated and counts negatives.
    pub clip_negative: bool,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            steps: 100,
            solver: Solver::Euler,
            rtol: 1e-3,
            atol: 1e-3,
            guidance: 1.0,
            cells_per_unit: 1000,
            memory: None,
            max_batch: None,
            seed: 0,
            clip_negative: false,
        }
    }
}

impl SampleConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid("sampling 'steps'", "must be at least 1"));
        }
        if !self.guidance.is_finite() {
            return Err(Error::invalid(
                "guidance",
                format!("{} is not a finite number", self.guidance),
            ));
        }
        if self.max_batch.is_some_and(|b| b < 2) {
            return Err(Error::invalid(
                "max_batch",
                format!("{:?} must be at least 2", self.max_batch),
            ));
        }
        if self.memory.is_some_and(|b| b < 1 << 20) {
            return Err(Error::invalid(
                "memory",
                format!("{:?} bytes is below 1 MiB", self.memory),
            ));
        }
        for (k, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    format!("sampling '{k}'"),
                    format!("{v} must be a positive number"),
                ));
            }
        }
        Ok(())
    }

    /// True when the unconditional pass is needed (`w != 1`).
    pub fn guided(&self) -> bool {
        self.guidance != 1.0
    }

    /// The dopri5 tolerances.
    pub fn tolerance(&self) -> Tolerance {
        Tolerance {
            rtol: self.rtol,
            atol: self.atol,
        }
    }

    /// The activation budget of one forward on `device` (see the field).
    pub fn memory_budget(&self, device: Device) -> u64 {
        if let Some(m) = self.memory {
            return m;
        }
        if device.is_cuda() {
            return 4 << 30;
        }
        let avail = crate::device::available_memory().unwrap_or(4 << 30);
        (avail / 4).clamp(256 << 20, 8 << 30)
    }

    /// Cells integrated together for `model` on its device: the memory
    /// budget over twice the estimated activation bytes of a row (a guided
    /// cell is two rows), capped by `max_batch`, at least 1.
    pub fn chunk_cells(&self, model: &Model) -> usize {
        let per_row = model.activation_bytes_per_row().max(1.0);
        let rows = (self.memory_budget(model.device()) as f64 / (2.0 * per_row)).floor() as usize;
        let rows = match self.max_batch {
            Some(b) => rows.min(b),
            None => rows,
        };
        let cells = if self.guided() { rows / 2 } else { rows };
        cells.max(1)
    }
}

/// Parses a byte size: `4G`, `512M`, `1.5GiB`, `2000000` (bytes).
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok((v * mult as f64) as u64),
        _ => Err(Error::invalid(
            "memory",
            format!("'{s}' is not a size such as 4G, 512M or 2000000"),
        )),
    }
}
