//! `Csr`: a compressed sparse row matrix `[n, n_cols]` f32 held in memory
//! (`indptr` `[n + 1]`, `indices` and `data` `[nnz]`), checked on
//! construction; one of the two layouts of an [`Expr`](super::Expr).

use ndarray::Array2;

use crate::error::{Error, Result};

/// A CSR matrix `[n, n_cols]`: row `i` holds `indices[indptr[i]..indptr[i + 1]]`
/// (column of each stored value) and the matching `data`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    /// `[n + 1]` offsets into `indices`/`data`: starts at 0, never decreases.
    pub indptr: Vec<u64>,
    /// `[nnz]` column of each stored value, `< n_cols`.
    pub indices: Vec<u32>,
    /// `[nnz]` stored values.
    pub data: Vec<f32>,
    /// Number of columns (genes).
    pub n_cols: usize,
}

impl Csr {
    /// Checks the structure: `indptr` non-empty, from 0, monotone, ending at
    /// `nnz`; `indices` as long as `data`, each below `n_cols`.
    pub fn new(n_cols: usize, indptr: Vec<u64>, indices: Vec<u32>, data: Vec<f32>) -> Result<Csr> {
        let bad = |m: String| Error::invalid("CSR matrix", m);
        if indptr.first() != Some(&0) {
            return Err(bad("indptr must start at 0".into()));
        }
        if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
            return Err(bad(format!("indptr decreases at element {}", i + 1)));
        }
        if indices.len() != data.len() || indptr.last() != Some(&(data.len() as u64)) {
            return Err(bad(format!(
                "indptr ends at {:?}, indices has {} and data {} elements",
                indptr.last(),
                indices.len(),
                data.len()
            )));
        }
        if let Some(k) = indices.iter().position(|&j| j as usize >= n_cols) {
            return Err(bad(format!(
                "column index {} at position {k} is out of range 0..{n_cols}",
                indices[k]
            )));
        }
        Ok(Csr {
            indptr,
            indices,
            data,
            n_cols,
        })
    }

    /// The CSR form of a dense matrix (zeros not stored).
    pub fn from_dense(x: &Array2<f32>) -> Csr {
        let mut csr = Csr {
            indptr: Vec::with_capacity(x.nrows() + 1),
            n_cols: x.ncols(),
            ..Csr::default()
        };
        csr.indptr.push(0);
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    csr.indices.push(j as u32);
                    csr.data.push(v);
                }
            }
            csr.indptr.push(csr.data.len() as u64);
        }
        csr
    }

    pub(super) fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Stored entries of row `i` (empty past the end).
    pub(super) fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let at = |k: usize| self.indptr.get(k).map_or(0, |&p| p as usize);
        let (a, b) = (at(i), at(i + 1).max(at(i)));
        (
            self.indices.get(a..b).unwrap_or(&[]),
            self.data.get(a..b).unwrap_or(&[]),
        )
    }

    /// Heap bytes of the three arrays.
    pub(super) fn bytes(&self) -> usize {
        self.indptr.len() * 8 + self.indices.len() * 4 + self.data.len() * 4
    }
}
