//! The space a flow model's ODE runs in, and the maps between it and gene
//! expression.
//!
//! * `log1p` (the paper's U-Net and MLP): the flow runs on the log1p
//!   expression itself, `z = x` `[B, m]`.
//! * `standardized` (choice, the paper is silent): per-gene z-scores with
//!   the training cells' statistics, `z = (x - mu) / sd`, undone at sampling
//!   `x = z * sd + mu`. The source noise N(0, I) then has the data's scale
//!   in every gene, instead of log1p values that are either 0 or several
//!   units large.
//! * `response` (choice, not in the paper): each cell's difference from
//!   the mean control cell of its own covariate, per-gene scaled,
//!   `z = (x - c_k) / s` with `c_k` the training control mean of covariate
//!   key `k` and `s` the root mean square of those differences
//!   ([`DataStats::response_std`]); decoded with the *target* covariate's
//!   control mean, `x = z * s + c_k`. A perturbation's response is then
//!   one distribution shared by every covariate it acts in, so it
//!   transfers to covariates where it was never seen.
//! * PCA (FM PCA, FM PCA OT): `z = (x - mu) V` `[B, k]`, decoded
//!   `x = z V^T + mu` with the loadings `V` `[m, k]` fitted on the training
//!   cells.
//!
//! The statistics come from [`DataStats`](super::stats::DataStats) and travel
//! with the checkpoint.

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::stats::DataStats;

/// Where a gene-space flow runs (a config field of the U-Net and the MLP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataSpace {
    /// log1p expression as given (the paper).
    #[default]
    Log1p,
    /// Per-gene standardised log1p expression.
    Standardized,
    /// Scaled difference from the covariate's mean control cell.
    Response,
}

/// The encoder/decoder of a model's flow space, on the model's device.
#[derive(Debug)]
pub enum FlowSpace {
    /// `z = x`.
    Genes,
    /// `z = (x - mean) / std`; `mean`, `std` `[1, m]`.
    Standardized { mean: Tensor, std: Tensor },
    /// `z = (x - mean) V`; `mean` `[1, m]`, `components` `V` `[m, k]`.
    Pca { mean: Tensor, components: Tensor },
    /// `z = (x - means[k]) / std`; `means` `[K, m]` (one row per covariate
    /// key of `keys`), `std` `[1, m]`.
    Response {
        means: Tensor,
        std: Tensor,
        keys: Vec<Vec<String>>,
    },
}

impl FlowSpace {
    /// The standardised space of `stats` on `device`.
    pub fn standardized(stats: &DataStats, device: Device) -> Result<FlowSpace> {
        Ok(FlowSpace::Standardized {
            mean: stats.gene_mean.f_unsqueeze(0)?.f_to_device(device)?,
            std: stats.gene_std.f_unsqueeze(0)?.f_to_device(device)?,
        })
    }

    /// The PCA space of `stats` on `device` (an error when `stats` has no
    /// PCA basis).
    pub fn pca(stats: &DataStats, device: Device) -> Result<FlowSpace> {
        let p = stats.pca.as_ref().ok_or_else(|| {
            Error::invalid(
                "model statistics",
                "this model flows in PCA space but its statistics hold no PCA basis",
            )
        })?;
        Ok(FlowSpace::Pca {
            mean: p.mean.f_unsqueeze(0)?.f_to_device(device)?,
            components: p.components.f_to_device(device)?,
        })
    }

    /// The response space of `stats` on `device` (an error when no
    /// covariate has control cells).
    pub fn response(stats: &DataStats, device: Device) -> Result<FlowSpace> {
        if stats.controls.is_empty() {
            return Err(Error::invalid(
                "space",
                "'response' needs control cells in the training data, and there are none",
            ));
        }
        let rows: Vec<Tensor> = stats
            .controls
            .iter()
            .map(|c| c.mean.shallow_clone())
            .collect();
        Ok(FlowSpace::Response {
            means: Tensor::f_stack(&rows, 0)?.f_to_device(device)?,
            std: stats.response_std.f_unsqueeze(0)?.f_to_device(device)?,
            keys: stats
                .controls
                .iter()
                .map(|c| c.covariates.clone())
                .collect(),
        })
    }

    /// The same space sharing this one's tensors.
    pub fn shallow_clone(&self) -> FlowSpace {
        match self {
            FlowSpace::Genes => FlowSpace::Genes,
            FlowSpace::Standardized { mean, std } => FlowSpace::Standardized {
                mean: mean.shallow_clone(),
                std: std.shallow_clone(),
            },
            FlowSpace::Pca { mean, components } => FlowSpace::Pca {
                mean: mean.shallow_clone(),
                components: components.shallow_clone(),
            },
            FlowSpace::Response { means, std, keys } => FlowSpace::Response {
                means: means.shallow_clone(),
                std: std.shallow_clone(),
                keys: keys.clone(),
            },
        }
    }

    /// True for a space whose encoding is per gene and elementwise (so a
    /// row encodes to the same bits alone or in any batch): all but PCA.
    pub fn is_elementwise(&self) -> bool {
        !matches!(self, FlowSpace::Pca { .. })
    }

    /// Whether encoding and decoding need each row's covariate index.
    pub fn needs_covariates(&self) -> bool {
        matches!(self, FlowSpace::Response { .. })
    }

    /// The row of `covariates` in a covariate-dependent space (0 in the
    /// others); an error names the covariates that have control cells.
    pub fn covariate_index(&self, covariates: &[String]) -> Result<i64> {
        match self {
            FlowSpace::Response { keys, .. } => keys
                .iter()
                .position(|k| k == covariates)
                .map(|i| i as i64)
                .ok_or_else(|| {
                    let known: Vec<String> = keys.iter().map(|k| k.join("_")).collect();
                    Error::unknown(
                        "covariate with training control cells (space 'response')",
                        covariates.join("_"),
                        &known,
                    )
                }),
            _ => Ok(0),
        }
    }

    /// The per-row offsets `[B, m]` of a covariate-dependent space for the
    /// covariate indices `cov` `[B]` (int64).
    fn offsets(means: &Tensor, cov: Option<&Tensor>) -> Result<Tensor> {
        let cov = cov.ok_or_else(|| {
            Error::Mismatch("the 'response' space needs each row's covariate".into())
        })?;
        Ok(means.f_index_select(0, &cov.f_to_device(means.device())?)?)
    }

    /// Expression `x` `[B, m]` -> flow coordinates `[B, d]`; `cov` `[B]`
    /// holds each row's [`covariate_index`](Self::covariate_index) (needed
    /// only by covariate-dependent spaces).
    pub fn encode(&self, x: &Tensor, cov: Option<&Tensor>) -> Result<Tensor> {
        Ok(match self {
            FlowSpace::Genes => x.shallow_clone(),
            FlowSpace::Standardized { mean, std } => x.f_sub(mean)?.f_div(std)?,
            FlowSpace::Pca { mean, components } => x.f_sub(mean)?.f_mm(components)?,
            FlowSpace::Response { means, std, .. } => {
                x.f_sub(&Self::offsets(means, cov)?)?.f_div(std)?
            }
        })
    }

    /// Flow coordinates `z` `[B, d]` -> expression `[B, m]` (`cov` as in
    /// [`encode`](Self::encode)).
    pub fn decode(&self, z: &Tensor, cov: Option<&Tensor>) -> Result<Tensor> {
        Ok(match self {
            FlowSpace::Genes => z.shallow_clone(),
            FlowSpace::Standardized { mean, std } => z.f_mul(std)?.f_add(mean)?,
            FlowSpace::Pca { mean, components } => {
                z.f_mm(&components.f_transpose(0, 1)?)?.f_add(mean)?
            }
            FlowSpace::Response { means, std, .. } => {
                z.f_mul(std)?.f_add(&Self::offsets(means, cov)?)?
            }
        })
    }
}
