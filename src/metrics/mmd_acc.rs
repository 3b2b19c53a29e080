//! The energy-distance (MMD) inputs of an evaluation: [`SideCells`], one
//! covariate's centred reference cells, and [`MmdAcc`], the distance sums of
//! predicted units against them, accumulated unit by unit.

use tch::{Device, Kind, Tensor};

use super::aggregate::to_vec1;
use super::distance::{cross_sums, mmd_from_sums, self_sum, DistanceOptions, Points};
use crate::error::Result;

/// The reference cells of one covariate (gene space or PCA space), centred
/// on their mean, with the unit of every cell and each unit's self-sum.
pub(super) struct SideCells {
    /// All units' cells, concatenated in unit order.
    pub(super) all: Points,
    /// Each unit's cells.
    pub(super) units: Vec<Points>,
    /// `[N]` int64 unit index of every cell.
    pub(super) groups: Tensor,
    /// The centre subtracted (`[1, D]` f64), applied to the prediction too.
    pub(super) centre: Tensor,
    /// `sum_jj' d(y_j, y_j')` per unit.
    pub(super) self_sums: Vec<f64>,
}

impl SideCells {
    pub(super) fn new(
        cells: &[Tensor],
        n: &[usize],
        opts: &DistanceOptions,
        dev: Device,
    ) -> Result<SideCells> {
        let all = Tensor::f_cat(cells, 0)?.f_to_kind(Kind::Double)?;
        let centre = all.f_mean_dim(Some(&[0i64][..]), true, Kind::Double)?;
        let all = all.f_sub(&centre)?;
        let mut groups: Vec<i64> = Vec::with_capacity(n.iter().sum());
        let mut units = Vec::with_capacity(n.len());
        let mut self_sums = Vec::with_capacity(n.len());
        let mut start = 0i64;
        for (i, &k) in n.iter().enumerate() {
            groups.extend(std::iter::repeat_n(i as i64, k));
            let p = Points::new(&all.f_narrow(0, start, k as i64)?, opts)?;
            self_sums.push(self_sum(&p, opts)?);
            units.push(p);
            start += k as i64;
        }
        let groups = Tensor::f_from_slice(&groups)?.f_to_device(dev)?;
        Ok(SideCells {
            all: Points::new(&all, opts)?,
            units,
            groups,
            centre,
            self_sums,
        })
    }
}

/// Distance sums of the predicted units against the reference units.
pub(super) struct MmdAcc {
    u: usize,
    full: bool,
    /// `[U, U]` row-major cross sums (only the diagonal when not `full`).
    cross: Vec<f64>,
    self_sums: Vec<f64>,
}

impl MmdAcc {
    pub(super) fn new(u: usize, full: bool) -> MmdAcc {
        MmdAcc {
            u,
            full,
            cross: vec![f64::NAN; u * u],
            self_sums: vec![f64::NAN; u],
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
        let px = Points::new(&x.f_to_kind(Kind::Double)?.f_sub(&side.centre)?, opts)?;
        if let Some(s) = self.self_sums.get_mut(q) {
            *s = self_sum(&px, opts)?;
        }
        if self.full {
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
        } else if let Some(unit) = side.units.get(q) {
            let zeros = Tensor::f_zeros([unit.len()], (Kind::Int64, x.device()))?;
            let v = cross_sums(&px, unit, &zeros, 1, opts)?.f_double_value(&[0])?;
            if let Some(c) = self.cross.get_mut(q * self.u + q) {
                *c = v;
            }
        }
        Ok(())
    }

    /// `[U, U]` MMD matrix (NaN off the diagonal when not `full`).
    pub(super) fn matrix(&self, n_pred: &[usize], ref_self: &[f64], n_ref: &[usize]) -> Vec<f64> {
        let u = self.u;
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
        m
    }
}
