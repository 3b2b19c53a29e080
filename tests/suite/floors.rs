//! Tests: model kinds beyond the U-Net and MLP — the `control` and
//! `additive` floors, FM PCA, the standardised data space, EMA weights —
//! through the same Trainer, Sampler and checkpoints.

use ndarray::Axis;
use primeflow::data::{Condition, Dataset};
use primeflow::model::{DataSpace, Model, ModelConfig};
use primeflow::sample::{SampleConfig, Sampler};
use primeflow::train::{TrainConfig, Trainer};
use tch::Device;

use crate::common::tmpdir;
use crate::train::{quick_train, toy_dataset};

/// The cells of `ds` whose unit is not `label` in `cell_type`.
fn without(ds: &Dataset, label: &str, cell_type: &str) -> Dataset {
    let rows: Vec<usize> = (0..ds.n_cells())
        .filter(|&i| {
            let u = ds.unit_of(i);
            !(u.label == label && u.covariates == [cell_type.to_string()])
        })
        .collect();
    ds.subset(&rows).unwrap()
}

fn cond(perts: &[&str], ct: &str) -> Condition {
    Condition {
        perturbations: perts.iter().map(|s| s.to_string()).collect(),
        covariates: vec![ct.to_string()],
    }
}

/// Mean over rows of an `[n, m]` array.
fn col_mean(x: &ndarray::Array2<f32>) -> Vec<f64> {
    x.mean_axis(Axis(0))
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect()
}

/// Unit mean of `label` in `ct`, from the data.
fn unit_mean(ds: &Dataset, label: &str, ct: &str) -> Vec<f64> {
    let u = ds
        .units()
        .iter()
        .find(|u| u.label == label && u.covariates == [ct.to_string()])
        .unwrap();
    ds.mean_of(&u.cells).iter().map(|&v| v as f64).collect()
}

fn fit(kind: &str, ds: &Dataset, train: TrainConfig, out: Option<&std::path::Path>) -> Model {
    let cfg = ModelConfig::preset(kind, "tiny").unwrap();
    let mut model = Model::for_dataset(cfg, ds, Device::Cpu, train.seed).unwrap();
    Trainer::new(train)
        .unwrap()
        .fit(&mut model, ds, None, out)
        .unwrap();
    model
}

#[test]
fn additive_floor_is_control_plus_the_summed_single_shifts() {
    // 12 cells per unit: the whole control reservoir is drawn, so the mean
    // of the prediction is exactly the control mean plus the shifts.
    let full = toy_dataset(12, 12, true);
    let train = without(&without(&full, "A+B", "k562"), "A", "rpe1");
    let model = fit("additive", &train, quick_train(1), None);
    let sampler = Sampler::new(SampleConfig {
        cells_per_unit: 12,
        ..SampleConfig::default()
    })
    .unwrap();
    let ctrl = unit_mean(&train, "control", "k562");
    let shift = |p: &str, ct: &str| -> Vec<f64> {
        let c = unit_mean(&train, "control", ct);
        unit_mean(&train, p, ct)
            .iter()
            .zip(&c)
            .map(|(a, b)| a - b)
            .collect()
    };
    // A+B in k562: both singles were measured there.
    let got = col_mean(
        &sampler
            .sample_matrix(&model, &[cond(&["A", "B"], "k562")], 12)
            .unwrap(),
    );
    let (sa, sb) = (shift("A", "k562"), shift("B", "k562"));
    for g in 0..12 {
        let want = ctrl[g] + sa[g] + sb[g];
        assert!(
            (got[g] - want).abs() < 1e-4,
            "gene {g}: {} vs {want}",
            got[g]
        );
    }
    // A in rpe1 (held out there): its shift comes from k562, the only line
    // where it was measured; the rpe1 control baseline is kept.
    let got = col_mean(
        &sampler
            .sample_matrix(&model, &[cond(&["A"], "rpe1")], 12)
            .unwrap(),
    );
    let rpe1 = unit_mean(&train, "control", "rpe1");
    for g in 0..12 {
        let want = rpe1[g] + sa[g];
        assert!(
            (got[g] - want).abs() < 1e-4,
            "gene {g}: {} vs {want}",
            got[g]
        );
    }
    // Guidance does not apply to a floor.
    let e = Sampler::new(SampleConfig {
        guidance: 3.0,
        ..SampleConfig::default()
    })
    .unwrap()
    .sample_matrix(&model, &[cond(&["A"], "k562")], 4)
    .unwrap_err()
    .to_string();
    assert!(e.contains("guidance") && e.contains("Additive"), "{e}");
}

#[test]
fn control_floor_returns_control_cells_and_round_trips() {
    let ds = toy_dataset(10, 8, true);
    let out = tmpdir("control_floor");
    let model = fit("control", &ds, quick_train(1), Some(&out));
    let sampler = Sampler::new(SampleConfig::default()).unwrap();
    let x = sampler
        .sample_matrix(&model, &[cond(&["C"], "rpe1")], 20)
        .unwrap();
    let ctrl_rows: Vec<Vec<f32>> = ds
        .control_cells("rpe1")
        .iter()
        .map(|&i| ds.x.row_vec(i))
        .collect();
    for row in x.rows() {
        assert!(ctrl_rows
            .iter()
            .any(|c| c.as_slice() == row.as_slice().unwrap()));
    }
    // The statistics travel with the checkpoint: the reloaded floor gives
    // the same cells.
    let back = Model::load(&out, Device::Cpu).unwrap();
    assert_eq!(back.config.kind(), "control");
    let y = sampler
        .sample_matrix(&back, &[cond(&["C"], "rpe1")], 20)
        .unwrap();
    assert_eq!(x, y);
    // Unknown perturbations are errors naming them.
    let e = sampler
        .sample_matrix(&back, &[cond(&["ZZZ"], "rpe1")], 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ZZZ"), "{e}");
}

#[test]
fn fm_pca_flows_in_pca_space_and_decodes_to_genes() {
    let ds = toy_dataset(16, 10, true);
    let out = tmpdir("fm_pca");
    let cfg = ModelConfig::preset("pca", "tiny")
        .unwrap()
        .merged(&serde_json::json!({"n_components": 6}), "test")
        .unwrap();
    let mut model = Model::for_dataset(cfg, &ds, Device::Cpu, 0).unwrap();
    Trainer::new(quick_train(20))
        .unwrap()
        .fit(&mut model, &ds, None, Some(&out))
        .unwrap();
    assert_eq!(model.flow_dim(), 6);
    let pca = model.stats().unwrap().pca.as_ref().unwrap();
    assert_eq!(pca.components.size(), vec![16, 6]);
    let sampler = Sampler::new(SampleConfig {
        steps: 5,
        ..SampleConfig::default()
    })
    .unwrap();
    let c = [cond(&["A", "B"], "k562")];
    let x = sampler.sample_matrix(&model, &c, 30).unwrap();
    assert_eq!(x.dim(), (30, 16));
    // Decoded cells lie in the fitted PCA subspace: (x - mu) (I - V V^T) = 0.
    let xt = tch::Tensor::from_slice(x.as_slice().unwrap())
        .reshape([30, 16])
        .to_kind(tch::Kind::Double);
    let v = pca.components.to_kind(tch::Kind::Double);
    let xc = xt - pca.mean.to_kind(tch::Kind::Double).unsqueeze(0);
    let resid = &xc - xc.mm(&v).mm(&v.transpose(0, 1));
    let r = resid.abs().max().double_value(&[]);
    assert!(r < 1e-4, "residual off the PCA subspace: {r}");
    // The fitted PCA travels in the checkpoint: same samples after reload.
    let back = Model::load(&out, Device::Cpu).unwrap();
    assert_eq!(sampler.sample_matrix(&back, &c, 30).unwrap(), x);
    // Too many components for the genes is a clear error.
    let cfg = ModelConfig::preset("pca", "tiny")
        .unwrap()
        .merged(&serde_json::json!({"n_components": 17}), "test")
        .unwrap();
    let e = Model::for_dataset(cfg, &ds, Device::Cpu, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("n_components") && e.contains("16"), "{e}");
}

#[test]
fn standardized_space_undoes_its_scaling_at_sampling() {
    let ds = toy_dataset(12, 10, false);
    let out = tmpdir("standardized");
    let cfg = ModelConfig::preset("mlp", "tiny")
        .unwrap()
        .merged(&serde_json::json!({"space": "standardized"}), "test")
        .unwrap();
    let mut model = Model::for_dataset(cfg, &ds, Device::Cpu, 0).unwrap();
    Trainer::new(quick_train(150))
        .unwrap()
        .fit(&mut model, &ds, None, Some(&out))
        .unwrap();
    let stats = model.stats().unwrap();
    let mean: Vec<f32> = Vec::try_from(&stats.gene_mean).unwrap();
    let want: Vec<f32> = ds.mean_of(&(0..ds.n_cells()).collect::<Vec<_>>());
    for (a, b) in mean.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5);
    }
    // Generated cells come back on the data's scale: the A cells' block
    // (genes 0-2, +2 over the baseline) is clearly above genes 3-5.
    let sampler = Sampler::new(SampleConfig {
        steps: 20,
        ..SampleConfig::default()
    })
    .unwrap();
    let x = sampler
        .sample_matrix(&model, &[cond(&["A"], "k562")], 200)
        .unwrap();
    let m = col_mean(&x);
    let a_block = (m[0] + m[1] + m[2]) / 3.0;
    let b_block = (m[3] + m[4] + m[5]) / 3.0;
    assert!(
        a_block - b_block > 1.0,
        "A block {a_block}, B block {b_block}"
    );
    let back = Model::load(&out, Device::Cpu).unwrap();
    assert_eq!(
        sampler
            .sample_matrix(&back, &[cond(&["A"], "k562")], 200)
            .unwrap(),
        x
    );
}

#[test]
fn ema_weights_are_saved_resumed_and_used_for_sampling() {
    crate::train::isolated(
        "floors::ema_weights_are_saved_resumed_and_used_for_sampling",
        || {
            let ds = toy_dataset(12, 6, false);
            let cfg = TrainConfig {
                ema_decay: Some(0.9),
                checkpoint_every: 5,
                keep_checkpoints: 3,
                ..quick_train(10)
            };
            let mconf = ModelConfig::preset("mlp", "tiny").unwrap();
            // One run of 10 steps.
            let full = tmpdir("ema_full");
            let mut a = Model::for_dataset(mconf.clone(), &ds, Device::Cpu, cfg.seed).unwrap();
            Trainer::new(cfg.clone())
                .unwrap()
                .fit(&mut a, &ds, None, Some(&full))
                .unwrap();
            // 5 steps, then resume to 10.
            let part = tmpdir("ema_part");
            let mut b = Model::for_dataset(mconf, &ds, Device::Cpu, cfg.seed).unwrap();
            let mut t = Trainer::new(cfg.clone()).unwrap();
            t.stop_at = Some(5);
            t.fit(&mut b, &ds, None, Some(&part)).unwrap();
            let (mut t2, mut b2) = Trainer::resume(&part, Device::Cpu).unwrap();
            t2.fit(&mut b2, &ds, None, Some(&part)).unwrap();
            // Trained and averaged weights agree bit for bit.
            let last = |d: &std::path::Path, f: &str| {
                primeflow::model::model::read_tensors(&d.join("step-00000010").join(f)).unwrap()
            };
            for f in ["weights.safetensors", "ema.safetensors"] {
                let (x, y) = (last(&full, f), last(&part, f));
                assert_eq!(x.len(), y.len());
                for (k, v) in &x {
                    assert!(v.equal(&y[k]), "{f} {k} differs after resume");
                }
            }
            // The averaged weights differ from the trained ones, and fit leaves
            // the in-memory model holding the average (what sampling uses), as
            // Model::load does.
            let ema = last(&full, "ema.safetensors");
            let raw = last(&full, "weights.safetensors");
            assert!(ema.iter().any(|(k, v)| !v.equal(&raw[k])));
            let loaded = Model::load(&full, Device::Cpu).unwrap();
            for (k, v) in a.named_parameters() {
                assert!(v.equal(&ema[&k]), "{k}: fit did not leave the EMA weights");
            }
            for (k, v) in loaded.named_parameters() {
                assert!(v.equal(&ema[&k]), "{k}: load did not pick the EMA weights");
            }
            let _ = DataSpace::Log1p;
        },
    );
}

/// The `response` space: a cell's difference from its own covariate's mean
/// control cell, scaled per gene. The statistics hold every covariate's
/// exact control mean and the scale (saved and reloaded); a perturbation
/// seen only in k562 is generated in rpe1 on rpe1's baseline (+0.5 in
/// every gene) with k562's response (+2 in genes 0-2); covariate dropout
/// trains and reproduces.
#[test]
fn response_space_transfers_a_response_to_another_covariate() {
    let full = toy_dataset(12, 12, true);
    let ds = without(&full, "A", "rpe1");
    let out = tmpdir("response_space");
    let cfg = ModelConfig::preset("mlp", "cpu").unwrap();
    assert!(matches!(&cfg, ModelConfig::Mlp(c) if c.space == DataSpace::Response));
    let train = TrainConfig {
        covariate_dropout: 0.3,
        ..quick_train(300)
    };
    let fit = |dir: Option<&std::path::Path>| {
        let mut model = Model::for_dataset(cfg.clone(), &ds, Device::Cpu, 0).unwrap();
        Trainer::new(train.clone())
            .unwrap()
            .fit(&mut model, &ds, None, dir)
            .unwrap();
        model
    };
    let model = fit(Some(&out));
    let stats = model.stats().unwrap();
    // Exact control means per covariate.
    for set in &stats.controls {
        let ct = &set.covariates[0];
        let rows: Vec<usize> = (0..ds.n_cells())
            .filter(|&i| {
                let u = ds.unit_of(i);
                u.is_control() && u.covariates == [ct.clone()]
            })
            .collect();
        let want = ds.mean_of(&rows);
        let got: Vec<f32> = Vec::try_from(&set.mean).unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{ct}: {a} vs {b}");
        }
    }
    let sd: Vec<f32> = Vec::try_from(&stats.response_std).unwrap();
    assert!(sd.iter().all(|&s| s >= 0.1 && s.is_finite()), "{sd:?}");
    // Transfer: A in rpe1 (never seen) on rpe1's baseline with A's block.
    let sampler = Sampler::new(SampleConfig {
        steps: 20,
        ..SampleConfig::default()
    })
    .unwrap();
    let x = sampler
        .sample_matrix(&model, &[cond(&["A"], "rpe1")], 300)
        .unwrap();
    let m = col_mean(&x);
    let truth = col_mean(
        &full
            .subset(
                &(0..full.n_cells())
                    .filter(|&i| {
                        let u = full.unit_of(i);
                        u.label == "A" && u.covariates == ["rpe1".to_string()]
                    })
                    .collect::<Vec<_>>(),
            )
            .unwrap()
            .x
            .to_dense(),
    );
    let err: f64 = m
        .iter()
        .zip(&truth)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / m.len() as f64;
    assert!(err < 0.35, "mean abs error {err}: {m:?} vs {truth:?}");
    // Saved and reloaded: the same cells; retraining: the same weights.
    let back = Model::load(&out, Device::Cpu).unwrap();
    assert_eq!(
        sampler
            .sample_matrix(&back, &[cond(&["A"], "rpe1")], 300)
            .unwrap(),
        x
    );
    let again = fit(None);
    assert_eq!(
        sampler
            .sample_matrix(&again, &[cond(&["A"], "rpe1")], 300)
            .unwrap(),
        x
    );
    // A covariate without control cells cannot be placed in this space.
    let err = sampler
        .sample_matrix(&model, &[cond(&["A"], "hepg2")], 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hepg2"), "{err}");
}
