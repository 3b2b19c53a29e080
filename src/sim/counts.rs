//! Negative-binomial counts as a gamma-Poisson mixture, one RNG stream per
//! cell.
//!
//! For cell i in line l with responder pattern `mask`:
//!
//! * size factor `s_i ~ Gamma(1/d, d)` (mean 1, variance d =
//!   `library_size_dispersion`), library `L_i = counts_per_gene * n_genes * s_i`;
//! * per gene, `lambda = L_i * exp(log_baseline[l, g] + delta[g])` and
//!   `count ~ NB(mean lambda, Var = lambda + phi_g lambda^2)`: drawn as
//!   `Poisson(Gamma(1/phi_g, phi_g) * lambda)` when `lambda >= 12`, and by
//!   inversion of the NB distribution function below that (the same law,
//!   about twice as fast for the small means that dominate).
//!
//! Cell i draws from ChaCha8 stream `i` of the seed's key, so the numbers do
//! not depend on chunk size or thread count.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson};

use super::config::SimConfig;
use super::layout::Layout;
use super::truth::SimTruth;
use crate::error::{Error, Result};

/// What is known about a sampled cell besides its counts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CellDraw {
    /// Responded to at least one of its perturbations.
    pub responder: bool,
    /// Total counts.
    pub n_counts: f64,
}

/// Samples cells of a laid-out simulation.
pub struct CellSampler<'a> {
    layout: &'a Layout,
    /// Per unit: `[2^members]` expected count shares `[G]` by responder mask.
    shares: Vec<Vec<Vec<f64>>>,
    /// Per unit: responder fraction of each member.
    fractions: Vec<Vec<f64>>,
    /// Per gene: the gamma of the NB mixture (`None`: Poisson only).
    gene_gamma: Vec<Option<Gamma<f64>>>,
    /// Per gene: the NB size `r = 1/phi` (0: Poisson only).
    gene_size: Vec<f64>,
    size_gamma: Option<Gamma<f64>>,
    library_size_mean: f64,
    seed: u64,
}

impl<'a> CellSampler<'a> {
    /// Precomputes the expected shares of every (unit, responder mask).
    pub fn new(cfg: &SimConfig, truth: &SimTruth, layout: &'a Layout) -> Result<Self> {
        let shares = layout
            .units
            .iter()
            .map(|u| {
                let n_masks = 1u32 << truth.members(u.condition).len();
                (0..n_masks)
                    .map(|mask| {
                        let delta = truth.delta(u.condition, u.line, mask);
                        truth.log_baseline[u.line]
                            .iter()
                            .zip(&delta)
                            .map(|(b, d)| (b + d).exp())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let fractions = layout
            .units
            .iter()
            .map(|u| {
                truth
                    .members(u.condition)
                    .iter()
                    .map(|&p| truth.responder_fraction[p])
                    .collect()
            })
            .collect();
        let gamma = |shape: f64, what: &str| {
            Gamma::new(shape, 1.0 / shape).map_err(|e| {
                Error::invalid(
                    format!("simulation setting '{what}'"),
                    format!("gamma shape {shape}: {e}"),
                )
            })
        };
        let gene_gamma = truth
            .gene_dispersion
            .iter()
            .map(|&phi| {
                if phi > 0.0 {
                    gamma(1.0 / phi, "nb_dispersion").map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<_>>()?;
        let gene_size = truth
            .gene_dispersion
            .iter()
            .map(|&phi| if phi > 0.0 { 1.0 / phi } else { 0.0 })
            .collect();
        let size_gamma = if cfg.library_size_dispersion > 0.0 {
            Some(gamma(
                1.0 / cfg.library_size_dispersion,
                "library_size_dispersion",
            )?)
        } else {
            None
        };
        Ok(CellSampler {
            layout,
            shares,
            fractions,
            gene_gamma,
            gene_size,
            size_gamma,
            library_size_mean: cfg.counts_per_gene * truth.genes.len() as f64,
            seed: cfg.seed,
        })
    }

    /// The RNG of cell `i`: the seed's ChaCha8 key, stream `i`.
    pub fn cell_rng(seed: u64, i: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(i as u64);
        rng
    }

    /// Samples cell `i` into `counts` `[G]` (integers stored as f32).
    pub fn sample(&self, i: usize, counts: &mut [f32]) -> CellDraw {
        let mut rng = Self::cell_rng(self.seed, i);
        let u = self.layout.cell_unit.get(i).map_or(0, |&u| u as usize);
        let mut mask = 0usize;
        for (k, &r) in self
            .fractions
            .get(u)
            .map_or(&[][..], |v| v.as_slice())
            .iter()
            .enumerate()
        {
            if rng.gen::<f64>() < r {
                mask |= 1 << k;
            }
        }
        let size = self.size_gamma.as_ref().map_or(1.0, |g| g.sample(&mut rng));
        let library = self.library_size_mean * size;
        let shares = match self.shares.get(u).and_then(|s| s.get(mask)) {
            Some(s) => s,
            None => return CellDraw::default(),
        };
        let mut total = 0.0;
        for (((c, &share), gamma), &r) in counts
            .iter_mut()
            .zip(shares)
            .zip(&self.gene_gamma)
            .zip(&self.gene_size)
        {
            let mean = library * share;
            let k = match gamma {
                Some(_) if mean < SMALL_MEAN => neg_binomial_small(&mut rng, mean, r),
                Some(g) => {
                    let rate = mean * g.sample(&mut rng);
                    poisson(&mut rng, rate)
                }
                None => poisson(&mut rng, mean),
            };
            total += k;
            *c = k as f32;
        }
        CellDraw {
            responder: mask != 0,
            n_counts: total,
        }
    }
}

/// Below this mean, NB and Poisson draws use inversion.
const SMALL_MEAN: f64 = 12.0;

/// An NB draw with mean `mean` (< [`SMALL_MEAN`]) and size `r = 1/phi` by
/// inversion: `P(0) = (r / (r + mean))^r`,
/// `P(k + 1) = P(k) (k + r) / (k + 1) * mean / (r + mean)`.
pub fn neg_binomial_small<R: Rng>(rng: &mut R, mean: f64, r: f64) -> f64 {
    if !(mean.is_finite() && mean > 0.0 && r > 0.0) {
        return 0.0;
    }
    let ratio = mean / (r + mean);
    let u: f64 = rng.gen();
    let mut p = (-r * (mean / r).ln_1p()).exp();
    let mut cdf = p;
    let mut k = 0.0;
    while u > cdf && p > 0.0 && k < 1e5 {
        p *= (k + r) / (k + 1.0) * ratio;
        k += 1.0;
        cdf += p;
    }
    k
}

/// A Poisson draw: inversion by sequential search below 12, `rand_distr`'s
/// rejection sampler above.
pub fn poisson<R: Rng>(rng: &mut R, lambda: f64) -> f64 {
    if !(lambda.is_finite() && lambda > 0.0) {
        return 0.0;
    }
    if lambda < SMALL_MEAN {
        let u: f64 = rng.gen();
        let mut p = (-lambda).exp();
        let mut cdf = p;
        let mut k = 0.0;
        while u > cdf && k < 200.0 {
            k += 1.0;
            p *= lambda / k;
            cdf += p;
        }
        k
    } else {
        match Poisson::new(lambda) {
            Ok(d) => d.sample(rng),
            Err(_) => lambda.round(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_mean_and_variance_match_lambda() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for lambda in [0.3, 4.0, 11.5, 40.0] {
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lambda)).collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            // 5 standard errors of the mean; variance within 5%.
            assert!(
                (m - lambda).abs() < 5.0 * (lambda / n as f64).sqrt(),
                "lambda {lambda}: mean {m}"
            );
            assert!((v / lambda - 1.0).abs() < 0.05, "lambda {lambda}: var {v}");
        }
    }

    #[test]
    fn negative_binomial_mean_and_variance() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (mean, phi) in [(0.5, 0.2), (3.0, 0.5), (11.0, 1.5)] {
            let n = 60_000;
            let xs: Vec<f64> = (0..n)
                .map(|_| neg_binomial_small(&mut rng, mean, 1.0 / phi))
                .collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            let var = mean + phi * mean * mean;
            assert!(
                (m - mean).abs() < 5.0 * (var / n as f64).sqrt(),
                "mean {mean}, phi {phi}: got mean {m}"
            );
            assert!(
                (v / var - 1.0).abs() < 0.08,
                "mean {mean}, phi {phi}: var {v}, expected {var}"
            );
        }
    }
}
