//! [`StreamLoader`]: micro-batches drawn from a stream in its plan's order,
//! the next buffer read ahead by a background thread over a channel that
//! holds one buffer (memory: about three buffers, never the file).

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use super::plan::{LoaderPosition, StreamPlan};
use super::source::StreamSource;
use crate::anndata::Expr;
use crate::error::{Error, Result};

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
