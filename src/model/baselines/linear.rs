//! PerturBench's linear additive baseline (altoslabs/perturbench,
//! `src/perturbench/modelcore/models/linear_additive.py`, `LinearAdditive`):
//! the perturbation (and optionally covariate) encoding shifts the control
//! cell linearly.
//!
//! ```text
//! u = [p || c]            [B, n_p + n_cov]   (inject_covariates; else u = p)
//! y = x + W u + b         [B, m]             W [m, n_p (+ n_cov)]: `fc_pert`
//! y = softplus(y)         [B, m]             (softplus_output)
//! ```
//!
//! One parameter tensor pair, `fc_pert.weight` and `fc_pert.bias`, named as in
//! PerturBench's state dict. No dropout: `train` changes nothing.

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::mlp::Linear;
use super::{check_inputs, check_sizes, unknown_preset, ResponseModel};
use crate::error::Result;

/// Adam learning rate of `configs/model/linear_additive.yaml`.
pub const PAPER_LR: f64 = 1e-3;
/// Adam (coupled L2) weight decay of `configs/model/linear_additive.yaml`.
pub const PAPER_WD: f64 = 1e-4;
/// Learning rate of `experiment/neurips2024/norman19/linear_best_params_norman19.yaml`.
pub const NORMAN19_LR: f64 = 0.004716813309487752;
/// Weight decay of `linear_best_params_norman19.yaml`.
pub const NORMAN19_WD: f64 = 1.7588044643755207e-08;
/// Learning rate of `experiment/neurips2024/sciplex3/linear_best_params_sciplex3.yaml`
/// (sciplex3 is Srivatsan et al. 2020).
pub const SRIVATSAN20_LR: f64 = 0.0007787610860511324;
/// Weight decay of `linear_best_params_sciplex3.yaml`.
pub const SRIVATSAN20_WD: f64 = 1.0632418512521614e-08;

/// Hyperparameters of [`LinearAdditive`]. `Default` is the `paper` preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearAdditiveConfig {
    /// Concatenate the covariate one-hots to the perturbation encoding
    /// (yaml: `true`; Norman19 best params: `false`).
    pub inject_covariates: bool,
    /// Apply softplus to the output, keeping it non-negative (`true`).
    pub softplus_output: bool,
}

impl Default for LinearAdditiveConfig {
    /// The `paper` preset.
    fn default() -> Self {
        LinearAdditiveConfig {
            inject_covariates: true,
            softplus_output: true,
        }
    }
}

impl LinearAdditiveConfig {
    /// Preset names.
    pub const PRESETS: [&'static str; 5] = ["tiny", "small", "paper", "norman19", "srivatsan20"];

    /// A named preset:
    /// * `paper`: `configs/model/linear_additive.yaml` (inject_covariates
    ///   true, softplus true);
    /// * `tiny`, `small`: the same (the model has no width to shrink);
    /// * `norman19`: PerturBench's Norman19 best params (inject_covariates
    ///   false);
    /// * `srivatsan20`: PerturBench's sciplex3 best params (= `paper`).
    pub fn preset(name: &str) -> Result<LinearAdditiveConfig> {
        let base = LinearAdditiveConfig::default();
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "tiny" | "small" | "paper" | "srivatsan20" => base,
            "norman19" => LinearAdditiveConfig {
                inject_covariates: false,
                ..base
            },
            other => return Err(unknown_preset("linear additive", other, &Self::PRESETS)),
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

    /// Checks the values (every combination of the two switches is valid).
    pub fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Width of the linear layer's input.
    fn input_dim(&self, n_perts: usize, n_covs: usize) -> usize {
        n_perts + if self.inject_covariates { n_covs } else { 0 }
    }

    /// Forward FLOPs per cell: `2 m (n_p [+ n_cov])` for the linear layer.
    pub fn flops_per_cell(&self, n_genes: usize, n_perts: usize, n_covs: usize) -> f64 {
        2.0 * n_genes as f64 * self.input_dim(n_perts, n_covs) as f64
    }
}

/// The linear additive baseline (see the module docs).
#[derive(Debug)]
pub struct LinearAdditive {
    config: LinearAdditiveConfig,
    n_genes: usize,
    n_perts: usize,
    n_covs: usize,
    fc_pert: Linear,
}

impl LinearAdditive {
    /// Builds the model under `p` for `n_genes` genes, a perturbation
    /// vocabulary of `n_perts` and `n_covs` covariate one-hot columns.
    pub fn new(
        p: &nn::Path,
        cfg: &LinearAdditiveConfig,
        n_genes: usize,
        n_perts: usize,
        n_covs: usize,
    ) -> Result<LinearAdditive> {
        cfg.validate()?;
        check_sizes("linear additive", n_genes, n_perts, n_covs)?;
        Ok(LinearAdditive {
            fc_pert: Linear::new(&(p / "fc_pert"), cfg.input_dim(n_perts, n_covs), n_genes)?,
            config: cfg.clone(),
            n_genes,
            n_perts,
            n_covs,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &LinearAdditiveConfig {
        &self.config
    }

    /// `(n_genes, n_perts, n_covs)` it was built for.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.n_genes, self.n_perts, self.n_covs)
    }
}

impl ResponseModel for LinearAdditive {
    fn predict(
        &self,
        control: &Tensor,
        perts: &Tensor,
        covs: &Tensor,
        _train: bool,
    ) -> Result<Tensor> {
        check_inputs(
            "linear additive",
            control,
            perts,
            covs,
            self.n_genes,
            self.n_perts,
            self.n_covs,
        )?;
        let u = if self.config.inject_covariates {
            Tensor::f_cat(&[perts, covs], 1)? // [B, n_p + n_cov]
        } else {
            perts.shallow_clone() // [B, n_p]
        };
        let y = control.f_add(&self.fc_pert.forward(&u)?)?; // [B, m]
        if self.config.softplus_output {
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
        cfg: &LinearAdditiveConfig,
        m: usize,
        n_p: usize,
        n_c: usize,
    ) -> (VarStore, LinearAdditive) {
        let vs = VarStore::new(Device::Cpu);
        let net = LinearAdditive::new(&vs.root(), cfg, m, n_p, n_c).unwrap();
        (vs, net)
    }

    #[test]
    fn output_shape_and_parameter_names() {
        let _rng = lock();
        tch::manual_seed(0);
        let (vs, net) = build(&LinearAdditiveConfig::default(), 9, 4, 2);
        let (x, p, c) = inputs(5, 9, 4, 2);
        assert_eq!(net.predict(&x, &p, &c, false).unwrap().size(), [5, 9]);
        let mut names: Vec<(String, Vec<i64>)> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("fc_pert.bias".to_string(), vec![9]),
                ("fc_pert.weight".to_string(), vec![9, 6])
            ]
        );
    }

    /// Hand count at the paper sizes (n_genes 2000, n_perts 105, n_covs 1):
    /// `nn.Linear(105 + 1, 2000)` has 2000 * 106 + 2000 = 214,000 parameters;
    /// without covariates `nn.Linear(105, 2000)` has 212,000.
    #[test]
    fn parameter_count_matches_perturbench() {
        let _rng = lock();
        let (vs, _) = build(
            &LinearAdditiveConfig::preset("paper").unwrap(),
            2000,
            105,
            1,
        );
        assert_eq!(n_params(&vs), 214_000);
        let (vs, _) = build(
            &LinearAdditiveConfig::preset("norman19").unwrap(),
            2000,
            105,
            1,
        );
        assert_eq!(n_params(&vs), 212_000);
    }

    #[test]
    fn zero_weights_return_softplus_of_control() {
        let _rng = lock();
        tch::manual_seed(1);
        for softplus in [true, false] {
            let cfg = LinearAdditiveConfig {
                softplus_output: softplus,
                ..Default::default()
            };
            let (_vs, mut net) = build(&cfg, 7, 3, 2);
            tch::no_grad(|| {
                let _ = net.fc_pert.weight.zero_();
                let _ = net.fc_pert.bias.zero_();
            });
            let (x, p, c) = inputs(4, 7, 3, 2);
            let x = x - 1.0; // some negative entries, where softplus matters
            let y = net.predict(&x, &p, &c, false).unwrap();
            let want = if softplus { x.softplus() } else { x };
            assert!(y.allclose(&want, 1e-6, 1e-7, false));
        }
    }

    #[test]
    fn softplus_output_is_non_negative() {
        let _rng = lock();
        tch::manual_seed(2);
        let (_vs, net) = build(&LinearAdditiveConfig::default(), 11, 4, 3);
        let (x, p, c) = inputs(64, 11, 4, 3);
        let y = net.predict(&(x * -10.0), &p, &c, false).unwrap();
        assert!(f64::try_from(y.min()).unwrap() >= 0.0);
    }

    #[test]
    fn eval_forward_is_deterministic() {
        let _rng = lock();
        tch::manual_seed(3);
        let (_vs, net) = build(&LinearAdditiveConfig::default(), 6, 3, 2);
        let (x, p, c) = inputs(8, 6, 3, 2);
        let a = net.predict(&x, &p, &c, false).unwrap();
        let b = net.predict(&x, &p, &c, false).unwrap();
        assert!(a.equal(&b));
    }

    /// Learns `y = x + sum_k p_k d_k` (combinations included) without the
    /// softplus, where the task is exactly representable: Adam drives the
    /// held-out MSE from O(1) to near zero, so gradients reach `fc_pert`.
    #[test]
    fn adam_learns_an_additive_shift() {
        let _rng = lock();
        tch::manual_seed(4);
        let cfg = LinearAdditiveConfig {
            softplus_output: false,
            ..Default::default()
        };
        let (vs, net) = build(&cfg, 8, 4, 2);
        let (before, after) = fit_shift(&vs, &net, 8, 4, 2, 300);
        println!("linear additive shift fit: MSE {before:.4} -> {after:.6}");
        assert!(
            after < 1e-3 && after < before / 100.0,
            "{before} -> {after}"
        );
    }

    #[test]
    fn presets_sizes_and_serde() {
        let _rng = lock();
        let e = LinearAdditiveConfig::preset("huge")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("huge") && e.contains("paper") && e.contains("norman19"),
            "{e}"
        );
        assert_eq!(
            LinearAdditiveConfig::lr_wd("norman19").unwrap(),
            (NORMAN19_LR, NORMAN19_WD)
        );
        assert_eq!(
            LinearAdditiveConfig::lr_wd("tiny").unwrap(),
            (PAPER_LR, PAPER_WD)
        );
        let vs = VarStore::new(Device::Cpu);
        let e = LinearAdditive::new(&vs.root(), &LinearAdditiveConfig::default(), 0, 3, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_genes 0") && e.contains("n_perts 3"), "{e}");
        let cfg: LinearAdditiveConfig =
            serde_json::from_str(r#"{"inject_covariates": false}"#).unwrap();
        assert!(!cfg.inject_covariates && cfg.softplus_output);
        let e = serde_json::from_str::<LinearAdditiveConfig>(r#"{"width": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("width"), "{e}");
    }
}
