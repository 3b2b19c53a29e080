//! `TrainConfig`: every training hyperparameter, as a serde struct with
//! defaults and presets (model.md, "Paper hyperparameters"). Unknown keys are
//! errors that list the valid ones; [`TrainConfig::validate`] checks values.
//!
//! One *step* is one optimizer update over `batch_size * grad_accum` cells.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flow::{Path, PathKind};

/// Learning-rate decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Constant after warm-up (the paper's choice).
    #[default]
    Constant,
    /// Half-cosine decay from `lr` to 0 over the remaining steps.
    Cosine,
    /// Linear decay from `lr` to 0 over the remaining steps.
    Linear,
}

/// Arithmetic precision of the forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Full f32 everywhere (the default; the only choice on CPU).
    #[default]
    Fp32,
    /// bf16 autocast of the network on CUDA; weights, optimizer state and the
    /// loss stay f32.
    Bf16,
}

/// Training hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Peak AdamW learning rate (paper: 5e-5).
    pub lr: f64,
    /// AdamW decoupled weight decay (paper: 0).
    pub weight_decay: f64,
    /// AdamW beta1 (PyTorch default 0.9).
    pub beta1: f64,
    /// AdamW beta2 (PyTorch default 0.999).
    pub beta2: f64,
    /// AdamW epsilon (PyTorch default 1e-8).
    pub adam_eps: f64,
    /// Cells per micro-batch (per forward pass).
    pub batch_size: usize,
    /// Micro-batches accumulated per optimizer step.
    pub grad_accum: usize,
    /// Clip gradients to this global L2 norm (paper: 5.0); 0 turns it off.
    pub grad_clip: f64,
    /// Optimizer steps to train for (in total, counting resumed steps).
    pub steps: usize,
    /// Probability that a cell's condition is replaced by the null condition
    /// (paper: 0.2).
    pub prob_unconditional: f64,
    /// Not in the paper (default 0): probability that a cell's covariate
    /// values alone are dropped from its condition (flows only; after and
    /// independent of `prob_unconditional`), so the network also learns
    /// each perturbation's covariate-free response (covariate transfer).
    pub covariate_dropout: f64,
    /// Probability path (`linear` | `trigonometric`).
    pub path: PathKind,
    /// Constant path noise sigma (paper: 0).
    pub sigma: f64,
    /// Seed of every random draw (batch order, t, x0, guidance mask,
    /// dropout) and of the initial weights.
    pub seed: u64,
    /// Compute the validation loss every this many steps (needs validation
    /// cells); `null` turns it off.
    pub val_every: Option<usize>,
    /// At most this many validation cells (a fixed seeded subset).
    pub val_cells: usize,
    /// Stop after this many validation evaluations without improvement;
    /// `null` turns it off.
    pub early_stopping_patience: Option<usize>,
    /// Linear warm-up from 0 to `lr` over this many steps.
    pub warmup_steps: usize,
    /// Decay after warm-up.
    pub lr_schedule: LrSchedule,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// How many step checkpoints to keep (the newest ones; at least 1).
    pub keep_checkpoints: usize,
    /// Record the loss in the history every this many steps.
    pub log_every: usize,
    /// `fp32` or `bf16` (CUDA only).
    pub precision: Precision,
    /// Keep an exponential moving average of the weights with this decay
    /// (e.g. 0.999) and sample with it; `null` (the default: the paper does
    /// not mention EMA) samples with the trained weights.
    pub ema_decay: Option<f64>,
    /// Control cells kept per covariate key in the model's statistics (the
    /// cells baselines map and FM PCA OT starts from; PerturBench's
    /// `max_control_cells_per_covariate`).
    pub control_cells: usize,
    /// Stream the training cells from their file instead of holding X in
    /// memory (`train::stream`): `true` for the default chunks and buffer,
    /// a map `{chunk_rows, buffer_chunks}`, or `null`/`false` (the
    /// default: in memory). Flow models in gene space only.
    #[serde(
        deserialize_with = "crate::train::stream::deserialize_stream",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream: Option<crate::train::stream::StreamConfig>,
}

impl Default for TrainConfig {
    /// The paper's optimiser settings (lr 5e-5, no weight decay, clip 5,
    /// p_uncond 0.2, linear path, sigma 0) with a single-device batch of 64.
    fn default() -> Self {
        TrainConfig {
            lr: 5e-5,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            batch_size: 64,
            grad_accum: 1,
            grad_clip: 5.0,
            steps: 10_000,
            prob_unconditional: 0.2,
            covariate_dropout: 0.0,
            path: PathKind::Linear,
            sigma: 0.0,
            seed: 0,
            val_every: None,
            val_cells: 2048,
            early_stopping_patience: None,
            warmup_steps: 0,
            lr_schedule: LrSchedule::Constant,
            checkpoint_every: 1000,
            keep_checkpoints: 1,
            log_every: 50,
            precision: Precision::Fp32,
            ema_decay: None,
            control_cells: 1000,
            stream: None,
        }
    }
}

impl TrainConfig {
    /// Applies the keys of a JSON object over `self` (unknown keys are
    /// errors listing the valid ones) and validates the result. `source`
    /// names the file in messages.
    pub fn merged(&self, overrides: &serde_json::Value, source: &str) -> Result<TrainConfig> {
        let cfg: TrainConfig =
            crate::overlay::overlay(self, overrides, &format!("train config ({source})"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The probability path these settings describe.
    pub fn flow_path(&self) -> Result<Path> {
        Path::new(self.path, self.sigma)
    }

    /// Checks every value; the error names the key and the value.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |key: &str, msg: String| Err(Error::invalid(format!("train config '{key}'"), msg));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{} must be a positive number", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("{} must be >= 0", self.weight_decay),
            );
        }
        for (k, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(k, format!("{v} is not in [0, 1)"));
            }
        }
        if !(self.adam_eps.is_finite() && self.adam_eps > 0.0) {
            return bad(
                "adam_eps",
                format!("{} must be a positive number", self.adam_eps),
            );
        }
        for (k, v) in [
            ("batch_size", self.batch_size),
            ("grad_accum", self.grad_accum),
            ("steps", self.steps),
            ("log_every", self.log_every),
            ("keep_checkpoints", self.keep_checkpoints),
            ("val_cells", self.val_cells),
        ] {
            if v == 0 {
                return bad(k, "must be at least 1".into());
            }
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return bad(
                "grad_clip",
                format!("{} must be >= 0 (0 turns clipping off)", self.grad_clip),
            );
        }
        if !(0.0..=1.0).contains(&self.prob_unconditional) {
            return bad(
                "prob_unconditional",
                format!("{} is not in [0, 1]", self.prob_unconditional),
            );
        }
        if !(0.0..=1.0).contains(&self.covariate_dropout) {
            return bad(
                "covariate_dropout",
                format!("{} is not in [0, 1]", self.covariate_dropout),
            );
        }
        if self.val_every == Some(0) {
            return bad(
                "val_every",
                "must be at least 1 (or null to turn it off)".into(),
            );
        }
        if self.early_stopping_patience == Some(0) {
            return bad(
                "early_stopping_patience",
                "must be at least 1 (or null to turn it off)".into(),
            );
        }
        if self.early_stopping_patience.is_some() && self.val_every.is_none() {
            return bad(
                "early_stopping_patience",
                "needs 'val_every' (early stopping watches the validation loss)".into(),
            );
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return bad(
                    "ema_decay",
                    format!("{d} is not in [0, 1) (or null to turn EMA off)"),
                );
            }
        }
        if self.control_cells == 0 {
            return bad("control_cells", "must be at least 1".into());
        }
        if let Some(s) = &self.stream {
            s.validate()?;
        }
        self.flow_path()?;
        Ok(())
    }

    /// The learning rate of step `step` (1-based): linear warm-up to `lr`
    /// over `warmup_steps`, then `lr_schedule` down towards 0 at `steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let s = step.max(1);
        if s <= self.warmup_steps {
            return self.lr * s as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let p = ((s - self.warmup_steps - 1) as f64 / span).clamp(0.0, 1.0);
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => self.lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()),
            LrSchedule::Linear => self.lr * (1.0 - p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let e = TrainConfig::default()
            .merged(&serde_json::json!({"learning_rate": 1e-3}), "cfg.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("learning_rate") && e.contains("weight_decay") && e.contains("cfg.json"),
            "{e}"
        );
    }

    #[test]
    fn merge_overrides_and_validates() {
        let c = TrainConfig::default()
            .merged(
                &serde_json::json!({"lr": 0.01, "lr_schedule": "cosine"}),
                "x",
            )
            .unwrap();
        assert_eq!(
            (c.lr, c.lr_schedule, c.batch_size),
            (0.01, LrSchedule::Cosine, 64)
        );
        let e = TrainConfig::default()
            .merged(&serde_json::json!({"batch_size": 0}), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_size"), "{e}");
    }

    #[test]
    fn schedules() {
        let c = TrainConfig {
            lr: 1.0,
            steps: 10,
            warmup_steps: 2,
            lr_schedule: LrSchedule::Linear,
            ..TrainConfig::default()
        };
        assert_eq!(c.lr_at(1), 0.5);
        assert_eq!(c.lr_at(2), 1.0);
        assert_eq!(c.lr_at(3), 1.0);
        assert!((c.lr_at(10) - 0.125).abs() < 1e-12);
        let cos = TrainConfig {
            lr_schedule: LrSchedule::Cosine,
            ..c.clone()
        };
        assert!((cos.lr_at(7) - 0.5).abs() < 1e-12, "{}", cos.lr_at(7));
    }
}
