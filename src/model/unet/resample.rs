//! `Downsample` and `Upsample` along the gene axis (model.md "Blocks").
//!
//! * Downsample: `Conv1d(C -> C, k3, stride 2, pad 1)` (`op`), or with
//!   `conv_resample = false` average pooling (k2, stride 2):
//!   `[B, C, L] -> [B, C, L/2]` for even `L` (the U-Net pads the gene axis to
//!   a multiple of `2^(levels-1)`, so every L here is even).
//! * Upsample: nearest-neighbour x2, then `Conv1d(C -> C, k3, pad 1)` (`conv`)
//!   when `conv_resample`: `[B, C, L] -> [B, C, 2L]`.

use tch::nn::Path;
use tch::Tensor;

use super::layers::Conv1d;
use crate::error::Result;

/// Halves the sequence: `[B, C, L] -> [B, C, L/2]`.
#[derive(Debug)]
pub struct Downsample {
    op: Option<Conv1d>,
}

impl Downsample {
    /// A Downsample of `channels` channels under `p` (`p.op` holds the conv).
    pub fn new(p: &Path, channels: usize, conv_resample: bool) -> Result<Downsample> {
        let op = if conv_resample {
            Some(Conv1d::new(
                &(p / "op"),
                channels,
                channels,
                3,
                2,
                1,
                false,
            )?)
        } else {
            None
        };
        Ok(Downsample { op })
    }

    /// `[B, C, L] -> [B, C, L/2]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.op {
            Some(conv) => conv.forward(x),
            None => Ok(x.f_avg_pool1d([2], [2], [0], false, true)?),
        }
    }
}

/// Doubles the sequence: `[B, C, L] -> [B, C, 2L]`.
#[derive(Debug)]
pub struct Upsample {
    conv: Option<Conv1d>,
}

impl Upsample {
    /// An Upsample of `channels` channels under `p` (`p.conv` holds the conv).
    pub fn new(p: &Path, channels: usize, conv_resample: bool) -> Result<Upsample> {
        let conv = if conv_resample {
            Some(Conv1d::k3(&(p / "conv"), channels, channels, false)?)
        } else {
            None
        };
        Ok(Upsample { conv })
    }

    /// `[B, C, L] -> [B, C, 2L]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let len = x.size().last().copied().unwrap_or(0);
        // nearest x2: [B, C, L] -> [B, C, 2L]
        let up = x.f_upsample_nearest1d([2 * len], 2.0)?;
        match &self.conv {
            Some(conv) => conv.forward(&up),
            None => Ok(up),
        }
    }
}
