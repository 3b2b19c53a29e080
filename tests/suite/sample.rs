//! Tests: sample (guidance arithmetic, batching, AnnData output, split units).

use std::cell::RefCell;

use primeflow::data::{Condition, Part, Split};
use primeflow::model::{Model, VelocityField};
use primeflow::sample::{SampleConfig, Sampler, Solver};
use primeflow::train::{TrainConfig, Trainer};
use tch::{Device, Kind, Tensor};

use crate::train::{quick_train, tiny_mlp, toy_dataset};

/// `v(x, t, c) = c W` with `W` all ones `[n_c, m]`: constant in x and t, so
/// Euler is exact and `x1 = x0 + v`. The null condition gives 0, so guided
/// sampling must give `x1 = x0 + w * sum(c)` per gene. Records the batch
/// size of every call.
#[derive(Debug)]
struct CondSum {
    m: i64,
    calls: RefCell<Vec<i64>>,
}

impl VelocityField for CondSum {
    fn velocity(
        &self,
        x_t: &Tensor,
        _t: &Tensor,
        cond: &Tensor,
        _train: bool,
    ) -> primeflow::Result<Tensor> {
        self.calls.borrow_mut().push(x_t.size()[0]);
        Ok(cond
            .sum_dim_intlist(1, true, Kind::Float)
            .expand([x_t.size()[0], self.m], false))
    }
}

#[test]
fn guidance_combines_one_doubled_forward() {
    let (b, m) = (3i64, 4i64);
    let x0 = Tensor::randn([b, m], (Kind::Float, Device::Cpu));
    let cond = Tensor::from_slice(&[1f32, 0., 1., 1., 1., 1., 0., 0., 0.]).reshape([b, 3]);
    let sums = [2f32, 3.0, 0.0];
    for (w, solver) in [
        (1.0, Solver::Euler),
        (3.0, Solver::Euler),
        (0.0, Solver::Heun),
        (5.0, Solver::Heun),
    ] {
        let field = CondSum {
            m,
            calls: RefCell::new(Vec::new()),
        };
        let s = Sampler::new(SampleConfig {
            steps: 10,
            guidance: w,
            solver,
            ..SampleConfig::default()
        })
        .unwrap();
        let x1 = s.integrate_batch(&field, &x0, &cond).unwrap();
        let calls = field.calls.borrow();
        assert_eq!(
            calls.len(),
            solver.evaluations(10),
            "w {w}: one forward per evaluation"
        );
        let rows = if w == 1.0 { b } else { 2 * b };
        assert!(calls.iter().all(|&c| c == rows), "w {w}: batches {calls:?}");
        for (i, sum) in sums.iter().enumerate() {
            let got = x1.get(i as i64) - x0.get(i as i64);
            let want = w as f32 * sum;
            let err = (got - want as f64).abs().max().double_value(&[]);
            assert!(err < 1e-4, "w {w} row {i}: off by {err}");
        }
    }
    assert!(Sampler::new(SampleConfig {
        steps: 0,
        ..SampleConfig::default()
    })
    .is_err());
}

fn trained_model() -> (Model, primeflow::data::Dataset) {
    let ds = toy_dataset(12, 12, true);
    let mut model = Model::for_dataset(tiny_mlp(), &ds, Device::Cpu, 0).unwrap();
    Trainer::new(TrainConfig {
        lr: 5e-3,
        ..quick_train(60)
    })
    .unwrap()
    .fit(&mut model, &ds, None, None)
    .unwrap();
    (model, ds)
}

#[test]
fn samples_conditions_as_anndata() {
    let (model, _) = trained_model();
    let s = Sampler::new(SampleConfig {
        steps: 20,
        guidance: 3.0,
        max_batch: 10,
        seed: 5,
        ..SampleConfig::default()
    })
    .unwrap();
    // A+C was never seen as a combination: a new combination of known singles.
    let conds = vec![
        model.vocab.parse("A+C @ k562").unwrap(),
        model.vocab.parse("control @ rpe1").unwrap(),
    ];
    let ad = s.sample_conditions(&model, &conds, 7).unwrap();
    assert_eq!((ad.n_obs(), ad.n_vars()), (14, 12));
    assert_eq!(ad.var.index, model.genes);
    let labels = ad.obs.labels("obs", "condition").unwrap();
    let cts = ad.obs.labels("obs", "cell_type").unwrap();
    assert_eq!(labels[0], "A+C");
    assert_eq!(labels[13], "control");
    assert_eq!(cts[6], "k562");
    assert_eq!(cts[7], "rpe1");
    assert!(
        ad.x.iter().all(|v| v.is_finite() && *v >= 0.0),
        "finite and clipped at 0"
    );
    assert_eq!(ad.uns["primeflow_sample"]["guidance"], 3.0);

    // A condition's cells depend only on (seed, condition): not on the other
    // requested conditions nor on max_batch.
    let alone = Sampler::new(SampleConfig {
        max_batch: 4096,
        ..s.config.clone()
    })
    .unwrap()
    .sample_conditions(&model, &conds[1..], 7)
    .unwrap();
    let diff = (&alone.x - &ad.x.slice(ndarray::s![7.., ..]))
        .iter()
        .fold(0f32, |a, v| a.max(v.abs()));
    assert!(diff < 1e-5, "max difference {diff}");

    // Unknown perturbations are clear errors.
    let bad = Condition {
        perturbations: vec!["Z".into()],
        covariates: vec!["k562".into()],
    };
    let e = s
        .sample_conditions(&model, &[bad], 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown perturbation 'Z'") && e.contains("known: A, B, C"),
        "{e}"
    );
}

#[test]
fn samples_every_unit_of_a_split_part() {
    let (model, ds) = trained_model();
    // Hand-made split: A+B in k562 is the test unit, the rest trains.
    let parts = (0..ds.n_cells())
        .map(|i| {
            let u = ds.unit_of(i);
            if u.label == "A+B" && u.cov_key == "k562" {
                Part::Test
            } else {
                Part::Train
            }
        })
        .collect();
    let split = Split { parts };
    let s = Sampler::new(SampleConfig {
        steps: 10,
        ..SampleConfig::default()
    })
    .unwrap();
    let ad = s.sample_split(&model, &ds, &split, Part::Test, 5).unwrap();
    assert_eq!(ad.n_obs(), 5);
    assert!(ad
        .obs
        .labels("obs", "condition")
        .unwrap()
        .iter()
        .all(|l| l == "A+B"));
    let e = s
        .sample_split(&model, &ds, &split, Part::Val, 5)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("val part") && e.contains("no perturbed units"),
        "{e}"
    );
}

/// `train` then `sample` through the command line: the test units of the
/// run's own split (from data.json), requested conditions with an unseen
/// combination, and clear errors for unknown perturbations and other genes.
#[test]
fn cli_train_then_sample() {
    use crate::common::{primeflow, tmpdir};
    let dir = tmpdir("sample_cli");
    let data = crate::train::toy_h5ad(&dir, 12, 8);
    let d = data.to_str().unwrap();
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    let (code, stdout, stderr) = primeflow(&[
        "train",
        "--data",
        d,
        "--model",
        "mlp",
        "--preset",
        "tiny",
        "--task",
        "combination",
        "--steps",
        "30",
        "--quiet",
        "--threads",
        "1",
        "--out",
        r,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Model: mlp 'tiny'") && stdout.contains("Step 30: loss"),
        "{stdout}"
    );
    let pred = dir.join("pred.h5ad");
    let p = pred.to_str().unwrap();
    let (code, stdout, stderr) = primeflow(&[
        "sample",
        "--checkpoint",
        r,
        "--which",
        "test",
        "--cells-per-unit",
        "6",
        "--steps",
        "5",
        "--guidance",
        "3",
        "--quiet",
        "--threads",
        "1",
        "--out",
        p,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("1 test units"), "{stdout}");
    let ad = primeflow::anndata::read_h5ad(&pred, &Default::default()).unwrap();
    assert_eq!((ad.n_obs(), ad.n_vars()), (6, 12));
    let label = ad.obs.labels("obs", "condition").unwrap();
    assert_eq!(label[0], "A+B", "the held-out combination");

    let (code, stdout, stderr) = primeflow(&[
        "sample",
        "--checkpoint",
        r,
        "--conditions",
        "A+C @ k562; control @ rpe1",
        "--cells-per-unit",
        "4",
        "--steps",
        "3",
        "--quiet",
        "--out",
        p,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let ad = primeflow::anndata::read_h5ad(&pred, &Default::default()).unwrap();
    assert_eq!(
        ad.obs.labels("obs", "cell_type").unwrap(),
        ["k562", "k562", "k562", "k562", "rpe1", "rpe1", "rpe1", "rpe1"]
    );

    let (code, _, err) = primeflow(&[
        "sample",
        "--checkpoint",
        r,
        "--conditions",
        "Z @ k562",
        "--out",
        p,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown perturbation 'Z'") && err.contains("known: A, B, C"),
        "{err}"
    );
    let other = tmpdir("sample_cli_other");
    let other_data = crate::train::toy_h5ad(&other, 13, 2);
    let (code, _, err) = primeflow(&[
        "sample",
        "--checkpoint",
        r,
        "--data",
        other_data.to_str().unwrap(),
        "--out",
        p,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("13 genes") && err.contains("checkpoint 12") && err.contains("'G12'"),
        "{err}"
    );
}
