//! Primitive layers of the U-Net: `Linear`, `Conv1d`, and a GroupNorm that
//! normalises in fp32.
//!
//! Initialisation follows PyTorch's defaults (what guided-diffusion gets):
//! weight and bias `~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = cin * k`
//! (`kaiming_uniform(a = sqrt 5)`), GroupNorm weight 1 and bias 0; layers
//! marked zero-initialised (guided-diffusion's `zero_module`) start with weight
//! and bias 0. Random draws come from torch's global generator, which the
//! caller seeds (`crate::device::seed_everything`).
//!
//! Names match PyTorch's state dict: `<path>.weight`, `<path>.bias`.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use crate::error::Result;

/// GroupNorm epsilon (model.md: eps 1e-5).
pub const GN_EPS: f64 = 1e-5;

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// PyTorch's default init for a layer with `fan_in` inputs, or zeros.
fn init(fan_in: usize, zero: bool) -> Init {
    if zero {
        Init::Const(0.0)
    } else {
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        Init::Uniform {
            lo: -bound,
            up: bound,
        }
    }
}

/// `y = x W^T + b`: `[.., i] -> [.., o]`. Parameters `weight [o, i]`,
/// `bias [o]`.
#[derive(Debug)]
pub struct Linear {
    ws: Tensor,
    bs: Tensor,
}

impl Linear {
    /// A `Linear(i -> o)` under `p`; `zero` zero-initialises it.
    pub fn new(p: &Path, i: usize, o: usize, zero: bool) -> Result<Linear> {
        let ws = p.f_var("weight", &[i64_of(o), i64_of(i)], init(i, zero))?;
        let bs = p.f_var("bias", &[i64_of(o)], init(i, zero))?;
        Ok(Linear { ws, bs })
    }

    /// `[.., i] -> [.., o]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.ws, Some(&self.bs))?)
    }
}

/// 1D convolution `[B, cin, L] -> [B, cout, L_out]` with
/// `L_out = floor((L + 2 pad - k) / stride) + 1`. Parameters
/// `weight [cout, cin, k]`, `bias [cout]`.
#[derive(Debug)]
pub struct Conv1d {
    ws: Tensor,
    bs: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv1d {
    /// A `Conv1d(cin -> cout, k, stride, padding)` under `p`; `zero`
    /// zero-initialises it.
    pub fn new(
        p: &Path,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        zero: bool,
    ) -> Result<Conv1d> {
        let ws = p.f_var(
            "weight",
            &[i64_of(cout), i64_of(cin), i64_of(k)],
            init(cin * k, zero),
        )?;
        let bs = p.f_var("bias", &[i64_of(cout)], init(cin * k, zero))?;
        Ok(Conv1d {
            ws,
            bs,
            stride: i64_of(stride),
            padding: i64_of(padding),
        })
    }

    /// A same-length `Conv1d(cin -> cout, k = 3, padding 1)`.
    pub fn k3(p: &Path, cin: usize, cout: usize, zero: bool) -> Result<Conv1d> {
        Conv1d::new(p, cin, cout, 3, 1, 1, zero)
    }

    /// A pointwise `Conv1d(cin -> cout, k = 1)`.
    pub fn k1(p: &Path, cin: usize, cout: usize, zero: bool) -> Result<Conv1d> {
        Conv1d::new(p, cin, cout, 1, 1, 0, zero)
    }

    /// `[B, cin, L] -> [B, cout, L_out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_conv1d(
            &self.ws,
            Some(&self.bs),
            [self.stride],
            [self.padding],
            [1],
            1,
        )?)
    }
}

/// GroupNorm over `[B, C, L]` with `groups` groups, eps 1e-5, affine
/// (`weight [C]` = 1, `bias [C]` = 0 at init). Computed in fp32 and cast back
/// to the input's dtype (guided-diffusion's `GroupNorm32`), so it is exact
/// under bf16 autocast (model.md "Blocks").
#[derive(Debug)]
pub struct GroupNorm {
    ws: Tensor,
    bs: Tensor,
    groups: i64,
}

impl GroupNorm {
    /// A `GroupNorm(groups, channels)` under `p`.
    pub fn new(p: &Path, groups: usize, channels: usize) -> Result<GroupNorm> {
        let ws = p.f_var("weight", &[i64_of(channels)], Init::Const(1.0))?;
        let bs = p.f_var("bias", &[i64_of(channels)], Init::Const(0.0))?;
        Ok(GroupNorm {
            ws,
            bs,
            groups: i64_of(groups),
        })
    }

    /// `[B, C, L] -> [B, C, L]`, same dtype as `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kind = x.kind();
        let x32 = x.f_to_kind(Kind::Float)?;
        let w = self.ws.f_to_kind(Kind::Float)?;
        let b = self.bs.f_to_kind(Kind::Float)?;
        let y = x32.f_group_norm(self.groups, Some(&w), Some(&b), GN_EPS, true)?;
        Ok(y.f_to_kind(kind)?)
    }
}
