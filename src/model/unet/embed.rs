//! The U-Net's input embeddings (model.md "The U-Net velocity field", Inputs).
//!
//! * Sinusoid (guided-diffusion's `timestep_embedding`): for a scalar `x` and
//!   even width `d`, `f_i = exp(-ln(10000) i / (d/2))` for `i = 0 .. d/2`, and
//!   `emb(x) = [cos(s x f_0..), sin(s x f_0..)]` (cos half first).
//! * Value encoding: each gene's value `x_t[g]` through the sinusoid with
//!   `s = value_scale`, then a per-gene MLP (`value_mlp`,
//!   `n_layers_gene_expression` layers `d -> d`, SiLU between them), plus a
//!   learnable gene-identity embedding `gene_embedding.weight [m, d]`:
//!   `[B, m] -> [B, m, d]`.
//! * Time: the sinusoid of `t * 1000` at width `d`, then `time_embed`
//!   (`Linear(d -> 4d), SiLU, Linear(4d -> 4d)`): `[B] -> [B, 4d]`.
//! * Condition: `cond_embed` (`Linear(n_c -> 4d), SiLU, Linear(4d -> 4d)`):
//!   `[B, n_c] -> [B, 4d]`.
//!
//! The ResBlocks receive `emb = time_embed + cond_embed`.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use super::layers::Linear;
use crate::error::Result;

/// Period of the slowest sinusoid frequency (guided-diffusion's `max_period`).
pub const MAX_PERIOD: f64 = 10000.0;

/// Scale of the time sinusoid: `t in [0, 1]` is embedded as `t * 1000`
/// (model.md), the range of diffusion timesteps the embedding was made for.
pub const TIME_SCALE: f64 = 1000.0;

/// Sinusoidal encoding of every element of `x` (model.md "Inputs"):
/// `[...] -> [..., dim]` f32, `[cos(s x f), sin(s x f)]` with
/// `f_i = exp(-ln(10000) i / (dim/2))`, `i < dim/2`. `dim` must be even.
pub fn sinusoidal_embedding(x: &Tensor, dim: usize, scale: f64) -> Result<Tensor> {
    let half = dim / 2;
    // f: [dim/2]
    let freqs = Tensor::f_arange(half as i64, (Kind::Float, x.device()))?
        .f_mul_scalar(-MAX_PERIOD.ln() / half as f64)?
        .f_exp()?;
    // args: [..., 1] * [dim/2] -> [..., dim/2]
    let args = x
        .f_to_kind(Kind::Float)?
        .f_mul_scalar(scale)?
        .f_unsqueeze(-1)?
        .f_mul(&freqs)?;
    // [..., dim]
    Ok(Tensor::f_cat(&[args.f_cos()?, args.f_sin()?], -1)?)
}

/// `n` Linear layers with SiLU between them (none after the last): the first
/// maps `i -> o`, the rest `o -> o`. Layer `k` is named `<p>.<2k>` (the SiLUs
/// take the odd indices, as in PyTorch's `nn.Sequential`).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// An MLP `i -> o` of `n` layers under `p`; `n = 0` is the identity
    /// (then `i` must equal `o`).
    pub fn new(p: &Path, i: usize, o: usize, n: usize) -> Result<Mlp> {
        let layers = (0..n)
            .map(|k| Linear::new(&(p / (2 * k)), if k == 0 { i } else { o }, o, false))
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp { layers })
    }

    /// `[.., i] -> [.., o]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for (k, layer) in self.layers.iter().enumerate() {
            if k > 0 {
                h = h.f_silu()?;
            }
            h = layer.forward(&h)?;
        }
        Ok(h)
    }
}

/// Value encoding plus gene identity: `x_t [B, m] -> [B, m, d]`
/// (model.md "Inputs"). Parameters `value_mlp.<2k>.*` and
/// `gene_embedding.weight [m, d]` (initialised `N(0, 1)`, like PyTorch's
/// `nn.Embedding`).
#[derive(Debug)]
pub struct ValueEncoder {
    value_mlp: Mlp,
    gene_embedding: Tensor,
    dim: usize,
    value_scale: f64,
}

impl ValueEncoder {
    /// The encoder for `n_genes` genes at width `dim` under `p` (the U-Net's
    /// root: it creates `p.value_mlp` and `p.gene_embedding`).
    pub fn new(
        p: &Path,
        dim: usize,
        n_genes: usize,
        n_layers: usize,
        value_scale: f64,
    ) -> Result<ValueEncoder> {
        let value_mlp = Mlp::new(&(p / "value_mlp"), dim, dim, n_layers)?;
        let gene_embedding = (p / "gene_embedding").f_var(
            "weight",
            &[n_genes as i64, dim as i64],
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        Ok(ValueEncoder {
            value_mlp,
            gene_embedding,
            dim,
            value_scale,
        })
    }

    /// `x_t [B, m] -> [B, m, d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // [B, m] -> [B, m, d]
        let h = sinusoidal_embedding(x, self.dim, self.value_scale)?;
        let h = self.value_mlp.forward(&h)?;
        // [B, m, d] + [m, d] (broadcast over B)
        Ok(h.f_add(&self.gene_embedding)?)
    }
}
