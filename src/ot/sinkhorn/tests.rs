//! Unit tests of [`super::sinkhorn`]: marginals, the exact assignment at small
//! epsilon, unbalanced mass, batching, f32 stability and input errors.

use super::*;
use crate::ot::{sq_euclidean, ScaleCost};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

/// `[c, n, d]` f64 standard-normal points from `seed`, shifted by `shift`.
fn points(seed: u64, c: i64, n: i64, d: i64, shift: f64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..c * n * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .map(|x: f64| x + shift)
        .collect();
    Tensor::from_slice(&v).reshape([c, n, d])
}

/// `[c, n]` positive weights from `seed`, each row summing to `mass`.
fn weights_of(seed: u64, c: i64, n: i64, mass: f64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let u = Uniform::new(0.2, 1.0);
    let v: Vec<f64> = (0..c * n).map(|_| u.sample(&mut rng)).collect();
    let w = Tensor::from_slice(&v).reshape([c, n]);
    &w / w.sum_dim_intlist(Some(&[1i64][..]), true, Kind::Double) * mass
}

fn cfg(epsilon: f64, tau_a: f64, tau_b: f64) -> OtConfig {
    OtConfig {
        epsilon,
        tau_a,
        tau_b,
        max_iter: 100_000,
        tol: 1e-10,
        ..OtConfig::default()
    }
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn mass(plan: &Tensor) -> Vec<f64> {
    to_vec(&plan.sum_dim_intlist(Some(&[1i64, 2][..]), false, Kind::Double)).unwrap()
}

#[test]
fn balanced_plan_has_the_given_marginals() {
    let (x, y) = (points(1, 2, 7, 3, 0.0), points(2, 2, 5, 3, 0.5));
    let (a, b) = (weights_of(3, 2, 7, 1.0), weights_of(4, 2, 5, 1.0));
    let cost = sq_euclidean(&x, &y).unwrap();
    let out = sinkhorn(&cost, Some(&a), Some(&b), &cfg(0.1, 1.0, 1.0)).unwrap();
    assert!(out.all_converged(), "{:?}", out.errors);
    assert_eq!(out.plan.size(), [2, 7, 5]);
    let rows = out
        .plan
        .sum_dim_intlist(Some(&[2i64][..]), false, Kind::Double);
    let cols = out
        .plan
        .sum_dim_intlist(Some(&[1i64][..]), false, Kind::Double);
    assert!(max_abs(&rows, &a) < 1e-12, "{}", max_abs(&rows, &a));
    assert!(max_abs(&cols, &b) < 1e-10, "{}", max_abs(&cols, &b));
    // f32: the same marginals to f32 accuracy.
    let out32 = sinkhorn(
        &cost.to_kind(Kind::Float),
        Some(&a),
        Some(&b),
        &OtConfig {
            tol: 1e-5,
            ..cfg(0.1, 1.0, 1.0)
        },
    )
    .unwrap();
    assert_eq!(out32.plan.kind(), Kind::Float);
    assert!(out32.all_converged(), "{:?}", out32.errors);
    let cols32 = out32
        .plan
        .sum_dim_intlist(Some(&[1i64][..]), false, Kind::Double);
    assert!(max_abs(&cols32, &b) < 1e-5);
    assert!(max_abs(&out32.plan.to_kind(Kind::Double), &out.plan) < 1e-5);
}

/// The cheapest assignment of an `n x n` cost by trying all permutations.
fn brute_force_assignment(cost: &[f64], n: usize) -> Vec<usize> {
    fn rec(
        i: usize,
        n: usize,
        used: &mut [bool],
        cur: &mut Vec<usize>,
        c: &[f64],
        best: &mut (f64, Vec<usize>),
        acc: f64,
    ) {
        if i == n {
            if acc < best.0 {
                *best = (acc, cur.clone());
            }
            return;
        }
        for j in 0..n {
            if !used[j] {
                used[j] = true;
                cur.push(j);
                rec(i + 1, n, used, cur, c, best, acc + c[i * n + j]);
                cur.pop();
                used[j] = false;
            }
        }
    }
    let mut best = (f64::INFINITY, Vec::new());
    rec(
        0,
        n,
        &mut vec![false; n],
        &mut Vec::new(),
        cost,
        &mut best,
        0.0,
    );
    best.1
}

#[test]
fn small_epsilon_recovers_the_optimal_assignment() {
    let (c, n) = (3i64, 6usize);
    let cost = sq_euclidean(&points(10, c, 6, 2, 0.0), &points(11, c, 6, 2, 0.3)).unwrap();
    let out = sinkhorn(
        &cost,
        None,
        None,
        // ott's default tol: Sinkhorn converges slowly at small epsilon.
        &OtConfig {
            tol: 1e-3,
            max_iter: 20_000,
            ..cfg(1e-3, 1.0, 1.0)
        },
    )
    .unwrap();
    assert!(out.all_converged(), "{:?} {:?}", out.errors, out.iterations);
    for ci in 0..c {
        let cc: Vec<f64> = to_vec(&cost.get(ci).reshape([-1])).unwrap();
        let best = brute_force_assignment(&cc, n);
        let p = out.plan.get(ci);
        let on_best: f64 = best
            .iter()
            .enumerate()
            .map(|(i, &j)| p.double_value(&[i as i64, j as i64]))
            .sum();
        assert!(on_best > 0.99, "condition {ci}: mass {on_best} on {best:?}");
        let argmax = Vec::<i64>::try_from(p.argmax(1, false)).unwrap();
        assert_eq!(argmax, best.iter().map(|&j| j as i64).collect::<Vec<_>>());
    }
}

#[test]
fn unbalanced_plans_drop_mass_that_is_expensive_to_move() {
    // Target shifted far from the source: relaxing the marginals sheds mass.
    let cost = sq_euclidean(&points(20, 1, 8, 2, 0.0), &points(21, 1, 10, 2, 1.5)).unwrap();
    let m = |tau| {
        mass(
            &sinkhorn(&cost, None, None, &cfg(0.05, tau, tau))
                .unwrap()
                .plan,
        )[0]
    };
    let (m1, m09, m05) = (m(1.0), m(0.9), m(0.5));
    assert!((m1 - 1.0).abs() < 1e-9, "{m1}");
    assert!(m09 < 0.9 && m05 < 0.9, "{m1} {m09} {m05}");
    // Mismatched masses: balanced OT refuses, unbalanced OT compromises.
    let a = Tensor::full([8], 1.0 / 8.0, (Kind::Double, Device::Cpu));
    let b = Tensor::full([10], 0.05, (Kind::Double, Device::Cpu)); // mass 0.5
    let e = sinkhorn(&cost, Some(&a), Some(&b), &cfg(0.1, 1.0, 1.0)).unwrap_err();
    assert!(e.to_string().contains("sum(b) = 0.5"), "{e}");
    let out = sinkhorn(&cost, Some(&a), Some(&b), &cfg(0.1, 0.9, 0.9)).unwrap();
    assert!(out.all_converged());
    let mm = mass(&out.plan)[0];
    assert!(mm > 0.5 && mm < 1.0, "{mm}");
}

#[test]
fn batched_conditions_equal_one_at_a_time() {
    // Targets shifted by 0, 10 and 1: the conditions converge at different
    // iterations (a far shift makes the scaled cost nearly separable).
    let shift = Tensor::from_slice(&[0.0, 10.0, 1.0]).view([3, 1, 1]);
    let y = points(31, 3, 7, 4, 0.0) + shift;
    let cost = sq_euclidean(&points(30, 3, 9, 4, 0.0), &y).unwrap();
    let b = weights_of(32, 3, 7, 1.0);
    for (ta, tb) in [(1.0, 1.0), (0.8, 0.6), (1.0, 0.7)] {
        let conf = OtConfig {
            tol: 1e-8,
            scale_cost: ScaleCost::Median,
            ..cfg(0.05, ta, tb)
        };
        let all = sinkhorn(&cost, None, Some(&b), &conf).unwrap();
        assert!(all.all_converged());
        for ci in 0..3 {
            let one = sinkhorn(
                &cost.narrow(0, ci, 1),
                None,
                Some(&b.narrow(0, ci, 1)),
                &conf,
            )
            .unwrap();
            let d = max_abs(&one.plan, &all.plan.narrow(0, ci, 1));
            assert!(d < 1e-13, "tau ({ta}, {tb}) condition {ci}: {d}");
            assert_eq!(one.iterations[0], all.iterations[ci as usize]);
            assert_eq!(one.cost_scale[0], all.cost_scale[ci as usize]);
        }
        // The balanced solves stop at different iterations, so freezing is
        // what keeps them equal.
        let its = &all.iterations;
        assert!(
            !conf.is_balanced() || its.iter().any(|&i| i != its[0]),
            "tau ({ta}, {tb}): same iterations {its:?}"
        );
    }
}

#[test]
fn f32_is_stable_at_small_epsilon() {
    let cost = sq_euclidean(&points(40, 2, 32, 5, 0.0), &points(41, 2, 32, 5, 0.2)).unwrap();
    let conf = OtConfig {
        tol: 1e-4,
        ..cfg(1e-3, 1.0, 1.0)
    };
    let out = sinkhorn(&cost.to_kind(Kind::Float), None, None, &conf).unwrap();
    assert!(out.all_converged(), "{:?}", out.errors);
    let ok = out.plan.isfinite().all().int64_value(&[]) == 1;
    assert!(ok, "non-finite plan entries");
    let cols = out
        .plan
        .sum_dim_intlist(Some(&[1i64][..]), false, Kind::Double);
    assert!((cols - 1.0 / 32.0).abs().max().double_value(&[]) < 1e-4);
    let unb = sinkhorn(
        &cost.to_kind(Kind::Float),
        None,
        None,
        &OtConfig {
            tau_a: 0.9,
            tau_b: 0.9,
            ..conf
        },
    )
    .unwrap();
    assert!(unb.all_converged() && unb.plan.isfinite().all().int64_value(&[]) == 1);
}

#[test]
fn zero_weights_get_no_mass() {
    let cost = sq_euclidean(&points(50, 1, 5, 2, 0.0), &points(51, 1, 4, 2, 0.0)).unwrap();
    let a = Tensor::from_slice(&[0.25, 0.0, 0.25, 0.25, 0.25]);
    for tau in [1.0, 0.7] {
        let out = sinkhorn(&cost, Some(&a), None, &cfg(0.1, tau, tau)).unwrap();
        assert!(out.all_converged(), "{:?}", out.errors);
        let row1 = out.plan.get(0).get(1).abs().max().double_value(&[]);
        assert_eq!(row1, 0.0);
        assert!(out.plan.isfinite().all().int64_value(&[]) == 1);
    }
}

#[test]
fn running_out_of_iterations_is_reported() {
    let cost = sq_euclidean(&points(60, 2, 6, 2, 0.0), &points(61, 2, 6, 2, 0.0)).unwrap();
    let conf = OtConfig {
        max_iter: 3,
        tol: 0.0,
        ..cfg(1e-3, 1.0, 1.0)
    };
    let out = sinkhorn(&cost, None, None, &conf).unwrap();
    assert_eq!(out.iterations, [3, 3]);
    assert_eq!(out.converged, [false, false]);
    assert!(out.errors.iter().all(|e| e.is_finite() && *e > 0.0));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let cost = Tensor::ones([2, 3, 4], (Kind::Double, Device::Cpu));
    let conf = OtConfig::default();
    let msg = |r: Result<SinkhornOutput>| r.unwrap_err().to_string();
    assert!(msg(sinkhorn(&cost.get(0), None, None, &conf)).contains("[3, 4]"));
    let empty = Tensor::ones([2, 0, 4], (Kind::Double, Device::Cpu));
    assert!(msg(sinkhorn(&empty, None, None, &conf)).contains("at least one"));
    let nan = cost
        .copy()
        .index_fill(2, &Tensor::from_slice(&[1i64]), f64::NAN);
    assert!(msg(sinkhorn(&nan, None, None, &conf)).contains("NaN"));
    let a_bad = Tensor::ones([5], (Kind::Double, Device::Cpu));
    let e = msg(sinkhorn(&cost, Some(&a_bad), None, &conf));
    assert!(e.contains("'a'") && e.contains("[5]"), "{e}");
    let b_neg = Tensor::from_slice(&[0.5, 0.5, 0.5, -0.5]);
    let e = msg(sinkhorn(&cost, None, Some(&b_neg), &conf));
    assert!(e.contains("'b'") && e.contains(">= 0"), "{e}");
    let b_zero = Tensor::zeros([2, 4], (Kind::Double, Device::Cpu));
    let e = msg(sinkhorn(&cost, None, Some(&b_zero), &conf));
    assert!(e.contains("condition 0") && e.contains("mass"), "{e}");
    let bad = OtConfig {
        epsilon: -1.0,
        ..conf
    };
    let e = msg(sinkhorn(&cost, None, None, &bad));
    assert!(e.contains("epsilon") && e.contains("-1"), "{e}");
}
