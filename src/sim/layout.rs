//! Which cells belong to which unit: every cell line gets its controls, its
//! present single perturbations and every combination; cells per unit vary
//! (gamma weights), and the cell order is shuffled.
//!
//! Memory: one `u32` per cell, the only per-cell state kept besides the
//! obs columns.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use super::config::SimConfig;
use super::truth::{SimCondition, SimTruth};

/// One (cell line, condition) group.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUnit {
    /// Index into `SimTruth::cell_lines`.
    pub line: usize,
    pub condition: SimCondition,
    /// Number of cells.
    pub n_cells: usize,
}

/// The units and the unit of every cell (in file order).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub units: Vec<SimUnit>,
    /// `[n_cells]` unit index per cell.
    pub cell_unit: Vec<u32>,
}

/// Splits `total` into parts proportional to `weights`, each at least `min`
/// (largest remainder). Requires `total >= min * weights.len()`.
fn apportion(total: usize, weights: &[f64], min: usize) -> Vec<usize> {
    let n = weights.len();
    let mut out = vec![min; n];
    let rest = total.saturating_sub(min * n);
    let sum: f64 = weights.iter().sum();
    if n == 0 || rest == 0 || sum <= 0.0 {
        if let Some(first) = out.first_mut() {
            *first += rest;
        }
        return out;
    }
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * rest as f64).collect();
    let mut given = 0;
    for (o, e) in out.iter_mut().zip(&exact) {
        let f = e.floor() as usize;
        *o += f;
        given += f;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    for &i in order.iter().cycle().take(rest.saturating_sub(given)) {
        out[i] += 1;
    }
    out
}

impl Layout {
    /// Lays out `cfg.n_cells` cells over the units of `truth` with `rng` (the
    /// layout stream). `cfg` must be validated (enough cells for two per
    /// unit).
    pub fn draw(cfg: &SimConfig, truth: &SimTruth, rng: &mut ChaCha8Rng) -> Layout {
        let n_lines = truth.cell_lines.len();
        // Conditions per line: control, present singles, all combinations.
        let per_line: Vec<Vec<SimCondition>> = (0..n_lines)
            .map(|l| {
                let mut v = vec![SimCondition::Control];
                v.extend(
                    (0..truth.perturbations.len())
                        .filter(|&p| truth.present[p][l] == 1)
                        .map(SimCondition::Single),
                );
                v.extend((0..truth.combinations.len()).map(SimCondition::Combination));
                v
            })
            .collect();
        let line_w: Vec<f64> = per_line
            .iter()
            .map(|c| {
                c.len() as f64 * (0.1 * rng.sample::<f64, _>(rand_distr::StandardNormal)).exp()
            })
            .collect();
        let line_min = per_line.iter().map(|c| 2 * c.len()).max().unwrap_or(2);
        let line_cells = apportion(cfg.n_cells, &line_w, line_min);
        // A gamma(8) weight per perturbed unit: sizes vary by about +-35%.
        let size_w = Gamma::new(8.0, 1.0 / 8.0).ok();
        let mut units = Vec::new();
        for (l, (conds, &n_line)) in per_line.iter().zip(&line_cells).enumerate() {
            let n_pert = conds.len() - 1;
            let n_ctrl = ((cfg.control_fraction * n_line as f64).round() as usize)
                .clamp(2, n_line.saturating_sub(2 * n_pert).max(2));
            let w: Vec<f64> = (0..n_pert)
                .map(|_| size_w.map_or(1.0, |g| g.sample(rng)))
                .collect();
            let sizes = apportion(n_line - n_ctrl, &w, 2);
            units.push(SimUnit {
                line: l,
                condition: SimCondition::Control,
                n_cells: n_ctrl,
            });
            for (&c, &n) in conds[1..].iter().zip(&sizes) {
                units.push(SimUnit {
                    line: l,
                    condition: c,
                    n_cells: n,
                });
            }
        }
        let mut cell_unit: Vec<u32> = units
            .iter()
            .enumerate()
            .flat_map(|(u, unit)| std::iter::repeat_n(u as u32, unit.n_cells))
            .collect();
        cell_unit.shuffle(rng);
        Layout { units, cell_unit }
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.cell_unit.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_sums_and_respects_minimum() {
        let a = apportion(100, &[1.0, 2.0, 7.0], 5);
        assert_eq!(a.iter().sum::<usize>(), 100);
        assert!(a.iter().all(|&x| x >= 5), "{a:?}");
        assert!(a[2] > a[1] && a[1] > a[0], "{a:?}");
        assert_eq!(apportion(10, &[0.0, 0.0], 2), vec![8, 2]);
    }
}
