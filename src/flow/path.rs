//! Probability paths for conditional flow matching (model.md, "Flow
//! matching"; paper Alg. 1), with independent coupling: `x0 ~ N(0, I)` is
//! drawn independently of the data cell `x1`.
//!
//! * Linear: `x_t = (1 - t) x0 + t x1 + sigma eps`, target `u_t = x1 - x0`.
//! * Trigonometric: `x_t = cos(pi t / 2) x0 + sin(pi t / 2) x1 + sigma eps`,
//!   target `u_t = d/dt mu_t = (pi / 2) (cos(pi t / 2) x1 - sin(pi t / 2) x0)`.
//!
//! `sigma` is a constant (0 for the PRiMeFlow U-Net), so it adds no term to
//! the target. Shapes: `x0`, `x1`, `eps` `[B, m]`, `t` `[B]` -> `[B, m]`.

use std::f64::consts::FRAC_PI_2;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};

/// The shape of a path, as written in configs (`linear` | `trigonometric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Straight line from source to data (the paper's choice).
    #[default]
    Linear,
    /// Quarter circle (variance preserving for independent unit Gaussians).
    Trigonometric,
}

impl PathKind {
    /// Parses `linear` or `trigonometric` (`trig`, `cosine` accepted).
    pub fn parse(s: &str) -> Result<PathKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linear" => Ok(PathKind::Linear),
            "trigonometric" | "trig" | "cosine" => Ok(PathKind::Trigonometric),
            other => Err(Error::unknown("path", other, &["linear", "trigonometric"])),
        }
    }
}

/// A probability path with constant noise `sigma`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Path {
    /// `x_t = (1 - t) x0 + t x1 + sigma eps`.
    Linear { sigma: f64 },
    /// `x_t = cos(pi t / 2) x0 + sin(pi t / 2) x1 + sigma eps`.
    Trigonometric { sigma: f64 },
}

impl Path {
    /// The path of `kind` with noise `sigma` (must be finite and >= 0).
    pub fn new(kind: PathKind, sigma: f64) -> Result<Path> {
        if !sigma.is_finite() || sigma < 0.0 {
            return Err(Error::invalid(
                "sigma",
                format!("{sigma} is not a finite number >= 0"),
            ));
        }
        Ok(match kind {
            PathKind::Linear => Path::Linear { sigma },
            PathKind::Trigonometric => Path::Trigonometric { sigma },
        })
    }

    /// The constant noise level.
    pub fn sigma(&self) -> f64 {
        match *self {
            Path::Linear { sigma } | Path::Trigonometric { sigma } => sigma,
        }
    }

    /// The path's kind.
    pub fn kind(&self) -> PathKind {
        match self {
            Path::Linear { .. } => PathKind::Linear,
            Path::Trigonometric { .. } => PathKind::Trigonometric,
        }
    }

    /// Coefficients `(a_t, b_t)` of `mu_t = a_t x0 + b_t x1`, each `[B, 1]`.
    fn coefficients(&self, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = t.f_unsqueeze(-1)?; // [B, 1]
        Ok(match self {
            Path::Linear { .. } => (t.f_neg()?.f_add_scalar(1.0)?, t),
            Path::Trigonometric { .. } => {
                let a = t.f_mul_scalar(FRAC_PI_2)?;
                (a.f_cos()?, a.f_sin()?)
            }
        })
    }

    /// Time derivatives `(a'_t, b'_t)` of the coefficients, each `[B, 1]`.
    fn derivatives(&self, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = t.f_unsqueeze(-1)?; // [B, 1]
        Ok(match self {
            Path::Linear { .. } => (t.f_full_like(-1.0)?, t.f_full_like(1.0)?),
            Path::Trigonometric { .. } => {
                let a = t.f_mul_scalar(FRAC_PI_2)?;
                (
                    a.f_sin()?.f_mul_scalar(-FRAC_PI_2)?,
                    a.f_cos()?.f_mul_scalar(FRAC_PI_2)?,
                )
            }
        })
    }

    /// The mean of the path at `t`: `mu_t`, `[B, m]`.
    pub fn mu_t(&self, x0: &Tensor, x1: &Tensor, t: &Tensor) -> Result<Tensor> {
        check_shapes(x0, x1, t)?;
        let (a, b) = self.coefficients(t)?;
        Ok(x0.f_mul(&a)?.f_add(&x1.f_mul(&b)?)?)
    }

    /// A point on the path: `x_t = mu_t + sigma eps`, `[B, m]`.
    pub fn sample_xt(&self, x0: &Tensor, x1: &Tensor, t: &Tensor, eps: &Tensor) -> Result<Tensor> {
        let mu = self.mu_t(x0, x1, t)?;
        if eps.size() != mu.size() {
            return Err(Error::Mismatch(format!(
                "eps has shape {:?}, x_t has {:?}",
                eps.size(),
                mu.size()
            )));
        }
        let sigma = self.sigma();
        if sigma == 0.0 {
            return Ok(mu);
        }
        Ok(mu.f_add(&eps.f_mul_scalar(sigma)?)?)
    }

    /// The target (conditional) velocity `u_t = d mu_t / dt`, `[B, m]`.
    pub fn target(&self, x0: &Tensor, x1: &Tensor, t: &Tensor) -> Result<Tensor> {
        check_shapes(x0, x1, t)?;
        match self {
            // Exactly x1 - x0 (no rounding from multiplying by +-1).
            Path::Linear { .. } => Ok(x1.f_sub(x0)?),
            Path::Trigonometric { .. } => {
                let (da, db) = self.derivatives(t)?;
                Ok(x0.f_mul(&da)?.f_add(&x1.f_mul(&db)?)?)
            }
        }
    }
}

fn check_shapes(x0: &Tensor, x1: &Tensor, t: &Tensor) -> Result<()> {
    let (s0, s1, st) = (x0.size(), x1.size(), t.size());
    if s0 != s1 || s0.len() != 2 || st.len() != 1 || st[0] != s0[0] {
        return Err(Error::Mismatch(format!(
            "path inputs must be x0 [B, m], x1 [B, m], t [B]; got x0 {s0:?}, x1 {s1:?}, t {st:?}"
        )));
    }
    Ok(())
}
