//! The PRiMeFlow MLP velocity field (model.md, "Ablations and baselines"):
//! separate MLPs embed `x_t` (m -> H), the condition (n_c -> H) and the time
//! (sinusoid -> H); the three embeddings are concatenated and a decoding MLP
//! maps them to the velocity (3H -> m).
//!
//! ```text
//! h_x = MLP_x(x_t)                     [B, H]
//! h_c = MLP_c(c)                       [B, H]
//! h_t = MLP_t(sinusoid(t * s, d_t))    [B, H]
//! v   = MLP_dec(SiLU([h_x || h_c || h_t]))  [B, m]
//! ```
//!
//! Each MLP is `Linear, (SiLU, Linear)*`; the decoder applies dropout after
//! each hidden activation (training only). H, the layer counts
//! (`n_layers_gene_expression/conditions/time/decoding`) and dropout are the
//! paper's Tables 12-13 (MLP) and 14-15 (FM PCA, the same network in PCA
//! space); the sinusoid width and scale are (choice). Weights initialise
//! like PyTorch's `nn.Linear` (uniform in `+-1/sqrt(fan_in)`); parameter names
//! read like a PyTorch state dict: `x_encoder.layers.0.weight`, ...

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::VelocityField;

/// Hyperparameters of [`MlpVelocity`]. Field names follow the paper's
/// Tables 12-15.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Width H of every hidden layer (`hidden_dim`; paper: 3072
    /// Srivatsan20, 2048 Norman19).
    pub hidden_dim: usize,
    /// Linear layers of the `x_t` encoder (`n_layers_gene_expression`).
    #[serde(alias = "n_layers_x")]
    pub n_layers_gene_expression: usize,
    /// Linear layers of the condition encoder (`n_layers_conditions`).
    pub n_layers_conditions: usize,
    /// Linear layers of the time encoder (`n_layers_time`).
    pub n_layers_time: usize,
    /// Linear layers of the decoder, the last one to the output width
    /// (`n_layers_decoding`).
    #[serde(alias = "n_layers_decoder")]
    pub n_layers_decoding: usize,
    /// Width of the sinusoidal time features (choice: 256).
    pub time_embed_dim: usize,
    /// Scale s of the time sinusoid, applied as `t * s` (choice: 1000, as
    /// for the U-Net).
    pub time_scale: f64,
    /// Dropout probability in the decoder (`dropout`).
    pub dropout: f64,
    /// The data space the flow runs in (`log1p`, the paper's, or
    /// `standardized`; see [`crate::model::DataSpace`]). Ignored by FM PCA,
    /// which flows in PCA space.
    pub space: crate::model::DataSpace,
}

impl Default for MlpConfig {
    /// The Srivatsan20 preset (Table 12).
    fn default() -> Self {
        MlpConfig {
            hidden_dim: 3072,
            n_layers_gene_expression: 1,
            n_layers_conditions: 1,
            n_layers_time: 3,
            n_layers_decoding: 2,
            time_embed_dim: 256,
            time_scale: 1000.0,
            dropout: 0.0,
            space: crate::model::DataSpace::Log1p,
        }
    }
}

impl MlpConfig {
    /// Preset names, smallest first.
    pub const PRESETS: [&'static str; 5] = ["cpu", "tiny", "small", "norman19", "srivatsan20"];

    /// A named preset: `srivatsan20` (Table 12: H 3072, layers
    /// gene/condition/time/decoding 1/1/3/2, dropout 0), `norman19`
    /// (Table 13: H 2048, layers 2/3/5/1, dropout 0.1), and the CPU sizes
    /// `tiny` (H 64) and `small` (H 256), which keep Norman19's layer
    /// counts and dropout; `cpu` is `tiny` flowing in the `response` space
    /// (the CPU recipe, docs/results/recipe.md).
    pub fn preset(name: &str) -> Result<MlpConfig> {
        let norman = MlpConfig {
            hidden_dim: 2048,
            n_layers_gene_expression: 2,
            n_layers_conditions: 3,
            n_layers_time: 5,
            n_layers_decoding: 1,
            dropout: 0.1,
            ..MlpConfig::default()
        };
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "cpu" => MlpConfig {
                hidden_dim: 64,
                time_embed_dim: 32,
                space: crate::model::DataSpace::Response,
                ..norman
            },
            "tiny" => MlpConfig {
                hidden_dim: 64,
                time_embed_dim: 32,
                ..norman
            },
            "small" => MlpConfig {
                hidden_dim: 256,
                time_embed_dim: 64,
                ..norman
            },
            "norman19" => norman,
            "srivatsan20" => MlpConfig::default(),
            other => return Err(Error::unknown("MLP preset", other, &Self::PRESETS)),
        })
    }

    /// Forward FLOPs per cell (2 x multiply-accumulates of every Linear).
    pub fn flops_per_cell(&self, n_genes: usize, cond_dim: usize) -> f64 {
        let h = self.hidden_dim as f64;
        let mlp =
            |i: f64, n: usize, o: f64| 2.0 * (i * h + (n.saturating_sub(2)) as f64 * h * h + h * o);
        let enc = |i: usize, n: usize| {
            if n == 1 {
                2.0 * i as f64 * h
            } else {
                mlp(i as f64, n, h)
            }
        };
        enc(n_genes, self.n_layers_gene_expression)
            + enc(cond_dim, self.n_layers_conditions)
            + enc(self.time_embed_dim, self.n_layers_time)
            + if self.n_layers_decoding == 1 {
                2.0 * 3.0 * h * n_genes as f64
            } else {
                mlp(3.0 * h, self.n_layers_decoding, n_genes as f64)
            }
    }

    /// Checks the values (positive widths, at least one layer each, dropout
    /// in `[0, 1)`, even sinusoid width).
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("hidden_dim", self.hidden_dim),
            ("n_layers_gene_expression", self.n_layers_gene_expression),
            ("n_layers_conditions", self.n_layers_conditions),
            ("n_layers_time", self.n_layers_time),
            ("n_layers_decoding", self.n_layers_decoding),
            ("time_embed_dim", self.time_embed_dim),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::invalid(
                    format!("MLP config '{name}'"),
                    "must be at least 1",
                ));
            }
        }
        if !self.time_embed_dim.is_multiple_of(2) {
            return Err(Error::invalid(
                "MLP config 'time_embed_dim'",
                format!("{} must be even (cos and sin halves)", self.time_embed_dim),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(
                "MLP config 'dropout'",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        if !self.time_scale.is_finite() || self.time_scale <= 0.0 {
            return Err(Error::invalid(
                "MLP config 'time_scale'",
                format!("{} must be a positive number", self.time_scale),
            ));
        }
        Ok(())
    }
}

/// Sinusoidal features of `x` `[B]` at width `dim` (even) with scale `s`:
/// `[cos(s x f) || sin(s x f)]`, `f_i = exp(-ln(10000) i / (dim / 2))`
/// (model.md, "Inputs"; cos half first) -> `[B, dim]`.
pub fn sinusoidal_embedding(x: &Tensor, dim: usize, scale: f64) -> Result<Tensor> {
    let half = (dim / 2) as i64;
    let i = Tensor::f_arange(half, (Kind::Float, x.device()))?; // [half]
    let freqs = i.f_mul_scalar(-(10000f64.ln()) / half as f64)?.f_exp()?; // [half]
    let args = x
        .f_to_kind(Kind::Float)?
        .f_mul_scalar(scale)?
        .f_unsqueeze(-1)?
        .f_mul(&freqs.f_unsqueeze(0)?)?; // [B, half]
    Ok(Tensor::f_cat(&[args.f_cos()?, args.f_sin()?], -1)?) // [B, dim]
}

/// A fully connected layer `y = x W^T + b`, `W` `[out, in]`, initialised like
/// PyTorch's `nn.Linear`.
#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn new(p: &nn::Path, fan_in: usize, fan_out: usize) -> Result<Linear> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Linear {
            weight: p.f_var("weight", &[fan_out as i64, fan_in as i64], init)?,
            bias: p.f_var("bias", &[fan_out as i64], init)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, Some(&self.bias))?)
    }
}

/// `Linear(in -> out_1), SiLU, Linear, ...` with dropout after each hidden
/// activation when `dropout > 0` (training only).
#[derive(Debug)]
struct Mlp {
    layers: Vec<Linear>,
    dropout: f64,
}

impl Mlp {
    /// `widths = [in, h_1, ..., out]`; layers under `p / "layers" / i`.
    fn new(p: &nn::Path, widths: &[usize], dropout: f64) -> Result<Mlp> {
        let lp = p / "layers";
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(&(&lp / i), w[0], w[1]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp { layers, dropout })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 {
                h = h.f_silu()?;
                if self.dropout > 0.0 {
                    h = h.f_dropout(self.dropout, train)?;
                }
            }
            h = l.forward(&h)?;
        }
        Ok(h)
    }
}

/// The MLP velocity field (see the module docs).
#[derive(Debug)]
pub struct MlpVelocity {
    config: MlpConfig,
    n_genes: usize,
    cond_dim: usize,
    x_encoder: Mlp,
    cond_encoder: Mlp,
    time_encoder: Mlp,
    decoder: Mlp,
}

impl MlpVelocity {
    /// Builds the network under `p` for `n_genes` genes and a condition
    /// encoding of width `cond_dim`.
    pub fn new(
        p: &nn::Path,
        cfg: &MlpConfig,
        n_genes: usize,
        cond_dim: usize,
    ) -> Result<MlpVelocity> {
        cfg.validate()?;
        if n_genes == 0 || cond_dim == 0 {
            return Err(Error::invalid(
                "MLP velocity field",
                format!("needs at least one gene and one condition input (got {n_genes} genes, condition width {cond_dim})"),
            ));
        }
        let h = cfg.hidden_dim;
        let widths = |input: usize, n: usize, out: usize| -> Vec<usize> {
            let mut w = vec![input];
            w.extend(std::iter::repeat_n(h, n - 1));
            w.push(out);
            w
        };
        Ok(MlpVelocity {
            x_encoder: Mlp::new(
                &(p / "x_encoder"),
                &widths(n_genes, cfg.n_layers_gene_expression, h),
                0.0,
            )?,
            cond_encoder: Mlp::new(
                &(p / "cond_encoder"),
                &widths(cond_dim, cfg.n_layers_conditions, h),
                0.0,
            )?,
            time_encoder: Mlp::new(
                &(p / "time_encoder"),
                &widths(cfg.time_embed_dim, cfg.n_layers_time, h),
                0.0,
            )?,
            decoder: Mlp::new(
                &(p / "decoder"),
                &widths(3 * h, cfg.n_layers_decoding, n_genes),
                cfg.dropout,
            )?,
            config: cfg.clone(),
            n_genes,
            cond_dim,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }
}

impl VelocityField for MlpVelocity {
    fn velocity(&self, x_t: &Tensor, t: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor> {
        crate::model::check_inputs(x_t, t, cond, self.n_genes, self.cond_dim)?;
        let hx = self.x_encoder.forward(x_t, train)?; // [B, H]
        let hc = self.cond_encoder.forward(cond, train)?; // [B, H]
        let temb = sinusoidal_embedding(t, self.config.time_embed_dim, self.config.time_scale)?; // [B, d_t]
        let ht = self.time_encoder.forward(&temb, train)?; // [B, H]
        let h = Tensor::f_cat(&[hx, hc, ht], -1)?.f_silu()?; // [B, 3H]
        if self.config.dropout > 0.0 {
            let h = h.f_dropout(self.config.dropout, train)?;
            return self.decoder.forward(&h, train); // [B, m]
        }
        self.decoder.forward(&h, train) // [B, m]
    }
}
