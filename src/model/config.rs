//! `ModelConfig`: which velocity field a model uses and its hyperparameters,
//! saved as `model.json` beside the weights so a checkpoint rebuilds its
//! network (style.md rule 3). JSON form: `{"kind": "mlp", "hidden_dim": ...}`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::mlp::MlpConfig;
use crate::model::unet::UNetConfig;

/// The velocity field of a model, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    /// The PRiMeFlow U-Net (model.md, "The U-Net velocity field").
    Unet(UNetConfig),
    /// The PRiMeFlow MLP ablation.
    Mlp(MlpConfig),
}

impl ModelConfig {
    /// Model kinds.
    pub const KINDS: [&'static str; 2] = ["unet", "mlp"];

    /// The preset `preset` of model kind `model` (`unet` | `mlp`); presets
    /// are `tiny`, `small`, `norman19`, `srivatsan20`.
    pub fn preset(model: &str, preset: &str) -> Result<ModelConfig> {
        match model.trim().to_ascii_lowercase().as_str() {
            "mlp" => Ok(ModelConfig::Mlp(MlpConfig::preset(preset)?)),
            "unet" | "u-net" => Ok(ModelConfig::Unet(UNetConfig::preset(
                &preset.trim().to_ascii_lowercase(),
            )?)),
            other => Err(Error::unknown("model", other, &Self::KINDS)),
        }
    }

    /// `unet` or `mlp`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Unet(_) => "unet",
            ModelConfig::Mlp(_) => "mlp",
        }
    }

    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Unet(c) => c.validate(),
            ModelConfig::Mlp(c) => c.validate(),
        }
    }

    /// Dropout probability of the network (used by summaries).
    pub fn dropout(&self) -> f64 {
        match self {
            ModelConfig::Unet(c) => c.dropout,
            ModelConfig::Mlp(c) => c.dropout,
        }
    }

    /// Forward FLOPs per cell for `n_genes` genes and condition width
    /// `cond_dim` (U-Net: counted block by block; MLP: 2 x its
    /// multiply-accumulates). Forward+backward is about 3x.
    pub fn flops_per_cell(&self, n_genes: usize, cond_dim: usize) -> f64 {
        match self {
            ModelConfig::Unet(c) => {
                crate::model::unet::UNetVelocity::flops_per_cell(c, n_genes, cond_dim)
            }
            ModelConfig::Mlp(c) => c.flops_per_cell(n_genes, cond_dim),
        }
    }

    /// Parses a JSON value (as read from `model.json` or a config file),
    /// naming `source` in errors; unknown keys are errors listing the valid
    /// ones.
    pub fn from_json(value: serde_json::Value, source: &str) -> Result<ModelConfig> {
        let cfg: ModelConfig = serde_json::from_value(value)
            .map_err(|e| Error::invalid(format!("model config ({source})"), e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }
}
