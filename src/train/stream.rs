//! Streaming training data from an `.h5ad` file larger than memory
//! (`train --stream`, `Trainer(#{stream: true})`).
//!
//! The training cells (positions `0..n`, in file order, as the filters and
//! the split chose them from obs) are cut into *chunks* of `chunk_rows`
//! consecutive cells. Each epoch visits every cell once:
//!
//! ```text
//! epoch e:  chunks in a random order           perm_e = shuffle(0..n_chunks; seed, e)
//!           cut into buffers of K chunks       buffer g = perm_e[g K .. (g + 1) K]
//!           each buffer's cells shuffled        shuffle(cells of buffer g; seed, e, g)
//!           and emitted buffer after buffer
//! ```
//!
//! Micro-batch `i` is stream positions `[i B, (i + 1) B)` (it may straddle
//! two buffers or two epochs), so any batch is a pure function of
//! `(seed, i)`, as with the in-memory sampler (`train::batches`): a resumed
//! run restarts the stream at `step * grad_accum * B` and draws the same
//! batches bit for bit. The checkpoint records that [`LoaderPosition`] and
//! resuming checks it.
//!
//! The shuffle is *local*: a batch holds cells of at most two buffers, i.e.
//! of `K` (or `2K`) random chunks of consecutive file rows. Files written
//! sorted by condition therefore give batches richer in a few conditions
//! than a full shuffle would; a buffer of the whole file (`K >= n_chunks`)
//! is a full shuffle. The effect on the loss is measured in
//! docs/results/scale.md ("Streaming").
//!
//! A background thread reads the next buffer (HDF5 hyperslabs through
//! [`RowReader`]) while the trainer works on the current one, over a
//! channel that holds one buffer: memory is about three buffers (the one in
//! use, the one waiting, the one being read), never the file. Values are
//! checked as they arrive (finite; non-negative unless allowed); any read
//! or check error stops training with a message naming the file and the
//! rows, and the last checkpoint stays valid.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize};

use crate::anndata::{Expr, RowReader};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::train::batches::{derive_seed, tags};

/// Streaming settings (`TrainConfig::stream`). In JSON and Rhai, `true`
/// means the defaults, `false`/`null` no streaming, a map sets the keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Consecutive training cells read as one chunk (one hyperslab run).
    pub chunk_rows: usize,
    /// Chunks shuffled together in one buffer (`K`); the buffer's cells
    /// are what the memory holds (about three buffers at a time).
    pub buffer_chunks: usize,
}

impl Default for StreamConfig {
    /// 1,024-cell chunks, 64 per buffer: 65,536 cells (about 100 MB at
    /// 2,000 genes and 10% density in CSR, 512 MB dense).
    fn default() -> Self {
        StreamConfig {
            chunk_rows: 1024,
            buffer_chunks: 64,
        }
    }
}

impl StreamConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<()> {
        for (k, v) in [
            ("chunk_rows", self.chunk_rows),
            ("buffer_chunks", self.buffer_chunks),
        ] {
            if v == 0 {
                return Err(Error::invalid(
                    format!("train config 'stream.{k}'"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

/// `stream` as JSON: `true`, `false`, `null` or a [`StreamConfig`] map.
pub fn deserialize_stream<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<StreamConfig>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Config(StreamConfig),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None | Some(Raw::Flag(false)) => None,
        Some(Raw::Flag(true)) => Some(StreamConfig::default()),
        Some(Raw::Config(c)) => Some(c),
    })
}

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
    fn chunk_order(&self, epoch: u64) -> Vec<usize> {
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

    fn buffer_cells_in(&self, order: &[usize], epoch: u64, g: usize) -> Vec<usize> {
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

/// What a stream reads: the file, its matrix and the file row of each
/// training cell.
#[derive(Debug, Clone)]
pub struct StreamSource {
    pub path: PathBuf,
    /// `layers/<name>` instead of X.
    pub layer: Option<String>,
    /// `[n]` file row of each training cell (position order).
    pub rows: Arc<[usize]>,
    /// Accept negative values.
    pub allow_negative: bool,
    /// Genes `m`.
    pub n_genes: usize,
}

impl StreamSource {
    /// The source of the cells of `ds`, a dataset from
    /// [`Dataset::open_for_streaming`] or loaded from its file (its X is
    /// then not used). The file must still have the dataset's shape.
    pub fn of(ds: &Dataset) -> Result<StreamSource> {
        let path = ds.source.clone().ok_or_else(|| {
            Error::invalid(
                "streaming",
                "the training cells have no source file to stream from (data made in memory); write them to an .h5ad file first",
            )
        })?;
        let spec = ds.provenance.as_ref().map(|p| &p.spec);
        let layer = spec.and_then(|s| s.layer.clone());
        let allow_negative = spec.is_some_and(|s| s.allow_negative);
        let src = StreamSource {
            path,
            layer,
            rows: ds.x.store_rows().into(),
            allow_negative,
            n_genes: ds.n_genes(),
        };
        let reader = src.open()?;
        let (n, m) = reader.shape();
        if m != src.n_genes {
            return Err(Error::format(
                &src.path,
                reader.field(),
                format!(
                    "has {m} genes, the training data {}: the file changed since it was opened",
                    src.n_genes
                ),
            ));
        }
        if let Some(&r) = src.rows.iter().find(|&&r| r >= n) {
            return Err(Error::format(
                &src.path,
                reader.field(),
                format!("has {n} rows, the training data uses row {r}: the file changed since it was opened"),
            ));
        }
        Ok(src)
    }

    /// Opens the file for row reads.
    pub fn open(&self) -> Result<RowReader> {
        RowReader::open(&self.path, self.layer.as_deref())
    }

    /// The training cells `cells` (positions) read from `reader`, in that
    /// order `[cells.len(), m]`, with their values checked.
    pub fn read(&self, reader: &RowReader, cells: &[usize]) -> Result<Expr> {
        let rows: Vec<usize> = cells
            .iter()
            .map(|&c| {
                self.rows.get(c).copied().ok_or_else(|| {
                    Error::invalid(
                        "stream",
                        format!("cell {c} is past the {} training cells", self.rows.len()),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let x = reader.read_rows(&rows)?;
        x.for_each_stored(|i, j, v| {
            if v.is_finite() && (self.allow_negative || v >= 0.0) {
                return Ok(());
            }
            let what = if v.is_finite() {
                "a negative value (log1p data expected)"
            } else {
                "a non-finite value"
            };
            Err(Error::format(
                &self.path,
                reader.field(),
                format!("{what} {v} at row {}, gene {j}", rows[i]),
            ))
        })?;
        Ok(x)
    }

    /// Calls `f(first, x)` for consecutive chunks of the training cells in
    /// position order: cells `first..first + x.nrows()` as `x`
    /// `[<= chunk, m]` (one pass over the data in bounded memory). Ctrl-C
    /// stops it with [`Error::Interrupted`].
    pub fn for_each_chunk(
        &self,
        chunk: usize,
        mut f: impl FnMut(usize, &Expr) -> Result<()>,
    ) -> Result<()> {
        let reader = self.open()?;
        let n = self.rows.len();
        let mut first = 0;
        while first < n {
            // A pass over a large file takes a while: honour Ctrl-C.
            if crate::progress::interrupted() {
                return Err(Error::Interrupted);
            }
            let end = (first + chunk.max(1)).min(n);
            let cells: Vec<usize> = (first..end).collect();
            let x = self.read(&reader, &cells)?;
            f(first, &x)?;
            first = end;
        }
        Ok(())
    }
}

/// One buffer of the stream, read.
struct Buffer {
    /// Cells (positions), in stream order.
    cells: Vec<usize>,
    /// `[cells.len(), m]` their values, same order.
    x: Expr,
}

/// Draws micro-batches from a stream, read ahead by a background thread.
pub struct StreamLoader {
    rx: Option<Receiver<Result<Buffer>>>,
    worker: Option<JoinHandle<()>>,
    current: Option<Buffer>,
    offset: usize,
    plan: StreamPlan,
    drawn: u64,
    path: PathBuf,
}

impl std::fmt::Debug for StreamLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StreamLoader({} at cell {})",
            self.path.display(),
            self.drawn
        )
    }
}

impl StreamLoader {
    /// Starts the stream of `source` in `plan`'s order at cell `drawn` (0
    /// for a fresh run).
    pub fn start(source: StreamSource, plan: StreamPlan, drawn: u64) -> Result<StreamLoader> {
        if plan.n_cells() != source.rows.len() {
            return Err(Error::Mismatch(format!(
                "the stream plan covers {} cells, the source {}",
                plan.n_cells(),
                source.rows.len()
            )));
        }
        let reader = source.open()?;
        let pos = plan.position(drawn);
        let (tx, rx) = sync_channel::<Result<Buffer>>(1);
        let worker_plan = plan.clone();
        let path = source.path.clone();
        let worker = std::thread::Builder::new()
            .name("primeflow-stream".into())
            .spawn(move || {
                let (mut epoch, mut g) = (pos.epoch, pos.buffer);
                let mut order = (epoch, worker_plan.chunk_order(epoch));
                loop {
                    if order.0 != epoch {
                        order = (epoch, worker_plan.chunk_order(epoch));
                    }
                    let cells = worker_plan.buffer_cells_in(&order.1, epoch, g);
                    let msg = source.read(&reader, &cells).map(|x| Buffer { cells, x });
                    let failed = msg.is_err();
                    if tx.send(msg).is_err() || failed {
                        return;
                    }
                    g += 1;
                    if g >= worker_plan.n_buffers() {
                        g = 0;
                        epoch += 1;
                    }
                }
            })
            .map_err(|e| {
                Error::invalid("streaming", format!("cannot start the reading thread: {e}"))
            })?;
        Ok(StreamLoader {
            rx: Some(rx),
            worker: Some(worker),
            current: None,
            offset: pos.offset,
            plan,
            drawn,
            path,
        })
    }

    /// The position of the next cell.
    pub fn position(&self) -> LoaderPosition {
        self.plan.position(self.drawn)
    }

    /// Cells drawn so far (since the run's start).
    pub fn cells_drawn(&self) -> u64 {
        self.drawn
    }

    /// The next `b` cells: their positions `[b]` and values densified
    /// row-major `[b, m]`.
    pub fn next_batch(&mut self, b: usize) -> Result<(Vec<i64>, Vec<f32>)> {
        let mut cells = Vec::with_capacity(b);
        let mut values = Vec::new();
        while cells.len() < b {
            let exhausted = self
                .current
                .as_ref()
                .is_none_or(|buf| self.offset >= buf.cells.len());
            if exhausted {
                if self.current.is_some() {
                    self.offset = 0;
                }
                self.current = Some(self.receive()?);
                continue;
            }
            let Some(buf) = &self.current else { continue };
            let take = (b - cells.len()).min(buf.cells.len() - self.offset);
            let local: Vec<usize> = (self.offset..self.offset + take).collect();
            values.extend(buf.x.rows_vec(&local, None)?);
            cells.extend(local.iter().map(|&k| buf.cells[k] as i64));
            self.offset += take;
        }
        self.drawn += b as u64;
        Ok((cells, values))
    }

    fn receive(&mut self) -> Result<Buffer> {
        let rx = self
            .rx
            .as_ref()
            .ok_or_else(|| Error::invalid("streaming", "the stream was stopped"))?;
        match rx.recv() {
            Ok(Ok(buf)) => Ok(buf),
            Ok(Err(e)) => {
                self.rx = None;
                Err(e)
            }
            Err(_) => {
                self.rx = None;
                Err(Error::invalid(
                    "streaming",
                    format!(
                        "the thread reading {} stopped unexpectedly",
                        self.path.display()
                    ),
                ))
            }
        }
    }
}

impl Drop for StreamLoader {
    /// Stops the reading thread (it ends at its next send) and waits for it.
    fn drop(&mut self) {
        self.rx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
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

    #[test]
    fn stream_setting_parses_bool_or_map() {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "deserialize_stream", default)]
            s: Option<StreamConfig>,
        }
        let w: W = serde_json::from_str(r#"{"s": true}"#).unwrap();
        assert_eq!(w.s, Some(StreamConfig::default()));
        let w: W = serde_json::from_str(r#"{"s": false}"#).unwrap();
        assert_eq!(w.s, None);
        let w: W = serde_json::from_str(r#"{"s": {"chunk_rows": 8}}"#).unwrap();
        assert_eq!(w.s.map(|c| (c.chunk_rows, c.buffer_chunks)), Some((8, 64)));
        assert!(serde_json::from_str::<W>(r#"{"s": {"chunk": 8}}"#).is_err());
    }
}
