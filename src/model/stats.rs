//! `DataStats`: what a model keeps from its training cells besides its
//! weights, fitted once before training and saved beside the weights
//! (`stats.json` + `stats.safetensors`):
//!
//! * per-gene mean `mu [m]` and standard deviation `sd [m]` of the training
//!   cells (the `standardized` data space: `z = (x - mu) / sd`, undone at
//!   sampling);
//! * a PCA basis (mean `[m]`, components `[m, k]`) for the models that flow
//!   in PCA space (FM PCA, FM PCA OT), fitted on every training cell with
//!   [`crate::metrics::pca::Pca`] (covariance eigenvectors, f64, signs fixed);
//! * a reservoir of control cells per covariate key (at most
//!   `control_cells` of them, a seeded random subset): the cells that
//!   PerturBench-style baselines map to their perturbed counterparts, that
//!   FM PCA OT starts its flow from, and that the `control` floor returns
//!   (PerturBench's `max_control_cells_per_covariate`, 1000);
//! * the mean shift of every single perturbation `p` in covariate key `k`:
//!   `shift(p, k) = mean(cells of p in k) - mean(control cells of k)` `[m]`,
//!   from which the `additive` floor predicts a condition
//!   `{p_1, ..., p_j} @ k` as control cells of `k` plus
//!   `sum_i shift(p_i, k)`, where `shift(p_i, k)` is replaced by the mean of
//!   `shift(p_i, k')` over the keys `k'` where `p_i` was measured when `p_i`
//!   has no cells in `k` (covariate transfer).
//!
//! All tensors live on the CPU in f32; callers move what they need.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::data::{Condition, Dataset};
use crate::error::{Error, Result};

/// File with the stats' index (keys, counts).
pub const STATS_JSON: &str = "stats.json";
/// File with the stats' tensors.
pub const STATS_TENSORS: &str = "stats.safetensors";

/// Smallest standard deviation used to standardise a gene: a gene that is
/// (nearly) constant in training would otherwise blow up to huge z-scores.
pub const MIN_STD: f64 = 1e-2;

/// Floor of [`DataStats::response_std`]: genes that barely move are not
/// blown up to unit scale (their noise would dominate the flow's loss).
pub const RESPONSE_MIN_STD: f64 = 0.1;

/// What to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsOptions {
    /// At most this many control cells kept per covariate key.
    pub control_cells: usize,
    /// Fit a PCA with this many components.
    pub pca_components: Option<usize>,
    /// Seed of the control-cell reservoir.
    pub seed: u64,
}

/// The control cells kept for one covariate key.
#[derive(Debug)]
pub struct ControlSet {
    /// Covariate values (vocabulary column order).
    pub covariates: Vec<String>,
    /// `[r, m]` f32 expression.
    pub cells: Tensor,
    /// Control cells of this key in the training data (before the
    /// reservoir cut).
    pub n_train: usize,
    /// `[m]` mean of all `n_train` control cells (not just the kept ones).
    pub mean: Tensor,
}

/// The mean shift of one single perturbation in one covariate key.
#[derive(Debug)]
pub struct MeanShift {
    pub perturbation: String,
    pub covariates: Vec<String>,
    /// Cells of the perturbation in this key.
    pub n_cells: usize,
    /// `[m]` perturbed mean minus control mean.
    pub shift: Tensor,
}

/// A PCA basis.
#[derive(Debug)]
pub struct PcaBasis {
    /// `[m]` mean of the training cells.
    pub mean: Tensor,
    /// `[m, k]` orthonormal loadings, descending variance.
    pub components: Tensor,
    /// `[k]` variance along each component (ddof 1).
    pub variance: Vec<f64>,
}

/// Everything a model keeps from its training data besides the weights.
#[derive(Debug)]
pub struct DataStats {
    /// `[m]` per-gene mean of the training cells.
    pub gene_mean: Tensor,
    /// `[m]` per-gene standard deviation (at least [`MIN_STD`]).
    pub gene_std: Tensor,
    pub pca: Option<PcaBasis>,
    pub controls: Vec<ControlSet>,
    pub shifts: Vec<MeanShift>,
    /// `[m]` per-gene root mean square of each training cell's difference
    /// from its covariate's mean control cell (at least
    /// [`RESPONSE_MIN_STD`]; cells of covariates without controls left out):
    /// the scale of the `response` data space.
    pub response_std: Tensor,
    /// Training cells the stats were fitted on.
    pub n_cells: usize,
}

/// Rows `rows` of `ds.x` densified as a `[rows.len(), m]` f32 CPU tensor.
pub fn rows_tensor(ds: &Dataset, rows: &[usize]) -> Result<Tensor> {
    let m = ds.n_genes();
    let flat = ds.x.rows_vec(rows, None)?;
    Ok(Tensor::f_from_slice(&flat)?.f_reshape([rows.len() as i64, m as i64])?)
}

/// The control groups of `ds`, one per covariate key that has control
/// cells, in key order: the key, its control cells (of every control unit
/// of the key: `control` and `ctrl` labels) and the key's covariate values.
pub(crate) fn control_groups(ds: &Dataset) -> Vec<(String, Vec<usize>, Vec<String>)> {
    ds.cov_keys()
        .into_iter()
        .filter_map(|key| {
            let cells = ds.control_cells(&key);
            if cells.is_empty() {
                return None;
            }
            let unit = ds
                .units()
                .iter()
                .find(|u| u.is_control() && u.cov_key == key)?;
            let covariates = unit.covariates.clone();
            Some((key, cells, covariates))
        })
        .collect()
}

/// The control cells kept for the `k`-th control set (`k`: the sets kept
/// before it, in covariate-key order): all of `cells` when there are at
/// most `opts.control_cells`, else a random subset of that many, seeded by
/// `(opts.seed, [CONTROLS, k])` and in the order of `cells`. The in-memory
/// and the streamed fits share it, so they keep the same cells.
pub(crate) fn kept_controls(cells: &[usize], opts: &StatsOptions, k: usize) -> Vec<usize> {
    if cells.len() <= opts.control_cells {
        return cells.to_vec();
    }
    let seed = crate::device::derive_seed(opts.seed, &[crate::device::tags::CONTROLS, k as u64]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = rand::seq::index::sample(&mut rng, cells.len(), opts.control_cells).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| cells[i]).collect()
}

fn mean_tensor(ds: &Dataset, rows: &[usize]) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(&ds.mean_of(rows))?)
}

/// `[m]` per-gene root mean square of `x - control_mean[cov_key(x)]` over
/// the cells of `ds` whose covariate key has a control mean, floored at
/// [`RESPONSE_MIN_STD`].
fn response_std(ds: &Dataset, control_mean: &BTreeMap<String, Tensor>) -> Result<Tensor> {
    let m = ds.n_genes();
    let means: BTreeMap<&str, Vec<f32>> = control_mean
        .iter()
        .map(|(k, t)| Ok((k.as_str(), Vec::<f32>::try_from(t)?)))
        .collect::<Result<_>>()?;
    let mut sq = vec![0f64; m];
    let mut n = 0usize;
    for u in ds.units() {
        let Some(mu) = means.get(u.cov_key.as_str()) else {
            continue;
        };
        for &c in &u.cells {
            for ((q, v), &b) in sq.iter_mut().zip(ds.x.row_vec(c)).zip(mu) {
                let d = (v - b) as f64;
                *q += d * d;
            }
        }
        n += u.cells.len();
    }
    let sd: Vec<f32> = sq
        .iter()
        .map(|q| (q / n.max(1) as f64).sqrt().max(RESPONSE_MIN_STD) as f32)
        .collect();
    Ok(Tensor::f_from_slice(&sd)?)
}

impl DataStats {
    /// Fits the stats on every cell of `ds` (the training cells).
    pub fn fit(ds: &Dataset, opts: &StatsOptions) -> Result<DataStats> {
        let (n, m) = (ds.n_cells(), ds.n_genes());
        if n == 0 {
            return Err(Error::invalid(
                "training data",
                format!("{} has no cells", ds.source_name()),
            ));
        }
        // Per-gene moments in f64.
        let mut sum = vec![0f64; m];
        let mut sq = vec![0f64; m];
        // Densified row by row (the zeros of a CSR row change no sum).
        ds.x.for_each_row(|_, row| {
            for ((s, q), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(row) {
                let v = v as f64;
                *s += v;
                *q += v * v;
            }
            Ok(())
        })?;
        let (mean, std) = mean_std(&sum, &sq, n);
        let pca = match opts.pca_components {
            Some(k) => {
                let rows: Vec<usize> = (0..n).collect();
                let p = crate::metrics::pca::Pca::fit(&ds.x, &rows, k, Kind::Double, Device::Cpu)?;
                Some(PcaBasis {
                    mean: p.mean.f_to_kind(Kind::Float)?,
                    components: p.components.f_to_kind(Kind::Float)?.f_contiguous()?,
                    variance: p.explained_variance.clone(),
                })
            }
            None => None,
        };
        let mut controls = Vec::new();
        let mut control_mean: BTreeMap<String, Tensor> = BTreeMap::new();
        for (key, cells, covariates) in control_groups(ds) {
            let mean = mean_tensor(ds, &cells)?;
            control_mean.insert(key.clone(), mean.shallow_clone());
            let kept = kept_controls(&cells, opts, controls.len());
            controls.push(ControlSet {
                covariates,
                cells: rows_tensor(ds, &kept)?,
                n_train: cells.len(),
                mean,
            });
        }
        let mut shifts = Vec::new();
        for u in ds.units() {
            if u.perturbations.len() != 1 {
                continue;
            }
            let Some(base) = control_mean.get(&u.cov_key) else {
                continue;
            };
            shifts.push(MeanShift {
                perturbation: u.perturbations[0].clone(),
                covariates: u.covariates.clone(),
                n_cells: u.cells.len(),
                shift: mean_tensor(ds, &u.cells)?.f_sub(base)?,
            });
        }
        let response_std = response_std(ds, &control_mean)?;
        Ok(DataStats {
            gene_mean: Tensor::f_from_slice(&mean)?,
            gene_std: Tensor::f_from_slice(&std)?,
            pca,
            controls,
            shifts,
            response_std,
            n_cells: n,
        })
    }

    /// Number of genes `m`.
    pub fn n_genes(&self) -> usize {
        self.gene_mean.size().first().copied().unwrap_or(0) as usize
    }

    /// The control set of `covariates`; an error names the keys that have
    /// control cells.
    pub fn control_set(&self, covariates: &[String]) -> Result<&ControlSet> {
        self.controls
            .iter()
            .find(|c| c.covariates == covariates)
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .controls
                    .iter()
                    .map(|c| c.covariates.join("_"))
                    .collect();
                Error::unknown(
                    "covariate value (no control cells of it in the training data)",
                    covariates.join("_").as_str(),
                    &known,
                )
            })
    }

    /// `n` control cells `[n, m]` of the covariates of `cond`, drawn from
    /// the reservoir by a seeded permutation (without replacement while it
    /// lasts, then the next permutation), so they depend only on
    /// `(seed, cond)`.
    pub fn draw_controls(&self, cond: &Condition, n: usize, seed: u64) -> Result<Tensor> {
        let set = self.control_set(&cond.covariates)?;
        let r = set.cells.size().first().copied().unwrap_or(0) as usize;
        if r == 0 {
            return Err(Error::invalid(
                "control cells",
                format!("none kept for '{}'", cond.covariates.join("_")),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut idx: Vec<i64> = Vec::with_capacity(n);
        while idx.len() < n {
            let mut perm: Vec<i64> = (0..r as i64).collect();
            rand::seq::SliceRandom::shuffle(perm.as_mut_slice(), &mut rng);
            idx.extend(perm.into_iter().take(n - idx.len()));
        }
        Ok(set.cells.f_index_select(0, &Tensor::f_from_slice(&idx)?)?)
    }

    /// The additive floor's shift `[m]` of `cond` (see the module docs).
    /// A perturbation without single-perturbation cells in training is an
    /// error naming it.
    pub fn additive_shift(&self, cond: &Condition) -> Result<Tensor> {
        let mut total = Tensor::f_zeros([self.n_genes() as i64], (Kind::Float, Device::Cpu))?;
        for p in &cond.perturbations {
            let here = self
                .shifts
                .iter()
                .find(|s| &s.perturbation == p && s.covariates == cond.covariates);
            let shift = match here {
                Some(s) => s.shift.shallow_clone(),
                None => {
                    let all: Vec<&MeanShift> = self
                        .shifts
                        .iter()
                        .filter(|s| &s.perturbation == p)
                        .collect();
                    if all.is_empty() {
                        return Err(Error::invalid(
                            "additive",
                            format!(
                                "perturbation '{p}' of '{cond}' has no single-perturbation cells in the training data, so its mean shift is unknown"
                            ),
                        ));
                    }
                    let stacked: Vec<Tensor> =
                        all.iter().map(|s| s.shift.shallow_clone()).collect();
                    Tensor::f_stack(&stacked, 0)?.f_mean_dim(
                        Some(&[0i64][..]),
                        false,
                        Kind::Float,
                    )?
                }
            };
            total = total.f_add(&shift)?;
        }
        Ok(total)
    }

    /// The `mean` floor's shift `[m]` for the covariates of `cond`: the mean
    /// of `shift(p, k)` over the training single perturbations `p` of its
    /// key `k` (over every key when `k` has none). No single perturbation in
    /// training is an error.
    pub fn mean_shift(&self, cond: &Condition) -> Result<Tensor> {
        let here: Vec<Tensor> = self
            .shifts
            .iter()
            .filter(|s| s.covariates == cond.covariates)
            .map(|s| s.shift.shallow_clone())
            .collect();
        let all = if here.is_empty() {
            self.shifts
                .iter()
                .map(|s| s.shift.shallow_clone())
                .collect()
        } else {
            here
        };
        if all.is_empty() {
            return Err(Error::invalid(
                "mean",
                "the training data has no single-perturbation cells, so there is no mean shift",
            ));
        }
        Ok(Tensor::f_stack(&all, 0)?.f_mean_dim(Some(&[0i64][..]), false, Kind::Float)?)
    }
}

/// Per-gene mean and standard deviation (ddof = 1, floored at [`MIN_STD`])
/// of `n` cells from their f64 sums `sum` and sums of squares `sq` `[m]`.
pub(crate) fn mean_std(sum: &[f64], sq: &[f64], n: usize) -> (Vec<f32>, Vec<f32>) {
    let nf = n as f64;
    let mean = sum.iter().map(|s| (s / nf) as f32).collect();
    let std = sum
        .iter()
        .zip(sq)
        .map(|(s, q)| {
            let mu = s / nf;
            let var = if n > 1 {
                ((q - nf * mu * mu) / (nf - 1.0)).max(0.0)
            } else {
                0.0
            };
            var.sqrt().max(MIN_STD) as f32
        })
        .collect();
    (mean, std)
}
