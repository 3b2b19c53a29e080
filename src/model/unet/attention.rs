//! `AttentionBlock(C)`: multi-head self-attention over the gene axis
//! (model.md "Blocks"; guided-diffusion's `AttentionBlock`).
//!
//! ```text
//! qkv  = Conv1d_k1(GN(x)) : [B, C, T] -> [B, 3C, T]        norm, qkv
//! per head (H heads, c = C / H), legacy head order:
//!   [B, 3C, T] -> [B H, 3c, T] -> q, k, v : [B H, c, T]
//!   w    = softmax_s( (q / c^(1/4))^T (k / c^(1/4)) )      [B H, T, T], softmax in fp32
//!   a    = v w^T                                          [B H, c, T]
//! out  = x + Conv1d_k1(a reshaped to [B, C, T])            proj_out (zero-initialised)
//! ```
//!
//! Head ordering: guided-diffusion's `QKVAttentionLegacy` (its default,
//! `use_new_attention_order = False`): the `3C` qkv channels are grouped by
//! head first, each head's block holding its `q`, `k`, `v` (c channels each),
//! so `qkv.weight` rows `[h*3c, (h+1)*3c)` belong to head `h`. Checkpoints of
//! guided-diffusion's default models therefore load unchanged.
//!
//! Parameters for `C = 1024`: 4,200,448 (model.md).

use tch::nn::Path;
use tch::{Kind, Tensor};

use super::layers::{Conv1d, GroupNorm};
use crate::error::{Error, Result};

/// Self-attention block `[B, C, T] -> [B, C, T]`.
#[derive(Debug)]
pub struct AttentionBlock {
    norm: GroupNorm,
    qkv: Conv1d,
    proj_out: Conv1d,
    channels: usize,
    num_heads: usize,
}

impl AttentionBlock {
    /// An `AttentionBlock(channels)` with `num_heads` heads and GroupNorm of
    /// `norm_groups` groups under `p`; `num_heads` must divide `channels`.
    pub fn new(
        p: &Path,
        channels: usize,
        num_heads: usize,
        norm_groups: usize,
    ) -> Result<AttentionBlock> {
        if num_heads == 0 || !channels.is_multiple_of(num_heads) {
            return Err(Error::invalid(
                "U-Net config field 'num_heads'",
                format!(
                    "{num_heads} does not divide the {channels} channels of an attention block"
                ),
            ));
        }
        Ok(AttentionBlock {
            norm: GroupNorm::new(&(p / "norm"), norm_groups, channels)?,
            qkv: Conv1d::k1(&(p / "qkv"), channels, 3 * channels, false)?,
            proj_out: Conv1d::k1(&(p / "proj_out"), channels, channels, true)?,
            channels,
            num_heads,
        })
    }

    /// `x [B, C, T] -> [B, C, T]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t) = match x.size().as_slice() {
            &[b, c, t] if c == self.channels as i64 => (b, t),
            s => {
                return Err(Error::Mismatch(format!(
                    "AttentionBlock({}) got input of shape {s:?}, expected [B, {}, T]",
                    self.channels, self.channels
                )))
            }
        };
        let heads = self.num_heads as i64;
        let c = (self.channels / self.num_heads) as i64;
        // [B, 3C, T]
        let qkv = self.qkv.forward(&self.norm.forward(x)?)?;
        // [B, 3C, T] -> [B H, 3c, T] (legacy order: head-major)
        let qkv = qkv.f_reshape([b * heads, 3 * c, t])?;
        let parts = qkv.f_split(c, 1)?;
        let (q, k, v) = match parts.as_slice() {
            [q, k, v] => (q, k, v),
            _ => {
                return Err(Error::Torch(
                    "AttentionBlock: qkv split did not give 3 parts".into(),
                ))
            }
        };
        // Scale q and k by c^(-1/4) each (more stable in low precision).
        let scale = 1.0 / (c as f64).sqrt().sqrt();
        // [B H, T, c] @ [B H, c, S] -> [B H, T, S]
        let w = q
            .f_mul_scalar(scale)?
            .f_transpose(1, 2)?
            .f_matmul(&k.f_mul_scalar(scale)?)?;
        // softmax over S in fp32, back to the working dtype
        let w = w.f_softmax(-1, Kind::Float)?.f_to_kind(v.kind())?;
        // [B H, c, S] @ [B H, S, T] -> [B H, c, T]
        let a = v.f_matmul(&w.f_transpose(1, 2)?)?;
        // [B H, c, T] -> [B, C, T]
        let a = a.f_reshape([b, self.channels as i64, t])?;
        Ok(x.f_add(&self.proj_out.forward(&a)?)?)
    }
}
