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

    /// Expression `x` `[B, m]` -> flow coordinates `[B, d]`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            FlowSpace::Genes => x.shallow_clone(),
            FlowSpace::Standardized { mean, std } => x.f_sub(mean)?.f_div(std)?,
            FlowSpace::Pca { mean, components } => x.f_sub(mean)?.f_mm(components)?,
        })
    }

    /// Flow coordinates `z` `[B, d]` -> expression `[B, m]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(match self {
            FlowSpace::Genes => z.shallow_clone(),
            FlowSpace::Standardized { mean, std } => z.f_mul(std)?.f_add(mean)?,
            FlowSpace::Pca { mean, components } => {
                z.f_mm(&components.f_transpose(0, 1)?)?.f_add(mean)?
            }
        })
    }
}
