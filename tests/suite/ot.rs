//! Tests: ot — the Sinkhorn plans of `primeflow::ot` against POT (Python
//! Optimal Transport, `pip install pot`, installed by `./setup.sh --python`).
//!
//! Each case is a batch of two conditions with random points and weights,
//! written as .npy files; the Python side builds the squared Euclidean cost
//! itself, divides it by its mean (ott's `scale_cost="mean"`) and solves each
//! condition with `ot.sinkhorn` (balanced) or
//! `ot.unbalanced.sinkhorn_unbalanced(reg_m = eps tau / (1 - tau),
//! reg_type="entropy")` (ott's convention, see `src/ot/mod.rs`), both with the
//! plain scaling algorithm run to a 1e-15 stopping threshold. The Rust side
//! runs in f64 to a 1e-13 marginal error and in f32 to 1e-5. Plans must agree
//! to 1e-5 (measured: at most 2e-14 in f64; printed by `cargo test --release
//! --test suite ot::plans_match_pot -- --nocapture`).

use ndarray::{Array2, Array3};
use ndarray_npy::{read_npy, write_npy};
use primeflow::ot::{sinkhorn, sq_euclidean, OtConfig, ScaleCost};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use tch::{Kind, Tensor};

use crate::common;

/// One comparison: sizes, solver settings and the total masses of a and b.
struct Case {
    name: &'static str,
    n: usize,
    k: usize,
    d: usize,
    epsilon: f64,
    tau_a: f64,
    tau_b: f64,
    /// Total mass of a and b (1 and 1 when balanced); `None` = uniform.
    masses: Option<(f64, f64)>,
}

const CASES: &[Case] = &[
    Case {
        name: "balanced_uniform",
        n: 12,
        k: 12,
        d: 5,
        epsilon: 0.1,
        tau_a: 1.0,
        tau_b: 1.0,
        masses: None,
    },
    Case {
        name: "balanced_weighted",
        n: 10,
        k: 7,
        d: 3,
        epsilon: 0.05,
        tau_a: 1.0,
        tau_b: 1.0,
        masses: Some((1.0, 1.0)),
    },
    Case {
        name: "cellflow_epsilon",
        n: 16,
        k: 16,
        d: 10,
        epsilon: 1.0,
        tau_a: 1.0,
        tau_b: 1.0,
        masses: None,
    },
    Case {
        name: "unbalanced",
        n: 9,
        k: 11,
        d: 4,
        epsilon: 0.1,
        tau_a: 0.8,
        tau_b: 0.8,
        masses: Some((1.0, 0.7)),
    },
    Case {
        name: "unbalanced_asymmetric",
        n: 8,
        k: 6,
        d: 2,
        epsilon: 1.0,
        tau_a: 0.5,
        tau_b: 0.9,
        masses: None,
    },
    Case {
        name: "semi_balanced",
        n: 7,
        k: 13,
        d: 3,
        epsilon: 0.2,
        tau_a: 1.0,
        tau_b: 0.6,
        masses: Some((1.0, 2.0)),
    },
];

/// Standard-normal values of shape `shape` (the second cloud shifted by 0.5).
fn normal(rng: &mut ChaCha8Rng, len: usize, shift: f64) -> Vec<f64> {
    (0..len)
        .map(|_| StandardNormal.sample(rng))
        .map(|v: f64| v + shift)
        .collect()
}

/// `[c, len]` weights in [0.2, 1) rescaled to `mass` per row.
fn weights(rng: &mut ChaCha8Rng, c: usize, len: usize, mass: f64) -> Array2<f64> {
    let u = Uniform::new(0.2, 1.0);
    let mut w = Array2::from_shape_fn((c, len), |_| u.sample(rng));
    for mut row in w.rows_mut() {
        let s = row.sum();
        row.mapv_inplace(|v| v * mass / s);
    }
    w
}

fn tensor3(a: &Array3<f64>) -> Tensor {
    let s = a.shape();
    Tensor::from_slice(a.as_slice().unwrap()).reshape([s[0] as i64, s[1] as i64, s[2] as i64])
}

fn tensor2(a: &Array2<f64>) -> Tensor {
    let s = a.shape();
    Tensor::from_slice(a.as_slice().unwrap()).reshape([s[0] as i64, s[1] as i64])
}

const POT_SCRIPT: &str = r#"
import sys, json, warnings
import numpy as np, ot

def solve(d):
    with open(d + "/case.json") as fh:
        cfg = json.load(fh)
    x, y = np.load(d + "/x.npy"), np.load(d + "/y.npy")
    a, b = np.load(d + "/a.npy"), np.load(d + "/b.npy")
    eps, ta, tb = cfg["epsilon"], cfg["tau_a"], cfg["tau_b"]
    rho = lambda t: float("inf") if t == 1.0 else eps * t / (1.0 - t)
    plans = []
    for c in range(x.shape[0]):
        M = ((x[c][:, None, :] - y[c][None, :, :]) ** 2).sum(-1)
        M = M / M.mean()  # ott's scale_cost="mean"
        if ta == 1.0 and tb == 1.0:
            P = ot.sinkhorn(a[c], b[c], M, eps, method="sinkhorn",
                            numItermax=200000, stopThr=1e-15)
        else:
            P, log = ot.unbalanced.sinkhorn_unbalanced(
                a[c], b[c], M, eps, (rho(ta), rho(tb)), method="sinkhorn",
                reg_type="entropy", numItermax=200000, stopThr=1e-15, log=True)
            assert log["err"][-1] < 1e-15, f"POT did not converge: {log['err'][-1]}"
        plans.append(P)
    np.save(d + "/pot_plan.npy", np.stack(plans))

with warnings.catch_warnings():
    warnings.simplefilter("error")  # POT's non-convergence warnings fail the test
    warnings.filterwarnings("ignore", message="If reg_type = entropy")  # informational
    for d in sys.argv[1:]:
        solve(d)
print(ot.__version__)
"#;

/// Balanced and unbalanced plans agree with POT's to 1e-5 (absolute).
#[test]
fn plans_match_pot() {
    if !common::python_has("ot") {
        println!("skipped: python POT (`pip install pot`) not available");
        return;
    }
    let c = 2usize;
    let mut inputs = Vec::new();
    let mut dirs = Vec::new();
    for (ci, case) in CASES.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + ci as u64);
        let x = Array3::from_shape_vec(
            (c, case.n, case.d),
            normal(&mut rng, c * case.n * case.d, 0.0),
        )
        .unwrap();
        let y = Array3::from_shape_vec(
            (c, case.k, case.d),
            normal(&mut rng, c * case.k * case.d, 0.5),
        )
        .unwrap();
        let (a, b) = match case.masses {
            Some((ma, mb)) => (
                weights(&mut rng, c, case.n, ma),
                weights(&mut rng, c, case.k, mb),
            ),
            None => (
                Array2::from_elem((c, case.n), 1.0 / case.n as f64),
                Array2::from_elem((c, case.k), 1.0 / case.k as f64),
            ),
        };
        let dir = common::tmpdir(&format!("ot_pot_{}", case.name));
        write_npy(dir.join("x.npy"), &x).unwrap();
        write_npy(dir.join("y.npy"), &y).unwrap();
        write_npy(dir.join("a.npy"), &a).unwrap();
        write_npy(dir.join("b.npy"), &b).unwrap();
        let meta =
            serde_json::json!({"epsilon": case.epsilon, "tau_a": case.tau_a, "tau_b": case.tau_b});
        std::fs::write(dir.join("case.json"), meta.to_string()).unwrap();
        dirs.push(dir.to_str().unwrap().to_string());
        inputs.push((x, y, a, b));
    }
    // One Python run for every case (importing POT takes seconds); POT's
    // numpy backend is all it needs.
    let out = std::process::Command::new(common::python())
        .args(["-c", POT_SCRIPT])
        .args(&dirs)
        .env("POT_BACKEND_DISABLE_PYTORCH", "1")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "POT failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    for ((case, (x, y, a, b)), dir) in CASES.iter().zip(&inputs).zip(&dirs) {
        let pot: Array3<f64> = read_npy(format!("{dir}/pot_plan.npy")).unwrap();
        let cfg = OtConfig {
            epsilon: case.epsilon,
            tau_a: case.tau_a,
            tau_b: case.tau_b,
            max_iter: 200_000,
            tol: 1e-13,
            scale_cost: ScaleCost::Mean,
            ..OtConfig::default()
        };
        let cost = sq_euclidean(&tensor3(x), &tensor3(y)).unwrap();
        let (ta, tb) = (tensor2(a), tensor2(b));
        let sol = sinkhorn(&cost, Some(&ta), Some(&tb), &cfg).unwrap();
        assert!(sol.all_converged(), "{}: {:?}", case.name, sol.errors);
        assert_eq!(sol.plan.kind(), Kind::Double);
        let pot_t = tensor3(&pot);
        let diff = (&sol.plan - &pot_t).abs().max().double_value(&[]);
        let peak = pot_t.abs().max().double_value(&[]);
        let mass = sol.plan.sum(Kind::Double).double_value(&[]) / c as f64;
        println!(
            "{:<22} eps {:<4} tau ({}, {}): max |P - P_pot| = {diff:.2e} (max entry {peak:.3}, \
             mean mass {mass:.4}, iterations {:?}, POT {version})",
            case.name, case.epsilon, case.tau_a, case.tau_b, sol.iterations,
        );
        assert!(diff < 1e-5, "{}: max |P - P_pot| = {diff}", case.name);
        // The f32 default, to a marginal error f32 can reach.
        let cfg32 = OtConfig { tol: 1e-5, ..cfg };
        let sol32 = sinkhorn(&cost.to_kind(Kind::Float), Some(&ta), Some(&tb), &cfg32).unwrap();
        assert!(
            sol32.all_converged(),
            "{} f32: {:?}",
            case.name,
            sol32.errors
        );
        let diff32 = (sol32.plan.to_kind(Kind::Double) - &pot_t)
            .abs()
            .max()
            .double_value(&[]);
        println!("{:<22} f32: max |P - P_pot| = {diff32:.2e}", case.name);
        assert!(
            diff32 < 1e-5,
            "{} f32: max |P - P_pot| = {diff32}",
            case.name
        );
    }
}
