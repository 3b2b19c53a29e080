//! The seeded shuffling sampler and per-step seeds.
//!
//! Training cells are visited as an endless stream of epochs, each a fresh
//! permutation of all training cells (controls included) drawn from
//! `(seed, epoch)`. Micro-batch `i` is positions `[i B, (i + 1) B)` of that
//! stream, so any batch is a pure function of `(seed, i)`: a resumed run needs
//! no saved sampler state.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Per-step seeds and their tags live with the rest of the seeding
/// (`device.rs`); re-exported here, where the trainer uses them.
pub use crate::device::{derive_seed, tags};

/// Epoch-wise shuffled micro-batches over `n` cells.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    n: usize,
    seed: u64,
    cache: Option<(u64, Vec<usize>)>,
}

impl BatchSampler {
    /// A sampler over cells `0..n` (n > 0) with `seed`.
    pub fn new(n: usize, seed: u64) -> BatchSampler {
        BatchSampler {
            n,
            seed,
            cache: None,
        }
    }

    /// The permutation of epoch `epoch`.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, &[tags::EPOCH, epoch]));
        order.shuffle(&mut rng);
        order
    }

    /// Micro-batch `index` of `size` cells (indices into `0..n`); a batch
    /// may straddle two epochs.
    pub fn batch(&mut self, index: u64, size: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(size);
        if self.n == 0 {
            return out;
        }
        let n = self.n as u64;
        let start = index * size as u64;
        for pos in start..start + size as u64 {
            let (epoch, i) = (pos / n, (pos % n) as usize);
            if self.cache.as_ref().map(|(e, _)| *e) != Some(epoch) {
                self.cache = Some((epoch, self.epoch_order(epoch)));
            }
            if let Some((_, order)) = &self.cache {
                out.push(order[i]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_once_per_epoch_and_reproducible() {
        let mut s = BatchSampler::new(10, 7);
        let mut seen: Vec<usize> = (0..5).flat_map(|i| s.batch(i, 2)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let mut fresh = BatchSampler::new(10, 7);
        assert_eq!(fresh.batch(3, 4), s.batch(3, 4));
        assert_ne!(s.epoch_order(0), s.epoch_order(1));
        assert_ne!(derive_seed(1, &[2, 3]), derive_seed(1, &[3, 2]));
    }
}
