//! AnnData `.h5ad` files: the in-memory model, reading and writing.
//!
//! The on-disk format is AnnData >= 0.8 (`encoding-type` attributes): `X` dense
//! or CSR/CSC, `obs`/`var` dataframes, `layers/<name>`, `uns`. In memory the
//! expression matrix is an [`Expr`] (cells x genes f32): CSR when the file's
//! is CSR, dense otherwise (CSC is densified row-chunk by row-chunk so a load
//! never holds two copies); models and metrics densify the rows they use.

pub mod axis_arrays;
mod buffers;
mod csr;
mod csr_sink;
mod expr;
pub mod frame;
mod frame_io;
mod h5;
mod h5_guard;
mod h5_range;
mod h5_write;
pub mod info;
mod matrix;
mod prefault;
pub mod read;
pub mod row_reader;
mod sparse;
pub mod stream;
mod uns;
pub mod write;

use std::collections::BTreeMap;

use ndarray::Array2;

pub use axis_arrays::{read_axis_matrix, Axis};
pub use buffers::XBuffers;
pub use csr::Csr;
pub use expr::{Expr, Row};
pub use frame::{Categorical, Column, DataFrame};
pub use info::{inspect_h5ad, ColumnInfo, FrameInfo, H5adInfo, LayerInfo, MatrixInfo};
pub use read::{read_h5ad, read_h5ad_reusing, ReadOptions};
pub use row_reader::RowReader;
pub use stream::H5adStreamWriter;
pub use write::{write_h5ad, WriteOptions, XFormat};

/// The version of the HDF5 library linked in, `(major, minor, release)`:
/// the one bundled with hdf5-metno-src and built statically (2.2.0 today),
/// whatever the system has.
pub fn hdf5_version() -> (u8, u8, u8) {
    hdf5::library_version()
}

/// An annotated data matrix.
///
/// * `x`: `[n_obs, n_vars]` f32 expression (or the chosen layer), dense or
///   CSR.
/// * `obs`: `n_obs` rows; `var`: `n_vars` rows (index = gene names).
/// * `layers`: extra `[n_obs, n_vars]` matrices (e.g. `counts`).
/// * `uns`: unstructured metadata as JSON (scalars, strings, numeric arrays,
///   nested groups).
#[derive(Debug, Clone, Default)]
pub struct AnnData {
    pub x: Expr,
    pub obs: DataFrame,
    pub var: DataFrame,
    pub layers: BTreeMap<String, Array2<f32>>,
    pub uns: serde_json::Map<String, serde_json::Value>,
}

impl AnnData {
    /// Number of cells.
    pub fn n_obs(&self) -> usize {
        self.x.nrows()
    }

    /// Number of genes.
    pub fn n_vars(&self) -> usize {
        self.x.ncols()
    }

    /// Gene names (the `var` index).
    pub fn var_names(&self) -> &[String] {
        &self.var.index
    }

    /// The cells `rows`, in that order (X shares its values with this
    /// one; obs and layers are copied). An index past the end is an error.
    pub fn take_rows(&self, rows: &[usize]) -> crate::error::Result<AnnData> {
        Ok(AnnData {
            x: self.x.select(rows)?,
            obs: self.obs.take(rows),
            var: self.var.clone(),
            layers: self
                .layers
                .iter()
                .map(|(k, v)| (k.clone(), v.select(ndarray::Axis(0), rows)))
                .collect(),
            uns: self.uns.clone(),
        })
    }
}
