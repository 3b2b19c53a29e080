//! PerturBench's latent additive baseline (altoslabs/perturbench,
//! `src/perturbench/modelcore/models/latent_additive.py`, `LatentAdditive`):
//! the control cell and the perturbation are encoded to one latent space,
//! added there, and decoded.
//!
//! ```text
//! z_x = MLP_gene([x || c])          [B, latent]   (inject_covariates_encoder; else MLP_gene(x))
//! z_p = MLP_pert(p)                 [B, latent]
//! z   = z_x + z_p                   [B, latent]
//! y   = MLP_dec([z || c])           [B, m]        (inject_covariates_decoder; else MLP_dec(z))
//! y   = softplus(y)                 [B, m]        (softplus_output)
//! ```
//!
//! Each `MLP` is PerturBench's block ([`super::mlp::Mlp`]: `n_layers` hidden
//! layers of width `encoder_width`, each Linear, LayerNorm without affine,
//! ReLU and Dropout when `dropout` is set). Parameters read like the state
//! dict: `gene_encoder.layers.0.weight`, `pert_encoder.layers.*`,
//! `decoder.layers.*`. Not implemented: `sparse_additive_mechanism` (off in
//! every shipped config) and embedding inputs (`embedding_key: null`).

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::mlp::Mlp;
use super::{check_dropout, check_inputs, check_sizes, unknown_preset, ResponseModel};
use crate::error::{Error, Result};

/// Adam learning rate of `configs/model/latent_additive.yaml`.
pub const PAPER_LR: f64 = 6.72106935566634e-05;
/// Adam (coupled L2) weight decay of `configs/model/latent_additive.yaml`.
pub const PAPER_WD: f64 = 7.90200208844498e-09;
/// Learning rate of `experiment/neurips2024/norman19/latent_best_params_norman19.yaml`.
pub const NORMAN19_LR: f64 = 6.779597503293815e-05;
/// Weight decay of `latent_best_params_norman19.yaml`.
pub const NORMAN19_WD: f64 = 1.0406767176550133e-08;
/// Learning rate of `experiment/neurips2024/sciplex3/latent_best_params_sciplex3.yaml`
/// (sciplex3 is Srivatsan et al. 2020).
pub const SRIVATSAN20_LR: f64 = 0.0013195915995113784;
/// Weight decay of `latent_best_params_sciplex3.yaml`.
pub const SRIVATSAN20_WD: f64 = 9.371223651937301e-07;

/// Hyperparameters of [`LatentAdditive`]. `Default` is the `paper` preset
/// (the yaml; the Python class's own defaults, 2 layers of 128, latent 32,
/// no dropout, no covariates, are not used by any shipped config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentAdditiveConfig {
    /// Hidden layers per MLP (yaml: 3).
    pub n_layers: usize,
    /// Width of every hidden layer of the three MLPs (yaml: 3072).
    pub encoder_width: usize,
    /// Width of the shared latent space (yaml: 160).
    pub latent_dim: usize,
    /// Dropout rate after each hidden ReLU, or `None` (JSON `null`) for no
    /// Dropout modules (yaml: 0.1).
    pub dropout: Option<f64>,
    /// Apply softplus to the output (yaml: `true`).
    pub softplus_output: bool,
    /// Concatenate the covariate one-hots to the control expression (yaml: `true`).
    pub inject_covariates_encoder: bool,
    /// Concatenate the covariate one-hots to the latent sum (yaml: `true`).
    pub inject_covariates_decoder: bool,
}

impl Default for LatentAdditiveConfig {
    /// The `paper` preset.
    fn default() -> Self {
        LatentAdditiveConfig {
            n_layers: 3,
            encoder_width: 3072,
            latent_dim: 160,
            dropout: Some(0.1),
            softplus_output: true,
            inject_covariates_encoder: true,
            inject_covariates_decoder: true,
        }
    }
}

impl LatentAdditiveConfig {
    /// Preset names, smallest first.
    pub const PRESETS: [&'static str; 5] = ["tiny", "small", "paper", "norman19", "srivatsan20"];

    /// A named preset:
    /// * `tiny`: width 64, latent 16 (CPU tests); `small`: width 256,
    ///   latent 32 (CPU demos); otherwise as `paper`;
    /// * `paper`: `configs/model/latent_additive.yaml` (3 layers, width 3072,
    ///   latent 160, dropout 0.1, softplus, covariates in encoder and decoder);
    /// * `norman19`: PerturBench's Norman19 best params (1 layer, width 5376,
    ///   latent 64, dropout 0.1, no covariate injection);
    /// * `srivatsan20`: PerturBench's sciplex3 best params (1 layer, width
    ///   3328, latent 64, dropout 0.6, covariates in encoder and decoder).
    pub fn preset(name: &str) -> Result<LatentAdditiveConfig> {
        let base = LatentAdditiveConfig::default();
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "tiny" => LatentAdditiveConfig {
                encoder_width: 64,
                latent_dim: 16,
                ..base
            },
            "small" => LatentAdditiveConfig {
                encoder_width: 256,
                latent_dim: 32,
                ..base
            },
            "paper" => base,
            "norman19" => LatentAdditiveConfig {
                n_layers: 1,
                encoder_width: 5376,
                latent_dim: 64,
                dropout: Some(0.1),
                inject_covariates_encoder: false,
                inject_covariates_decoder: false,
                ..base
            },
            "srivatsan20" => LatentAdditiveConfig {
                n_layers: 1,
                encoder_width: 3328,
                latent_dim: 64,
                dropout: Some(0.6),
                ..base
            },
            other => return Err(unknown_preset("latent additive", other, &Self::PRESETS)),
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

    /// Checks the values (at least one layer, positive widths, dropout in
    /// `[0, 1)`).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("encoder_width", self.encoder_width),
            ("latent_dim", self.latent_dim),
        ] {
            if v == 0 {
                return Err(Error::invalid(
                    format!("latent additive config '{name}'"),
                    format!("is {v}; must be at least 1"),
                ));
            }
        }
        check_dropout("latent additive config 'dropout'", self.dropout)
    }

    /// Input widths `(gene encoder, decoder)` for `n_genes` genes and
    /// `n_covs` covariate columns.
    fn input_dims(&self, n_genes: usize, n_covs: usize) -> (usize, usize) {
        let cov = |on: bool| if on { n_covs } else { 0 };
        (
            n_genes + cov(self.inject_covariates_encoder),
            self.latent_dim + cov(self.inject_covariates_decoder),
        )
    }

    /// Forward FLOPs per cell: 2 x the multiply-accumulates of the three
    /// MLPs' Linear layers.
    pub fn flops_per_cell(&self, n_genes: usize, n_perts: usize, n_covs: usize) -> f64 {
        let (enc_in, dec_in) = self.input_dims(n_genes, n_covs);
        let (w, l, n) = (self.encoder_width, self.latent_dim, self.n_layers);
        Mlp::flops(enc_in, w, l, n)
            + Mlp::flops(n_perts, w, l, n)
            + Mlp::flops(dec_in, w, n_genes, n)
    }
}

/// The latent additive baseline (see the module docs).
#[derive(Debug)]
pub struct LatentAdditive {
    config: LatentAdditiveConfig,
    n_genes: usize,
    n_perts: usize,
    n_covs: usize,
    gene_encoder: Mlp,
    pert_encoder: Mlp,
    decoder: Mlp,
}

impl LatentAdditive {
    /// Builds the model under `p` for `n_genes` genes, a perturbation
    /// vocabulary of `n_perts` and `n_covs` covariate one-hot columns.
    pub fn new(
        p: &nn::Path,
        cfg: &LatentAdditiveConfig,
        n_genes: usize,
        n_perts: usize,
        n_covs: usize,
    ) -> Result<LatentAdditive> {
        cfg.validate()?;
        check_sizes("latent additive", n_genes, n_perts, n_covs)?;
        let (enc_in, dec_in) = cfg.input_dims(n_genes, n_covs);
        let (w, l, n, d) = (cfg.encoder_width, cfg.latent_dim, cfg.n_layers, cfg.dropout);
        // Created in PerturBench's order (gene encoder, decoder, perturbation
        // encoder) so a seeded init draws the same way.
        let gene_encoder = Mlp::new(&(p / "gene_encoder"), enc_in, w, l, n, d)?;
        let decoder = Mlp::new(&(p / "decoder"), dec_in, w, n_genes, n, d)?;
        let pert_encoder = Mlp::new(&(p / "pert_encoder"), n_perts, w, l, n, d)?;
        Ok(LatentAdditive {
            config: cfg.clone(),
            n_genes,
            n_perts,
            n_covs,
            gene_encoder,
            pert_encoder,
            decoder,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &LatentAdditiveConfig {
        &self.config
    }

    /// `(n_genes, n_perts, n_covs)` it was built for.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.n_genes, self.n_perts, self.n_covs)
    }
}

impl ResponseModel for LatentAdditive {
    fn predict(
        &self,
        control: &Tensor,
        perts: &Tensor,
        covs: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        check_inputs(
            "latent additive",
            control,
            perts,
            covs,
            self.n_genes,
            self.n_perts,
            self.n_covs,
        )?;
        let cfg = &self.config;
        let enc_in = if cfg.inject_covariates_encoder {
            Tensor::f_cat(&[control, covs], 1)? // [B, m + n_cov]
        } else {
            control.shallow_clone() // [B, m]
        };
        let z_x = self.gene_encoder.forward(&enc_in, train)?; // [B, latent]
        let z_p = self.pert_encoder.forward(perts, train)?; // [B, latent]
        let z = z_x.f_add(&z_p)?; // [B, latent]
        let dec_in = if cfg.inject_covariates_decoder {
            Tensor::f_cat(&[&z, covs], 1)? // [B, latent + n_cov]
        } else {
            z
        };
        let y = self.decoder.forward(&dec_in, train)?; // [B, m]
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

    fn build(
        cfg: &LatentAdditiveConfig,
        m: usize,
        n_p: usize,
        n_c: usize,
    ) -> (VarStore, LatentAdditive) {
        let vs = VarStore::new(Device::Cpu);
        let net = LatentAdditive::new(&vs.root(), cfg, m, n_p, n_c).unwrap();
        (vs, net)
    }

    #[test]
    fn output_shape_and_parameter_names() {
        let _rng = lock();
        tch::manual_seed(0);
        let (vs, net) = build(&LatentAdditiveConfig::preset("tiny").unwrap(), 9, 4, 2);
        let (x, p, c) = inputs(5, 9, 4, 2);
        assert_eq!(net.predict(&x, &p, &c, false).unwrap().size(), [5, 9]);
        assert_eq!(net.predict(&x, &p, &c, true).unwrap().size(), [5, 9]);
        let vars = vs.variables();
        // n_layers 3 with dropout: Linear at 0, 4, 8, output Linear at 12.
        for (name, shape) in [
            ("gene_encoder.layers.0.weight", vec![64, 11]),
            ("gene_encoder.layers.12.weight", vec![16, 64]),
            ("pert_encoder.layers.0.weight", vec![64, 4]),
            ("pert_encoder.layers.8.bias", vec![64]),
            ("decoder.layers.0.weight", vec![64, 18]),
            ("decoder.layers.12.weight", vec![9, 64]),
        ] {
            assert_eq!(vars.get(name).map(|t| t.size()), Some(shape), "{name}");
        }
        assert_eq!(vars.len(), 3 * 4 * 2);
    }

    /// Hand count at the paper sizes (n_genes 2000, n_perts 105, n_covs 1;
    /// width 3072, latent 160, 3 hidden layers; LayerNorm has no parameters):
    /// * gene_encoder: Linear(2001, 3072) 6,150,144 + 2 x Linear(3072, 3072)
    ///   18,880,512 + Linear(3072, 160) 491,680 = 25,522,336;
    /// * pert_encoder: Linear(105, 3072) 325,632 + 18,880,512 + 491,680 =
    ///   19,697,824;
    /// * decoder: Linear(161, 3072) 497,664 + 18,880,512 + Linear(3072, 2000)
    ///   6,146,000 = 25,524,176;
    ///
    /// total 70,744,336. Norman19 best params (1 layer, width 5376, latent
    /// 64, no covariates): (2000*5376 + 5376 + 5376*64 + 64) + (105*5376 +
    /// 5376 + 5376*64 + 64) + (64*5376 + 5376 + 5376*2000 + 2000) =
    /// 23,118,928.
    #[test]
    fn parameter_count_matches_perturbench() {
        let _rng = lock();
        let (vs, _) = build(
            &LatentAdditiveConfig::preset("paper").unwrap(),
            2000,
            105,
            1,
        );
        assert_eq!(n_params(&vs), 70_744_336);
        let (vs, _) = build(
            &LatentAdditiveConfig::preset("norman19").unwrap(),
            2000,
            105,
            1,
        );
        assert_eq!(n_params(&vs), 23_118_928);
    }

    #[test]
    fn softplus_output_is_non_negative() {
        let _rng = lock();
        tch::manual_seed(2);
        let (_vs, net) = build(&LatentAdditiveConfig::preset("tiny").unwrap(), 11, 4, 3);
        let (x, p, c) = inputs(64, 11, 4, 3);
        let y = net.predict(&(x * -10.0), &p, &c, false).unwrap();
        assert!(f64::try_from(y.min()).unwrap() >= 0.0);
    }

    /// `train = false` is deterministic; `train = true` applies dropout, so
    /// two training forwards differ.
    #[test]
    fn eval_forward_is_deterministic_and_train_uses_dropout() {
        let _rng = lock();
        tch::manual_seed(3);
        let (_vs, net) = build(&LatentAdditiveConfig::preset("tiny").unwrap(), 6, 3, 2);
        let (x, p, c) = inputs(8, 6, 3, 2);
        let a = net.predict(&x, &p, &c, false).unwrap();
        let b = net.predict(&x, &p, &c, false).unwrap();
        assert!(a.equal(&b));
        let t1 = net.predict(&x, &p, &c, true).unwrap();
        let t2 = net.predict(&x, &p, &c, true).unwrap();
        assert!(!t1.equal(&t2));
    }

    /// Learns `y = x + sum_k p_k d_k` through the latent bottleneck: Adam
    /// (300 steps, tiny preset) cuts the held-out MSE by well over 10x.
    #[test]
    fn adam_learns_an_additive_shift() {
        let _rng = lock();
        tch::manual_seed(4);
        let (vs, net) = build(&LatentAdditiveConfig::preset("tiny").unwrap(), 8, 4, 2);
        let (before, after) = fit_shift(&vs, &net, 8, 4, 2, 300);
        println!("latent additive shift fit: MSE {before:.4} -> {after:.6}");
        assert!(after < 0.05 && after < before / 10.0, "{before} -> {after}");
    }

    #[test]
    fn presets_validation_and_serde() {
        let _rng = lock();
        let e = LatentAdditiveConfig::preset("huge")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("huge") && e.contains("tiny") && e.contains("srivatsan20"),
            "{e}"
        );
        for name in LatentAdditiveConfig::PRESETS {
            LatentAdditiveConfig::preset(name)
                .unwrap()
                .validate()
                .unwrap();
        }
        assert_eq!(
            LatentAdditiveConfig::lr_wd("srivatsan20").unwrap(),
            (SRIVATSAN20_LR, SRIVATSAN20_WD)
        );
        let bad = LatentAdditiveConfig {
            latent_dim: 0,
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("latent_dim") && e.contains('0'), "{e}");
        let bad = LatentAdditiveConfig {
            dropout: Some(1.5),
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("dropout") && e.contains("1.5"), "{e}");
        let vs = VarStore::new(Device::Cpu);
        let e = LatentAdditive::new(&vs.root(), &LatentAdditiveConfig::default(), 5, 0, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_genes 5") && e.contains("n_perts 0"), "{e}");
        let cfg: LatentAdditiveConfig =
            serde_json::from_str(r#"{"dropout": null, "n_layers": 1}"#).unwrap();
        assert_eq!(cfg.dropout, None);
        assert_eq!(cfg.encoder_width, 3072);
        let e =
            serde_json::from_str::<LatentAdditiveConfig>(r#"{"sparse_additive_mechanism": true}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("sparse_additive_mechanism"), "{e}");
    }
}
