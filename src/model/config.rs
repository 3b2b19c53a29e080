//! `ModelConfig`: which velocity field a model uses and its hyperparameters,
//! saved as `model.json` beside the weights so a checkpoint rebuilds its
//! network (style.md rule 3). JSON form: `{"kind": "mlp", "hidden_dim": ...}`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::mlp::MlpConfig;

/// The velocity field of a model, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
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
            "unet" | "u-net" => Err(Error::invalid(
                "model",
                "the U-Net is not available in this build yet",
            )),
            other => Err(Error::unknown("model", other, &Self::KINDS)),
        }
    }

    /// `unet` or `mlp`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
        }
    }

    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Mlp(c) => c.validate(),
        }
    }

    /// Dropout probability of the network (used by summaries).
    pub fn dropout(&self) -> f64 {
        match self {
            ModelConfig::Mlp(c) => c.dropout,
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
