//! ODE solvers for sampling (model.md, "Flow matching": integrate from t = 0
//! to 1 with 100 Euler steps). With `h = 1 / n` and `t_k = k h`:
//!
//! * Euler: `x_{k+1} = x_k + h v(x_k, t_k)` (n evaluations);
//! * Heun (explicit trapezoid, second order):
//!   `x' = x_k + h v(x_k, t_k)`,
//!   `x_{k+1} = x_k + h / 2 (v(x_k, t_k) + v(x', t_{k+1}))` (2n evaluations).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};

/// The ODE solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// First-order Euler (the paper's choice).
    #[default]
    Euler,
    /// Second-order Heun.
    Heun,
}

impl Solver {
    /// Parses `euler` or `heun`.
    pub fn parse(s: &str) -> Result<Solver> {
        match s.trim().to_ascii_lowercase().as_str() {
            "euler" => Ok(Solver::Euler),
            "heun" => Ok(Solver::Heun),
            other => Err(Error::unknown("solver", other, &["euler", "heun"])),
        }
    }

    /// Velocity evaluations for `steps` steps.
    pub fn evaluations(&self, steps: usize) -> usize {
        match self {
            Solver::Euler => steps,
            Solver::Heun => 2 * steps,
        }
    }

    /// Integrates `dx/dt = v(x, t)` from `x0` `[B, m]` at t = 0 to t = 1 in
    /// `steps` equal steps; `v(x, t)` returns `[B, m]`.
    pub fn integrate(
        &self,
        x0: Tensor,
        steps: usize,
        mut v: impl FnMut(&Tensor, f64) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if steps == 0 {
            return Err(Error::invalid(
                "steps",
                "the solver needs at least one step",
            ));
        }
        let h = 1.0 / steps as f64;
        let mut x = x0;
        for k in 0..steps {
            let t = k as f64 * h;
            let v0 = v(&x, t)?;
            x = match self {
                Solver::Euler => x.f_add(&v0.f_mul_scalar(h)?)?,
                Solver::Heun => {
                    let xp = x.f_add(&v0.f_mul_scalar(h)?)?;
                    let v1 = v(&xp, (k + 1) as f64 * h)?;
                    x.f_add(&v0.f_add(&v1)?.f_mul_scalar(0.5 * h)?)?
                }
            };
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// dx/dt = x from x0 = 1: Euler gives (1 + 1/n)^n, Heun (1 + h + h^2/2)^n,
    /// both tending to e.
    #[test]
    fn solvers_on_exponential_growth() {
        let x0 = Tensor::ones([1, 1], (Kind::Double, tch::Device::Cpu));
        let n = 10;
        let e = Solver::Euler
            .integrate(x0.copy(), n, |x, _| Ok(x.copy()))
            .unwrap()
            .double_value(&[0, 0]);
        assert!((e - 1.1f64.powi(10)).abs() < 1e-12, "{e}");
        let h = Solver::Heun
            .integrate(x0, n, |x, _| Ok(x.copy()))
            .unwrap()
            .double_value(&[0, 0]);
        assert!((h - (1.0 + 0.1 + 0.005f64).powi(10)).abs() < 1e-12, "{h}");
        assert!((h - std::f64::consts::E).abs() < (e - std::f64::consts::E).abs());
    }
}
