//! `UNetConfig`: the U-Net velocity field's hyperparameters and presets.
//!
//! The fields are model.md's "Paper hyperparameters" table (the network's
//! rows: `hidden_dim`, `channel_mult`, `num_res_blocks`,
//! `attention_resolutions`, `num_heads`, `dropout`) plus the settings model.md
//! describes in "The U-Net velocity field" and marks as (choice)
//! (`value_scale`) or that guided-diffusion exposes (`use_scale_shift_norm`,
//! `conv_resample`, GroupNorm groups). Training settings (lr, batch,
//! `prob_unconditional`) live in the trainer's config, not here.
//!
//! Presets: `srivatsan20` and `norman19` (model.md table, paper Tables 10-11),
//! `tiny` (tests: a step at m = 500, batch 32 in well under a second on two
//! CPU cores) and `small` (the default: trainable on CPU in minutes).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Hyperparameters of [`UNetVelocity`](super::UNetVelocity).
///
/// JSON-serialisable; unknown keys are rejected and missing keys take the
/// default (the `small` preset) values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UNetConfig {
    /// `d`: channels of the value encoding and of level 0 (guided-diffusion's
    /// `model_channels`); the embedding `emb` is `4 d` wide. Even.
    pub hidden_dim: usize,
    /// Channel multiplier per level: level `l` has `channel_mult[l] * d`
    /// channels; `len` levels, `len - 1` Downsamples.
    pub channel_mult: Vec<usize>,
    /// ResBlocks per level on the down path (the up path has one more).
    pub num_res_blocks: usize,
    /// Downsampling factors `ds` (1, 2, 4, ...) at which an AttentionBlock
    /// follows every ResBlock (`[16]`: the level at 1/16 of the gene axis).
    pub attention_resolutions: Vec<usize>,
    /// Attention heads; must divide the channels of every attention level.
    pub num_heads: usize,
    /// Dropout probability inside every ResBlock (training only).
    pub dropout: f64,
    /// `s` in the value encoding `[cos(s x f), sin(s x f)]` (model.md, choice:
    /// 1000).
    pub value_scale: f64,
    /// Layers (`d -> d`, SiLU between them) of the per-gene MLP after the
    /// value encoding; 0 keeps the bare sinusoid.
    pub n_layers_gene_expression: usize,
    /// Linear layers of the time MLP (`d -> 4d`, then `4d -> 4d`), >= 1.
    pub n_layers_time: usize,
    /// Linear layers of the condition MLP (`n_c -> 4d`, then `4d -> 4d`), >= 1.
    pub n_layers_conditions: usize,
    /// ResBlocks condition by `GN(h) * (1 + scale) + shift` (true, model.md) or
    /// by adding `emb` before the second GroupNorm (false).
    pub use_scale_shift_norm: bool,
    /// Downsample/Upsample with convolutions (true, model.md) or with average
    /// pooling / bare nearest upsampling (false).
    pub conv_resample: bool,
    /// GroupNorm groups (model.md: 32); must divide every channel count.
    pub norm_groups: usize,
    /// The data space the flow runs in: `log1p` (the paper) or
    /// `standardized` (per-gene z-scores; see [`crate::model::DataSpace`]).
    pub space: crate::model::DataSpace,
    /// Not in the paper (default false): add a linear skip from the
    /// condition encoding straight to the velocity,
    /// `v = UNet(x_t, t, c) + W c + b` with `W [m, n_c]`, `b [m]`
    /// (`condition_skip.{weight,bias}`, zero-initialised). `W c` is a sum of
    /// one per-gene vector per perturbation and per covariate value, so the
    /// mean response it carries composes additively to unseen
    /// (covariate, perturbation) pairs and combinations; the U-Net learns
    /// the rest (the shape of the response).
    pub condition_skip: bool,
}

impl Default for UNetConfig {
    /// The `small` preset.
    fn default() -> Self {
        UNetConfig::small()
    }
}

impl UNetConfig {
    /// Preset names accepted by [`UNetConfig::preset`].
    pub const PRESETS: &'static [&'static str] =
        &["cpu", "tiny", "small", "norman19", "srivatsan20"];

    /// The paper's Srivatsan20 U-Net (model.md table; paper Table 10).
    fn srivatsan20() -> Self {
        UNetConfig {
            hidden_dim: 256,
            channel_mult: vec![1, 2, 2, 4, 4],
            num_res_blocks: 2,
            attention_resolutions: vec![16],
            num_heads: 8,
            dropout: 0.1,
            value_scale: 1000.0,
            // Two layers reproduce model.md's 210.7M parameters and 104.5
            // GFLOP per cell at m = 2000 (one or three do not).
            n_layers_gene_expression: 2,
            n_layers_time: 2,
            n_layers_conditions: 2,
            use_scale_shift_norm: true,
            conv_resample: true,
            norm_groups: 32,
            space: crate::model::DataSpace::Log1p,
            condition_skip: false,
        }
    }

    /// The paper's Norman19 U-Net (model.md table; paper Table 11).
    fn norman19() -> Self {
        UNetConfig {
            channel_mult: vec![1, 1, 2, 2, 4],
            ..UNetConfig::srivatsan20()
        }
    }

    /// Test-sized: 3 levels of 32, 64, 64 channels, attention at the deepest
    /// (ds 4). Two levels would be no faster: attention at 1/2 length (the
    /// middle block always attends) costs more than the third level saves.
    fn tiny() -> Self {
        UNetConfig {
            hidden_dim: 32,
            channel_mult: vec![1, 2, 2],
            num_res_blocks: 1,
            attention_resolutions: vec![4],
            num_heads: 4,
            dropout: 0.0,
            norm_groups: 8,
            ..UNetConfig::srivatsan20()
        }
    }

    /// CPU-sized: 3 levels of 64, 128, 128 channels, attention at the deepest.
    /// No dropout: a few minutes of training does not overfit.
    fn small() -> Self {
        UNetConfig {
            hidden_dim: 64,
            channel_mult: vec![1, 2, 2],
            num_res_blocks: 1,
            attention_resolutions: vec![4],
            num_heads: 4,
            dropout: 0.0,
            norm_groups: 16,
            ..UNetConfig::srivatsan20()
        }
    }

    /// The CPU recipe (docs/results/recipe.md; not in the paper): a
    /// 16-channel U-Net (levels of 16, 32, 32 channels, attention at the
    /// deepest), one condition layer, the additive condition skip, flowing
    /// in the `response` space. On simulated covariate transfer it learns
    /// more per CPU second than the wider `tiny` and `small` presets.
    fn cpu() -> Self {
        UNetConfig {
            hidden_dim: 16,
            norm_groups: 4,
            n_layers_conditions: 1,
            condition_skip: true,
            space: crate::model::DataSpace::Response,
            ..UNetConfig::tiny()
        }
    }

    /// The preset called `name` (one of [`UNetConfig::PRESETS`]).
    pub fn preset(name: &str) -> Result<UNetConfig> {
        match name {
            "cpu" => Ok(UNetConfig::cpu()),
            "tiny" => Ok(UNetConfig::tiny()),
            "small" => Ok(UNetConfig::small()),
            "norman19" => Ok(UNetConfig::norman19()),
            "srivatsan20" => Ok(UNetConfig::srivatsan20()),
            _ => Err(Error::unknown("U-Net preset", name, UNetConfig::PRESETS)),
        }
    }

    /// Number of resolution levels (`channel_mult.len()`).
    pub fn levels(&self) -> usize {
        self.channel_mult.len()
    }

    /// The gene axis is padded to a multiple of this, `2^(levels - 1)`
    /// (model.md), so every Downsample halves an even length.
    pub fn pad_multiple(&self) -> usize {
        1usize
            << self
                .levels()
                .saturating_sub(1)
                .min(usize::BITS as usize - 1)
    }

    /// Checks every constraint the network needs, naming the field and value.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| {
            Err(Error::invalid(format!("U-Net config field '{field}'"), msg))
        };
        let d = self.hidden_dim;
        if d < 2 || !d.is_multiple_of(2) {
            return bad(
                "hidden_dim",
                format!("{d} must be even and at least 2 (the sinusoid has cos and sin halves)"),
            );
        }
        if self.channel_mult.is_empty() {
            return bad("channel_mult", "[] must list at least one level".into());
        }
        if self.levels() > 16 {
            return bad(
                "channel_mult",
                format!("{} levels is too many (at most 16)", self.levels()),
            );
        }
        if let Some(&m) = self.channel_mult.iter().find(|&&m| m == 0) {
            return bad(
                "channel_mult",
                format!(
                    "{:?} has a multiplier {m}; each must be >= 1",
                    self.channel_mult
                ),
            );
        }
        if self.num_res_blocks == 0 {
            return bad("num_res_blocks", "0 must be at least 1".into());
        }
        if self.norm_groups == 0 {
            return bad("norm_groups", "0 must be at least 1".into());
        }
        for &m in &self.channel_mult {
            let Some(ch) = m.checked_mul(d).filter(|&c| c <= 1 << 20) else {
                return bad(
                    "channel_mult",
                    format!("{m} x hidden_dim {d} channels is too many (at most 2^20)"),
                );
            };
            if ch % self.norm_groups != 0 {
                return bad(
                    "norm_groups",
                    format!(
                        "{} does not divide {ch} channels (hidden_dim {d} x channel_mult {m})",
                        self.norm_groups
                    ),
                );
            }
        }
        if self.num_heads == 0 {
            return bad("num_heads", "0 must be at least 1".into());
        }
        // Attention levels: every listed ds must be one this U-Net reaches
        // (1, 2, ..., 2^(levels-1)); the middle block always attends.
        let reachable: Vec<usize> = (0..self.levels()).map(|l| 1usize << l).collect();
        for &r in &self.attention_resolutions {
            if !reachable.contains(&r) {
                return bad(
                    "attention_resolutions",
                    format!(
                        "{r} is not a downsampling factor of this U-Net (reachable: {reachable:?})"
                    ),
                );
            }
        }
        for (level, &m) in self.channel_mult.iter().enumerate() {
            let ch = m * d; // checked above
            let attends = self.attention_resolutions.contains(&(1usize << level))
                || level + 1 == self.levels();
            if attends && !ch.is_multiple_of(self.num_heads) {
                return bad(
                    "num_heads",
                    format!(
                        "{} does not divide the {ch} channels of attention level {level}",
                        self.num_heads
                    ),
                );
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", format!("{} must be in [0, 1)", self.dropout));
        }
        if !(self.value_scale.is_finite() && self.value_scale > 0.0) {
            return bad(
                "value_scale",
                format!("{} must be finite and positive", self.value_scale),
            );
        }
        if self.n_layers_time == 0 {
            return bad("n_layers_time", "0 must be at least 1".into());
        }
        if self.n_layers_conditions == 0 {
            return bad("n_layers_conditions", "0 must be at least 1".into());
        }
        Ok(())
    }
}
