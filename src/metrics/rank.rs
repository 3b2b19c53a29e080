//! Rank (specificity) metrics (metrics.md, "Rank metrics"): 0 is perfect,
//! about 0.5 random.
//!
//! Per covariate key, `M[q, p] = metric(pred_q, ref_p)` over the units present
//! in both. For each reference perturbation `p` (a column) the rows are ranked
//! (ascending for distances, descending for similarities) and `p`'s rank is
//! the position of its own row `q = p`:
//!
//! `rank(p) = #{q : M[q, p] strictly better than M[p, p]} + 1/2 #{q != p : M[q, p] == M[p, p]}`
//!
//! divided by `n - 1` (v2; 0 when `n = 1`) or `n` (v1). PerturBench shuffles
//! the rows before a stable sort, so a tie's position is random; counting
//! half the tied rows is its expectation and deterministic. NaN is the worst
//! value (pandas sorts NaN last in both directions): a NaN diagonal ranks
//! behind every number, tied with the other NaN rows.

use super::config::RankConvention;

/// Ranks of the columns of the square matrix `m` (`[n, n]`, row-major,
/// rows = predictions, columns = references), normalised by `conv`.
pub fn ranks(m: &[f64], n: usize, similarity: bool, conv: RankConvention) -> Vec<f64> {
    let denom = match conv {
        RankConvention::V2 => n.saturating_sub(1),
        RankConvention::V1 => n,
    };
    (0..n)
        .map(|p| {
            let own = m[p * n + p];
            let mut better = 0usize;
            let mut ties = 0usize;
            for q in (0..n).filter(|&q| q != p) {
                let v = m[q * n + p];
                match (own.is_nan(), v.is_nan()) {
                    (true, true) => ties += 1,
                    (true, false) => better += 1,
                    (false, true) => {}
                    (false, false) => {
                        if v == own {
                            ties += 1;
                        } else if (similarity && v > own) || (!similarity && v < own) {
                            better += 1;
                        }
                    }
                }
            }
            let r = better as f64 + 0.5 * ties as f64;
            if denom == 0 {
                0.0
            } else {
                r / denom as f64
            }
        })
        .collect()
}
