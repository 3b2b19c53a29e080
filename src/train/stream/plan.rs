//! The order in which a stream visits the training cells: chunks shuffled
//! per epoch, cut into buffers of `K` chunks, each buffer's cells shuffled
//! (see the module docs of `train::stream`); and where a stream stands in
//! that order ([`LoaderPosition`], saved in checkpoints).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::StreamConfig;
use crate::error::{Error, Result};
use crate::train::batches::{derive_seed, tags};

/// Where the stream stands: saved in a checkpoint's `state.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderPosition {
    /// Cells drawn since the start of the run (all epochs).
    pub cells_drawn: u64,
    /// The epoch of the next cell.
    pub epoch: u64,
    /// The buffer of that epoch holding the next cell.
    pub buffer: usize,
    /// The next cell's place in that buffer.
    pub offset: usize,
}

/// The order in which a stream visits `n` cells (see the module docs).
#[derive(Debug, Clone)]
pub struct StreamPlan {
    n: usize,
    chunk_rows: usize,
    buffer_chunks: usize,
    seed: u64,
}

impl StreamPlan {
    /// The plan over `n > 0` cells.
    pub fn new(n: usize, cfg: &StreamConfig, seed: u64) -> Result<StreamPlan> {
        cfg.validate()?;
        if n == 0 {
            return Err(Error::invalid("training data", "no cells to stream"));
        }
        Ok(StreamPlan {
            n,
            chunk_rows: cfg.chunk_rows,
            buffer_chunks: cfg.buffer_chunks,
            seed,
        })
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.n
    }

    fn n_chunks(&self) -> usize {
        self.n.div_ceil(self.chunk_rows)
    }

    /// Buffers per epoch.
    pub fn n_buffers(&self) -> usize {
        self.n_chunks().div_ceil(self.buffer_chunks)
    }

    /// The chunk order of epoch `epoch`.
    pub(super) fn chunk_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.n_chunks()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, &[tags::STREAM, epoch]));
        order.shuffle(&mut rng);
        order
    }

    /// Cells of chunk `c`.
    fn chunk(&self, c: usize) -> std::ops::Range<usize> {
        c * self.chunk_rows..((c + 1) * self.chunk_rows).min(self.n)
    }

    /// The cells (positions) of buffer `g` of epoch `epoch`, in the order
    /// the stream visits them.
    pub fn buffer_cells(&self, epoch: u64, g: usize) -> Vec<usize> {
        self.buffer_cells_in(&self.chunk_order(epoch), epoch, g)
    }

    pub(super) fn buffer_cells_in(&self, order: &[usize], epoch: u64, g: usize) -> Vec<usize> {
        let k = self.buffer_chunks;
        let lo = (g * k).min(order.len());
        let hi = ((g + 1) * k).min(order.len());
        let mut cells: Vec<usize> = order[lo..hi].iter().flat_map(|&c| self.chunk(c)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
            self.seed,
            &[tags::STREAM_BUFFER, epoch, g as u64],
        ));
        cells.shuffle(&mut rng);
        cells
    }

    /// The position of the `drawn`-th cell of the stream.
    pub fn position(&self, drawn: u64) -> LoaderPosition {
        let n = self.n as u64;
        let epoch = drawn / n;
        let mut rest = (drawn % n) as usize;
        let order = self.chunk_order(epoch);
        let k = self.buffer_chunks;
        for (g, chunks) in order.chunks(k).enumerate() {
            let size: usize = chunks.iter().map(|&c| self.chunk(c).len()).sum();
            if rest < size {
                return LoaderPosition {
                    cells_drawn: drawn,
                    epoch,
                    buffer: g,
                    offset: rest,
                };
            }
            rest -= size;
        }
        // Unreachable for n > 0: the buffers of an epoch hold n cells.
        LoaderPosition {
            cells_drawn: drawn,
            epoch: epoch + 1,
            buffer: 0,
            offset: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_once_per_epoch_and_positions_agree() {
        let cfg = StreamConfig {
            chunk_rows: 3,
            buffer_chunks: 2,
        };
        let plan = StreamPlan::new(17, &cfg, 9).unwrap();
        assert_eq!(plan.n_buffers(), 3);
        let mut all: Vec<usize> = (0..plan.n_buffers())
            .flat_map(|g| plan.buffer_cells(0, g))
            .collect();
        let stream0 = all.clone();
        all.sort();
        assert_eq!(all, (0..17).collect::<Vec<_>>());
        // Buffer 0 holds exactly the cells of two chunks.
        let mut chunks: Vec<usize> = plan.buffer_cells(0, 0).iter().map(|c| c / 3).collect();
        chunks.sort();
        chunks.dedup();
        assert_eq!(chunks.len(), 2);
        // position() walks the same order.
        let p = plan.position(17 + 7);
        assert_eq!(p.epoch, 1);
        let b = plan.buffer_cells(1, p.buffer);
        let flat1: Vec<usize> = (0..plan.n_buffers())
            .flat_map(|g| plan.buffer_cells(1, g))
            .collect();
        assert_eq!(b[p.offset], flat1[7]);
        assert_ne!(flat1, stream0);
    }
}
