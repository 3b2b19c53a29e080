//! Log-domain Sinkhorn for entropic, optionally unbalanced, OT, batched over
//! conditions (the math and the POT / ott mapping are in [`crate::ot`]).
//!
//! With potentials in units of epsilon, `phi = f / eps` `[C, n]` and
//! `psi = g / eps` `[C, k]`, and `K_ij = -C_ij / eps` (C already scaled),
//! one iteration is ott's `lse_step` (g first, then f):
//!
//! ```text
//! psi_j <- tau_b (log b_j - LSE_i(phi_i + K_ij))
//! phi_i <- tau_a (log a_i - LSE_j(psi_j + K_ij))
//! P_ij   = exp(phi_i + psi_j + K_ij)
//! ```
//!
//! Every `CHECK_EVERY` iterations (ott's `inner_iterations = 10`) the error
//! of ott's `solution_error` is computed per condition,
//!
//! `err = |P 1 - a~|_1 + |P^T 1 - b~|_1`, `a~ = a exp(-f / rho_a)`,
//! `b~ = b exp(-g / rho_b)`
//!
//! (`a~ = a`, `b~ = b` for a balanced marginal, so in the balanced case this is
//! the marginal error; in the unbalanced case it is the gradient of the dual).
//! A condition whose error is at most `tol` is frozen: later iterations leave
//! its potentials unchanged, so a condition's plan does not depend on which
//! other conditions share the batch.

use tch::{Device, Kind, Tensor};

use super::config::OtConfig;
use super::cost::{cost_scale, solve_kind};
use crate::error::{Error, Result};

/// Iterations between two error checks (ott's `inner_iterations`); each
/// check synchronises with the device.
pub const CHECK_EVERY: usize = 10;

/// A solved batch of OT problems.
#[derive(Debug)]
pub struct SinkhornOutput {
    /// `[C, n, k]` plan `P_ij = exp((f_i + g_j - C_ij) / eps)` on the
    /// scaled cost (f32, or f64 for an f64 cost).
    pub plan: Tensor,
    /// `[C, n]` source potentials `f` (units of the scaled cost).
    pub f: Tensor,
    /// `[C, k]` target potentials `g`.
    pub g: Tensor,
    /// `[C]` the divisor applied to each condition's cost (`scale_cost`).
    pub cost_scale: Vec<f64>,
    /// `[C]` iterations run per condition (a multiple of [`CHECK_EVERY`],
    /// or `max_iter`).
    pub iterations: Vec<usize>,
    /// `[C]` final error per condition (see the module docs).
    pub errors: Vec<f64>,
    /// `[C]` whether `errors[c] <= tol`.
    pub converged: Vec<bool>,
}

impl SinkhornOutput {
    /// True when every condition reached `tol`.
    pub fn all_converged(&self) -> bool {
        self.converged.iter().all(|&c| c)
    }
}

/// Solves `C` entropic OT problems at once.
///
/// * `cost`: `[C, n, k]` unscaled costs (e.g. [`super::sq_euclidean`]); it
///   is divided per condition by `cfg.scale_cost` first, as ott's geometry
///   does. f64 input -> f64 solve, anything else f32; on `cost`'s device.
/// * `a`: `[n]` or `[C, n]` source weights (finite, >= 0, mass > 0 per
///   condition); `None` = uniform `1 / n`.
/// * `b`: `[k]` or `[C, k]` target weights; `None` = uniform `1 / k`.
///
/// Balanced problems (`tau_a = tau_b = 1`) need `sum a = sum b` per
/// condition. Not reaching `tol` within `max_iter` is not an error: see
/// [`SinkhornOutput::converged`]. A solve that produces NaN is.
pub fn sinkhorn(
    cost: &Tensor,
    a: Option<&Tensor>,
    b: Option<&Tensor>,
    cfg: &OtConfig,
) -> Result<SinkhornOutput> {
    cfg.validate()?;
    let s = cost.size();
    if s.len() != 3 {
        return Err(Error::Mismatch(format!(
            "OT cost must be [C, n, k], got {s:?}"
        )));
    }
    let (c, n, k) = (s[0], s[1], s[2]);
    if n == 0 || k == 0 {
        return Err(Error::invalid(
            "OT cost",
            format!("needs at least one source and one target point, got [C, n, k] = {s:?}"),
        ));
    }
    let kind = solve_kind(cost.kind());
    let dev = cost.device();
    let cost = cost.f_to_kind(kind)?;
    if c > 0 && cost.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Err(Error::invalid(
            "OT cost",
            "contains NaN or infinite entries",
        ));
    }
    let (a, mass_a) = weights(a, c, n, "a", kind, dev)?; // [C, n]
    let (b, mass_b) = weights(b, c, k, "b", kind, dev)?; // [C, k]
    if cfg.is_balanced() {
        for (ci, (ma, mb)) in mass_a.iter().zip(&mass_b).enumerate() {
            if (ma - mb).abs() > 1e-5 * ma.max(*mb) {
                return Err(Error::Mismatch(format!(
                    "balanced OT (tau_a = tau_b = 1) needs equal masses, but condition {ci} has \
                     sum(a) = {ma} and sum(b) = {mb}; normalise the weights or set tau < 1"
                )));
            }
        }
    }
    let scale = cost_scale(&cost, cfg.scale_cost)?; // [C]
    let neg_c = cost
        .f_div(&scale.f_view([c, 1, 1])?)?
        .f_mul_scalar(-1.0 / cfg.epsilon)?; // [C, n, k] = -C / (scale eps)
    let (log_a, log_b) = (a.f_log()?, b.f_log()?); // [C, n], [C, k]; -inf at zero weights

    let mut phi = Tensor::f_zeros([c, n], (kind, dev))?; // [C, n]
    let mut psi = Tensor::f_zeros([c, k], (kind, dev))?; // [C, k]
    let cu = c as usize;
    let mut active = vec![true; cu];
    let mut mask: Option<Tensor> = None; // [C, 1] bool, once some condition is frozen
    let mut iterations = vec![cfg.max_iter; cu];
    let mut errors = vec![f64::NAN; cu];
    let mut converged = vec![false; cu];
    for it in 1..=cfg.max_iter {
        if cu == 0 {
            break;
        }
        let lse_i = neg_c
            .f_add(&phi.f_unsqueeze(2)?)?
            .f_logsumexp([1i64], false)?; // [C, k]
        let new_psi = log_b.f_sub(&lse_i)?.f_mul_scalar(cfg.tau_b)?; // [C, k]
        psi = keep_frozen(new_psi, &psi, mask.as_ref())?;
        let lse_j = neg_c
            .f_add(&psi.f_unsqueeze(1)?)?
            .f_logsumexp([2i64], false)?; // [C, n]
        let new_phi = log_a.f_sub(&lse_j)?.f_mul_scalar(cfg.tau_a)?; // [C, n]
        phi = keep_frozen(new_phi, &phi, mask.as_ref())?;
        if it % CHECK_EVERY != 0 && it != cfg.max_iter {
            continue;
        }
        if crate::progress::interrupted() {
            return Err(Error::Interrupted);
        }
        let err = to_vec(&solution_error(&neg_c, &phi, &psi, &a, &b, cfg)?)?; // [C]
        let mut froze = false;
        for ci in 0..cu {
            if !active[ci] {
                continue;
            }
            if err[ci].is_nan() {
                return Err(Error::invalid(
                    "OT solve",
                    format!(
                        "condition {ci} diverged (NaN) at iteration {it}; try a larger epsilon \
                         or an f64 cost"
                    ),
                ));
            }
            errors[ci] = err[ci];
            iterations[ci] = it;
            if err[ci] <= cfg.tol {
                converged[ci] = true;
                active[ci] = false;
                froze = true;
            }
        }
        if !active.iter().any(|&x| x) {
            break;
        }
        if froze {
            let m = Tensor::f_from_slice(&active)?
                .f_to_device(dev)?
                .f_view([c, 1])?; // [C, 1]
            mask = Some(m);
        }
    }
    let plan = neg_c
        .f_add(&phi.f_unsqueeze(2)?)?
        .f_add(&psi.f_unsqueeze(1)?)?
        .f_exp()?; // [C, n, k]
    Ok(SinkhornOutput {
        plan,
        f: phi.f_mul_scalar(cfg.epsilon)?,
        g: psi.f_mul_scalar(cfg.epsilon)?,
        cost_scale: to_vec(&scale)?,
        iterations,
        errors,
        converged,
    })
}

/// `new` where `mask` `[C, 1]` (true = still iterating) is set, `old`
/// elsewhere; `new` itself when no condition is frozen yet.
fn keep_frozen(new: Tensor, old: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    match mask {
        None => Ok(new),
        Some(m) => Ok(new.f_where_self(m, old)?),
    }
}

/// ott's `solution_error` per condition -> `[C]`: the L1 distance of the
/// plan's marginals to `a~ = a exp(-f / rho_a)` and `b~ = b exp(-g / rho_b)`.
fn solution_error(
    neg_c: &Tensor,
    phi: &Tensor,
    psi: &Tensor,
    a: &Tensor,
    b: &Tensor,
    cfg: &OtConfig,
) -> Result<Tensor> {
    let kind = phi.kind();
    // log row sums: phi_i + LSE_j(psi_j + K_ij)
    let log_r = neg_c
        .f_add(&psi.f_unsqueeze(1)?)?
        .f_logsumexp([2i64], false)?
        .f_add(phi)?; // [C, n]
    let log_s = neg_c
        .f_add(&phi.f_unsqueeze(2)?)?
        .f_logsumexp([1i64], false)?
        .f_add(psi)?; // [C, k]
    let mut total = Tensor::f_zeros([phi.size()[0]], (kind, phi.device()))?; // [C]
    for (log_m, pot, w, tau) in [(&log_r, phi, a, cfg.tau_a), (&log_s, psi, b, cfg.tau_b)] {
        // f / rho = phi eps / rho = phi (1 - tau) / tau
        let target = if tau >= 1.0 {
            w.shallow_clone()
        } else {
            let t = w
                .f_log()?
                .f_sub(&pot.f_mul_scalar((1.0 - tau) / tau)?)?
                .f_exp()?;
            t.f_where_scalarother(&w.f_gt(0.0)?, 0.0)?
        }; // [C, len]
        let dev = log_m.f_exp()?.f_sub(&target)?.f_abs()?;
        total = total.f_add(&dev.f_sum_dim_intlist(Some(&[1i64][..]), false, kind)?)?;
    }
    Ok(total)
}

/// Weights `[C, len]` (uniform when `None`) and their masses per condition.
fn weights(
    w: Option<&Tensor>,
    c: i64,
    len: i64,
    name: &str,
    kind: Kind,
    dev: Device,
) -> Result<(Tensor, Vec<f64>)> {
    let Some(w) = w else {
        let t = Tensor::f_full([c, len], 1.0 / len as f64, (kind, dev))?;
        return Ok((t, vec![1.0; c as usize]));
    };
    let w = w.f_to_kind(kind)?.f_to_device(dev)?;
    let w = match w.size().as_slice() {
        [l] if *l == len => w
            .f_unsqueeze(0)?
            .f_expand([c, len], false)?
            .f_contiguous()?,
        [cc, l] if *cc == c && *l == len => w,
        other => {
            return Err(Error::Mismatch(format!(
                "OT weights '{name}' must be [{len}] or [{c}, {len}], got {other:?}"
            )))
        }
    }; // [C, len]
    let ok = w.f_isfinite()?.f_logical_and(&w.f_ge(0.0)?)?.f_all()?;
    if c > 0 && ok.f_int64_value(&[])? == 0 {
        return Err(Error::invalid(
            format!("OT weights '{name}'"),
            "entries must be finite and >= 0",
        ));
    }
    let mass = to_vec(&w.f_sum_dim_intlist(Some(&[1i64][..]), false, Kind::Double)?)?; // [C]
    if let Some((ci, m)) = mass.iter().enumerate().find(|(_, m)| **m <= 0.0) {
        return Err(Error::invalid(
            format!("OT weights '{name}'"),
            format!("condition {ci} has total mass {m}; every condition needs mass > 0"),
        ));
    }
    Ok((w, mass))
}

/// A 1-D tensor as f64 values on the CPU.
fn to_vec(t: &Tensor) -> Result<Vec<f64>> {
    let t = t.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
    Ok(Vec::<f64>::try_from(&t)?)
}

#[cfg(test)]
mod tests;
