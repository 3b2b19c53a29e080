//! `Expr`: a cells x genes expression matrix `[n, m]` f32, kept in the layout
//! it was stored in: dense (row-major `Array2`) or CSR ([`Csr`]: `indptr` `[n + 1]`,
//! `indices` and `data` `[nnz]`).
//!
//! The values live behind an `Arc`; a row selection ([`Expr::select`]) is a
//! list of row indices into the shared store, never a copy of X. Consumers
//! densify what they need: a set of rows into a `[b, m]` buffer
//! ([`Expr::rows_vec`], [`Expr::rows_dense`]), or one row at a time
//! ([`Expr::for_each_row`]). Duplicate column indices within a CSR row add up
//! when densified (as in scipy), everywhere.

use std::sync::Arc;

use ndarray::{Array2, ArrayView1};

use super::buffers::XBuffers;
use super::csr::Csr;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
enum Store {
    Dense(Array2<f32>),
    Csr(Csr),
    /// Values left in the file (opened for streaming): the shape only.
    Absent {
        n_rows: usize,
    },
}

impl Store {
    fn n_rows(&self) -> usize {
        match self {
            Store::Dense(x) => x.nrows(),
            Store::Csr(c) => c.n_rows(),
            Store::Absent { n_rows } => *n_rows,
        }
    }
}

/// One row of the store, in its layout.
pub enum Row<'a> {
    /// `[m]` values.
    Dense(ArrayView1<'a, f32>),
    /// Stored `(columns, values)`.
    Sparse(&'a [u32], &'a [f32]),
}

/// A cells x genes expression matrix `[n, m]`, dense or CSR, cheap to clone
/// (shared values) and to subset by rows.
#[derive(Clone)]
pub struct Expr {
    store: Arc<Store>,
    /// Store row of each row of this matrix (`None`: all, in order).
    rows: Option<Arc<[usize]>>,
    n_cols: usize,
}

impl std::fmt::Debug for Expr {
    /// Layout and shape, never the values (a CSR X holds millions).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, m) = self.dim();
        let sel = if self.rows.is_some() {
            ", row selection"
        } else {
            ""
        };
        write!(f, "Expr({} [{n}, {m}]{sel})", self.layout())
    }
}

impl Default for Expr {
    fn default() -> Self {
        Expr::from(Array2::<f32>::zeros((0, 0)))
    }
}

impl From<Array2<f32>> for Expr {
    fn from(x: Array2<f32>) -> Self {
        Expr {
            n_cols: x.ncols(),
            store: Arc::new(Store::Dense(x)),
            rows: None,
        }
    }
}

impl From<Csr> for Expr {
    fn from(x: Csr) -> Self {
        Expr {
            n_cols: x.n_cols,
            store: Arc::new(Store::Csr(x)),
            rows: None,
        }
    }
}

impl PartialEq for Expr {
    /// Equal shapes and values, whatever the layouts.
    fn eq(&self, other: &Expr) -> bool {
        self.dim() == other.dim() && (0..self.nrows()).all(|i| self.row_vec(i) == other.row_vec(i))
    }
}

impl PartialEq<Array2<f32>> for Expr {
    fn eq(&self, other: &Array2<f32>) -> bool {
        self.dim() == other.dim()
            && (0..self.nrows()).all(|i| other.row(i).iter().eq(self.row_vec(i).iter()))
    }
}

impl Expr {
    /// `(n, m)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.nrows(), self.ncols())
    }

    /// Number of rows (cells).
    pub fn nrows(&self) -> usize {
        self.rows
            .as_ref()
            .map_or_else(|| self.store.n_rows(), |r| r.len())
    }

    /// Number of columns (genes).
    pub fn ncols(&self) -> usize {
        self.n_cols
    }

    /// True when the values are stored as CSR.
    pub fn is_csr(&self) -> bool {
        matches!(*self.store, Store::Csr(_))
    }

    /// `dense`, `csr`, or `absent` (values left in the file).
    pub fn layout(&self) -> &'static str {
        match &*self.store {
            Store::Dense(_) => "dense",
            Store::Csr(_) => "csr",
            Store::Absent { .. } => "absent",
        }
    }

    /// An `[n, m]` matrix whose values stay in its file (a dataset opened
    /// for streaming: obs and var in memory, X read chunk by chunk by
    /// `train::stream`). Its rows can be selected, but asking for values is
    /// an error.
    pub fn absent(n: usize, m: usize) -> Expr {
        Expr {
            store: Arc::new(Store::Absent { n_rows: n }),
            rows: None,
            n_cols: m,
        }
    }

    /// True when the values were left in the file ([`Expr::absent`]).
    pub fn is_absent(&self) -> bool {
        matches!(*self.store, Store::Absent { .. })
    }

    /// The store row of each row of this matrix `[n]`: for a matrix read
    /// whole from a file (or [`Expr::absent`]) and then selected, the
    /// file's row of each cell.
    pub fn store_rows(&self) -> Vec<usize> {
        match &self.rows {
            Some(r) => r.to_vec(),
            None => (0..self.store.n_rows()).collect(),
        }
    }

    /// An error when the values were left in the file.
    fn require_values(&self) -> Result<()> {
        if self.is_absent() {
            return Err(Error::invalid(
                "expression values",
                "X was not read into memory (the data was opened for streaming); load it without streaming to use its values",
            ));
        }
        Ok(())
    }

    /// Heap bytes of the shared store (all its rows, however many this
    /// selection shows).
    pub fn store_bytes(&self) -> usize {
        match &*self.store {
            Store::Dense(x) => x.len() * 4,
            Store::Csr(c) => c.bytes(),
            Store::Absent { .. } => 0,
        }
    }

    /// The memory of the values, for the next read to fill
    /// ([`read_h5ad_reusing`](super::read_h5ad_reusing)); empty when the
    /// store is shared with another `Expr` (nothing is freed early) or
    /// absent.
    pub fn into_buffers(self) -> XBuffers {
        match Arc::try_unwrap(self.store) {
            Ok(Store::Csr(c)) => XBuffers {
                values: c.data,
                indices: c.indices,
            },
            Ok(Store::Dense(x)) => XBuffers {
                values: x.into_raw_vec_and_offset().0,
                indices: Vec::new(),
            },
            _ => XBuffers::default(),
        }
    }

    /// The store row of row `i`, `None` past the end.
    fn store_row_of(&self, i: usize) -> Option<usize> {
        match &self.rows {
            Some(r) => r.get(i).copied(),
            None => (i < self.store.n_rows()).then_some(i),
        }
    }

    /// Row `i` in its stored layout (`None` past the end).
    pub fn row(&self, i: usize) -> Option<Row<'_>> {
        let s = self.store_row_of(i)?;
        Some(match &*self.store {
            Store::Dense(x) => Row::Dense(x.row(s)),
            Store::Csr(c) => {
                let (j, v) = c.row(s);
                Row::Sparse(j, v)
            }
            Store::Absent { .. } => return None,
        })
    }

    fn check_row(&self, i: usize) -> Result<()> {
        if i >= self.nrows() {
            return Err(Error::invalid(
                "cell index",
                format!("{i} is out of range ({} cells)", self.nrows()),
            ));
        }
        Ok(())
    }

    /// Writes row `i` densely into `out` `[m]` (`i < nrows()`).
    fn fill_row(&self, i: usize, out: &mut [f32]) {
        match self.row(i) {
            None => out.fill(0.0),
            Some(Row::Dense(r)) => {
                for (o, &v) in out.iter_mut().zip(r.iter()) {
                    *o = v;
                }
            }
            Some(Row::Sparse(idx, val)) => {
                out.fill(0.0);
                for (&j, &v) in idx.iter().zip(val) {
                    if let Some(o) = out.get_mut(j as usize) {
                        *o += v;
                    }
                }
            }
        }
    }

    /// Row `i` as a dense `[m]` vector (empty when out of range).
    pub fn row_vec(&self, i: usize) -> Vec<f32> {
        if i >= self.nrows() {
            return Vec::new();
        }
        let mut out = vec![0f32; self.n_cols];
        self.fill_row(i, &mut out);
        out
    }

    /// The rows `rows` densified into a row-major `[rows.len(), c]` buffer,
    /// where `c` is `cols.len()` (those columns, in that order) or `m`.
    pub fn rows_vec(&self, rows: &[usize], cols: Option<&[usize]>) -> Result<Vec<f32>> {
        // Before allocating: values left in the file are an error.
        self.require_values()?;
        let width = cols.map_or(self.n_cols, |c| c.len());
        let mut buf = vec![0f32; rows.len() * width];
        self.rows_into(rows, cols, &mut buf)?;
        Ok(buf)
    }

    /// [`rows_vec`](Self::rows_vec) written into `buf` (`[rows.len(), c]`
    /// row-major, every element overwritten), for callers that own the
    /// memory (a tensor's).
    pub fn rows_into(&self, rows: &[usize], cols: Option<&[usize]>, buf: &mut [f32]) -> Result<()> {
        self.require_values()?;
        if let Some(&j) = cols.and_then(|c| c.iter().find(|&&j| j >= self.n_cols)) {
            return Err(Error::invalid(
                "gene index",
                format!("{j} is out of range ({} genes)", self.n_cols),
            ));
        }
        let m = self.n_cols;
        let width = cols.map_or(m, |c| c.len());
        if buf.len() != rows.len() * width {
            return Err(Error::Mismatch(format!(
                "a buffer of {} values for {} rows x {width} columns",
                buf.len(),
                rows.len()
            )));
        }
        let mut scratch = if cols.is_some() {
            vec![0f32; m]
        } else {
            Vec::new()
        };
        for (&r, out) in rows.iter().zip(buf.chunks_mut(width.max(1))) {
            self.check_row(r)?;
            match cols {
                None => self.fill_row(r, out),
                Some(c) => {
                    self.fill_row(r, &mut scratch);
                    for (o, &j) in out.iter_mut().zip(c) {
                        *o = scratch[j];
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows `rows` as a dense `[rows.len(), m]` array.
    pub fn rows_dense(&self, rows: &[usize]) -> Result<Array2<f32>> {
        let buf = self.rows_vec(rows, None)?;
        Array2::from_shape_vec((rows.len(), self.n_cols), buf)
            .map_err(|e| Error::Mismatch(e.to_string()))
    }

    /// The whole matrix densified `[n, m]` (for small data and tests).
    pub fn to_dense(&self) -> Array2<f32> {
        if let (Store::Dense(x), None) = (&*self.store, &self.rows) {
            return x.clone();
        }
        let all: Vec<usize> = (0..self.nrows()).collect();
        self.rows_dense(&all)
            .unwrap_or_else(|_| Array2::zeros((0, self.n_cols)))
    }

    /// A dense, unshared matrix to edit in place (densifies a CSR matrix or
    /// a selection first; copies values shared with other matrices).
    pub fn dense_mut(&mut self) -> Result<&mut Array2<f32>> {
        self.require_values()?;
        if self.rows.is_some() || self.is_csr() {
            *self = Expr::from(self.to_dense());
        }
        match Arc::make_mut(&mut self.store) {
            Store::Dense(x) => Ok(x),
            Store::Csr(_) | Store::Absent { .. } => Err(Error::Mismatch(
                "internal: a densified matrix is still CSR".into(),
            )),
        }
    }

    /// Calls `f(i, row)` with each row `i` densified `[m]`, in order.
    pub fn for_each_row(&self, mut f: impl FnMut(usize, &[f32]) -> Result<()>) -> Result<()> {
        self.require_values()?;
        let mut scratch = vec![0f32; self.n_cols];
        for i in 0..self.nrows() {
            let contiguous = match self.row(i) {
                Some(Row::Dense(r)) => r.to_slice(),
                _ => None,
            };
            match contiguous {
                Some(row) => f(i, row)?,
                None => {
                    self.fill_row(i, &mut scratch);
                    f(i, &scratch)?
                }
            }
        }
        Ok(())
    }

    /// Calls `f(i, j, v)` for each stored value (every value of a dense
    /// matrix; the stored ones of a CSR matrix, whose other values are 0;
    /// none of an [`Expr::absent`] one), row by row; the first error stops.
    pub fn for_each_stored(
        &self,
        mut f: impl FnMut(usize, usize, f32) -> Result<()>,
    ) -> Result<()> {
        for i in 0..self.nrows() {
            match self.row(i) {
                None => {}
                Some(Row::Dense(r)) => {
                    for (j, &v) in r.iter().enumerate() {
                        f(i, j, v)?;
                    }
                }
                Some(Row::Sparse(idx, val)) => {
                    for (&j, &v) in idx.iter().zip(val) {
                        f(i, j as usize, v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Calls `f(j, v)` for each stored value of rows `rows`, row by row in
    /// that order (every value of a dense row, the stored ones of a CSR
    /// row; rows past the end are skipped): the walk of a pseudobulk sum.
    pub fn for_each_in_rows(&self, rows: &[usize], mut f: impl FnMut(usize, f32)) {
        for &i in rows {
            match self.row(i) {
                None => {}
                Some(Row::Dense(r)) => {
                    for (j, &v) in r.iter().enumerate() {
                        f(j, v);
                    }
                }
                Some(Row::Sparse(idx, val)) => {
                    for (&j, &v) in idx.iter().zip(val) {
                        f(j as usize, v);
                    }
                }
            }
        }
    }

    /// True when every stored value satisfies `ok` (the zeros a CSR matrix
    /// does not store are not tested). One branch-free pass over the whole
    /// store's values when no row selection applies (it vectorises), else a
    /// row by row pass; callers that need the offender then look it up with
    /// [`for_each_stored`](Self::for_each_stored).
    pub fn all_stored(&self, ok: impl Fn(f32) -> bool) -> bool {
        let all = |v: &[f32]| {
            v.chunks(4096)
                .all(|c| c.iter().fold(true, |acc, &x| acc & ok(x)))
        };
        match (self.store.as_ref(), &self.rows) {
            (Store::Csr(c), None) => all(&c.data),
            (Store::Dense(x), None) if x.as_slice().is_some() => x.as_slice().is_some_and(all),
            _ => self
                .for_each_stored(|_, _, v| {
                    if ok(v) {
                        Ok(())
                    } else {
                        Err(Error::invalid("value", ""))
                    }
                })
                .is_ok(),
        }
    }

    /// Number of stored values satisfying `pred` (see
    /// [`for_each_stored`](Self::for_each_stored)).
    pub fn count_stored(&self, pred: impl Fn(f32) -> bool) -> usize {
        let mut n = 0;
        let _ = self.for_each_stored(|_, _, v| {
            n += usize::from(pred(v));
            Ok(())
        });
        n
    }

    /// Number of non-zero values.
    pub fn count_nonzero(&self) -> usize {
        self.count_stored(|v| v != 0.0)
    }

    /// The rows `rows` (indices into this matrix, in that order) as a new
    /// matrix sharing these values; an index past the end is an error.
    pub fn select(&self, rows: &[usize]) -> Result<Expr> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.nrows()) {
            return Err(Error::invalid(
                "cell index",
                format!(
                    "{bad} is out of range (the data has {} cells)",
                    self.nrows()
                ),
            ));
        }
        let mapped: Vec<usize> = rows.iter().filter_map(|&r| self.store_row_of(r)).collect();
        Ok(Expr {
            store: Arc::clone(&self.store),
            rows: Some(mapped.into()),
            n_cols: self.n_cols,
        })
    }
}

#[cfg(test)]
mod tests;
