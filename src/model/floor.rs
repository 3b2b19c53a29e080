//! The floors every model must beat (issue "the paper's comparison"):
//!
//! * `control`: a condition's prediction is control cells of its covariate
//!   (no perturbation effect at all);
//! * `additive`: control cells of the covariate plus the sum of the mean
//!   shifts of the condition's single perturbations,
//!   `x_hat = x_ctrl + sum_i shift(p_i, k)` (see
//!   [`DataStats::additive_shift`](super::stats::DataStats::additive_shift)
//!   for how a shift is found when `p_i` was not measured in `k`);
//! * `mean`: control cells of the covariate plus the mean of the shifts of
//!   every training single perturbation in that covariate,
//!   `x_hat = x_ctrl + mean_p shift(p, k)`, the same for every perturbed
//!   condition ([`DataStats::mean_shift`](super::stats::DataStats::mean_shift)):
//!   the "mean of training perturbations" baseline a model must beat on
//!   perturbations it never saw (issue 12).
//!
//! Both keep the spread of real control cells and move it by a mean: they
//! match mean-based metrics well but cannot produce a heterogeneous
//! (responder / non-responder) response. None has weights; "training"
//! fits the statistics they need.

use serde::{Deserialize, Serialize};

/// Settings of a floor model (none: the key set is empty, so any key is an
/// error that says so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FloorConfig {}
