//! [`CsrSink`]: a `csr_matrix` group (AnnData encoding 0.1.0) filled row
//! chunk by row chunk, with the index types scipy (and so anndata) would
//! choose: int32 `indices` and `indptr` while the stored-value count fits in
//! an int32, int64 for both once it does not.
//!
//! The type matters beyond size: scikit-learn's sparse routines (PerturBench's
//! PCA step) require `indices` and `indptr` of one type, and anndata hands
//! them over as stored. `data` (f32) and `indices` are appended to resizable
//! datasets as rows arrive; `indptr` (`n_rows + 1` values, small next to the
//! matrix) is kept in memory and written at [`finish`](CsrSink::finish),
//! when its type is known. If the count passes the int32 limit mid-stream,
//! the int32 `indices` written so far are copied into an int64 dataset
//! (HDF5 does not reclaim the old one's space: a caller that knows its
//! count up front starts wide instead).

use std::path::Path;

use hdf5::{Dataset, Group, SimpleExtents};
use ndarray::ArrayView2;

use super::h5_write::{self as h5w, werr};
use crate::error::Result;

/// Largest count of stored values whose positions fit in an int32.
pub(crate) const INT32_LIMIT: usize = i32::MAX as usize;

/// Values copied per step when widening `indices` (32 MiB of int64).
const WIDEN_RUN: usize = 4 << 20;

/// A `csr_matrix` being appended to.
pub(crate) struct CsrSink {
    group: Group,
    data: Dataset,
    indices: Dataset,
    /// True once `indices` is int64 (the count passed `limit`).
    wide: bool,
    /// `indptr` so far: row starts, then the count.
    indptr: Vec<i64>,
    nnz: usize,
    /// [`INT32_LIMIT`], lowered by unit tests.
    limit: usize,
    chunk: usize,
    compression: Option<u8>,
    field: String,
}

impl CsrSink {
    /// Creates the group `name` of `parent` (full path `field`), with
    /// datasets chunked by `chunk` values. `wide` starts with int64 indices
    /// (for a caller that knows its count exceeds [`INT32_LIMIT`]).
    pub(crate) fn create(
        parent: &Group,
        name: &str,
        field: &str,
        chunk: usize,
        compression: Option<u8>,
        wide: bool,
        p: &Path,
    ) -> Result<CsrSink> {
        let group = h5w::create_group(parent, name, "csr_matrix", "0.1.0", p, field)?;
        let data = resizable_1d::<f32>(&group, "data", chunk, compression, p, field)?;
        let indices = if wide {
            resizable_1d::<i64>(&group, "indices", chunk, compression, p, field)?
        } else {
            resizable_1d::<i32>(&group, "indices", chunk, compression, p, field)?
        };
        Ok(CsrSink {
            group,
            data,
            indices,
            wide,
            indptr: vec![0],
            nnz: 0,
            limit: INT32_LIMIT,
            chunk,
            compression,
            field: field.to_string(),
        })
    }

    /// Lowers the int32 limit (unit tests of the widening).
    #[cfg(test)]
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Appends `x` (`[r, n_vars]`): its non-zeros, in row order.
    pub(crate) fn append(&mut self, x: ArrayView2<f32>, p: &Path) -> Result<()> {
        let mut vals = Vec::new();
        let mut idx: Vec<i64> = Vec::new();
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    vals.push(v);
                    idx.push(j as i64);
                }
            }
            self.indptr.push((self.nnz + vals.len()) as i64);
        }
        let k = vals.len();
        if k == 0 {
            return Ok(());
        }
        if !self.wide && self.nnz + k > self.limit {
            self.widen(p)?;
        }
        let (a, b) = (self.nnz, self.nnz + k);
        let e = werr(p, &self.field);
        self.data.resize(b).map_err(&e)?;
        self.data.write_slice(&vals, a..b).map_err(&e)?;
        self.indices.resize(b).map_err(&e)?;
        if self.wide {
            self.indices.write_slice(&idx, a..b).map_err(&e)?;
        } else {
            // Column indices are < n_vars <= i32::MAX (checked at creation).
            let narrow: Vec<i32> = idx.iter().map(|&j| j as i32).collect();
            self.indices.write_slice(&narrow, a..b).map_err(&e)?;
        }
        self.nnz = b;
        Ok(())
    }

    /// Replaces the int32 `indices` by an int64 copy.
    fn widen(&mut self, p: &Path) -> Result<()> {
        let f = format!("{}/indices", self.field);
        let e = werr(p, &f);
        let tmp = "indices.int64";
        let wide = resizable_1d::<i64>(
            &self.group,
            tmp,
            self.chunk,
            self.compression,
            p,
            &self.field,
        )?;
        wide.resize(self.nnz).map_err(&e)?;
        for a in (0..self.nnz).step_by(WIDEN_RUN) {
            let b = (a + WIDEN_RUN).min(self.nnz);
            let v = self
                .indices
                .read_slice_1d::<i64, _>(a..b)
                .map_err(&e)?
                .to_vec();
            wide.write_slice(&v, a..b).map_err(&e)?;
        }
        self.group.unlink("indices").map_err(&e)?;
        self.group.relink(tmp, "indices").map_err(&e)?;
        self.indices = wide;
        self.wide = true;
        Ok(())
    }

    /// Writes `indptr` (int32, or int64 with int64 indices) and the `shape`
    /// attribute.
    pub(crate) fn finish(&self, shape: &[i64; 2], p: &Path) -> Result<()> {
        let f = format!("{}/indptr", self.field);
        let z = self.compression;
        if self.wide {
            h5w::write_plain(&self.group, "indptr", &self.indptr, z, p, &f)?;
        } else {
            let narrow: Vec<i32> = self.indptr.iter().map(|&v| v as i32).collect();
            h5w::write_plain(&self.group, "indptr", &narrow, z, p, &f)?;
        }
        h5w::write_attr_ints(&self.group, "shape", shape, p, &self.field)
    }
}

/// An empty, chunked, unlimited 1-D dataset `name` of `g` (`field` is the
/// group's path).
pub(crate) fn resizable_1d<T: hdf5::H5Type>(
    g: &Group,
    name: &str,
    chunk: usize,
    compression: Option<u8>,
    p: &Path,
    field: &str,
) -> Result<Dataset> {
    let mut b = g.new_dataset::<T>().chunk(chunk);
    if let Some(level) = compression {
        b = b.deflate(level);
    }
    b.shape(SimpleExtents::resizable([0usize]))
        .create(name)
        .map_err(werr(p, &format!("{field}/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdf5::types::{IntSize, TypeDescriptor};
    use ndarray::Array2;

    /// Writes `x` in two row chunks through a sink with int32 limit `limit`;
    /// returns the element types of indices and indptr and the matrix read
    /// back by the crate's reader.
    fn roundtrip(
        x: &Array2<f32>,
        limit: usize,
        name: &str,
    ) -> (TypeDescriptor, TypeDescriptor, Array2<f32>) {
        let p = std::env::temp_dir().join(format!("primeflow-csr-sink-{name}.h5"));
        {
            let f = h5w::create_file(&p).unwrap();
            let mut sink = CsrSink::create(&f, "X", "X", 4, None, false, &p).unwrap();
            sink.set_limit(limit);
            let half = x.nrows() / 2;
            sink.append(x.slice(ndarray::s![..half, ..]), &p).unwrap();
            sink.append(x.slice(ndarray::s![half.., ..]), &p).unwrap();
            sink.finish(&[x.nrows() as i64, x.ncols() as i64], &p)
                .unwrap();
        }
        let f = super::super::h5::open_read(&p).unwrap();
        let td = |n: &str| {
            f.dataset(n)
                .unwrap()
                .dtype()
                .unwrap()
                .to_descriptor()
                .unwrap()
        };
        let back = super::super::matrix::read_matrix(&f, "X", &p, "X", None).unwrap();
        let out = (td("X/indices"), td("X/indptr"), back);
        drop(f);
        let _ = std::fs::remove_file(&p);
        out
    }

    fn sample() -> Array2<f32> {
        Array2::from_shape_fn((6, 5), |(i, j)| {
            if (i + j) % 3 == 0 {
                (i * 5 + j) as f32 + 0.5
            } else {
                0.0
            }
        })
    }

    #[test]
    fn int32_indices_while_the_count_fits() {
        let x = sample();
        let (ti, tp, back) = roundtrip(&x, INT32_LIMIT, "narrow");
        assert_eq!(ti, TypeDescriptor::Integer(IntSize::U4));
        assert_eq!(tp, TypeDescriptor::Integer(IntSize::U4));
        assert_eq!(back, x);
    }

    #[test]
    fn int64_indices_and_indptr_past_the_limit() {
        let x = sample();
        let nnz = x.iter().filter(|&&v| v != 0.0).count();
        // The first chunk fits under the limit, the second crosses it.
        let (ti, tp, back) = roundtrip(&x, nnz - 2, "wide");
        assert_eq!(ti, TypeDescriptor::Integer(IntSize::U8));
        assert_eq!(tp, TypeDescriptor::Integer(IntSize::U8));
        assert_eq!(back, x);
    }
}
