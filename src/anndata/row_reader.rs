//! `RowReader`: random access to rows of X (or a layer) of an `.h5ad` file
//! without reading the matrix whole, for streaming training data larger
//! than memory.
//!
//! * CSR: `indptr` `[n + 1]` is read once at open (8 bytes per cell, like
//!   obs); each request reads the hyperslabs `indices[a..b]` and
//!   `data[a..b]` of runs of nearby requested rows (see `matrix::plan_runs`:
//!   at most 4,096 rows and about 4 Mi values per run), so a request costs
//!   its own rows' values plus bounded slack.
//! * Dense: row blocks `X[a..b, :]` of the same runs.
//! * CSC cannot be read by rows (a row's values are spread over every
//!   column): an error says to rewrite the file as CSR.
//!
//! The result of [`RowReader::read_rows`] is an [`Expr`] `[rows.len(), m]` in
//! the file's layout (CSR stays CSR). Values are not checked here; the
//! streaming loader checks each chunk as it arrives.

use std::path::{Path, PathBuf};

use super::buffers::XBuffers;
use super::expr::Expr;
use super::h5::{self, ferr};
use super::matrix::{self, Encoding};
use super::sparse::{read_csr_rows, Sparse};
use crate::error::Result;

enum Source {
    Dense(hdf5::Dataset),
    Csr(Sparse),
}

/// An open matrix of an `.h5ad` file, read by rows.
pub struct RowReader {
    // Held so the objects below stay valid.
    _file: hdf5::File,
    source: Source,
    path: PathBuf,
    field: String,
    shape: (usize, usize),
}

impl std::fmt::Debug for RowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RowReader({} {} [{}, {}])",
            self.path.display(),
            self.field,
            self.shape.0,
            self.shape.1
        )
    }
}

impl RowReader {
    /// Opens X (or `layers/<layer>`) of `path` for row reads.
    pub fn open(path: &Path, layer: Option<&str>) -> Result<RowReader> {
        let file = h5::open_read(path)?;
        super::read::check_root(&file, path)?;
        let (parent, name, field): (hdf5::Group, String, String) = match layer {
            None => ((*file).clone(), "X".into(), "X".into()),
            Some(l) => (
                h5::group(&file, "layers", path, "layers")?,
                l.to_string(),
                format!("layers/{l}"),
            ),
        };
        let meta = matrix::inspect(&parent, &name, path, &field)?;
        let (n, m) = meta.shape;
        let source = match meta.encoding {
            Encoding::Dense => Source::Dense(h5::dataset(&parent, &name, path, &field)?),
            Encoding::Csr => {
                if u32::try_from(m).is_err() {
                    return Err(ferr(
                        path,
                        &field,
                        format!("{m} columns; CSR in memory holds at most 2^32 - 1"),
                    ));
                }
                let g = h5::group(&parent, &name, path, &field)?;
                Source::Csr(Sparse::open(&g, path, &field, meta.nnz.unwrap_or(0))?)
            }
            Encoding::Csc => {
                return Err(ferr(
                    path,
                    &field,
                    "is CSC (stored by columns), which cannot be streamed by rows; rewrite it as CSR (e.g. `adata.X = adata.X.tocsr()` in Python) or train without streaming",
                ))
            }
        };
        Ok(RowReader {
            _file: file,
            source,
            path: path.to_path_buf(),
            field,
            shape: (n, m),
        })
    }

    /// `(n, m)`: cells and genes of the matrix.
    pub fn shape(&self) -> (usize, usize) {
        self.shape
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The matrix's HDF5 path (`X`, `layers/counts`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// True when the file stores the matrix as CSR.
    pub fn is_csr(&self) -> bool {
        matches!(self.source, Source::Csr(_))
    }

    /// The file rows `rows` (any order, repeats allowed) as `[rows.len(), m]`
    /// in the file's layout. A row past the end, or a read HDF5 cannot do
    /// (a truncated or corrupted file), is an error naming the file, the
    /// field and the rows.
    pub fn read_rows(&self, rows: &[usize]) -> Result<Expr> {
        let (n, m) = self.shape;
        let (path, field) = (self.path.as_path(), self.field.as_str());
        if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
            return Err(ferr(
                path,
                field,
                format!("row {bad} requested, the matrix has {n} rows"),
            ));
        }
        let span = || match (rows.iter().min(), rows.iter().max()) {
            (Some(a), Some(b)) => format!("rows {a}..{}", b + 1),
            _ => "no rows".into(),
        };
        let with_rows = |e: crate::Error| ferr(path, field, format!("reading {}: {e}", span()));
        match &self.source {
            Source::Csr(sp) => {
                Ok(
                    read_csr_rows(sp, path, field, self.shape, Some(rows), XBuffers::default())
                        .map_err(with_rows)?
                        .into(),
                )
            }
            Source::Dense(ds) => {
                let mut out = matrix::alloc_dense(rows.len(), m, path, field)?;
                matrix::read_dense_rows(ds, Some(rows), &mut out, path, field)?;
                Ok(out.into())
            }
        }
    }
}
