//! What a stream reads: the training cells' rows of an `.h5ad` file (X or
//! a layer), read by position and checked as they arrive (finite;
//! non-negative unless allowed).

use std::path::PathBuf;
use std::sync::Arc;

use crate::anndata::{Expr, RowReader};
use crate::data::Dataset;
use crate::error::{Error, Result};

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
