//! Exact MMD ranks without every pair of units: bounds on the cross term of
//! the energy distance from each unit's moments.
//!
//! The rank of reference unit `p` counts the predicted units `q` with
//! `M[q, p] < M[p, p]`, where `M[q, p] = A(q, p) - B(q)/2 - C(p)/2`, `A` the
//! mean predicted-to-reference distance and `B`, `C` the mean self
//! distances (metrics.md). `C(p)` cancels, so `q` ranks above `p`'s own row
//! exactly when `A(q, p) < tau = A(p, p) - B(p)/2 + B(q)/2`, and `A(p, p)`,
//! `B` are computed exactly anyway (`mmd_gex`). `A(q, p)` is the mean of
//! `sqrt(Z)` over the cell pairs, `Z = |x_i - y_j|^2`. With
//! `a_i = x_i - mu_q`, `b_j = y_j - mu_p`, `D = mu_q - mu_p`:
//!
//! * `E Z = v_q + v_p + |D|^2` (`v` the mean `|a|^2` of a unit);
//! * `Var Z = Var_i(|a_i|^2 + 2 a_i.D) + Var_j(|b_j|^2 - 2 b_j.D)
//!   + 4 <S_q, S_p>_F` (the three parts are uncorrelated; `S` the biased
//!   covariance), and `<S_q, S_p>_F <= |S_q|_F |S_p|_F`;
//! * `|S|_F^2 = (Var_ii' |a_i - a_i'|^2 - 2 Var_i |a_i|^2) / 4`, where the
//!   first variance comes out of the self-distance pass at no extra
//!   products ([`super::fused`]'s second sum).
//!
//! Jensen's inequality (sqrt is concave) bounds `A` above, Hoelder's
//! (`E Z = E[Z^(1/3) Z^(2/3)] <= (E sqrt Z)^(2/3) (E Z^2)^(1/3)`) below:
//!
//! `m^1.5 / sqrt(m^2 + Var Z) <= A(q, p) <= sqrt(m + 1e-8)`, `m = E Z`,
//!
//! and `A >= |D|` (Jensen again). The floor of `d` only raises `A` within the
//! upper bound's `1e-8`. In gene space the interval is narrow (the
//! distances of thousands of genes concentrate), so most pairs are decided
//! without their `n_q x n_p` products; the others are computed exactly. The
//! ranks equal those of the full matrix; only the undecided pairs' values
//! are known.

use super::points::{lane_sum, LANES};

/// The variance bound is inflated by this factor (f32 products feed it).
const VAR_INFLATE: f64 = 1.05;

/// A pair is decided only when its bound clears `tau` by this fraction of
/// the distances' scale (f32 products have ~1e-7 relative error).
const REL_MARGIN: f64 = 1e-5;

/// Moments of one unit's cells (centred coordinates) that bound the
/// energy distances of its pairs.
#[derive(Debug, Clone)]
pub(super) struct UnitMoments {
    /// `[D]` mean of the cells.
    pub mean: Vec<f64>,
    /// Mean of `|a_i|^2`, `a_i = x_i - mean`.
    pub v: f64,
    /// Upper estimate of the Frobenius norm of the biased covariance.
    pub fro: f64,
    /// Per cell, `|a_i|^2 + 2 x_i.mean` (the part of `|a_i|^2 + 2 a_i.D`
    /// that does not depend on the other unit).
    pub cell: Vec<f64>,
}

/// The cell terms of a unit before its self-distance pass: mean, `v`, the
/// per-cell terms and the variance of `|a_i|^2`. `x`: `[n, d]` row-major.
pub(super) struct CellTerms {
    pub mean: Vec<f64>,
    pub v: f64,
    pub var_norm: f64,
    pub cell: Vec<f64>,
}

impl CellTerms {
    /// One unit's terms (`n >= 1`).
    pub(super) fn of(x: &[f32], d: usize) -> CellTerms {
        let d = d.max(1);
        let n = x.len() / d;
        let mut mean = vec![0f64; d];
        for row in x.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
        }
        let inv = 1.0 / n.max(1) as f64;
        mean.iter_mut().for_each(|m| *m *= inv);
        let mut norms = Vec::with_capacity(n);
        let mut cell = Vec::with_capacity(n);
        // Each row's two sums over LANES partial sums: one running sum
        // waited on the add latency at every gene.
        let body = d - d % LANES;
        for row in x.chunks_exact(d) {
            let (mut na, mut xm) = ([0f64; LANES], [0f64; LANES]);
            for (v, m) in row[..body]
                .chunks_exact(LANES)
                .zip(mean[..body].chunks_exact(LANES))
            {
                for l in 0..LANES {
                    let (v, m) = (v[l] as f64, m[l]);
                    na[l] += (v - m) * (v - m);
                    xm[l] += v * m;
                }
            }
            let (mut na_t, mut xm_t) = (0f64, 0f64);
            for (&v, &m) in row[body..].iter().zip(&mean[body..]) {
                let v = v as f64;
                na_t += (v - m) * (v - m);
                xm_t += v * m;
            }
            let (na, xm) = (lane_sum(&na) + na_t, lane_sum(&xm) + xm_t);
            norms.push(na);
            cell.push(na + 2.0 * xm);
        }
        let (v, var_norm) = mean_var(norms.iter().copied());
        CellTerms {
            mean,
            v,
            var_norm,
            cell,
        }
    }

    /// The shift of the self pass's second sum: `E |a_i - a_i'|^2 = 2 v`.
    pub(super) fn shift(&self) -> f64 {
        2.0 * self.v
    }

    /// The moments, given `sq_dev = sum_ii' (|a_i - a_i'|^2 - 2v)^2` over
    /// the unit's ordered pairs.
    pub(super) fn finish(self, sq_dev: f64) -> UnitMoments {
        let n = self.cell.len().max(1) as f64;
        let fro2 = (sq_dev / (n * n) - 2.0 * self.var_norm) / 4.0;
        // Rounding of the f32 squared distances: allow 1e-3 of the
        // measured variance and 1e-6 of (2v)^2 on top.
        let slack = 1e-3 * (sq_dev / (n * n)) + 1e-6 * (2.0 * self.v).powi(2);
        UnitMoments {
            mean: self.mean,
            v: self.v,
            fro: (fro2.max(0.0) + slack).sqrt(),
            cell: self.cell,
        }
    }
}

/// Mean and (biased) variance of `xs`, two passes.
fn mean_var(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let (mut n, mut s) = (0usize, 0f64);
    for x in xs.clone() {
        n += 1;
        s += x;
    }
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let m = s / n as f64;
    let v = xs.map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
    (m, v)
}

/// For each of the `u` columns `k` of `prod` (`[n, u]` row-major, `n =
/// cell.len()`): the variance over the rows `i` of `cell[i] - 2 prod[i, k]`.
pub(super) fn var_against(cell: &[f64], prod: &[f32], u: usize) -> Vec<f64> {
    let n = cell.len();
    if n == 0 || u == 0 || prod.len() < n * u {
        return vec![f64::NAN; u];
    }
    let mut mean = vec![0f64; u];
    for (row, &c) in prod.chunks_exact(u).zip(cell) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &k)| *m += c - 2.0 * k as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0f64; u];
    for (row, &c) in prod.chunks_exact(u).zip(cell) {
        for ((s, &k), &m) in var.iter_mut().zip(row).zip(&mean) {
            let e = c - 2.0 * k as f64 - m;
            *s += e * e;
        }
    }
    var.iter_mut().for_each(|s| *s /= n as f64);
    var
}

/// Lower and upper bounds of the mean distance `A(q, p)` of predicted unit
/// `q` (`mq`) to reference unit `p` (`mp`), given `Var_i alpha` and
/// `Var_j beta` of the pair (module docs).
pub(super) fn cross_bounds(
    mq: &UnitMoments,
    mp: &UnitMoments,
    var_a: f64,
    var_b: f64,
) -> (f64, f64) {
    let delta2: f64 = mq
        .mean
        .iter()
        .zip(&mp.mean)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    let m = mq.v + mp.v + delta2;
    let var = VAR_INFLATE * (var_a + var_b + 4.0 * mq.fro * mp.fro);
    let upper = (m + super::distance::SQ_DIST_FLOOR).sqrt();
    let jensen = delta2.max(super::distance::SQ_DIST_FLOOR).sqrt();
    // Hoelder: E Z = E[Z^(1/3) Z^(2/3)] <= (E sqrt Z)^(2/3) (E Z^2)^(1/3),
    // so E sqrt Z >= m^1.5 / sqrt(m^2 + Var Z).
    let holder = if m > 0.0 {
        m * m.sqrt() / (m * m + var).sqrt()
    } else {
        f64::NEG_INFINITY
    };
    let lower = jensen.max(holder);
    if lower.is_finite() && upper.is_finite() {
        (lower, upper)
    } else {
        (f64::NEG_INFINITY, f64::INFINITY)
    }
}

/// Where a pair stands against its column's diagonal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Surely strictly better (smaller MMD) than the diagonal.
    Better,
    /// Surely not better.
    Worse,
    /// The bounds straddle the threshold: compute the pair.
    Unknown,
}

/// Decides `A(q, p) < tau` from `A`'s bounds; `scale` is the size of the
/// distances involved (for the rounding margin).
pub(super) fn decide(lower: f64, upper: f64, tau: f64, scale: f64) -> Decision {
    if !(lower.is_finite() && upper.is_finite() && tau.is_finite() && scale.is_finite()) {
        return Decision::Unknown;
    }
    let margin = REL_MARGIN * scale.abs() + 1e-12;
    if upper < tau - margin {
        Decision::Better
    } else if lower > tau + margin {
        Decision::Worse
    } else {
        Decision::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean distance between two point sets, every pair, in f64.
    fn mean_dist(x: &[f64], y: &[f64], d: usize) -> f64 {
        let mut s = 0.0;
        let mut k = 0;
        for a in x.chunks_exact(d) {
            for b in y.chunks_exact(d) {
                let z: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
                s += z.max(1e-8).sqrt();
                k += 1;
            }
        }
        s / k as f64
    }

    fn moments(x: &[f64], d: usize) -> UnitMoments {
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let t = CellTerms::of(&xf, d);
        let shift = t.shift();
        let mut sq = 0.0;
        for a in xf.chunks_exact(d) {
            for b in xf.chunks_exact(d) {
                let z: f64 = a.iter().zip(b).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
                sq += (z - shift) * (z - shift);
            }
        }
        t.finish(sq)
    }

    /// A small deterministic generator (no dependence on other crates).
    fn noise(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn frobenius_norm_from_the_self_pass() {
        let (n, d) = (40, 6);
        let mut seed = 7;
        let x: Vec<f64> = (0..n * d)
            .map(|i| noise(&mut seed) * (1.0 + (i % d) as f64))
            .collect();
        let m = moments(&x, d);
        // |S|_F directly from the biased covariance.
        let mut s = vec![0f64; d * d];
        for row in x.chunks_exact(d) {
            for a in 0..d {
                for b in 0..d {
                    s[a * d + b] += (row[a] - m.mean[a]) * (row[b] - m.mean[b]) / n as f64;
                }
            }
        }
        let fro = s.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(m.fro >= fro, "{} < {fro}", m.fro);
        assert!(m.fro <= fro * 1.01 + 1e-6, "{} vs {fro}", m.fro);
    }

    #[test]
    fn bounds_contain_the_mean_distance() {
        let d = 50;
        let mut seed = 11;
        for shift in [0.0, 0.05, 0.3, 2.0] {
            let x: Vec<f64> = (0..30 * d).map(|_| noise(&mut seed)).collect();
            let y: Vec<f64> = (0..20 * d)
                .map(|i| noise(&mut seed) * 1.3 + if i % d < 10 { shift } else { 0.0 })
                .collect();
            let (mx, my) = (moments(&x, d), moments(&y, d));
            let (xf, yf): (Vec<f32>, Vec<f32>) = (
                x.iter().map(|&v| v as f32).collect(),
                y.iter().map(|&v| v as f32).collect(),
            );
            let ky: Vec<f32> = xf
                .chunks_exact(d)
                .map(|a| a.iter().zip(&my.mean).map(|(p, q)| p * *q as f32).sum())
                .collect();
            let kx: Vec<f32> = yf
                .chunks_exact(d)
                .map(|b| b.iter().zip(&mx.mean).map(|(p, q)| p * *q as f32).sum())
                .collect();
            let va = var_against(&mx.cell, &ky, 1)[0];
            let vb = var_against(&my.cell, &kx, 1)[0];
            let (lo, hi) = cross_bounds(&mx, &my, va, vb);
            let a = mean_dist(&x, &y, d);
            assert!(lo <= a && a <= hi, "shift {shift}: {lo} <= {a} <= {hi}");
            // Concentration: the interval is a small part of the distance.
            assert!(
                hi - lo < 0.05 * a,
                "shift {shift}: width {} of {a}",
                hi - lo
            );
        }
    }

    #[test]
    fn decisions_need_a_clear_margin() {
        assert_eq!(decide(1.0, 1.1, 2.0, 1.0), Decision::Better);
        assert_eq!(decide(1.0, 1.1, 0.5, 1.0), Decision::Worse);
        assert_eq!(decide(1.0, 1.1, 1.05, 1.0), Decision::Unknown);
        assert_eq!(decide(1.0, 1.1, 1.1, 1.0), Decision::Unknown);
        assert_eq!(decide(f64::NAN, 1.1, 2.0, 1.0), Decision::Unknown);
    }
}
