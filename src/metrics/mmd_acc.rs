//! The energy-distance (MMD) inputs of an evaluation: [`SideCells`], one
//! covariate's centred reference cells, and [`MmdAcc`], the distance sums of
//! predicted units against them, accumulated unit by unit.
//!
//! Which pairs of units get their distance sums ([`PairMode`]): only each
//! unit against its own reference (`mmd` without rank); every pair (the
//! rank, `--mmd-pairs all`); or every pair bounded from moments and only the
//! pairs the bounds cannot place against their column's diagonal computed
//! ([`super::mmd_bounds`]; the rank's default on the CPU with f32 products).

use tch::{Device, Kind, Tensor};

use super::aggregate::to_vec1;
use super::distance::{cross_sums, mmd_from_sums, self_sums, DistanceOptions, Points};
use super::mmd_bounds::{cross_bounds, decide, var_against, CellTerms, Decision, UnitMoments};
use super::points::PointsScratch;
use crate::error::{Error, Result};

/// Which unit pairs an [`MmdAcc`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PairMode {
    /// Each predicted unit against its own reference unit.
    Diagonal,
    /// Every pair.
    All,
    /// Every pair bounded, the undecided ones computed.
    Bounded,
}

/// The reference cells of one covariate (gene space or PCA space), centred
/// on their mean, with the unit of every cell and each unit's self-sum.
pub(super) struct SideCells {
    /// All units' cells, concatenated in unit order.
    pub(super) all: Points,
    /// Each unit's cells (views of `all`).
    pub(super) units: Vec<Points>,
    /// Each unit's first row in `all`.
    starts: Vec<i64>,
    /// `[N]` int64 unit index of every cell.
    pub(super) groups: Tensor,
    /// The centre subtracted (`[1, D]` f64), applied to the prediction too.
    pub(super) centre: Tensor,
    /// The same on the host.
    centre_host: Vec<f64>,
    /// `sum_jj' d(y_j, y_j')` per unit.
    pub(super) self_sums: Vec<f64>,
    /// Per unit, its moments (bounded mode; `None` for an empty unit).
    moments: Vec<Option<UnitMoments>>,
    /// Bounded mode: `[D, U]` f32, the units' means as columns (made once,
    /// multiplied by every predicted unit's cells).
    means_t: Option<Tensor>,
}

impl SideCells {
    /// `cells`: each unit's `[n_p, D]` cells (`n` their counts); with
    /// `bounded`, also each unit's moments (f32 CPU points only).
    pub(super) fn new(
        cells: &[Tensor],
        n: &[usize],
        opts: &DistanceOptions,
        dev: Device,
        bounded: bool,
    ) -> Result<SideCells> {
        let host = opts.kind == Kind::Float
            && dev == Device::Cpu
            && cells
                .iter()
                .all(|c| c.kind() == Kind::Float && c.device() == Device::Cpu);
        let (all, centre, centre_host) = if host {
            let centre_host = column_means(cells)?;
            let centre = Tensor::f_from_slice(&centre_host)?.f_view([1, -1])?;
            let mut scratch = PointsScratch::default();
            let all = Points::centred_parts(cells, &centre_host, &centre, opts, &mut scratch)?;
            (all, centre, centre_host)
        } else {
            let all = Tensor::f_cat(cells, 0)?.f_to_kind(Kind::Double)?;
            let centre = all.f_mean_dim(Some(&[0i64][..]), true, Kind::Double)?;
            let all = Points::new(&all.f_sub(&centre)?, opts)?;
            let centre_host = to_vec1(&centre)?;
            (all, centre, centre_host)
        };
        let mut groups: Vec<i64> = Vec::with_capacity(n.iter().sum());
        let mut units = Vec::with_capacity(n.len());
        let mut self_sums_v = Vec::with_capacity(n.len());
        let mut moments = Vec::with_capacity(n.len());
        let mut starts = Vec::with_capacity(n.len());
        let mut start = 0i64;
        for (i, &k) in n.iter().enumerate() {
            starts.push(start);
            groups.extend(std::iter::repeat_n(i as i64, k));
            let p = all.rows(start, k as i64)?;
            let (s, m) = unit_sums(&p, opts, bounded)?;
            self_sums_v.push(s);
            moments.push(m);
            units.push(p);
            start += k as i64;
        }
        let groups = Tensor::f_from_slice(&groups)?.f_to_device(dev)?;
        let means_t = if bounded {
            let d = centre_host.len();
            Some(
                SideCells::means(&moments, d)?
                    .f_transpose(0, 1)?
                    .f_contiguous()?,
            )
        } else {
            None
        };
        Ok(SideCells {
            all,
            units,
            starts,
            groups,
            centre,
            centre_host,
            self_sums: self_sums_v,
            moments,
            means_t,
        })
    }

    /// `[U, D]` f32 tensor of the units' means (zeros for a unit without
    /// moments).
    fn means(moments: &[Option<UnitMoments>], d: usize) -> Result<Tensor> {
        let mut flat = Vec::with_capacity(moments.len() * d);
        for m in moments {
            match m {
                Some(m) if m.mean.len() == d => flat.extend(m.mean.iter().map(|&v| v as f32)),
                _ => flat.extend(std::iter::repeat_n(0f32, d)),
            }
        }
        Ok(Tensor::f_from_slice(&flat)?.f_view([moments.len() as i64, d as i64])?)
    }
}

/// Column means (f64) of the rows of `parts` (each `[n_k, D]`), summed in
/// f64 as they are read (no f64 copy).
fn column_means(parts: &[Tensor]) -> Result<Vec<f64>> {
    let mut total: Option<Tensor> = None;
    let mut n = 0i64;
    for t in parts {
        n += t.size().first().copied().unwrap_or(0);
        let s = t.f_sum_dim_intlist(Some(&[0i64][..]), false, Kind::Double)?;
        total = Some(match total {
            Some(acc) => acc.f_add(&s)?,
            None => s,
        });
    }
    match total {
        Some(s) => Ok(to_vec1(&s)?
            .into_iter()
            .map(|v| v / n.max(1) as f64)
            .collect()),
        None => Ok(Vec::new()),
    }
}

/// A unit's self-distance sum and, when `bounded` and the points allow
/// it, its moments (one pass).
fn unit_sums(
    p: &Points,
    opts: &DistanceOptions,
    bounded: bool,
) -> Result<(f64, Option<UnitMoments>)> {
    let terms = match (bounded, p.host_x()) {
        (true, Some(x)) if !p.is_empty() => {
            let d = p.x.size().get(1).copied().unwrap_or(0).max(0) as usize;
            Some(CellTerms::of(x, d))
        }
        _ => None,
    };
    let Some(terms) = terms else {
        return Ok((self_sums(p, opts, None)?.0, None));
    };
    let (s, dev) = self_sums(p, opts, Some(terms.shift()))?;
    let m = dev.is_finite().then(|| terms.finish(dev));
    Ok((s, m))
}

/// Distance sums of the predicted units against the reference units.
pub(super) struct MmdAcc {
    u: usize,
    mode: PairMode,
    /// `[U, U]` row-major cross sums (NaN where not computed).
    cross: Vec<f64>,
    self_sums: Vec<f64>,
    scratch: PointsScratch,
    /// Bounded mode: each predicted unit's moments, and `Var_i alpha` of
    /// every pair (`[U, U]`, `q` major).
    moments: Vec<Option<UnitMoments>>,
    var_alpha: Vec<f64>,
    /// Bounded mode: the decision of every pair (set by `undecided`).
    decisions: Vec<Decision>,
}

impl MmdAcc {
    pub(super) fn new(u: usize, mode: PairMode) -> MmdAcc {
        MmdAcc {
            u,
            mode,
            cross: vec![f64::NAN; u * u],
            self_sums: vec![f64::NAN; u],
            scratch: PointsScratch::default(),
            moments: vec![None; u],
            var_alpha: vec![f64::NAN; u * u],
            decisions: vec![Decision::Unknown; u * u],
        }
    }

    /// Adds predicted unit `q` (cells `x`, `[n_q, D]`).
    pub(super) fn add(
        &mut self,
        q: usize,
        x: &Tensor,
        side: &SideCells,
        opts: &DistanceOptions,
    ) -> Result<()> {
        let px = Points::centred(x, &side.centre_host, &side.centre, opts, &mut self.scratch)?;
        let (s, m) = unit_sums(&px, opts, self.mode == PairMode::Bounded)?;
        if let Some(slot) = self.self_sums.get_mut(q) {
            *slot = s;
        }
        if let Some(m) = m {
            // K[i, p] = x_i . mu_p for every reference unit p.
            let Some(means_t) = &side.means_t else {
                return Err(Error::invalid(
                    "metrics",
                    "internal: reference means missing",
                ));
            };
            let k = px.x.f_mm(means_t)?;
            let k: Vec<f32> = Vec::<f32>::try_from(&k.f_contiguous()?.f_view([-1])?)?;
            let row = var_against(&m.cell, &k, self.u);
            let dst = self.var_alpha.get_mut(q * self.u..(q + 1) * self.u);
            if let Some(dst) = dst {
                dst.copy_from_slice(&row);
            }
            if let Some(slot) = self.moments.get_mut(q) {
                *slot = Some(UnitMoments {
                    cell: Vec::new(),
                    ..m
                });
            }
        }
        match self.mode {
            PairMode::All => {
                let row = to_vec1(&cross_sums(
                    &px,
                    &side.all,
                    &side.groups,
                    self.u as i64,
                    opts,
                )?)?;
                for (p, v) in row.into_iter().enumerate() {
                    if let Some(c) = self.cross.get_mut(q * self.u + p) {
                        *c = v;
                    }
                }
            }
            PairMode::Diagonal | PairMode::Bounded => self.add_pairs(q, &px, side, &[q], opts)?,
        }
        Ok(())
    }

    /// Cross sums of predicted unit `q` (prepared as `px`) against the
    /// reference units `ps`, one unit at a time (the same computation for
    /// the diagonal and the undecided pairs, so equal inputs tie exactly).
    fn add_pairs(
        &mut self,
        q: usize,
        px: &Points,
        side: &SideCells,
        ps: &[usize],
        opts: &DistanceOptions,
    ) -> Result<()> {
        for &p in ps {
            let Some(unit) = side.units.get(p) else {
                continue;
            };
            let zeros = Tensor::f_zeros([unit.len()], (Kind::Int64, px.x.device()))?;
            let v = cross_sums(px, unit, &zeros, 1, opts)?.f_double_value(&[0])?;
            if let Some(c) = self.cross.get_mut(q * self.u + p) {
                *c = v;
            }
        }
        Ok(())
    }

    /// Bounded mode, after every predicted unit was added: decides every
    /// pair it can and returns, per predicted unit, the reference units of
    /// its undecided pairs (to be computed with [`MmdAcc::add_exact`]).
    pub(super) fn undecided(
        &mut self,
        side: &SideCells,
        n_pred: &[usize],
        n_ref: &[usize],
    ) -> Result<Vec<(usize, Vec<usize>)>> {
        let u = self.u;
        if self.mode != PairMode::Bounded {
            return Ok(Vec::new());
        }
        // Var_j beta for every pair: the reference cells against the
        // predicted units' means.
        let mut var_beta = vec![f64::NAN; u * u]; // [p, q]
        let d = side.all.x.size()[1];
        if !side.all.is_empty() {
            let kr = side
                .all
                .x
                .f_mm(&SideCells::means(&self.moments, d as usize)?.f_transpose(0, 1)?)?;
            let kr: Vec<f32> = Vec::<f32>::try_from(&kr.f_contiguous()?.f_view([-1])?)?;
            let mut start = 0usize;
            for (p, &k) in n_ref.iter().enumerate() {
                if let (Some(Some(m)), Some(rows)) =
                    (side.moments.get(p), kr.get(start * u..(start + k) * u))
                {
                    let v = var_against(&m.cell, rows, u);
                    var_beta[p * u..(p + 1) * u].copy_from_slice(&v);
                }
                start += k;
            }
        }
        let mean_self = |q: usize| self.self_sums[q] / (n_pred[q] as f64).powi(2);
        let mut todo: Vec<(usize, Vec<usize>)> = Vec::new();
        for q in 0..u {
            let mut ps = Vec::new();
            for p in (0..u).filter(|&p| p != q) {
                let decision = match (&self.moments[q], &side.moments[p]) {
                    (Some(mq), Some(mp)) => {
                        let a_pp = self.cross[p * u + p] / (n_pred[p] * n_ref[p]) as f64;
                        let tau = a_pp - 0.5 * mean_self(p) + 0.5 * mean_self(q);
                        let (lo, hi) =
                            cross_bounds(mq, mp, self.var_alpha[q * u + p], var_beta[p * u + q]);
                        decide(lo, hi, tau, a_pp.abs() + mean_self(q).abs())
                    }
                    _ => Decision::Unknown,
                };
                self.decisions[q * u + p] = decision;
                if decision == Decision::Unknown {
                    ps.push(p);
                }
            }
            if !ps.is_empty() {
                todo.push((q, ps));
            }
        }
        Ok(todo)
    }

    /// Computes the pairs of predicted unit `q` (cells `x` again) against
    /// the reference units `ps`: one product against their cells together,
    /// summed per unit (the same sums as one unit at a time: `fused` sums
    /// each column the same way in any block).
    pub(super) fn add_exact(
        &mut self,
        q: usize,
        x: &Tensor,
        side: &SideCells,
        ps: &[usize],
        opts: &DistanceOptions,
    ) -> Result<()> {
        let px = Points::centred(x, &side.centre_host, &side.centre, opts, &mut self.scratch)?;
        if ps.len() < 2 {
            return self.add_pairs(q, &px, side, ps, opts);
        }
        let mut ranges = Vec::with_capacity(ps.len());
        let mut groups: Vec<i64> = Vec::new();
        for (g, &p) in ps.iter().enumerate() {
            let (Some(&s), Some(unit)) = (side.starts.get(p), side.units.get(p)) else {
                return Err(Error::invalid(
                    "metrics",
                    "internal: no such reference unit",
                ));
            };
            ranges.push((s, unit.len()));
            groups.extend(std::iter::repeat_n(g as i64, unit.len() as usize));
        }
        let sub = side.all.select(&ranges)?;
        let groups = Tensor::f_from_slice(&groups)?.f_to_device(px.x.device())?;
        let sums = to_vec1(&cross_sums(&px, &sub, &groups, ps.len() as i64, opts)?)?;
        for (&p, v) in ps.iter().zip(sums) {
            if let Some(c) = self.cross.get_mut(q * self.u + p) {
                *c = v;
            }
        }
        Ok(())
    }

    /// `(computed, total)` off-diagonal pairs (bounded or all modes).
    pub(super) fn pairs_computed(&self) -> (usize, usize) {
        let u = self.u;
        let total = u * u.saturating_sub(1);
        let computed = (0..u * u)
            .filter(|&i| i / u.max(1) != i % u.max(1) && !self.cross[i].is_nan())
            .count();
        (computed, total)
    }

    /// `[U, U]` MMD matrices: the one ranks are taken from (a bounded
    /// pair surely below its diagonal is `-inf`, surely not below `+inf`)
    /// and the one reported (NaN where a pair was not computed).
    pub(super) fn matrix(
        &self,
        n_pred: &[usize],
        ref_self: &[f64],
        n_ref: &[usize],
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let u = self.u;
        if n_pred.len() != u || ref_self.len() != u || n_ref.len() != u {
            return Err(Error::invalid(
                "metrics",
                "internal: MMD unit counts differ",
            ));
        }
        let mut m = vec![f64::NAN; u * u];
        for q in 0..u {
            for p in 0..u {
                let c = self.cross[q * u + p];
                if !c.is_nan() {
                    m[q * u + p] =
                        mmd_from_sums(c, self.self_sums[q], ref_self[p], n_pred[q], n_ref[p]);
                }
            }
        }
        let mut ranked = m.clone();
        if self.mode == PairMode::Bounded {
            for (v, d) in ranked.iter_mut().zip(&self.decisions) {
                match d {
                    Decision::Better => *v = f64::NEG_INFINITY,
                    Decision::Worse => *v = f64::INFINITY,
                    Decision::Unknown => {}
                }
            }
        }
        Ok((ranked, m))
    }
}
