//! Tests: flow (probability paths, CFM loss, guidance dropout).
//!
//! The expected values are computed independently here, element by element
//! in f64 from model.md's formulas, not with the library's tensor code.

use primeflow::flow::{cfm_loss, cfm_loss_with, drop_conditions, FlowNoise, Path, PathKind};
use primeflow::model::VelocityField;
use tch::{Device, Kind, Tensor};

const PI: f64 = std::f64::consts::PI;

fn t64(v: &[f64], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).reshape(shape)
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    let t = t.to_kind(Kind::Double).flatten(0, -1);
    let n = t.numel();
    let mut v = vec![0f64; n];
    t.copy_data(&mut v, n);
    v
}

/// Deterministic pseudo-random values (a fixed LCG; no library RNG involved).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

struct Case {
    x0: Vec<f64>,
    x1: Vec<f64>,
    eps: Vec<f64>,
    t: Vec<f64>,
}

const B: usize = 4;
const M: usize = 3;

fn case() -> Case {
    Case {
        x0: values(B * M, 1),
        x1: values(B * M, 2),
        eps: values(B * M, 3),
        t: vec![0.0, 0.25, 0.6, 1.0],
    }
}

/// Closed forms (model.md, "Flow matching"), per element.
fn closed_form(kind: PathKind, sigma: f64, c: &Case) -> (Vec<f64>, Vec<f64>) {
    let mut xt = vec![0.0; B * M];
    let mut ut = vec![0.0; B * M];
    for b in 0..B {
        let t = c.t[b];
        for g in 0..M {
            let i = b * M + g;
            let (x0, x1, e) = (c.x0[i], c.x1[i], c.eps[i]);
            match kind {
                PathKind::Linear => {
                    xt[i] = (1.0 - t) * x0 + t * x1 + sigma * e;
                    ut[i] = x1 - x0;
                }
                PathKind::Trigonometric => {
                    xt[i] = (PI * t / 2.0).cos() * x0 + (PI * t / 2.0).sin() * x1 + sigma * e;
                    ut[i] = -PI / 2.0 * (PI * t / 2.0).sin() * x0
                        + PI / 2.0 * (PI * t / 2.0).cos() * x1;
                }
            }
        }
    }
    (xt, ut)
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn paths_match_their_closed_forms() {
    let c = case();
    for kind in [PathKind::Linear, PathKind::Trigonometric] {
        for sigma in [0.0, 0.1] {
            let path = Path::new(kind, sigma).unwrap();
            let (x0, x1, eps) = (
                t64(&c.x0, &[B as i64, M as i64]),
                t64(&c.x1, &[B as i64, M as i64]),
                t64(&c.eps, &[B as i64, M as i64]),
            );
            let t = t64(&c.t, &[B as i64]);
            let (want_xt, want_ut) = closed_form(kind, sigma, &c);
            assert_close(
                &to_vec(&path.sample_xt(&x0, &x1, &t, &eps).unwrap()),
                &want_xt,
                1e-12,
                &format!("{kind:?} sigma {sigma} x_t"),
            );
            assert_close(
                &to_vec(&path.target(&x0, &x1, &t).unwrap()),
                &want_ut,
                1e-12,
                &format!("{kind:?} sigma {sigma} u_t"),
            );
        }
    }
}

#[test]
fn finite_differences_of_x_t_give_the_target() {
    let c = case();
    let shape = [B as i64, M as i64];
    let (x0, x1, eps) = (t64(&c.x0, &shape), t64(&c.x1, &shape), t64(&c.eps, &shape));
    let t_mid = [0.1, 0.3, 0.55, 0.9];
    let h = 1e-5;
    for kind in [PathKind::Linear, PathKind::Trigonometric] {
        // sigma is constant in t, so it drops out of the derivative too.
        for sigma in [0.0, 0.2] {
            let path = Path::new(kind, sigma).unwrap();
            let tp = t64(&t_mid.map(|t| t + h), &[B as i64]);
            let tm = t64(&t_mid.map(|t| t - h), &[B as i64]);
            let fd = (path.sample_xt(&x0, &x1, &tp, &eps).unwrap()
                - path.sample_xt(&x0, &x1, &tm, &eps).unwrap())
                / (2.0 * h);
            let target = path.target(&x0, &x1, &t64(&t_mid, &[B as i64])).unwrap();
            assert_close(
                &to_vec(&fd),
                &to_vec(&target),
                1e-7,
                &format!("{kind:?} sigma {sigma}"),
            );
        }
    }
}

#[test]
fn path_endpoints_and_bad_inputs() {
    let _rng = primeflow::device::rng_guard(None);
    let shape = [2i64, 3];
    let x0 = Tensor::randn(shape, (Kind::Double, Device::Cpu));
    let x1 = Tensor::randn(shape, (Kind::Double, Device::Cpu));
    let zero = Tensor::zeros(shape, (Kind::Double, Device::Cpu));
    for kind in [PathKind::Linear, PathKind::Trigonometric] {
        let p = Path::new(kind, 0.0).unwrap();
        let at = |t: f64| {
            p.sample_xt(&x0, &x1, &Tensor::from_slice(&[t, t]), &zero)
                .unwrap()
        };
        assert!(
            at(0.0).allclose(&x0, 1e-12, 1e-12, false),
            "{kind:?} at t=0 is x0"
        );
        assert!(
            at(1.0).allclose(&x1, 1e-12, 1e-12, false),
            "{kind:?} at t=1 is x1"
        );
    }
    let e = Path::new(PathKind::Linear, -1.0).unwrap_err().to_string();
    assert!(e.contains("sigma"), "{e}");
    let p = Path::new(PathKind::Linear, 0.0).unwrap();
    let e = p
        .target(&x0, &x1, &Tensor::from_slice(&[0.5f64]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("t [B]") && e.contains("[1]"), "{e}");
    assert_eq!(PathKind::parse("trig").unwrap(), PathKind::Trigonometric);
    assert!(PathKind::parse("spline")
        .unwrap_err()
        .to_string()
        .contains("linear, trigonometric"));
}

#[test]
fn guidance_dropout_rate_and_null_rows() {
    let n = 20_000;
    let noise = FlowNoise::draw(n, 2, false, 0.2, Device::Cpu, 7).unwrap();
    let kept = noise.keep.sum(Kind::Double).double_value(&[]) / n as f64;
    // Binomial(20000, 0.8): sd of the fraction is 0.0028; 0.015 is > 5 sd.
    assert!((kept - 0.8).abs() < 0.015, "kept fraction {kept}");
    let cond = Tensor::ones([n, 5], (Kind::Float, Device::Cpu));
    let dropped = drop_conditions(&cond, &noise.keep).unwrap();
    let row_sums = dropped.sum_dim_intlist(1, false, Kind::Float);
    // Every row is either the full condition (5) or the null condition (0).
    let full = row_sums.eq(5.0).sum(Kind::Int64).int64_value(&[]);
    let null = row_sums.eq(0.0).sum(Kind::Int64).int64_value(&[]);
    assert_eq!(full + null, n);
    assert_eq!(full as f64 / n as f64, kept);
    for (p, want) in [(0.0, n as f64), (1.0, 0.0)] {
        let k = FlowNoise::draw(n, 2, false, p, Device::Cpu, 1)
            .unwrap()
            .keep
            .sum(Kind::Double)
            .double_value(&[]);
        assert_eq!(k, want, "p_uncond {p}");
    }
    assert!(FlowNoise::draw(4, 2, false, 1.5, Device::Cpu, 1).is_err());
    // The same seed gives the same draws.
    let a = FlowNoise::draw(8, 3, true, 0.2, Device::Cpu, 11).unwrap();
    let b = FlowNoise::draw(8, 3, true, 0.2, Device::Cpu, 11).unwrap();
    assert!(a.x0.equal(&b.x0) && a.t.equal(&b.t) && a.eps.equal(&b.eps) && a.keep.equal(&b.keep));
}

/// A velocity field that knows the data: for the linear path with sigma 0,
/// `(x1 - x_t) / (1 - t) = x1 - x0` is the exact target.
#[derive(Debug)]
struct Oracle(Tensor);

impl VelocityField for Oracle {
    fn velocity(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        _c: &Tensor,
        _train: bool,
    ) -> primeflow::Result<Tensor> {
        Ok((&self.0 - x_t) / (1.0 - t.unsqueeze(-1)))
    }
}

#[derive(Debug)]
struct Zero;

impl VelocityField for Zero {
    fn velocity(
        &self,
        x_t: &Tensor,
        _t: &Tensor,
        _c: &Tensor,
        _train: bool,
    ) -> primeflow::Result<Tensor> {
        Ok(x_t.zeros_like())
    }
}

#[test]
fn cfm_loss_is_the_mse_to_the_target() {
    let _rng = primeflow::device::rng_guard(None);
    let path = Path::new(PathKind::Linear, 0.0).unwrap();
    let x1 = Tensor::rand([64, 10], (Kind::Float, Device::Cpu)) * 3.0;
    let cond = Tensor::ones([64, 4], (Kind::Float, Device::Cpu));
    let oracle = cfm_loss(&Oracle(x1.copy()), &path, &x1, &cond, 0.2, true, 3)
        .unwrap()
        .double_value(&[]);
    assert!(
        oracle < 1e-6,
        "the exact velocity has (almost) zero loss: {oracle}"
    );
    // The zero field's loss is mean((x1 - x0)^2) of the same draws.
    let noise = FlowNoise::draw(64, 10, false, 0.2, Device::Cpu, 5).unwrap();
    let zero = cfm_loss_with(&Zero, &path, &x1, &cond, &noise, true)
        .unwrap()
        .double_value(&[]);
    let want = (&x1 - &noise.x0)
        .square()
        .mean(Kind::Double)
        .double_value(&[]);
    assert!((zero - want).abs() < 1e-5 * want, "{zero} vs {want}");
}
