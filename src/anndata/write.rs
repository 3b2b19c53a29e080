//! Writing `.h5ad` (AnnData >= 0.8 encoding) from an in-memory [`AnnData`].
//!
//! Root attributes `encoding-type=anndata`, `encoding-version=0.1.0`; `X` and
//! `layers/<name>` as CSR (`csr_matrix` 0.1.0: f32 `data`, `indices` and
//! `indptr` int32 as scipy writes them, both int64 past 2^31 - 1 stored
//! values; `shape` attribute) or a dense f32 array; `obs`/`var` as
//! dataframes (see `frame_io`); `uns` as nested dicts (see `uns`); empty
//! `obsm`/`varm`/`obsp`/`varp` so Python anndata reads the file. The file is
//! written atomically and through the same code as
//! [`H5adStreamWriter`](super::H5adStreamWriter).

use std::path::Path;

use ndarray::{s, ArrayView2};

use super::h5_write::CHUNK_LEN;
use super::stream::H5adStreamWriter;
use super::AnnData;
use crate::error::{Error, Result};

/// X encoding on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XFormat {
    /// `csr_matrix` (zeros not stored): the usual choice for expression data.
    #[default]
    Csr,
    /// A dense 2-D f32 array.
    Dense,
}

/// Options for [`write_h5ad`] and [`H5adStreamWriter`].
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Encoding of X and of every layer.
    pub x_format: XFormat,
    /// gzip level (0-9) for matrices and columns; `None` (the default, as in
    /// anndata) writes uncompressed, which reads fastest.
    pub compression: Option<u8>,
}

/// Rows per chunk handed to the stream writer.
const WRITE_ROWS: usize = 4096;

/// Writes `ad` to `path` atomically (temporary file, then rename).
///
/// `ad.x` is `[n_obs, n_vars]`, dense or CSR in memory (written in
/// `opts.x_format` either way, densified 4,096 rows at a time); `ad.obs`
/// must have `n_obs` rows, `ad.var` `n_vars` rows, every layer the shape of
/// X.
pub fn write_h5ad(path: &Path, ad: &AnnData, opts: &WriteOptions) -> Result<()> {
    let (n, m) = ad.x.dim();
    if ad.obs.len() != n {
        return Err(Error::Mismatch(format!(
            "obs has {} rows but X has {n} cells (writing {})",
            ad.obs.len(),
            path.display()
        )));
    }
    if ad.var.len() != m {
        return Err(Error::Mismatch(format!(
            "var has {} rows but X has {m} genes (writing {})",
            ad.var.len(),
            path.display()
        )));
    }
    for (name, l) in &ad.layers {
        if l.dim() != (n, m) {
            return Err(Error::Mismatch(format!(
                "layer '{name}' is {:?} but X is {:?} (writing {})",
                l.dim(),
                (n, m),
                path.display()
            )));
        }
    }
    if let Some(level) = opts.compression.filter(|&l| l > 9) {
        return Err(Error::invalid(
            "compression",
            format!("gzip level {level} is not in 0..=9"),
        ));
    }
    let names: Vec<&str> = ad.layers.keys().map(|k| k.as_str()).collect();
    // Small data gets small chunks (a chunk is allocated whole on disk).
    let stored = match opts.x_format {
        XFormat::Csr => ad.x.count_nonzero(),
        XFormat::Dense => n * m,
    };
    let chunk = stored.clamp(1024, CHUNK_LEN);
    crate::atomic::write_atomic(path, |tmp| {
        // The most values a CSR matrix stores picks its index type.
        let nnz = (opts.x_format == XFormat::Csr).then(|| {
            ad.layers
                .values()
                .map(|l| l.iter().filter(|&&v| v != 0.0).count())
                .fold(stored, usize::max)
        });
        let mut w = H5adStreamWriter::create_at(tmp, None, &ad.var, &names, opts, chunk, nnz)?;
        for r0 in (0..n).step_by(WRITE_ROWS) {
            let r1 = (r0 + WRITE_ROWS).min(n);
            let layers: Vec<ArrayView2<f32>> = ad
                .layers
                .values()
                .map(|l| l.slice(s![r0..r1, ..]))
                .collect();
            // X densified one chunk at a time (a CSR X is never whole dense).
            let rows: Vec<usize> = (r0..r1).collect();
            let x = ad.x.rows_dense(&rows)?;
            w.append_rows(x.view(), &layers)?;
        }
        w.finish(&ad.obs, &ad.uns)
    })
}
