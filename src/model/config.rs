//! `ModelConfig`: which model a checkpoint holds and its hyperparameters,
//! saved as `model.json` beside the weights so a checkpoint rebuilds its
//! network (style.md rule 3). JSON form: `{"kind": "mlp", "hidden_dim": ...}`.
//!
//! Model kinds (`--model`):
//!
//! | kind | what | trained by | sampled from |
//! |---|---|---|---|
//! | `unet` | PRiMeFlow U-Net velocity field (Tables 10-11) | CFM | noise |
//! | `mlp` | PRiMeFlow MLP velocity field (Tables 12-13) | CFM | noise |
//! | `pca` | FM PCA: the MLP in PCA space (Tables 14-15) | CFM | noise |
//! | `pca-ot` | FM PCA OT (Tables 14-17) | CFM, OT-paired controls | control cells |
//! | `linear` | PerturBench's Linear Additive | MSE on (control, perturbed) pairs | control cells |
//! | `latent` | PerturBench's Latent Additive | MSE on (control, perturbed) pairs | control cells |
//! | `decoder` | PerturBench's Decoder-only | MSE on (control, perturbed) pairs | the condition |
//! | `control` | control cells of the covariate (floor) | statistics | control cells |
//! | `additive` | control cells + summed single-perturbation shifts (floor) | statistics | control cells |
//! | `mean` | control cells + the mean shift of the training perturbations (floor) | statistics | control cells |

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::baselines::{DecoderOnlyConfig, LatentAdditiveConfig, LinearAdditiveConfig};
use crate::model::floor::FloorConfig;
use crate::model::mlp::MlpConfig;
use crate::model::pca::{PcaFlowConfig, PcaOtConfig};
use crate::model::space::DataSpace;
use crate::model::unet::UNetConfig;

/// A model, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// The PRiMeFlow U-Net (model.md, "The U-Net velocity field").
    Unet(UNetConfig),
    /// The PRiMeFlow MLP ablation.
    Mlp(MlpConfig),
    /// FM PCA: the MLP velocity field in PCA space.
    Pca(PcaFlowConfig),
    /// FM PCA OT: FM PCA from OT-paired control cells.
    PcaOt(PcaOtConfig),
    /// PerturBench's Linear Additive baseline.
    Linear(LinearAdditiveConfig),
    /// PerturBench's Latent Additive baseline.
    Latent(LatentAdditiveConfig),
    /// PerturBench's Decoder-only baseline.
    Decoder(DecoderOnlyConfig),
    /// The `control` floor.
    Control(FloorConfig),
    /// The `additive` floor.
    Additive(FloorConfig),
    /// The `mean` floor (mean of the training perturbations).
    Mean(FloorConfig),
}

/// How a model is trained and where its cells come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A velocity field trained by conditional flow matching from Gaussian
    /// noise.
    Flow,
    /// A network mapping a control cell to its perturbed counterpart,
    /// trained by mean squared error (PerturBench's baselines).
    Response,
    /// No weights: statistics of the training cells (the floors).
    Floor,
}

/// The space a flow model integrates in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceKind {
    /// Gene space, log1p or standardised.
    Genes(DataSpace),
    /// PCA space with `k` components.
    Pca(usize),
}

/// The preset a kind actually takes under the name `preset`: `cpu` (the CPU
/// recipe) is its own preset for the gene-space flows (`unet`, `mlp`);
/// every other kind takes its `tiny` size under that name. Model and
/// training presets both resolve names through this.
pub fn preset_for_kind(kind: &str, preset: &str) -> String {
    if preset == "cpu" && kind != "unet" && kind != "mlp" {
        "tiny".to_string()
    } else {
        preset.to_string()
    }
}

impl ModelConfig {
    /// Model kinds, as `--model` spells them.
    pub const KINDS: [&'static str; 10] = [
        "unet", "mlp", "pca", "pca-ot", "linear", "latent", "decoder", "control", "additive",
        "mean",
    ];

    /// The preset `preset` of model kind `model`: `cpu` (the CPU recipe of
    /// the U-Net and the MLP; `tiny` for the other kinds), `tiny`, `small`
    /// (CPU sizes), `norman19`, `srivatsan20` (the paper's tables for that
    /// kind).
    /// Floors accept any of them (they have no settings).
    pub fn preset(model: &str, preset: &str) -> Result<ModelConfig> {
        let p = preset.trim().to_ascii_lowercase();
        let kind = normalize_kind(model)?;
        let p = preset_for_kind(&kind, &p);
        match kind.as_str() {
            "unet" => Ok(ModelConfig::Unet(UNetConfig::preset(&p)?)),
            "mlp" => Ok(ModelConfig::Mlp(MlpConfig::preset(&p)?)),
            "pca" => Ok(ModelConfig::Pca(PcaFlowConfig::preset(&p)?)),
            "pca-ot" => Ok(ModelConfig::PcaOt(PcaOtConfig::preset(&p)?)),
            "linear" => Ok(ModelConfig::Linear(LinearAdditiveConfig::preset(&p)?)),
            "latent" => Ok(ModelConfig::Latent(LatentAdditiveConfig::preset(&p)?)),
            "decoder" => Ok(ModelConfig::Decoder(DecoderOnlyConfig::preset(&p)?)),
            kind @ ("control" | "additive" | "mean") => {
                if !UNetConfig::PRESETS.contains(&p.as_str()) {
                    return Err(Error::unknown("preset", p.as_str(), UNetConfig::PRESETS));
                }
                Ok(match kind {
                    "control" => ModelConfig::Control(FloorConfig::default()),
                    "additive" => ModelConfig::Additive(FloorConfig::default()),
                    _ => ModelConfig::Mean(FloorConfig::default()),
                })
            }
            other => Err(Error::unknown("model", other, &Self::KINDS)),
        }
    }

    /// The kind, as `--model` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Unet(_) => "unet",
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Pca(_) => "pca",
            ModelConfig::PcaOt(_) => "pca-ot",
            ModelConfig::Linear(_) => "linear",
            ModelConfig::Latent(_) => "latent",
            ModelConfig::Decoder(_) => "decoder",
            ModelConfig::Control(_) => "control",
            ModelConfig::Additive(_) => "additive",
            ModelConfig::Mean(_) => "mean",
        }
    }

    /// A readable name for tables and messages.
    pub fn display_name(&self) -> &'static str {
        match self {
            ModelConfig::Unet(_) => "PRiMeFlow U-Net",
            ModelConfig::Mlp(_) => "PRiMeFlow MLP",
            ModelConfig::Pca(_) => "FM PCA",
            ModelConfig::PcaOt(_) => "FM PCA OT",
            ModelConfig::Linear(_) => "Linear Additive",
            ModelConfig::Latent(_) => "Latent Additive",
            ModelConfig::Decoder(_) => "Decoder-only",
            ModelConfig::Control(_) => "Control",
            ModelConfig::Additive(_) => "Additive",
            ModelConfig::Mean(_) => "Mean perturbation",
        }
    }

    /// How the model is trained and sampled.
    pub fn family(&self) -> Family {
        match self {
            ModelConfig::Unet(_)
            | ModelConfig::Mlp(_)
            | ModelConfig::Pca(_)
            | ModelConfig::PcaOt(_) => Family::Flow,
            ModelConfig::Linear(_) | ModelConfig::Latent(_) | ModelConfig::Decoder(_) => {
                Family::Response
            }
            ModelConfig::Control(_) | ModelConfig::Additive(_) | ModelConfig::Mean(_) => {
                Family::Floor
            }
        }
    }

    /// The OT coupling settings (FM PCA OT only): its flow starts from
    /// control cells, not noise.
    pub fn ot(&self) -> Option<&crate::ot::OtConfig> {
        match self {
            ModelConfig::PcaOt(c) => Some(&c.ot),
            _ => None,
        }
    }

    /// The flow space (flow models only).
    pub fn space(&self) -> Option<SpaceKind> {
        match self {
            ModelConfig::Unet(c) => Some(SpaceKind::Genes(c.space)),
            ModelConfig::Mlp(c) => Some(SpaceKind::Genes(c.space)),
            ModelConfig::Pca(c) => Some(SpaceKind::Pca(c.n_components)),
            ModelConfig::PcaOt(c) => Some(SpaceKind::Pca(c.n_components)),
            _ => None,
        }
    }

    /// Principal components the model's statistics must hold.
    pub fn pca_components(&self) -> Option<usize> {
        match self.space() {
            Some(SpaceKind::Pca(k)) => Some(k),
            _ => None,
        }
    }

    /// True when the model has weights to train.
    pub fn has_weights(&self) -> bool {
        self.family() != Family::Floor
    }

    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Unet(c) => c.validate(),
            ModelConfig::Mlp(c) => c.validate(),
            ModelConfig::Pca(c) => c.validate(),
            ModelConfig::PcaOt(c) => c.validate(),
            ModelConfig::Linear(c) => c.validate(),
            ModelConfig::Latent(c) => c.validate(),
            ModelConfig::Decoder(c) => c.validate(),
            ModelConfig::Control(_) | ModelConfig::Additive(_) | ModelConfig::Mean(_) => Ok(()),
        }
    }

    /// Dropout probability of the network (used by summaries).
    pub fn dropout(&self) -> f64 {
        match self {
            ModelConfig::Unet(c) => c.dropout,
            ModelConfig::Mlp(c) => c.dropout,
            ModelConfig::Pca(c) => c.velocity.dropout,
            ModelConfig::PcaOt(c) => c.velocity.dropout,
            ModelConfig::Latent(c) => c.dropout.unwrap_or(0.0),
            ModelConfig::Linear(_) | ModelConfig::Decoder(_) => 0.0,
            ModelConfig::Control(_) | ModelConfig::Additive(_) | ModelConfig::Mean(_) => 0.0,
        }
    }

    /// Forward FLOPs per cell of a response baseline with `n_perts`
    /// perturbations and `n_covs` covariate one-hot slots (0 for the other
    /// kinds; see [`flops_per_cell`](Self::flops_per_cell)).
    pub fn response_flops(&self, n_genes: usize, n_perts: usize, n_covs: usize) -> f64 {
        match self {
            ModelConfig::Linear(c) => c.flops_per_cell(n_genes, n_perts, n_covs),
            ModelConfig::Latent(c) => c.flops_per_cell(n_genes, n_perts, n_covs),
            ModelConfig::Decoder(c) => c.flops_per_cell(n_genes, n_perts, n_covs),
            _ => 0.0,
        }
    }

    /// Forward FLOPs per cell for `n_genes` genes and condition width
    /// `cond_dim` (U-Net: counted block by block; MLPs: 2 x their
    /// multiply-accumulates; floors: 0; response baselines: counted as if
    /// the whole condition were perturbations, see
    /// [`response_flops`](Self::response_flops)). Forward+backward is about
    /// 3x.
    pub fn flops_per_cell(&self, n_genes: usize, cond_dim: usize) -> f64 {
        match self {
            ModelConfig::Unet(c) => {
                crate::model::unet::UNetVelocity::flops_per_cell(c, n_genes, cond_dim)
            }
            ModelConfig::Mlp(c) => c.flops_per_cell(n_genes, cond_dim),
            ModelConfig::Pca(c) => c.velocity.flops_per_cell(c.n_components, cond_dim),
            ModelConfig::PcaOt(c) => c.velocity.flops_per_cell(c.n_components, cond_dim),
            ModelConfig::Linear(_) | ModelConfig::Latent(_) | ModelConfig::Decoder(_) => {
                self.response_flops(n_genes, cond_dim, 0)
            }
            ModelConfig::Control(_) | ModelConfig::Additive(_) | ModelConfig::Mean(_) => 0.0,
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

    /// This config with the keys of the JSON object `overrides` applied
    /// (nested objects merge key by key; `kind` may only repeat the kind),
    /// validated. Unknown keys are errors listing the valid ones.
    pub fn merged(&self, overrides: &serde_json::Value, source: &str) -> Result<ModelConfig> {
        if let Some(k) = overrides.get("kind").and_then(|k| k.as_str()) {
            if normalize_kind(k)? != self.kind() {
                return Err(Error::invalid(
                    format!("model config ({source})"),
                    format!("kind '{k}' conflicts with the model kind {}", self.kind()),
                ));
            }
        }
        let merged = crate::overlay::overlay(self, overrides, &format!("model config ({source})"))?;
        merged.validate()?;
        Ok(merged)
    }
}

/// A model kind as `--model` spells it (`u-net` and `fm-pca` are accepted
/// too); unknown kinds are errors listing the known ones.
pub fn normalize_kind(kind: &str) -> Result<String> {
    let k = kind.trim().to_ascii_lowercase().replace('_', "-");
    let k = match k.as_str() {
        "u-net" => "unet".to_string(),
        "fm-pca" => "pca".to_string(),
        "fm-pca-ot" | "pcaot" => "pca-ot".to_string(),
        _ => k,
    };
    if ModelConfig::KINDS.contains(&k.as_str()) {
        Ok(k)
    } else {
        Err(Error::unknown("model", kind.trim(), &ModelConfig::KINDS))
    }
}
