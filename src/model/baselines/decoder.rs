//! PerturBench's decoder-only baseline (altoslabs/perturbench,
//! `src/perturbench/modelcore/models/decoder_only.py`, `DecoderOnly`): an MLP
//! from the condition encoding alone to expression; the control cell is
//! ignored, so every cell of a condition gets the same prediction.
//!
//! ```text
//! u = [p || c]          [B, n_p + n_cov]   (use_perturbations, use_covariates; at least one)
//! y = MLP_dec(u)        [B, m]
//! y = softplus(y)       [B, m]             (softplus_output)
//! ```
//!
//! `MLP_dec` is PerturBench's block ([`super::mlp::Mlp`]) without dropout
//! (`DecoderOnly` never passes a rate, so there are no Dropout modules and
//! each hidden block takes 3 `nn.Sequential` indices: `decoder.layers.0`,
//! `decoder.layers.3`, ...). `train` changes nothing.

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::mlp::Mlp;
use super::{check_inputs, check_sizes, unknown_preset, ResponseModel};
use crate::error::{Error, Result};

/// Adam learning rate of `configs/model/decoder_only.yaml`.
pub const PAPER_LR: f64 = 6.72106935566634e-05;
/// Adam (coupled L2) weight decay of `configs/model/decoder_only.yaml`.
pub const PAPER_WD: f64 = 7.90200208844498e-09;
/// Learning rate of `experiment/neurips2024/norman19/decoder_best_params_norman19.yaml`.
pub const NORMAN19_LR: f64 = 0.00013753391233021738;
/// Weight decay of `decoder_best_params_norman19.yaml`.
pub const NORMAN19_WD: f64 = 4.417109615721373e-05;
/// Learning rate of `experiment/neurips2024/sciplex3/decoder_best_params_sciplex3.yaml`
/// (sciplex3 is Srivatsan et al. 2020).
pub const SRIVATSAN20_LR: f64 = 6.798204826057849e-05;
/// Weight decay of `decoder_best_params_sciplex3.yaml`.
pub const SRIVATSAN20_WD: f64 = 7.601981738045318e-06;

/// Hyperparameters of [`DecoderOnly`]. `Default` is the `paper` preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderOnlyConfig {
    /// Hidden layers of the decoder MLP (yaml: 3).
    pub n_layers: usize,
    /// Width of its hidden layers (yaml: 3072).
    pub encoder_width: usize,
    /// Apply softplus to the output (yaml: `true`).
    pub softplus_output: bool,
    /// Feed the covariate one-hots (yaml: `true`).
    pub use_covariates: bool,
    /// Feed the perturbation multi-hot (yaml: `true`; `false` gives
    /// PerturBench's covariate-only "decoder_cov" control).
    pub use_perturbations: bool,
}

impl Default for DecoderOnlyConfig {
    /// The `paper` preset.
    fn default() -> Self {
        DecoderOnlyConfig {
            n_layers: 3,
            encoder_width: 3072,
            softplus_output: true,
            use_covariates: true,
            use_perturbations: true,
        }
    }
}

impl DecoderOnlyConfig {
    /// Preset names, smallest first.
    pub const PRESETS: [&'static str; 5] = ["tiny", "small", "paper", "norman19", "srivatsan20"];

    /// A named preset:
    /// * `tiny`: width 64 (CPU tests); `small`: width 256 (CPU demos);
    ///   otherwise as `paper`;
    /// * `paper`: `configs/model/decoder_only.yaml` (3 layers, width 3072,
    ///   softplus, perturbations and covariates);
    /// * `norman19`: PerturBench's Norman19 best params (3 layers, width
    ///   3328, no softplus, no covariates);
    /// * `srivatsan20`: PerturBench's sciplex3 best params (5 layers, width
    ///   4352, softplus, perturbations and covariates).
    pub fn preset(name: &str) -> Result<DecoderOnlyConfig> {
        let base = DecoderOnlyConfig::default();
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "tiny" => DecoderOnlyConfig {
                encoder_width: 64,
                ..base
            },
            "small" => DecoderOnlyConfig {
                encoder_width: 256,
                ..base
            },
            "paper" => base,
            "norman19" => DecoderOnlyConfig {
                n_layers: 3,
                encoder_width: 3328,
                softplus_output: false,
                use_covariates: false,
                ..base
            },
            "srivatsan20" => DecoderOnlyConfig {
                n_layers: 5,
                encoder_width: 4352,
                ..base
            },
            other => return Err(unknown_preset("decoder-only", other, &Self::PRESETS)),
        })
    }

    /// PerturBench's Adam `(lr, weight_decay)` for a preset (`tiny` and
    /// `small` use the yaml's).
    pub fn lr_wd(name: &str) -> Result<(f64, f64)> {
        Self::preset(name)?;
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "norman19" => (NORMAN19_LR, NORMAN19_WD),
            "srivatsan20" => (SRIVATSAN20_LR, SRIVATSAN20_WD),
            _ => (PAPER_LR, PAPER_WD),
        })
    }

    /// Checks the values (at least one layer, positive width, at least one of
    /// perturbations and covariates as input).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("encoder_width", self.encoder_width),
        ] {
            if v == 0 {
                return Err(Error::invalid(
                    format!("decoder-only config '{name}'"),
                    format!("is {v}; must be at least 1"),
                ));
            }
        }
        if !(self.use_covariates || self.use_perturbations) {
            return Err(Error::invalid(
                "decoder-only config 'use_covariates'/'use_perturbations'",
                "both are false; the decoder needs perturbations, covariates or both as input",
            ));
        }
        Ok(())
    }

    /// Width of the decoder input.
    fn input_dim(&self, n_perts: usize, n_covs: usize) -> usize {
        (if self.use_perturbations { n_perts } else { 0 })
            + (if self.use_covariates { n_covs } else { 0 })
    }

    /// Forward FLOPs per cell: 2 x the multiply-accumulates of the decoder's
    /// Linear layers.
    pub fn flops_per_cell(&self, n_genes: usize, n_perts: usize, n_covs: usize) -> f64 {
        Mlp::flops(
            self.input_dim(n_perts, n_covs),
            self.encoder_width,
            n_genes,
            self.n_layers,
        )
    }
}

/// The decoder-only baseline (see the module docs).
#[derive(Debug)]
pub struct DecoderOnly {
    config: DecoderOnlyConfig,
    n_genes: usize,
    n_perts: usize,
    n_covs: usize,
    decoder: Mlp,
}

impl DecoderOnly {
    /// Builds the model under `p` for `n_genes` genes, a perturbation
    /// vocabulary of `n_perts` and `n_covs` covariate one-hot columns.
    pub fn new(
        p: &nn::Path,
        cfg: &DecoderOnlyConfig,
        n_genes: usize,
        n_perts: usize,
        n_covs: usize,
    ) -> Result<DecoderOnly> {
        cfg.validate()?;
        check_sizes("decoder-only", n_genes, n_perts, n_covs)?;
        let d_in = cfg.input_dim(n_perts, n_covs);
        if d_in == 0 {
            return Err(Error::invalid(
                "decoder-only sizes",
                format!("use_perturbations is false and n_covs is 0 (n_perts {n_perts}): the decoder has no input"),
            ));
        }
        Ok(DecoderOnly {
            decoder: Mlp::new(
                &(p / "decoder"),
                d_in,
                cfg.encoder_width,
                n_genes,
                cfg.n_layers,
                None,
            )?,
            config: cfg.clone(),
            n_genes,
            n_perts,
            n_covs,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &DecoderOnlyConfig {
        &self.config
    }

    /// `(n_genes, n_perts, n_covs)` it was built for.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.n_genes, self.n_perts, self.n_covs)
    }
}

impl ResponseModel for DecoderOnly {
    fn predict(
        &self,
        control: &Tensor,
        perts: &Tensor,
        covs: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        check_inputs(
            "decoder-only",
            control,
            perts,
            covs,
            self.n_genes,
            self.n_perts,
            self.n_covs,
        )?;
        let cfg = &self.config;
        let mut parts: Vec<&Tensor> = Vec::with_capacity(2);
        if cfg.use_perturbations {
            parts.push(perts);
        }
        if cfg.use_covariates {
            parts.push(covs);
        }
        let u = Tensor::f_cat(&parts, 1)?; // [B, n_p + n_cov]
        let y = self.decoder.forward(&u, train)?; // [B, m]
        if cfg.softplus_output {
            return Ok(y.f_softplus()?);
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::baselines::test_support::{fit_shift, inputs, lock, n_params};
    use tch::nn::VarStore;
    use tch::Device;

    fn build(cfg: &DecoderOnlyConfig, m: usize, n_p: usize, n_c: usize) -> (VarStore, DecoderOnly) {
        let vs = VarStore::new(Device::Cpu);
        let net = DecoderOnly::new(&vs.root(), cfg, m, n_p, n_c).unwrap();
        (vs, net)
    }

    #[test]
    fn output_shape_and_parameter_names() {
        let _rng = lock();
        tch::manual_seed(0);
        let (vs, net) = build(&DecoderOnlyConfig::preset("tiny").unwrap(), 9, 4, 2);
        let (x, p, c) = inputs(5, 9, 4, 2);
        assert_eq!(net.predict(&x, &p, &c, false).unwrap().size(), [5, 9]);
        let mut names: Vec<(String, Vec<i64>)> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .filter(|(k, _)| k.ends_with("weight"))
            .collect();
        names.sort();
        // No Dropout modules: Linear at 0, 3, 6, output Linear at 9.
        assert_eq!(
            names,
            [
                ("decoder.layers.0.weight".to_string(), vec![64, 6]),
                ("decoder.layers.3.weight".to_string(), vec![64, 64]),
                ("decoder.layers.6.weight".to_string(), vec![64, 64]),
                ("decoder.layers.9.weight".to_string(), vec![9, 64]),
            ]
        );
    }

    /// Hand count at the paper sizes (n_genes 2000, n_perts 105, n_covs 1;
    /// width 3072, 3 hidden layers): Linear(106, 3072) 328,704 + 2 x
    /// Linear(3072, 3072) 18,880,512 + Linear(3072, 2000) 6,146,000 =
    /// 25,355,216. Norman19 best params (width 3328, no covariates):
    /// (105*3328 + 3328) + 2*(3328*3328 + 3328) + (3328*2000 + 2000) =
    /// 29,168,592.
    #[test]
    fn parameter_count_matches_perturbench() {
        let _rng = lock();
        let (vs, _) = build(&DecoderOnlyConfig::preset("paper").unwrap(), 2000, 105, 1);
        assert_eq!(n_params(&vs), 25_355_216);
        let (vs, _) = build(
            &DecoderOnlyConfig::preset("norman19").unwrap(),
            2000,
            105,
            1,
        );
        assert_eq!(n_params(&vs), 29_168_592);
    }

    #[test]
    fn ignores_the_control_input() {
        let _rng = lock();
        tch::manual_seed(1);
        let (_vs, net) = build(&DecoderOnlyConfig::preset("tiny").unwrap(), 7, 3, 2);
        let (x, p, c) = inputs(6, 7, 3, 2);
        let a = net.predict(&x, &p, &c, false).unwrap();
        let b = net.predict(&(x * 5.0 - 3.0), &p, &c, false).unwrap();
        assert!(a.equal(&b));
    }

    #[test]
    fn softplus_output_is_non_negative() {
        let _rng = lock();
        tch::manual_seed(2);
        let (_vs, net) = build(&DecoderOnlyConfig::preset("tiny").unwrap(), 11, 4, 3);
        let (x, p, c) = inputs(64, 11, 4, 3);
        let y = net.predict(&x, &(p * 10.0), &c, false).unwrap();
        assert!(f64::try_from(y.min()).unwrap() >= 0.0);
    }

    #[test]
    fn eval_forward_is_deterministic() {
        let _rng = lock();
        tch::manual_seed(3);
        let (_vs, net) = build(&DecoderOnlyConfig::preset("tiny").unwrap(), 6, 3, 2);
        let (x, p, c) = inputs(8, 6, 3, 2);
        let a = net.predict(&x, &p, &c, false).unwrap();
        let b = net.predict(&x, &p, &c, false).unwrap();
        assert!(a.equal(&b));
    }

    /// Controls are a per-covariate profile plus noise, so the target
    /// `profile_c + sum_k p_k d_k` is a function of the condition, which the
    /// decoder sees: Adam (300 steps, tiny preset) brings the held-out MSE
    /// down towards the noise floor 0.01.
    #[test]
    fn adam_learns_an_additive_shift() {
        let _rng = lock();
        tch::manual_seed(4);
        let (vs, net) = build(&DecoderOnlyConfig::preset("tiny").unwrap(), 8, 4, 2);
        let (before, after) = fit_shift(&vs, &net, 8, 4, 2, 300);
        println!("decoder-only shift fit: MSE {before:.4} -> {after:.6}");
        assert!(after < 0.05 && after < before / 10.0, "{before} -> {after}");
    }

    #[test]
    fn presets_validation_and_serde() {
        let _rng = lock();
        let e = DecoderOnlyConfig::preset("huge").unwrap_err().to_string();
        assert!(
            e.contains("huge") && e.contains("small") && e.contains("paper"),
            "{e}"
        );
        for name in DecoderOnlyConfig::PRESETS {
            DecoderOnlyConfig::preset(name).unwrap().validate().unwrap();
        }
        assert_eq!(
            DecoderOnlyConfig::lr_wd("paper").unwrap(),
            (PAPER_LR, PAPER_WD)
        );
        let bad = DecoderOnlyConfig {
            use_covariates: false,
            use_perturbations: false,
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("use_covariates") && e.contains("use_perturbations"),
            "{e}"
        );
        let bad = DecoderOnlyConfig {
            encoder_width: 0,
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("encoder_width") && e.contains("is 0"), "{e}");
        // Covariates only, but no covariate columns: no input at all.
        let cfg = DecoderOnlyConfig {
            use_perturbations: false,
            ..DecoderOnlyConfig::preset("tiny").unwrap()
        };
        let vs = VarStore::new(Device::Cpu);
        let e = DecoderOnly::new(&vs.root(), &cfg, 5, 3, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_covs is 0"), "{e}");
        let e = serde_json::from_str::<DecoderOnlyConfig>(r#"{"dropout": 0.1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dropout"), "{e}");
    }
}
