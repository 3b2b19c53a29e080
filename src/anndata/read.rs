//! Reading `.h5ad` files (AnnData >= 0.8 encoding) into an [`AnnData`].
//!
//! X (or a layer) may be dense, CSR or CSC with any integer or float type;
//! CSR stays CSR in memory, dense and CSC are densified in bounded runs
//! straight into the result (see `matrix`); `load_layers` densifies layers.
//! A row subset reads only the `indptr` ranges of the requested cells. obs
//! and var are read whole (they are small next to X) and subset in memory.
//! Every structural problem is an [`Error::Format`](crate::Error::Format)
//! naming the file, the HDF5 field and the offending value.

use std::path::Path;

use super::h5::{self, ferr, Node};
use super::{frame_io, matrix, uns, AnnData, Expr, XBuffers};
use crate::error::Result;

/// Options for [`read_h5ad`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Use `layers/<name>` as `x` instead of X.
    pub layer: Option<String>,
    /// Read only these cells, in this order (indices into the file's rows).
    pub rows: Option<Vec<usize>>,
    /// Also load every layer into `ad.layers` (same rows).
    pub load_layers: bool,
    /// Leave X (or the layer) in the file: `x` is [`Expr::absent`] with
    /// its shape (obs, var and uns are read), for streaming.
    pub obs_only: bool,
}

/// Reads `path`: `x` is `[n_rows, n_vars]` f32 (CSR when the file's is) where `n_rows` is the file's
/// cell count or `opts.rows.len()`.
pub fn read_h5ad(path: &Path, opts: &ReadOptions) -> Result<AnnData> {
    read_h5ad_reusing(path, opts, XBuffers::default())
}

/// [`read_h5ad`], with a CSR `x` read into the memory of `reuse` (an X
/// no longer needed, [`Expr::into_buffers`]) as far as it holds it.
pub fn read_h5ad_reusing(path: &Path, opts: &ReadOptions, reuse: XBuffers) -> Result<AnnData> {
    let file = h5::open_read(path)?;
    check_root(&file, path)?;
    let rows = opts.rows.as_deref();

    // X may be absent (anndata allows X=None) when a layer is used instead.
    let x_meta = match (&opts.layer, h5::node(&file, "X", path, "X")?) {
        (Some(layer), None) => {
            let lg = h5::group(&file, "layers", path, "layers")?;
            matrix::inspect(&lg, layer, path, &format!("layers/{layer}"))?
        }
        _ => matrix::inspect(&file, "X", path, "X")?,
    };
    let (n_obs, n_vars) = x_meta.shape;
    let obs = frame_io::read_frame(&file, "obs", path, "obs")?;
    if obs.len() != n_obs {
        return Err(ferr(
            path,
            "obs",
            format!(
                "obs has {} rows but X has {n_obs} cells (X shape [{n_obs}, {n_vars}])",
                obs.len()
            ),
        ));
    }
    let var = frame_io::read_frame(&file, "var", path, "var")?;
    if var.len() != n_vars {
        return Err(ferr(
            path,
            "var",
            format!(
                "var has {} rows but X has {n_vars} genes (X shape [{n_obs}, {n_vars}])",
                var.len()
            ),
        ));
    }

    let names = layer_names(&file, path)?;
    let check_layer = |name: &str| -> Result<()> {
        let field = format!("layers/{name}");
        if !names.iter().any(|n| n == name) {
            let known = if names.is_empty() {
                "the file has no layers".to_string()
            } else {
                format!("the file has layers: {}", names.join(", "))
            };
            return Err(ferr(path, &field, format!("no layer '{name}'; {known}")));
        }
        let meta = matrix::inspect(
            &h5::group(&file, "layers", path, "layers")?,
            name,
            path,
            &field,
        )?;
        if meta.shape != (n_obs, n_vars) {
            return Err(ferr(
                path,
                &field,
                format!(
                    "shape {:?} differs from X's {:?}",
                    meta.shape,
                    (n_obs, n_vars)
                ),
            ));
        }
        Ok(())
    };

    let x = match &opts.layer {
        Some(name) if opts.obs_only => {
            check_layer(name)?;
            absent_rows(n_obs, n_vars, rows, path)?
        }
        None if opts.obs_only => absent_rows(n_obs, n_vars, rows, path)?,
        None => matrix::read_expr(&file, "X", path, "X", rows, reuse)?,
        Some(name) => {
            check_layer(name)?;
            let lg = h5::group(&file, "layers", path, "layers")?;
            matrix::read_expr(&lg, name, path, &format!("layers/{name}"), rows, reuse)?
        }
    };
    let mut layers = std::collections::BTreeMap::new();
    if opts.load_layers {
        let lg = h5::group(&file, "layers", path, "layers")?;
        for name in &names {
            check_layer(name)?;
            layers.insert(
                name.clone(),
                matrix::read_matrix(&lg, name, path, &format!("layers/{name}"), rows)?,
            );
        }
    }
    let uns = match h5::node(&file, "uns", path, "uns")? {
        Some(Node::Group) => uns::read_dict(&h5::group(&file, "uns", path, "uns")?, path, "uns")?,
        _ => Default::default(),
    };
    let obs = match rows {
        Some(r) => obs.take(r),
        None => obs,
    };
    Ok(AnnData {
        x,
        obs,
        var,
        layers,
        uns,
    })
}

/// An [`Expr::absent`] `[n, m]`, selected to `rows` when given.
fn absent_rows(n: usize, m: usize, rows: Option<&[usize]>, path: &Path) -> Result<Expr> {
    let x = Expr::absent(n, m);
    match rows {
        None => Ok(x),
        Some(r) => x.select(r).map_err(|e| ferr(path, "X", e.to_string())),
    }
}

/// The root must be an AnnData group (`encoding-type` `anndata` when present;
/// files without root attributes are accepted).
pub(crate) fn check_root(file: &hdf5::File, path: &Path) -> Result<()> {
    match h5::encoding_type(file, path, "/")? {
        None => Ok(()),
        Some(t) if t == "anndata" => Ok(()),
        Some(t) => Err(ferr(
            path,
            "/",
            format!("root encoding-type is '{t}', expected 'anndata'"),
        )),
    }
}

/// Names of the matrices under `layers` (sorted; empty when there is none).
pub(crate) fn layer_names(file: &hdf5::File, path: &Path) -> Result<Vec<String>> {
    match h5::node(file, "layers", path, "layers")? {
        Some(Node::Group) => {
            let g = h5::group(file, "layers", path, "layers")?;
            let mut v = g.member_names().map_err(h5::rerr(path, "layers"))?;
            v.sort();
            Ok(v)
        }
        Some(Node::Dataset) => Err(ferr(path, "layers", "expected a group, found a dataset")),
        None => Ok(Vec::new()),
    }
}
