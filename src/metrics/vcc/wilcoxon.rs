//! Wilcoxon rank-sum (Mann-Whitney U) tests of every gene of every
//! perturbation against one control set, as pdex 0.3 computes them through
//! numba-mwu (`mannwhitneyu_columns`): two-sided, asymptotic normal
//! approximation, continuity correction 0.5, tie-corrected variance.
//!
//! For a perturbation with `n1` cells and controls with `n2` cells,
//! `n = n1 + n2`:
//!
//! * `U1 = sum_i [#(ctrl < x_i) + #(ctrl == x_i) / 2]` (equal to
//!   `R1 - n1 (n1 + 1) / 2` with `R1` the rank sum of the perturbation in the
//!   pooled average ranking);
//! * `U = max(U1, n1 n2 - U1)`, `mu = n1 n2 / 2`,
//!   `s^2 = n1 n2 / 12 * ((n + 1) - T / (n (n - 1)))` with
//!   `T = sum over pooled tie groups of (t^3 - t)`;
//! * `p = 2 Phi(-(U - mu - 0.5) / s) = erfc(z / sqrt 2)`, clipped to
//!   `[0, 1]`; `p = 1` when `s^2 <= 0` (every value equal).
//!
//! The control side is sorted once per gene ([`ControlRanks`]) and reused by
//! every perturbation: a perturbation costs `n1 log n1` for its own ties and
//! `log n2` per distinct value, never a re-ranking of the pooled cells.

use std::cmp::Ordering;

/// The control cells of every gene, sorted, with their tie term.
#[derive(Debug, Clone)]
pub struct ControlRanks {
    /// `[G][n2]` each gene's control values, ascending (f32 as stored:
    /// pdex widens them to f64 exactly, so comparisons are the same).
    sorted: Vec<Vec<f32>>,
    /// `[G]` `sum (t^3 - t)` over the control's own tie groups.
    tie_term: Vec<f64>,
}

/// `sum (t^3 - t)` over the runs of equal values of a sorted slice.
fn tie_term_sorted(v: &[f32]) -> f64 {
    let mut t = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i + 1;
        while j < v.len() && v[j] == v[i] {
            j += 1;
        }
        let c = (j - i) as f64;
        t += c * c * c - c;
        i = j;
    }
    t
}

/// Number of elements of the sorted `v` below `x`, and equal to `x`.
fn less_equal(v: &[f32], x: f32) -> (usize, usize) {
    let lo = v.partition_point(|&a| a < x);
    let hi = lo + v[lo..].partition_point(|&a| a <= x);
    (lo, hi - lo)
}

fn total_cmp(a: &f32, b: &f32) -> Ordering {
    a.total_cmp(b)
}

impl ControlRanks {
    /// `columns`: `[G][n2]` the control cells of each gene (any order).
    pub fn new(columns: Vec<Vec<f32>>) -> ControlRanks {
        let mut sorted = columns;
        let mut tie_term = Vec::with_capacity(sorted.len());
        for col in sorted.iter_mut() {
            col.sort_unstable_by(total_cmp);
            tie_term.push(tie_term_sorted(col));
        }
        ControlRanks { sorted, tie_term }
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.sorted.len()
    }

    /// The test of gene `g` for the perturbation's values `x` (`n1`, any
    /// order; sorted in place). Returns `(U1, p)`.
    pub fn test(&self, g: usize, x: &mut [f32]) -> (f64, f64) {
        let ctrl = &self.sorted[g];
        x.sort_unstable_by(total_cmp);
        let mut u1 = 0.0;
        let mut tie = self.tie_term[g];
        let mut i = 0;
        while i < x.len() {
            let mut j = i + 1;
            while j < x.len() && x[j] == x[i] {
                j += 1;
            }
            let b = (j - i) as f64;
            let (less, eq) = less_equal(ctrl, x[i]);
            let a = eq as f64;
            u1 += b * (less as f64 + a / 2.0);
            // The pooled tie group of this value has a + b members; the
            // control's own a were already counted in `tie_term`.
            let t = a + b;
            tie += (t * t * t - t) - (a * a * a - a);
            i = j;
        }
        u_to_p(u1, x.len() as f64, ctrl.len() as f64, tie)
    }
}

/// Two-sided asymptotic p-value with continuity correction (numba-mwu's
/// `_mwu_stats_from_rank_sum`). Returns `(U1, p)`.
pub fn u_to_p(u1: f64, n1: f64, n2: f64, tie_term: f64) -> (f64, f64) {
    let n = n1 + n2;
    let u2 = n1 * n2 - u1;
    let u = u1.max(u2);
    let mu = n1 * n2 / 2.0;
    let s2 = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    // NaN (a side with no cells) counts as "no evidence" too.
    if s2.is_nan() || s2 <= 0.0 {
        return (u1, 1.0);
    }
    let z = (u - mu - 0.5) / s2.sqrt();
    // 2 * ndtr(-z) with ndtr(x) = erfc(-x / sqrt 2) / 2.
    let p = erfc(z / std::f64::consts::SQRT_2);
    (u1, p.clamp(0.0, 1.0))
}

extern "C" {
    /// C99 `erfc` from the platform math library (the function numba's
    /// `math.erfc` calls, so p-values match pdex bit for bit).
    #[link_name = "erfc"]
    fn c_erfc(x: f64) -> f64;
}

/// The complementary error function.
pub fn erfc(x: f64) -> f64 {
    // SAFETY: a pure C99 math function of one double; no pointers, no state.
    unsafe { c_erfc(x) }
}

/// Benjamini-Hochberg adjusted p-values (scipy's
/// `false_discovery_control(p, method="bh")`): sort ascending,
/// `q_(i) = p_(i) * (m / i)`, running minimum from the largest down,
/// clipped to 1, returned in the input order. `p`: `[m]`.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![0.0; m];
    let mut running = f64::INFINITY;
    for rank in (0..m).rev() {
        let idx = order[rank];
        let adj = p[idx] * (m as f64 / (rank + 1) as f64);
        running = running.min(adj);
        q[idx] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values: numba-mwu 0.2.0 `mannwhitneyu_columns(x, y)` (what
    /// pdex calls), printed with repr(); scipy's `mannwhitneyu(x, y,
    /// method="asymptotic")` gives 0.15386839471212985.
    #[test]
    fn matches_scipy_with_ties() {
        let y = vec![0.0, 0.0, 1.0, 2.0, 2.0, 3.5, 0.0];
        let mut x = vec![2.0, 3.5, 3.5, 4.0, 0.0];
        let ranks = ControlRanks::new(vec![y]);
        let (u, p) = ranks.test(0, &mut x);
        assert_eq!(u, 26.5);
        assert!((p - 0.15386839471212993).abs() < 1e-15, "{p}");
    }

    #[test]
    fn all_equal_is_one() {
        let ranks = ControlRanks::new(vec![vec![0.0; 4]]);
        let (_, p) = ranks.test(0, &mut [0.0, 0.0]);
        assert_eq!(p, 1.0);
    }

    /// scipy `false_discovery_control([0.01, 0.04, 0.03, 0.5, 0.04])`.
    #[test]
    fn bh_matches_scipy() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5, 0.04]);
        let want = [0.05, 0.05, 0.05, 0.5, 0.05];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{q:?}");
        }
    }
}
