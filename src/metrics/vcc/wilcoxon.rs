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
//! The evaluation computes every perturbation's statistics from one sorted
//! walk per gene ([`super::rank_sums`]). This file holds the formula
//! ([`u_to_p`]), Benjamini-Hochberg, and, for the tests, the direct
//! per-perturbation formulation ([`ControlRanks`]: controls sorted once per
//! gene, each perturbation's values sorted and walked through them) that
//! the single walk must reproduce bit for bit.

#[cfg(test)]
use std::cmp::Ordering;

/// The control cells of every gene, sorted, with their tie term (the test
/// oracle of [`super::rank_sums`]).
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct ControlRanks {
    /// `[G][n2]` each gene's control values, ascending (f32 as stored:
    /// pdex widens them to f64 exactly, so comparisons are the same).
    sorted: Vec<Vec<f32>>,
    /// `[G]` `sum (t^3 - t)` over the control's own tie groups.
    tie_term: Vec<f64>,
}

#[cfg(test)]
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

#[cfg(test)]
/// The first index `i >= from` of the sorted `v` where `below(v[i])` is
/// false (`below` true on a prefix): exponential search from `from`, then
/// binary search, so walking ascending queries through `v` costs
/// `log(gap)` per query instead of `log(len)`, with few mispredictions.
fn gallop(v: &[f32], from: usize, below: impl Fn(f32) -> bool) -> usize {
    if from >= v.len() {
        return v.len();
    }
    let mut lo = from;
    let mut step = 1;
    while lo + step < v.len() && below(v[lo + step]) {
        lo += step;
        step *= 2;
    }
    if lo < v.len() && !below(v[lo]) {
        return lo;
    }
    let hi = (lo + step).min(v.len());
    lo + 1 + v[lo + 1..hi].partition_point(|&a| below(a))
}

#[cfg(test)]
fn total_cmp(a: &f32, b: &f32) -> Ordering {
    a.total_cmp(b)
}

#[cfg(test)]
impl ControlRanks {
    /// `columns`: `[G][n2]` the control cells of each gene (any order).
    pub(crate) fn new(columns: Vec<Vec<f32>>) -> ControlRanks {
        let mut sorted = columns;
        let mut tie_term = Vec::with_capacity(sorted.len());
        for col in sorted.iter_mut() {
            col.sort_unstable_by(total_cmp);
            tie_term.push(tie_term_sorted(col));
        }
        ControlRanks { sorted, tie_term }
    }

    /// The test of gene `g` for the perturbation's values `x` (`n1`, any
    /// order; sorted in place). Returns `(U1, p)`.
    pub(crate) fn test(&self, g: usize, x: &mut [f32]) -> (f64, f64) {
        let ctrl = &self.sorted[g];
        let n1 = x.len();
        // Single-cell data is mostly zeros: only the non-zero values are
        // sorted, the zeros are one tie group placed between the negative
        // and the positive values.
        let mut nz = 0;
        for i in 0..n1 {
            if x[i] != 0.0 {
                x.swap(i, nz);
                nz += 1;
            }
        }
        let zeros = n1 - nz;
        let vals = &mut x[..nz];
        vals.sort_unstable_by(total_cmp);
        let split = vals.partition_point(|&v| v < 0.0);
        let mut acc = Acc {
            ctrl,
            less: 0,
            u1: 0.0,
            tie: self.tie_term[g],
        };
        acc.runs(&vals[..split]);
        if zeros > 0 {
            acc.add(0.0, zeros as f64);
        }
        acc.runs(&vals[split..]);
        u_to_p(acc.u1, n1 as f64, ctrl.len() as f64, acc.tie)
    }
}

#[cfg(test)]
/// The running sums of [`ControlRanks::test`] over ascending values.
struct Acc<'a> {
    /// The gene's sorted control values.
    ctrl: &'a [f32],
    /// Control values below the current value (only moves forward).
    less: usize,
    u1: f64,
    tie: f64,
}

#[cfg(test)]
impl Acc<'_> {
    /// Adds `b` perturbation cells of value `v` (values must come ascending).
    fn add(&mut self, v: f32, b: f64) {
        self.less = gallop(self.ctrl, self.less, |c| c < v);
        let upto = gallop(self.ctrl, self.less, |c| c <= v);
        let a = (upto - self.less) as f64;
        self.u1 += b * (self.less as f64 + a / 2.0);
        // The pooled tie group of this value has a + b members; the
        // control's own a were already counted in `tie_term`.
        let t = a + b;
        self.tie += (t * t * t - t) - (a * a * a - a);
    }

    /// Adds the runs of equal values of the sorted `x`.
    fn runs(&mut self, x: &[f32]) {
        let mut i = 0;
        while i < x.len() {
            let mut j = i + 1;
            while j < x.len() && x[j] == x[i] {
                j += 1;
            }
            self.add(x[i], (j - i) as f64);
            i = j;
        }
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
    fn gallop_finds_the_boundary() {
        let v = [0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 5.0, 8.0];
        for x in [-1.0, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 9.0] {
            for from in 0..=v.iter().filter(|&&a| a < x).count() {
                assert_eq!(
                    gallop(&v, from, |a| a < x),
                    v.partition_point(|&a| a < x),
                    "{x} {from}"
                );
                assert_eq!(gallop(&v, from, |a| a <= x), v.partition_point(|&a| a <= x));
            }
        }
        assert_eq!(gallop(&[], 0, |a| a < 1.0), 0);
    }

    /// The zero fast path gives what a plain pooled ranking gives, with
    /// negative values (predictions may have them) and -0.0.
    #[test]
    fn zeros_between_negatives_and_positives() {
        let y = vec![0.0, -1.0, 0.0, 2.0, 0.5, -0.0, 3.0, 0.5];
        let x = vec![0.0, -2.0, 0.5, 0.0, 4.0, -1.0, -0.0];
        let (u, _) = ControlRanks::new(vec![y.clone()]).test(0, &mut x.clone());
        let brute: f64 = x
            .iter()
            .map(|&a| {
                y.iter()
                    .map(|&c| {
                        if c < a {
                            1.0
                        } else if c == a {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>()
            })
            .sum();
        assert_eq!(u, brute);
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
