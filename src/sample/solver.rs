//! ODE solvers for sampling (model.md, "Flow matching": integrate from t = 0
//! to 1 with 100 Euler steps). With `h = 1 / n` and `t_k = k h`:
//!
//! * Euler: `x_{k+1} = x_k + h v(x_k, t_k)` (n evaluations);
//! * midpoint (second order):
//!   `x_{k+1} = x_k + h v(x_k + h/2 v(x_k, t_k), t_k + h/2)` (2n evaluations);
//! * Heun (explicit trapezoid, second order):
//!   `x' = x_k + h v(x_k, t_k)`,
//!   `x_{k+1} = x_k + h / 2 (v(x_k, t_k) + v(x', t_{k+1}))` (2n evaluations);
//! * dopri5: the adaptive Dormand-Prince 5(4) pair (7 stages, first same as
//!   last, so 6 new evaluations per attempted step). A step is accepted when
//!   the RMS over all entries of `err / (atol + rtol max(|x|, |x_new|))` is
//!   at most 1 (`err` is the difference of the 5th- and 4th-order
//!   solutions); the next step is `h * clamp(0.9 norm^(-1/5), 0.2, 5)`. The
//!   first step is `1 / n`. One step size serves the whole batch.
//!
//! Every solver reports its number of velocity evaluations (NFE); with
//! guidance each evaluation is one forward of doubled batch.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The ODE solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// First-order Euler (the paper's choice).
    #[default]
    Euler,
    /// Second-order midpoint rule.
    Midpoint,
    /// Second-order Heun.
    Heun,
    /// Adaptive Dormand-Prince 5(4).
    Dopri5,
}

/// Tolerances of the adaptive solver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

/// What an integration cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Integration {
    /// Velocity evaluations.
    pub nfe: usize,
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (dopri5 only).
    pub rejected: usize,
}

/// Dormand-Prince 5(4): nodes `c`, stage weights `a` (lower triangle), the
/// 5th-order weights `b` (= the last stage row, FSAL) and the 4th-order
/// weights `b4`.
const C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
const A: [&[f64]; 7] = [
    &[],
    &[0.2],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
    ],
    &[
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
    &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
const B4: [f64; 7] = [
    5179.0 / 57600.0,
    0.0,
    7571.0 / 16695.0,
    393.0 / 640.0,
    -92097.0 / 339200.0,
    187.0 / 2100.0,
    1.0 / 40.0,
];

/// Most attempted steps of dopri5 before it gives up.
const MAX_ADAPTIVE_STEPS: usize = 10_000;

impl Solver {
    /// Names, as `--solver` spells them.
    pub const NAMES: [&'static str; 4] = ["euler", "midpoint", "heun", "dopri5"];

    /// Parses a solver name.
    pub fn parse(s: &str) -> Result<Solver> {
        match s.trim().to_ascii_lowercase().as_str() {
            "euler" => Ok(Solver::Euler),
            "midpoint" => Ok(Solver::Midpoint),
            "heun" => Ok(Solver::Heun),
            "dopri5" | "dopri" => Ok(Solver::Dopri5),
            other => Err(Error::unknown("solver", other, &Self::NAMES)),
        }
    }

    /// Velocity evaluations for `steps` fixed steps (dopri5: of its first
    /// attempted step only, as it adapts).
    pub fn evaluations(&self, steps: usize) -> usize {
        match self {
            Solver::Euler => steps,
            Solver::Midpoint | Solver::Heun => 2 * steps,
            Solver::Dopri5 => 7,
        }
    }

    /// Integrates `dx/dt = v(x, t)` from `x0` `[B, m]` at t = 0 to t = 1 in
    /// `steps` equal steps (dopri5: `1 / steps` is its first step and
    /// `tol` its tolerances); `v(x, t)` returns `[B, m]`.
    pub fn integrate(
        &self,
        x0: Tensor,
        steps: usize,
        tol: Tolerance,
        mut v: impl FnMut(&Tensor, f64) -> Result<Tensor>,
    ) -> Result<(Tensor, Integration)> {
        if steps == 0 {
            return Err(Error::invalid(
                "steps",
                "the solver needs at least one step",
            ));
        }
        if *self == Solver::Dopri5 {
            return dopri5(x0, 1.0 / steps as f64, tol, v);
        }
        let h = 1.0 / steps as f64;
        let mut x = x0;
        let mut nfe = 0;
        for k in 0..steps {
            let t = k as f64 * h;
            let v0 = v(&x, t)?;
            x = match self {
                Solver::Euler => {
                    nfe += 1;
                    x.f_add(&v0.f_mul_scalar(h)?)?
                }
                Solver::Midpoint => {
                    nfe += 2;
                    let xm = x.f_add(&v0.f_mul_scalar(0.5 * h)?)?;
                    let vm = v(&xm, t + 0.5 * h)?;
                    x.f_add(&vm.f_mul_scalar(h)?)?
                }
                Solver::Heun | Solver::Dopri5 => {
                    nfe += 2;
                    let xp = x.f_add(&v0.f_mul_scalar(h)?)?;
                    let v1 = v(&xp, (k + 1) as f64 * h)?;
                    x.f_add(&v0.f_add(&v1)?.f_mul_scalar(0.5 * h)?)?
                }
            };
        }
        Ok((
            x,
            Integration {
                nfe,
                steps,
                rejected: 0,
            },
        ))
    }
}

/// Adaptive Dormand-Prince 5(4) from t = 0 to 1 (see the module docs).
fn dopri5(
    x0: Tensor,
    h0: f64,
    tol: Tolerance,
    mut v: impl FnMut(&Tensor, f64) -> Result<Tensor>,
) -> Result<(Tensor, Integration)> {
    if !(tol.rtol > 0.0 && tol.atol > 0.0 && tol.rtol.is_finite() && tol.atol.is_finite()) {
        return Err(Error::invalid(
            "dopri5 tolerances",
            format!("rtol {} and atol {} must be positive", tol.rtol, tol.atol),
        ));
    }
    let mut x = x0;
    let mut t = 0.0f64;
    let mut h = h0.min(1.0);
    let mut stats = Integration::default();
    let mut k1 = v(&x, t)?;
    stats.nfe += 1;
    let mut attempts = 0usize;
    while t < 1.0 - 1e-12 {
        attempts += 1;
        if attempts > MAX_ADAPTIVE_STEPS {
            return Err(Error::invalid(
                "dopri5",
                format!(
                    "no solution within {MAX_ADAPTIVE_STEPS} steps at t = {t:.4} (rtol {}, atol {}): loosen the tolerances",
                    tol.rtol, tol.atol
                ),
            ));
        }
        h = h.min(1.0 - t);
        let mut k: Vec<Tensor> = vec![k1.shallow_clone()];
        for (i, row) in A.iter().enumerate().skip(1) {
            let mut xi = x.shallow_clone();
            for (j, &a) in row.iter().enumerate() {
                if a != 0.0 {
                    xi = xi.f_add(&k[j].f_mul_scalar(h * a)?)?;
                }
            }
            k.push(v(&xi, t + C[i] * h)?);
            stats.nfe += 1;
            if i == 6 {
                // The 7th stage's input is the 5th-order solution.
                k.push(xi);
            }
        }
        let x_new = k
            .pop()
            .ok_or_else(|| Error::Mismatch("dopri5 stages".into()))?;
        // err = h sum_i (b_i - b4_i) k_i, b = A[6] extended with 0.
        let mut err = Tensor::f_zeros_like(&x)?;
        for (i, ki) in k.iter().enumerate() {
            let b = A[6].get(i).copied().unwrap_or(0.0);
            let d = b - B4[i];
            if d != 0.0 {
                err = err.f_add(&ki.f_mul_scalar(h * d)?)?;
            }
        }
        let scale = x
            .f_abs()?
            .f_maximum(&x_new.f_abs()?)?
            .f_mul_scalar(tol.rtol)?
            .f_add_scalar(tol.atol)?;
        let norm = err
            .f_div(&scale)?
            .f_square()?
            .f_mean(Kind::Double)?
            .f_sqrt()?
            .f_double_value(&[])?;
        if !norm.is_finite() {
            return Err(Error::invalid(
                "dopri5",
                format!("the error estimate became {norm} at t = {t:.4}"),
            ));
        }
        let factor = if norm == 0.0 {
            5.0
        } else {
            (0.9 * norm.powf(-0.2)).clamp(0.2, 5.0)
        };
        if norm <= 1.0 {
            t += h;
            x = x_new;
            k1 = k
                .pop()
                .ok_or_else(|| Error::Mismatch("dopri5 stages".into()))?;
            stats.steps += 1;
        } else {
            stats.rejected += 1;
        }
        h *= factor;
    }
    Ok((x, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    const TOL: Tolerance = Tolerance {
        rtol: 1e-5,
        atol: 1e-5,
    };

    /// dx/dt = x from x0 = 1: Euler gives (1 + 1/n)^n, Heun (1 + h + h^2/2)^n,
    /// midpoint the same as Heun on a linear ODE; all tend to e.
    #[test]
    fn solvers_on_exponential_growth() {
        let x0 = Tensor::ones([1, 1], (Kind::Double, tch::Device::Cpu));
        let n = 10;
        let run = |s: Solver| s.integrate(x0.copy(), n, TOL, |x, _| Ok(x.copy())).unwrap();
        let (e, ie) = run(Solver::Euler);
        let e = e.double_value(&[0, 0]);
        assert!((e - 1.1f64.powi(10)).abs() < 1e-12, "{e}");
        assert_eq!(ie.nfe, 10);
        let (h, ih) = run(Solver::Heun);
        let h = h.double_value(&[0, 0]);
        assert!((h - (1.0 + 0.1 + 0.005f64).powi(10)).abs() < 1e-12, "{h}");
        assert_eq!(ih.nfe, 20);
        let (mp, im) = run(Solver::Midpoint);
        assert!((mp.double_value(&[0, 0]) - h).abs() < 1e-12);
        assert_eq!(im.nfe, 20);
        assert!((h - std::f64::consts::E).abs() < (e - std::f64::consts::E).abs());
    }

    /// dopri5 on dx/dt = -2 t x (x = exp(-t^2)) and on a stiff-ish
    /// oscillator meets its tolerance with few evaluations, and tighter
    /// tolerances cost more evaluations and give smaller errors.
    #[test]
    fn dopri5_meets_its_tolerance() {
        let x0 = Tensor::from_slice(&[1.0f64, 2.0]).reshape([1, 2]);
        let exact = (-1.0f64).exp();
        let solve = |rtol: f64| {
            let tol = Tolerance { rtol, atol: rtol };
            let (x, i) = Solver::Dopri5
                .integrate(x0.copy(), 10, tol, |x, t| Ok(x.copy() * (-2.0 * t)))
                .unwrap();
            let err = (x.double_value(&[0, 0]) - exact).abs()
                + (x.double_value(&[0, 1]) - 2.0 * exact).abs();
            (err, i)
        };
        let (e_loose, i_loose) = solve(1e-3);
        let (e_tight, i_tight) = solve(1e-8);
        assert!(e_loose < 1e-3, "{e_loose}");
        assert!(e_tight < 1e-7, "{e_tight}");
        assert!(i_tight.nfe > i_loose.nfe, "{i_tight:?} vs {i_loose:?}");
        assert_eq!(i_loose.nfe, 1 + 6 * (i_loose.steps + i_loose.rejected));
        // Reaching t = 1 exactly: the constant field v = 1 moves x by 1.
        let (x, _) = Solver::Dopri5
            .integrate(
                Tensor::zeros([1, 1], (Kind::Double, tch::Device::Cpu)),
                3,
                TOL,
                |x, _| Ok(x.ones_like()),
            )
            .unwrap();
        assert!((x.double_value(&[0, 0]) - 1.0).abs() < 1e-12);
        // Bad tolerances are errors.
        let bad = Tolerance {
            rtol: 0.0,
            atol: 1e-3,
        };
        assert!(Solver::Dopri5
            .integrate(x0, 10, bad, |x, _| Ok(x.copy()))
            .is_err());
        assert!(Solver::parse("rk4")
            .unwrap_err()
            .to_string()
            .contains("dopri5"));
    }
}
