//! Where the metrics read a dataset's expression rows: its X in memory, or
//! straight from its `.h5ad` when X was left in the file
//! ([`Dataset::open_for_streaming`], `primeflow evaluate --stream`). Then
//! each unit's cells are read when that unit is scored (HDF5 hyperslabs of
//! nearby rows, [`RowReader`]), so a prediction file larger than memory is
//! scored with memory bounded by one covariate's reference cells, and no
//! copy of the whole matrix is ever made.

use std::cell::Cell;

use tch::{Device, Tensor};

use super::aggregate::rows_tensor;
use crate::anndata::{Expr, RowReader};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// The rows of one dataset, `[n_cells, n_genes]`.
pub enum RowSource<'a> {
    /// X in memory.
    Memory(&'a Expr),
    /// X in the file.
    File(Box<FileRows>),
}

/// A file's X read by rows for one dataset.
pub struct FileRows {
    reader: RowReader,
    /// `rows[i]` is the file row of the dataset's cell `i`.
    rows: Vec<usize>,
    /// Negative values are refused (reference data is log1p).
    allow_negative: bool,
    /// Negative values seen so far (predictions may have some).
    negatives: Cell<usize>,
}

impl std::fmt::Debug for RowSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowSource::Memory(x) => write!(f, "RowSource::Memory({:?})", x.dim()),
            RowSource::File(file) => write!(f, "RowSource::File({:?})", file.reader),
        }
    }
}

impl<'a> RowSource<'a> {
    /// `ds`'s rows: its X when in memory, else a reader of its source file
    /// (X, or the layer its data set-up names; its genes must be the
    /// file's).
    pub fn of(ds: &'a Dataset, allow_negative: bool) -> Result<RowSource<'a>> {
        if !ds.x.is_absent() {
            return Ok(RowSource::Memory(&ds.x));
        }
        let path = ds.source.as_ref().ok_or_else(|| {
            Error::invalid(
                "expression values",
                "the dataset has no values in memory and no file to read them from",
            )
        })?;
        // The layer the dataset was opened on (its data set-up), else X.
        let layer = ds.provenance.as_ref().and_then(|p| p.spec.layer.as_deref());
        let reader = RowReader::open(path, layer)?;
        if reader.shape().1 != ds.n_genes() {
            return Err(Error::format(
                path,
                reader.field(),
                format!(
                    "{} genes in the file, {} in the opened dataset",
                    reader.shape().1,
                    ds.n_genes()
                ),
            ));
        }
        Ok(RowSource::File(Box::new(FileRows {
            reader,
            rows: ds.x.store_rows(),
            allow_negative,
            negatives: Cell::new(0),
        })))
    }

    /// True when the rows are read from the file.
    pub fn is_file(&self) -> bool {
        matches!(self, RowSource::File(_))
    }

    /// Negative values read so far from the file (0 for memory).
    pub fn negatives_read(&self) -> usize {
        match self {
            RowSource::Memory(_) => 0,
            RowSource::File(file) => file.negatives.get(),
        }
    }

    /// Genes `G` of every row.
    pub fn n_genes(&self) -> usize {
        match self {
            RowSource::Memory(x) => x.ncols(),
            RowSource::File(file) => file.reader.shape().1,
        }
    }

    /// Cells `rows` (dataset rows) as an f32 tensor `[rows.len(), G]` on
    /// `device`, `G` = `cols.len()` (the columns `cols`, in that order) or
    /// every gene. Values read from the file are checked: a NaN or infinite
    /// value (and a negative one unless allowed) is an error naming the
    /// file, the row and the value.
    pub fn tensor(&self, rows: &[usize], cols: Option<&[usize]>, device: Device) -> Result<Tensor> {
        let file = match self {
            RowSource::Memory(x) => return rows_tensor(x, rows, cols, device),
            RowSource::File(file) => file,
        };
        release_freed_memory();
        let (reader, map, allow_negative, negatives) = (
            &file.reader,
            &file.rows,
            file.allow_negative,
            &file.negatives,
        );
        let file_rows: Vec<usize> = rows
            .iter()
            .map(|&r| {
                map.get(r).copied().ok_or_else(|| {
                    Error::invalid("cell index", format!("{r} past the {} cells", map.len()))
                })
            })
            .collect::<Result<_>>()?;
        let block = reader.read_rows(&file_rows)?;
        // The stored values are checked in one branch-free pass; only a
        // failing block is searched for its first offender.
        let ok = |v: f32| v.is_finite() & (allow_negative | (v >= 0.0));
        if !block.all_stored(ok) {
            let mut bad = None;
            let _ = block.for_each_stored(|i, _, v| {
                if bad.is_none() && !ok(v) {
                    bad = Some((i, v));
                }
                Ok(())
            });
            if let Some((i, v)) = bad {
                return Err(Error::format(
                    reader.path(),
                    reader.field(),
                    format!(
                        "row {}: value {v} (expression must be finite{})",
                        file_rows[i],
                        if allow_negative { "" } else { " and >= 0" }
                    ),
                ));
            }
        }
        if allow_negative {
            negatives.set(negatives.get() + block.count_stored(|v| v < 0.0));
        }
        let all: Vec<usize> = (0..file_rows.len()).collect();
        rows_tensor(&block, &all, cols, device)
    }
}

/// Returns the heap's free pages to the system (glibc `malloc_trim`) once
/// more than 256 MiB of the heap is free.
///
/// Streaming reads one unit's rows after another into buffers of varying
/// size while small per-unit results stay alive; glibc then keeps the freed
/// buffers' pages in a fragmented heap, and the process grew by about the
/// size of the file it streamed (2.4 GiB for a 2.7 GB prediction, measured).
/// Trimming before every read bounds that but makes each read fault its
/// pages in afresh (5 s more on that file); trimming only past the
/// threshold keeps both small.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 and malloc_trim only inspect and release free heap
    // memory; they take no pointers and may be called at any time.
    unsafe {
        if libc::mallinfo2().fordblks > 256 << 20 {
            libc::malloc_trim(0);
        }
    }
}
