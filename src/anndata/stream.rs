//! [`H5adStreamWriter`]: writes an `.h5ad` whose cells arrive in chunks (the
//! simulator's 178k x 2000 output), without ever holding the whole matrix.
//!
//! `X` and every layer go to resizable datasets: CSR appends `data` (f32) and
//! `indices` chunk by chunk, with int32 indices and `indptr` as scipy writes
//! them, int64 only past 2^31 - 1 stored values (see `csr_sink`); dense
//! appends rows of a `[rows, n_vars]` f32 dataset. `var` is written at creation; `obs`, `uns`
//! and the `shape` attributes at [`finish`](H5adStreamWriter::finish).
//! Everything goes to a temporary sibling file that `finish` renames into
//! place; dropping the writer unfinished deletes it, so a failed or
//! interrupted run never leaves a half-written file under the final name.
//! [`write_h5ad`](super::write_h5ad) is built on the same code.

use std::path::{Path, PathBuf};

use hdf5::{Dataset, Extent, File, Group, SimpleExtents};
use ndarray::ArrayView2;
use serde_json::{Map, Value};

use super::csr_sink::{CsrSink, INT32_LIMIT};
use super::frame::DataFrame;
use super::h5_write::{self as h5w, werr, CHUNK_LEN};
use super::write::{WriteOptions, XFormat};
use crate::error::{Error, Result};

/// Writes an `.h5ad` in row chunks; see the module docs.
pub struct H5adStreamWriter {
    /// The file being written (the temporary sibling, or the target itself
    /// when an outer [`crate::atomic::write_atomic`] owns the renaming).
    file_path: PathBuf,
    /// Where `finish` renames it to, if anywhere.
    target: Option<PathBuf>,
    inner: Option<Inner>,
}

struct Inner {
    x: Sink,
    layers: Vec<(String, Sink)>,
    n_vars: usize,
    rows: usize,
    compression: Option<u8>,
    /// Declared last: dropped after every dataset handle.
    file: File,
}

/// One matrix element being appended to.
enum Sink {
    Csr(CsrSink),
    Dense { ds: Dataset, field: String },
}

impl H5adStreamWriter {
    /// Starts writing `path` (through a temporary sibling) for cells with the
    /// genes of `var` (`n_vars = var.len()`), one matrix per name in `layers`
    /// besides X, in the format `opts.x_format`.
    pub fn create(
        path: &Path,
        var: &DataFrame,
        layers: &[&str],
        opts: &WriteOptions,
    ) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        if crate::atomic::is_special(path) {
            // Renaming onto a device (as root) would replace the device node.
            return Err(Error::invalid(
                "output path",
                format!(
                    "{} is not a regular file; an .h5ad needs one",
                    path.display()
                ),
            ));
        }
        let tmp = crate::atomic::temp_path(path);
        Self::create_at(
            &tmp,
            Some(path.to_path_buf()),
            var,
            layers,
            opts,
            CHUNK_LEN,
            None,
        )
    }

    /// Writes straight to `file_path` (renaming to `target` at finish, if
    /// set), with matrix chunks of `chunk` elements (smaller for small data).
    /// `nnz`, when known, is the most values any CSR matrix will store: past
    /// the int32 limit its indices start as int64.
    pub(crate) fn create_at(
        file_path: &Path,
        target: Option<PathBuf>,
        var: &DataFrame,
        layers: &[&str],
        opts: &WriteOptions,
        chunk: usize,
        nnz: Option<usize>,
    ) -> Result<Self> {
        let chunk = chunk.clamp(1, CHUNK_LEN);
        for (i, name) in layers.iter().enumerate() {
            h5w::check_name(name, "layer name")?;
            if layers[..i].contains(name) {
                return Err(Error::invalid(
                    "layer name",
                    format!("'{name}' is given twice"),
                ));
            }
        }
        if var.len() > i32::MAX as usize {
            return Err(Error::invalid(
                "var",
                format!("{} genes is more than an .h5ad index can hold", var.len()),
            ));
        }
        let p = file_path;
        let file = h5w::create_file(p)?;
        // From here on, dropping `writer` removes the file.
        let mut writer = H5adStreamWriter {
            file_path: p.to_path_buf(),
            target,
            inner: None,
        };
        h5w::set_encoding(&file, "anndata", "0.1.0", p, "/")?;
        super::frame_io::write_frame(&file, "var", var, opts.compression, p, "var")?;
        let wide = nnz.is_some_and(|n| n > INT32_LIMIT);
        let x = Sink::create(&file, "X", "X", var.len(), opts, chunk, wide, p)?;
        let lg = h5w::create_group(&file, "layers", "dict", "0.1.0", p, "layers")?;
        let mut sinks = Vec::with_capacity(layers.len());
        for name in layers {
            sinks.push((
                name.to_string(),
                Sink::create(
                    &lg,
                    name,
                    &format!("layers/{name}"),
                    var.len(),
                    opts,
                    chunk,
                    wide,
                    p,
                )?,
            ));
        }
        for g in ["obsm", "varm", "obsp", "varp"] {
            h5w::create_group(&file, g, "dict", "0.1.0", p, g)?;
        }
        writer.inner = Some(Inner {
            x,
            layers: sinks,
            n_vars: var.len(),
            rows: 0,
            compression: opts.compression,
            file,
        });
        Ok(writer)
    }

    /// Cells written so far.
    pub fn rows(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.rows)
    }

    /// Appends cells: `x` is `[r, n_vars]`, `layers` one `[r, n_vars]` matrix
    /// per layer named at creation, in that order.
    pub fn append_rows(&mut self, x: ArrayView2<f32>, layers: &[ArrayView2<f32>]) -> Result<()> {
        let p = self.file_path.clone();
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::invalid("H5adStreamWriter", "already finished"))?;
        if x.ncols() != inner.n_vars {
            return Err(Error::Mismatch(format!(
                "append_rows: X chunk has {} genes but var has {}",
                x.ncols(),
                inner.n_vars
            )));
        }
        if layers.len() != inner.layers.len() {
            return Err(Error::Mismatch(format!(
                "append_rows: {} layer chunks given but {} layers were declared",
                layers.len(),
                inner.layers.len()
            )));
        }
        for ((name, _), l) in inner.layers.iter().zip(layers) {
            if l.dim() != x.dim() {
                return Err(Error::Mismatch(format!(
                    "append_rows: layer '{name}' chunk is {:?} but X chunk is {:?}",
                    l.dim(),
                    x.dim()
                )));
            }
        }
        inner.x.append(x, inner.rows, &p)?;
        for ((_, sink), l) in inner.layers.iter_mut().zip(layers) {
            sink.append(*l, inner.rows, &p)?;
        }
        inner.rows += x.nrows();
        Ok(())
    }

    /// Writes `obs` (one row per cell written) and `uns`, closes the file and
    /// renames it into place.
    pub fn finish(mut self, obs: &DataFrame, uns: &Map<String, Value>) -> Result<()> {
        let inner = self
            .inner
            .take()
            .ok_or_else(|| Error::invalid("H5adStreamWriter", "already finished"))?;
        let p = self.file_path.clone();
        if obs.len() != inner.rows {
            return Err(Error::Mismatch(format!(
                "obs has {} rows but {} cells were written to {}",
                obs.len(),
                inner.rows,
                p.display()
            )));
        }
        let shape = [inner.rows as i64, inner.n_vars as i64];
        inner.x.finish(&shape, &p)?;
        for (_, sink) in &inner.layers {
            sink.finish(&shape, &p)?;
        }
        super::frame_io::write_frame(&inner.file, "obs", obs, inner.compression, &p, "obs")?;
        let ug = h5w::create_group(&inner.file, "uns", "dict", "0.1.0", &p, "uns")?;
        super::uns::write_dict(&ug, uns, &p, "uns")?;
        drop(ug);
        let Inner {
            x, layers, file, ..
        } = inner;
        drop(x);
        drop(layers);
        file.close().map_err(werr(&p, "file"))?;
        if let Some(target) = self.target.take() {
            std::fs::rename(&p, &target).map_err(|e| Error::io(&target, e))?;
        }
        // Success: nothing left to clean up.
        self.file_path = PathBuf::new();
        Ok(())
    }
}

impl Drop for H5adStreamWriter {
    fn drop(&mut self) {
        // Unfinished (or failed): close the file, then remove it.
        self.inner = None;
        if !self.file_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.file_path);
        }
    }
}

impl Sink {
    #[allow(clippy::too_many_arguments)]
    fn create(
        parent: &Group,
        name: &str,
        field: &str,
        n_vars: usize,
        opts: &WriteOptions,
        chunk: usize,
        wide: bool,
        p: &Path,
    ) -> Result<Sink> {
        match opts.x_format {
            XFormat::Csr => Ok(Sink::Csr(CsrSink::create(
                parent,
                name,
                field,
                chunk,
                opts.compression,
                wide,
                p,
            )?)),
            XFormat::Dense => {
                let chunk_rows = (chunk / n_vars.max(1)).max(1);
                let mut b = parent
                    .new_dataset::<f32>()
                    .chunk((chunk_rows, n_vars.max(1)));
                if let Some(level) = opts.compression {
                    b = b.deflate(level);
                }
                let ds = b
                    .shape(SimpleExtents::from_vec(vec![
                        Extent::resizable(0),
                        Extent::resizable(n_vars),
                    ]))
                    .create(name)
                    .map_err(werr(p, field))?;
                h5w::set_encoding(&ds, "array", "0.2.0", p, field)?;
                Ok(Sink::Dense {
                    ds,
                    field: field.to_string(),
                })
            }
        }
    }

    /// Appends `x` (`[r, n_vars]`) after the first `rows` rows.
    fn append(&mut self, x: ArrayView2<f32>, rows: usize, p: &Path) -> Result<()> {
        let r = x.nrows();
        if r == 0 {
            return Ok(());
        }
        match self {
            Sink::Dense { ds, field } => {
                let e = werr(p, field);
                ds.resize((rows + r, x.ncols())).map_err(&e)?;
                let x = x.as_standard_layout();
                let flat = x
                    .as_slice()
                    .ok_or_else(|| Error::invalid(field.as_str(), "rows are not contiguous"))?;
                let view = ndarray_h5::ArrayView2::from_shape((r, x.ncols()), flat)
                    .map_err(|err| Error::invalid(field.as_str(), err.to_string()))?;
                ds.write_slice(view, ndarray_h5::s![rows..rows + r, ..])
                    .map_err(&e)
            }
            Sink::Csr(sink) => sink.append(x, p),
        }
    }

    /// Writes what is known only at the end: a sparse matrix's `indptr` and
    /// `shape` attribute.
    fn finish(&self, shape: &[i64; 2], p: &Path) -> Result<()> {
        match self {
            Sink::Csr(sink) => sink.finish(shape, p),
            Sink::Dense { .. } => Ok(()),
        }
    }
}
