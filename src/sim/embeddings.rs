//! Perturbation embeddings with known truth (issue 12): a per-perturbation
//! vector derived from the simulation's ground-truth gene programs, so the
//! `embedding` condition encoding can be tested on perturbations held out
//! of training, and a shuffled copy as the negative control.
//!
//! For perturbation `p` with program strengths `s[p] [K]` (see
//! [`SimTruth`]):
//!
//! `e[p] = s[p] R + noise * rms(s R) * z`,   `R [K, d]`, `z [d]` standard normal,
//!
//! with `R` a fixed Gaussian projection (entries `N(0, 1/d)`). With
//! `d >= K` the map from `s[p]` is (almost surely) injective, so a model
//! can recover which programs a perturbation moves; the target-gene effect
//! and the cell-line multipliers are not encoded. The shuffled copy keeps
//! the same vectors but permutes them among the perturbations (a seeded
//! derangement), so it has the same distribution and no information.
//! Names are the simulation's perturbation names (`P000`, ...), which in a
//! CRISPR screen are the target genes.
//!
//! Files: `<out stem>.embeddings.tsv` and `<out stem>.embeddings_shuffled.tsv`
//! (see [`EmbeddingTable`]'s text format: name, then `d` values).

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::truth::SimTruth;
use crate::data::EmbeddingTable;
use crate::error::{Error, Result};

/// Settings of the truth-derived embeddings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingOptions {
    /// Width `d` of each vector.
    pub dim: usize,
    /// Noise standard deviation relative to the vectors' root mean square.
    pub noise: f64,
    /// Seed of the projection, the noise and the shuffle.
    pub seed: u64,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        EmbeddingOptions {
            dim: 16,
            noise: 0.1,
            seed: 0,
        }
    }
}

/// The truth-derived table `[P, d]` and its shuffled copy.
pub fn truth_embeddings(
    truth: &SimTruth,
    opts: &EmbeddingOptions,
) -> Result<(EmbeddingTable, EmbeddingTable)> {
    if opts.dim == 0 || !(opts.noise >= 0.0 && opts.noise.is_finite()) {
        return Err(Error::invalid(
            "simulated embeddings",
            format!(
                "dim must be at least 1 and noise finite and >= 0 (got dim {}, noise {})",
                opts.dim, opts.noise
            ),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(crate::train::derive_seed(opts.seed, &[0x000e_4b3d]));
    let k_n = truth.strength.first().map(|r| r.len()).unwrap_or(0);
    let d = opts.dim;
    let scale = 1.0 / (d as f64).sqrt();
    let r: Vec<f64> = (0..k_n * d)
        .map(|_| scale * rng.sample::<f64, _>(StandardNormal))
        .collect(); // [K, d]
    let mut clean = vec![0f64; truth.perturbations.len() * d]; // [P, d]
    for (p, s) in truth.strength.iter().enumerate() {
        for (k, &sk) in s.iter().enumerate() {
            for j in 0..d {
                clean[p * d + j] += sk * r[k * d + j];
            }
        }
    }
    let rms = (clean.iter().map(|v| v * v).sum::<f64>() / clean.len().max(1) as f64).sqrt();
    let values: Vec<f32> = clean
        .iter()
        .map(|v| (v + opts.noise * rms * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect();
    let names = truth.perturbations.clone();
    // A derangement when P > 1: no perturbation keeps its own vector.
    let n = names.len();
    let mut perm: Vec<usize> = (0..n).collect();
    if n > 1 {
        loop {
            perm.shuffle(&mut rng);
            if perm.iter().enumerate().all(|(i, &j)| i != j) {
                break;
            }
        }
    }
    let shuffled: Vec<f32> = perm
        .iter()
        .flat_map(|&j| values[j * d..(j + 1) * d].iter().copied())
        .collect();
    Ok((
        EmbeddingTable::new("simulated embeddings", names.clone(), d, values)?,
        EmbeddingTable::new("simulated embeddings (shuffled)", names, d, shuffled)?,
    ))
}

/// The two file paths beside a simulated `.h5ad`: `<stem>.embeddings.tsv`
/// and `<stem>.embeddings_shuffled.tsv`.
pub fn embedding_paths(h5ad: &Path) -> (PathBuf, PathBuf) {
    (
        h5ad.with_extension("embeddings.tsv"),
        h5ad.with_extension("embeddings_shuffled.tsv"),
    )
}

/// Writes the table and its shuffled copy to `path` and `shuffled_path`
/// (`.tsv`).
pub fn write_truth_embeddings(
    truth: &SimTruth,
    opts: &EmbeddingOptions,
    path: &Path,
    shuffled_path: &Path,
) -> Result<()> {
    let (t, s) = truth_embeddings(truth, opts)?;
    t.write_tsv(path)?;
    s.write_tsv(shuffled_path)
}
