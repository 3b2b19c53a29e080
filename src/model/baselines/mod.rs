//! PerturBench's three simple baselines (model.md, "Ablations and
//! baselines"), written after altoslabs/perturbench
//! `src/perturbench/modelcore/models/{linear_additive,latent_additive,decoder_only}.py`
//! with the hyperparameters of `src/perturbench/configs/model/*.yaml` and
//! `configs/experiment/neurips2024/{norman19,sciplex3}/*_best_params_*.yaml`.
//! They predict a perturbed cell from a control cell (or, for the decoder,
//! from the condition alone) and are trained by mean squared error; they are
//! how users judge whether a generative model learned anything.
//!
//! Shapes: `x` `[B, m]` control expression (log1p), `p` `[B, n_p]`
//! multi-hot perturbations, `c` `[B, n_cov]` concatenated one-hot covariate
//! blocks, output `[B, m]`; `MLP` is PerturBench's block ([`mlp::Mlp`]).
//!
//! ```text
//! LinearAdditive   y = softplus(x + W [p || c] + b)                  linear.rs
//! LatentAdditive   z = MLP_gene([x || c]) + MLP_pert(p)     [B, latent]
//!                  y = softplus(MLP_dec([z || c]))                   latent.rs
//! DecoderOnly      y = softplus(MLP_dec([p || c]))   (x unused)      decoder.rs
//! ```
//!
//! (covariate injection and the softplus are config switches.)
//!
//! # How PerturBench pairs cells for training
//! (`data/modules.py`, `data/datasets/singlecell.py`, `data/collate.py`,
//! `data/utils.py`; both the norman19 and sciplex3 data configs set
//! `add_controls: True`.)
//! * The splitter puts `train_control_fraction` (0.5) of each covariate's
//!   control cells in train and splits the rest equally between val and test.
//! * `SingleCellPerturbationWithControls.from_anndata` splits each split's
//!   cells into perturbed cells, which ARE the training examples, and control
//!   cells, which are NOT: they only form a per-covariate pool
//!   (`build_control_dict`, keyed by the full covariate combination).
//!   Perturbation and covariate vocabularies come from the perturbed cells.
//! * Each time a perturbed cell is fetched (every epoch, `_get_batch`), its
//!   `control_expression` is one control cell drawn uniformly at random
//!   (`np.random.choice`, independently per cell, so with replacement) from
//!   that pool for the cell's own covariate values, from the same split.
//!   No optimal transport, no fixed pairing: a fresh random partner per
//!   epoch. The loss is `MSE(model(control, perts, covs), perturbed)`.
//! * Batches come from a `BatchSampler` over a `RandomSampler` (shuffled,
//!   `drop_last=False`), `batch_size` 4000; the optimizer is `torch.optim.Adam`
//!   with coupled L2 `weight_decay` (not AdamW) and `ReduceLROnPlateau`
//!   (factor 0.2, patience 15) on `val_loss`; early stopping patience 50 on
//!   `val_loss`; best-params runs use 5..500 epochs and seed 245.
//!
//! # How PerturBench produces cells for evaluation
//! (`data/datasets/population.py` `Counterfactual` /
//! `CounterfactualWithReference`, `modelcore/predict.py`,
//! `modelcore/models/base.py` `test_step`.) For each covariate combination,
//! up to `max_control_cells_per_covariate` = 1000 control cells of the
//! evaluated split are sampled once (`random.sample`, seeded, without
//! replacement). For every (perturbation, covariates) condition to predict,
//! each of those control cells is mapped through the model with the target
//! perturbation and covariates, so a condition gets as many predicted cells
//! as its covariate has sampled controls, and every condition of a
//! covariate reuses the same control cells. Predicted rows for the control
//! condition are dropped and replaced by the observed control cells before
//! the metrics (mean-based RMSE and log-fold-change cosine by default).
//!
//! # Not implemented
//! LatentAdditive's `sparse_additive_mechanism` (a stochastic `MaskNet`,
//! off in every shipped config) and foundation-model embeddings as encoder
//! input (`embedding_key: null` in every shipped config).

pub mod decoder;
pub mod latent;
pub mod linear;
pub mod mlp;

pub use decoder::{DecoderOnly, DecoderOnlyConfig};
pub use latent::{LatentAdditive, LatentAdditiveConfig};
pub use linear::{LinearAdditive, LinearAdditiveConfig};

use tch::Tensor;

use crate::error::{Error, Result};

/// A network that maps a control cell to its predicted perturbed counterpart.
pub trait ResponseModel: std::fmt::Debug {
    /// control `[B, m]` (log1p expression of a control cell of the same covariate),
    /// perts `[B, n_p]` (multi-hot over the perturbation vocabulary),
    /// covs `[B, n_cov]` (concatenated one-hot covariate blocks) -> predicted `[B, m]`.
    /// `train` switches dropout on.
    fn predict(
        &self,
        control: &Tensor,
        perts: &Tensor,
        covs: &Tensor,
        train: bool,
    ) -> Result<Tensor>;
}

/// Checks [`ResponseModel::predict`] inputs: `control` `[B, m]`, `perts`
/// `[B, n_p]`, `covs` `[B, n_cov]` with the expected widths and one batch
/// size; the error names every shape and the expected widths.
pub fn check_inputs(
    model: &str,
    control: &Tensor,
    perts: &Tensor,
    covs: &Tensor,
    n_genes: usize,
    n_perts: usize,
    n_covs: usize,
) -> Result<()> {
    let (sx, sp, sc) = (control.size(), perts.size(), covs.size());
    let ok = sx.len() == 2
        && sp.len() == 2
        && sc.len() == 2
        && sx[0] == sp[0]
        && sx[0] == sc[0]
        && sx[1] == n_genes as i64
        && sp[1] == n_perts as i64
        && sc[1] == n_covs as i64;
    if !ok {
        return Err(Error::Mismatch(format!(
            "{model} inputs must be control [B, {n_genes}], perts [B, {n_perts}], covs [B, {n_covs}]; got control {sx:?}, perts {sp:?}, covs {sc:?}"
        )));
    }
    Ok(())
}

/// Checks the sizes a baseline is built for; the error names the model and
/// every size.
fn check_sizes(model: &str, n_genes: usize, n_perts: usize, n_covs: usize) -> Result<()> {
    if n_genes == 0 || n_perts == 0 {
        return Err(Error::invalid(
            format!("{model} sizes"),
            format!(
                "needs at least one gene and one perturbation (got n_genes {n_genes}, n_perts {n_perts}, n_covs {n_covs})"
            ),
        ));
    }
    Ok(())
}

/// The error for an unknown preset name, listing the valid ones.
fn unknown_preset(model: &str, name: &str, presets: &[&str]) -> Error {
    Error::unknown(format!("{model} preset"), name, presets)
}

/// Checks an optional dropout rate is in `[0, 1)`; `what` names the field.
fn check_dropout(what: &str, dropout: Option<f64>) -> Result<()> {
    match dropout {
        Some(d) if !(0.0..1.0).contains(&d) => Err(Error::invalid(
            what.to_string(),
            format!("{d} is not in [0, 1)"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared helpers for the baseline tests: a lock around libtorch's global
    //! generator, parameter counting, a seeded additive-shift task and an
    //! Adam fit.

    use tch::nn::{OptimizerConfig, VarStore};
    use tch::{Device, Kind, Tensor};

    use super::ResponseModel;

    /// Serialises tests that seed libtorch's global generator, through the
    /// library's own guard (so they never interleave with other seeded code).
    pub fn lock() -> crate::device::RngGuard {
        crate::device::rng_guard(None)
    }

    /// Trainable parameters in `vs`.
    pub fn n_params(vs: &VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Random inputs: control `U(0, 2)` `[b, m]`, multi-hot perts `[b, n_p]`
    /// (each bit on with probability 0.3), one-hot covs `[b, n_c]`.
    pub fn inputs(b: i64, m: i64, n_p: i64, n_c: i64) -> (Tensor, Tensor, Tensor) {
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::rand([b, m], opts) * 2.0;
        let p = Tensor::rand([b, n_p], opts).lt(0.3).to_kind(Kind::Float);
        let c = Tensor::randint(n_c, [b], (Kind::Int64, Device::Cpu))
            .one_hot(n_c)
            .to_kind(Kind::Float);
        (x, p, c)
    }

    /// The additive-shift task. Covariate `j` has a control profile
    /// `profiles[j]` `[m]`; a control cell is its covariate's profile plus
    /// N(0, 0.1^2) noise. Each of `n_p` perturbations adds a fixed shift
    /// `d_k` (a row of `shifts` `[n_p, m]`), combinations add their shifts:
    /// `y = x + P D`, `x` `[b, m]`, `P` `[b, n_p]`. A model that ignores the
    /// control (decoder-only) can reach MSE 0.01 (the noise); the others 0.
    /// Returns (x, p, c, y).
    pub fn shift_task(
        b: i64,
        n_p: i64,
        profiles: &Tensor,
        shifts: &Tensor,
    ) -> (Tensor, Tensor, Tensor, Tensor) {
        let (n_c, m) = (profiles.size()[0], profiles.size()[1]);
        let (noise, p, c) = inputs(b, m, n_p, n_c);
        let x = c.matmul(profiles) + (noise.randn_like() * 0.1);
        let y = &x + p.matmul(shifts);
        (x, p, c, y)
    }

    /// Fits `model` to the shift task with Adam (lr 1e-2, `steps` steps of a
    /// fresh batch of 128), checks that every parameter received a non-zero
    /// gradient, and returns (initial, final) held-out MSE with
    /// `train = false`.
    pub fn fit_shift(
        vs: &VarStore,
        model: &dyn ResponseModel,
        m: i64,
        n_p: i64,
        n_c: i64,
        steps: usize,
    ) -> (f64, f64) {
        let opts = (Kind::Float, Device::Cpu);
        let profiles = Tensor::rand([n_c, m], opts) * 1.5 + 0.5;
        let shifts = Tensor::rand([n_p, m], opts);
        let eval = shift_task(512, n_p, &profiles, &shifts);
        let mse = |model: &dyn ResponseModel| {
            let _g = tch::no_grad_guard();
            let pred = model.predict(&eval.0, &eval.1, &eval.2, false).unwrap();
            f64::try_from((pred - &eval.3).square().mean(Kind::Float)).unwrap()
        };
        let before = mse(model);
        let mut opt = tch::nn::Adam::default().build(vs, 1e-2).unwrap();
        for _ in 0..steps {
            let (x, p, c, y) = shift_task(128, n_p, &profiles, &shifts);
            let pred = model.predict(&x, &p, &c, true).unwrap();
            let loss = (pred - y).square().mean(Kind::Float);
            opt.backward_step(&loss);
        }
        for (name, v) in vs.variables() {
            let g = v.grad();
            assert!(
                g.defined() && f64::try_from(g.abs().sum(Kind::Float)).unwrap() > 0.0,
                "no gradient reached {name}"
            );
        }
        (before, mse(model))
    }
}

#[cfg(test)]
mod tests {
    //! Agreement with an independent PyTorch transcription of PerturBench's
    //! modules (written for this test; same weights, same inputs).

    use super::test_support::{inputs, lock};
    use super::*;
    use tch::nn::VarStore;
    use tch::Device;

    /// PerturBench's `MLP`, `LinearAdditive.forward`, `LatentAdditive.forward`
    /// and `DecoderOnly.forward`, transcribed as plain PyTorch modules so the
    /// state dict is built by PyTorch itself; `load_state_dict(strict=True)`
    /// then checks our names and shapes, and the outputs check the math.
    const REFERENCE_PY: &str = r#"
import json, sys
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

class MLP(nn.Module):
    def __init__(self, i, h, o, n_layers, dropout=None):
        super().__init__()
        layers = nn.Sequential()
        for k in range(n_layers):
            layers.append(nn.Linear(i if k == 0 else h, h))
            layers.append(nn.LayerNorm(h, elementwise_affine=False))
            layers.append(nn.ReLU())
            if dropout is not None:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(h, o))
        self.layers = layers
    def forward(self, x):
        return self.layers(x)

class LinearAdditive(nn.Module):
    def __init__(self, m, n_p, n_c, cfg):
        super().__init__()
        self.cfg = cfg
        self.fc_pert = nn.Linear(n_p + (n_c if cfg['inject_covariates'] else 0), m)
    def forward(self, x, p, c):
        if self.cfg['inject_covariates']:
            p = torch.cat([p, c], 1)
        y = x + self.fc_pert(p)
        return F.softplus(y) if self.cfg['softplus_output'] else y

class LatentAdditive(nn.Module):
    def __init__(self, m, n_p, n_c, cfg):
        super().__init__()
        self.cfg = cfg
        w, l, n, d = cfg['encoder_width'], cfg['latent_dim'], cfg['n_layers'], cfg['dropout']
        self.gene_encoder = MLP(m + (n_c if cfg['inject_covariates_encoder'] else 0), w, l, n, d)
        self.decoder = MLP(l + (n_c if cfg['inject_covariates_decoder'] else 0), w, m, n, d)
        self.pert_encoder = MLP(n_p, w, l, n, d)
    def forward(self, x, p, c):
        if self.cfg['inject_covariates_encoder']:
            x = torch.cat([x, c], 1)
        z = self.gene_encoder(x) + self.pert_encoder(p)
        if self.cfg['inject_covariates_decoder']:
            z = torch.cat([z, c], 1)
        y = self.decoder(z)
        return F.softplus(y) if self.cfg['softplus_output'] else y

class DecoderOnly(nn.Module):
    def __init__(self, m, n_p, n_c, cfg):
        super().__init__()
        self.cfg = cfg
        d_in = (n_p if cfg['use_perturbations'] else 0) + (n_c if cfg['use_covariates'] else 0)
        self.decoder = MLP(d_in, cfg['encoder_width'], m, cfg['n_layers'])
    def forward(self, x, p, c):
        parts = ([p] if self.cfg['use_perturbations'] else []) + ([c] if self.cfg['use_covariates'] else [])
        y = self.decoder(torch.cat(parts, 1))
        return F.softplus(y) if self.cfg['softplus_output'] else y

for npz, kind, cfg_path in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    cfg = json.load(open(cfg_path))
    W = {k: torch.from_numpy(v) for k, v in np.load(npz).items()}
    x, p, c, rust = W.pop('__x'), W.pop('__p'), W.pop('__c'), W.pop('__out')
    net = globals()[kind](x.shape[1], p.shape[1], c.shape[1], cfg).eval()
    net.load_state_dict(W, strict=True)
    with torch.no_grad():
        out = net(x, p, c)
    print(json.dumps({'kind': kind, 'max_abs_diff': float((out - rust).abs().max()),
                      'max_abs': float(out.abs().max()), 'shape': list(out.shape)}))
"#;

    fn python() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
    }

    fn python_has_torch() -> bool {
        std::process::Command::new(python())
            .args(["-c", "import torch, numpy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Shifts every parameter away from its init (so a wrong name or a
    /// transposed weight cannot agree by accident).
    fn randomise(vs: &VarStore) {
        tch::no_grad(|| {
            for (_, mut v) in vs.variables() {
                let r = Tensor::randn_like(&v) * 0.3;
                v.copy_(&r);
            }
        });
    }

    #[test]
    fn matches_independent_pytorch_reference() {
        if !python_has_torch() {
            println!("skipped: the venv's Python has no torch");
            return;
        }
        let _rng = lock();
        tch::manual_seed(11);
        let (m, n_p, n_c) = (13usize, 5usize, 3usize);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-tmp/baselines_reference");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (x, p, c) = inputs(6, m as i64, n_p as i64, n_c as i64);

        let mut cases: Vec<(&str, String, VarStore, Box<dyn ResponseModel>)> = Vec::new();
        for (tag, cfg) in [
            ("lin_a", LinearAdditiveConfig::preset("tiny").unwrap()),
            (
                "lin_b",
                LinearAdditiveConfig {
                    inject_covariates: false,
                    softplus_output: false,
                },
            ),
        ] {
            let vs = VarStore::new(Device::Cpu);
            let net = LinearAdditive::new(&vs.root(), &cfg, m, n_p, n_c).unwrap();
            let json = serde_json::to_string(&cfg).unwrap();
            cases.push((tag, format!("LinearAdditive {json}"), vs, Box::new(net)));
        }
        for (tag, cfg) in [
            ("lat_a", LatentAdditiveConfig::preset("tiny").unwrap()),
            (
                "lat_b",
                LatentAdditiveConfig {
                    n_layers: 1,
                    dropout: None,
                    inject_covariates_encoder: false,
                    softplus_output: false,
                    ..LatentAdditiveConfig::preset("tiny").unwrap()
                },
            ),
        ] {
            let vs = VarStore::new(Device::Cpu);
            let net = LatentAdditive::new(&vs.root(), &cfg, m, n_p, n_c).unwrap();
            let json = serde_json::to_string(&cfg).unwrap();
            cases.push((tag, format!("LatentAdditive {json}"), vs, Box::new(net)));
        }
        for (tag, cfg) in [
            ("dec_a", DecoderOnlyConfig::preset("tiny").unwrap()),
            (
                "dec_b",
                DecoderOnlyConfig {
                    use_covariates: false,
                    softplus_output: false,
                    n_layers: 2,
                    ..DecoderOnlyConfig::preset("tiny").unwrap()
                },
            ),
        ] {
            let vs = VarStore::new(Device::Cpu);
            let net = DecoderOnly::new(&vs.root(), &cfg, m, n_p, n_c).unwrap();
            let json = serde_json::to_string(&cfg).unwrap();
            cases.push((tag, format!("DecoderOnly {json}"), vs, Box::new(net)));
        }

        let mut args = Vec::new();
        for (tag, spec, vs, net) in &cases {
            randomise(vs);
            let out = net.predict(&x, &p, &c, false).unwrap();
            let mut named: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.detach()))
                .collect();
            for (k, v) in [("__x", &x), ("__p", &p), ("__c", &c), ("__out", &out)] {
                named.push((k.to_string(), v.shallow_clone()));
            }
            let npz = dir.join(format!("{tag}.npz"));
            Tensor::write_npz(&named, &npz).unwrap();
            let (kind, json) = spec.split_once(' ').unwrap();
            let cfg_path = dir.join(format!("{tag}.json"));
            std::fs::write(&cfg_path, json).unwrap();
            args.extend([
                npz.display().to_string(),
                kind.to_string(),
                cfg_path.display().to_string(),
            ]);
        }
        let script = dir.join("reference.py");
        std::fs::write(&script, REFERENCE_PY).unwrap();
        let o = std::process::Command::new(python())
            .arg(&script)
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), cases.len(), "{stdout}");
        for ((tag, ..), line) in cases.iter().zip(lines) {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            println!("{tag}: {r}");
            let diff = r["max_abs_diff"].as_f64().unwrap();
            let scale = r["max_abs"].as_f64().unwrap();
            assert_eq!(r["shape"], serde_json::json!([6, m]));
            assert!(scale > 1e-2, "{tag}: reference output ~0 ({scale})");
            assert!(
                diff <= 1e-5 * scale.max(1.0),
                "{tag}: Rust vs PyTorch max diff {diff} (scale {scale})"
            );
        }
    }

    #[test]
    fn input_shapes_are_checked_with_every_shape_named() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        let net =
            LinearAdditive::new(&vs.root(), &LinearAdditiveConfig::default(), 4, 3, 2).unwrap();
        let (x, p, c) = inputs(5, 4, 3, 2);
        let e = net
            .predict(&x, &p.narrow(1, 0, 2), &c, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("perts [B, 3]")
                && e.contains("perts [5, 2]")
                && e.contains("control [5, 4]"),
            "{e}"
        );
        let e = net
            .predict(&x.narrow(0, 0, 4), &p, &c, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("control [4, 4]"), "{e}");
    }
}
