//! `ResBlock(cin -> cout)`: guided-diffusion's residual block with the
//! time-and-condition embedding (model.md "Blocks").
//!
//! ```text
//! h    = Conv1d_k3(SiLU(GN(x)))                          in_layers.{0,2}
//! e    = Linear(SiLU(emb)) : [B, 4d] -> [B, 2 cout, 1]   emb_layers.1
//! (scale, shift) = split(e)                              (use_scale_shift_norm)
//! h    = GN(h) * (1 + scale) + shift                     out_layers.0
//! h    = Conv1d_k3(Dropout(SiLU(h)))                     out_layers.3 (zero-initialised)
//! out  = skip(x) + h                                     skip_connection (1x1 conv if cin != cout)
//! ```
//!
//! Without scale-shift, `e : [B, cout, 1]` is added to `h` before `out_layers`.
//! Parameters for `cin = cout = 256`, emb 1024: 919,552 (model.md).

use tch::nn::Path;
use tch::Tensor;

use super::config::UNetConfig;
use super::layers::{Conv1d, GroupNorm, Linear};
use crate::error::Result;

/// Residual block `[B, cin, L], emb [B, E] -> [B, cout, L]`.
#[derive(Debug)]
pub struct ResBlock {
    in_norm: GroupNorm,
    in_conv: Conv1d,
    emb_linear: Linear,
    out_norm: GroupNorm,
    out_conv: Conv1d,
    skip: Option<Conv1d>,
    dropout: f64,
    use_scale_shift_norm: bool,
}

impl ResBlock {
    /// A `ResBlock(cin -> cout)` taking an embedding of width `emb_dim` under
    /// `p`; GroupNorm groups, dropout and scale-shift come from `cfg`.
    pub fn new(
        p: &Path,
        cin: usize,
        cout: usize,
        emb_dim: usize,
        cfg: &UNetConfig,
    ) -> Result<ResBlock> {
        let g = cfg.norm_groups;
        let in_norm = GroupNorm::new(&(p / "in_layers" / 0), g, cin)?;
        let in_conv = Conv1d::k3(&(p / "in_layers" / 2), cin, cout, false)?;
        let e_out = if cfg.use_scale_shift_norm {
            2 * cout
        } else {
            cout
        };
        let emb_linear = Linear::new(&(p / "emb_layers" / 1), emb_dim, e_out, false)?;
        let out_norm = GroupNorm::new(&(p / "out_layers" / 0), g, cout)?;
        let out_conv = Conv1d::k3(&(p / "out_layers" / 3), cout, cout, true)?;
        let skip = if cin == cout {
            None
        } else {
            Some(Conv1d::k1(&(p / "skip_connection"), cin, cout, false)?)
        };
        Ok(ResBlock {
            in_norm,
            in_conv,
            emb_linear,
            out_norm,
            out_conv,
            skip,
            dropout: cfg.dropout,
            use_scale_shift_norm: cfg.use_scale_shift_norm,
        })
    }

    /// `x [B, cin, L]`, `emb [B, E]` -> `[B, cout, L]`; `train` enables
    /// dropout.
    pub fn forward(&self, x: &Tensor, emb: &Tensor, train: bool) -> Result<Tensor> {
        // [B, cin, L] -> [B, cout, L]
        let h = self.in_conv.forward(&self.in_norm.forward(x)?.f_silu()?)?;
        // [B, E] -> [B, 2 cout] -> [B, 2 cout, 1]
        let e = self.emb_linear.forward(&emb.f_silu()?)?.f_unsqueeze(-1)?;
        let h = if self.use_scale_shift_norm {
            // scale, shift: [B, cout, 1] each
            let parts = e.f_chunk(2, 1)?;
            let (scale, shift) = match parts.as_slice() {
                [a, b] => (a, b),
                _ => {
                    return Err(crate::Error::Torch(
                        "ResBlock: emb chunk did not give 2 parts".into(),
                    ))
                }
            };
            self.out_norm
                .forward(&h)?
                .f_mul(&scale.f_add_scalar(1.0)?)?
                .f_add(shift)?
        } else {
            self.out_norm.forward(&h.f_add(&e)?)?
        };
        let h = h.f_silu()?.f_dropout(self.dropout, train)?;
        // [B, cout, L]
        let h = self.out_conv.forward(&h)?;
        let skip = match &self.skip {
            Some(conv) => conv.forward(x)?,
            None => x.shallow_clone(),
        };
        Ok(skip.f_add(&h)?)
    }
}
