//! PerturBench's preprocessing of counts (scanpy `normalize_total` with a
//! fixed `target_sum`, then `log1p`):
//!
//! `X[i, g] = ln(1 + counts[i, g] * target_sum / sum_g' counts[i, g'])`
//!
//! computed in f64 and stored as f32. A cell with no counts stays all zero.

/// Writes the log1p-normalised `x` `[G]` of one cell's `counts` `[G]` whose
/// total is `total`.
pub fn normalize_log1p_row(counts: &[f32], total: f64, target_sum: f64, x: &mut [f32]) {
    if total > 0.0 {
        let scale = target_sum / total;
        for (xv, &c) in x.iter_mut().zip(counts) {
            // ln_1p(0) = 0 exactly; most counts are 0, so skip the call.
            *xv = if c == 0.0 {
                0.0
            } else {
                (c as f64 * scale).ln_1p() as f32
            };
        }
    } else {
        x.iter_mut().for_each(|v| *v = 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computation() {
        let counts = [1.0f32, 0.0, 3.0];
        let mut x = [9.0f32; 3];
        normalize_log1p_row(&counts, 4.0, 1e4, &mut x);
        // ln(1 + 1 * 10000 / 4) = ln(2501); ln(1 + 7500) = ln(7501).
        assert_eq!(x, [2501f64.ln() as f32, 0.0, 7501f64.ln() as f32]);
        normalize_log1p_row(&[0.0, 0.0, 0.0], 0.0, 1e4, &mut x);
        assert_eq!(x, [0.0; 3]);
        // Large and non-integer values take the direct path.
        normalize_log1p_row(&[100.0, 0.5, 100.0], 200.5, 1e4, &mut x);
        let want = |c: f64| (c * 1e4 / 200.5).ln_1p() as f32;
        assert_eq!(x, [want(100.0), want(0.5), want(100.0)]);
        normalize_log1p_row(&[0.0, 0.0, 0.0], 0.0, 1e4, &mut x);
        assert_eq!(x, [0.0; 3]);
    }
}
