//! FM PCA (model.md, "Ablations and baselines"; paper Tables 14-15): the
//! PRiMeFlow MLP velocity field in PCA space. The PCA is fitted on the
//! training cells (`n_components` components, (choice) 50) and travels in
//! the checkpoint ([`DataStats`](super::stats::DataStats)); training maps
//! cells to `z = (x - mu) V` `[B, k]`, sampling integrates in `[B, k]` and
//! decodes `x = z V^T + mu` `[B, m]`, so predictions carry the training genes.
//!
//! FM PCA OT (Tables 14-17, [`PcaOtConfig`]) is the same network and space
//! with a different source: control cells of the same covariate, paired with
//! the target cells by a mini-batch optimal-transport plan per condition
//! ([`crate::ot`]); sampling starts from control cells of the requested
//! covariate instead of noise.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::mlp::MlpConfig;

/// Hyperparameters of FM PCA: the PCA width and the MLP velocity field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcaFlowConfig {
    /// Principal components k of the flow space (choice: 50; the paper
    /// does not state it).
    pub n_components: usize,
    /// The velocity field over `k` inputs (Tables 14-15).
    pub velocity: MlpConfig,
}

impl Default for PcaFlowConfig {
    /// The Srivatsan20 preset (Table 14).
    fn default() -> Self {
        PcaFlowConfig {
            n_components: 50,
            velocity: MlpConfig {
                hidden_dim: 3072,
                dropout: 0.2,
                n_layers_gene_expression: 2,
                n_layers_conditions: 3,
                n_layers_time: 4,
                n_layers_decoding: 4,
                ..MlpConfig::default()
            },
        }
    }
}

impl PcaFlowConfig {
    /// Preset names, smallest first.
    pub const PRESETS: [&'static str; 4] = ["tiny", "small", "norman19", "srivatsan20"];

    /// `srivatsan20` (Table 14: H 3072, dropout 0.2, layers
    /// gene/condition/time/decoding 2/3/4/4), `norman19` (Table 15: H 1792,
    /// dropout 0.2, layers 4/2/2/4) and the CPU sizes `tiny` (H 64, k 20) and
    /// `small` (H 256, k 30) with Norman19's layer counts.
    pub fn preset(name: &str) -> Result<PcaFlowConfig> {
        let norman = PcaFlowConfig {
            n_components: 50,
            velocity: MlpConfig {
                hidden_dim: 1792,
                dropout: 0.2,
                n_layers_gene_expression: 4,
                n_layers_conditions: 2,
                n_layers_time: 2,
                n_layers_decoding: 4,
                ..MlpConfig::default()
            },
        };
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "tiny" => PcaFlowConfig {
                n_components: 20,
                velocity: MlpConfig {
                    hidden_dim: 64,
                    time_embed_dim: 32,
                    ..norman.velocity
                },
            },
            "small" => PcaFlowConfig {
                n_components: 30,
                velocity: MlpConfig {
                    hidden_dim: 256,
                    time_embed_dim: 64,
                    ..norman.velocity
                },
            },
            "norman19" => norman,
            "srivatsan20" => PcaFlowConfig::default(),
            other => return Err(Error::unknown("FM PCA preset", other, &Self::PRESETS)),
        })
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.n_components == 0 {
            return Err(Error::invalid(
                "FM PCA config 'n_components'",
                "must be at least 1",
            ));
        }
        if self.velocity.space != crate::model::DataSpace::Log1p {
            return Err(Error::invalid(
                "FM PCA config 'velocity.space'",
                "FM PCA flows in PCA space; leave 'space' at log1p",
            ));
        }
        self.velocity.validate()
    }
}

/// Hyperparameters of FM PCA OT: FM PCA's (Tables 14-15) plus the
/// mini-batch OT coupling (Tables 16-17).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcaOtConfig {
    /// Principal components k of the flow space (choice: 50).
    pub n_components: usize,
    /// The velocity field over `k` inputs (Tables 14-15).
    pub velocity: MlpConfig,
    /// The coupling: epsilon, tau_a, tau_b, cells per condition
    /// (Tables 16-17), Sinkhorn iterations and tolerance.
    pub ot: crate::ot::OtConfig,
}

impl Default for PcaOtConfig {
    /// The Srivatsan20 preset (Tables 14 and 16).
    fn default() -> Self {
        let base = PcaFlowConfig::default();
        PcaOtConfig {
            n_components: base.n_components,
            velocity: base.velocity,
            ot: crate::ot::OtConfig::default(),
        }
    }
}

impl PcaOtConfig {
    /// FM PCA's preset of the same name with the OT settings of Table 16
    /// (`srivatsan20`: 128 cells per condition) or 17 (`norman19`: 256);
    /// `tiny` and `small` couple 64 cells per condition.
    pub fn preset(name: &str) -> Result<PcaOtConfig> {
        let p = PcaFlowConfig::preset(name)?;
        let n = name.trim().to_ascii_lowercase();
        let ot = match n.as_str() {
            "norman19" | "srivatsan20" => crate::ot::OtConfig::preset(&n)?,
            _ => crate::ot::OtConfig {
                num_samples_per_condition: 64,
                ..crate::ot::OtConfig::default()
            },
        };
        Ok(PcaOtConfig {
            n_components: p.n_components,
            velocity: p.velocity,
            ot,
        })
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        PcaFlowConfig {
            n_components: self.n_components,
            velocity: self.velocity.clone(),
        }
        .validate()?;
        self.ot.validate()
    }
}
