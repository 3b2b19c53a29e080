//! `obsm` / `varm`: per-cell and per-gene annotation matrices of an .h5ad
//! (`adata.obsm["X_pca"]`, `adata.varm["gene_embedding"]`). Read one entry
//! with the names of its axis, e.g. a gene embedding table stored beside the
//! expression it annotates.

use std::path::Path;

use ndarray::Array2;

use super::h5::{self, ferr, Node};
use super::{frame_io, matrix, read};
use crate::error::Result;

/// Which axis an annotation matrix belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// `obsm`: one row per cell, named by the obs index.
    Obs,
    /// `varm`: one row per gene, named by the var index.
    Var,
}

impl Axis {
    /// `obsm` or `varm`.
    pub fn group(self) -> &'static str {
        match self {
            Axis::Obs => "obsm",
            Axis::Var => "varm",
        }
    }

    /// Parses `obsm` / `varm`.
    pub fn parse(s: &str) -> Option<Axis> {
        match s {
            "obsm" => Some(Axis::Obs),
            "varm" => Some(Axis::Var),
            _ => None,
        }
    }
}

/// Reads `obsm/<key>` or `varm/<key>` of `path`: the axis's names `[n]`
/// (obs or var index) and the matrix `[n, d]` (dense or CSR on disk; f32).
/// A missing group or key is an error naming the file and listing the keys
/// there are; a row count that differs from the axis is an error.
pub fn read_axis_matrix(path: &Path, axis: Axis, key: &str) -> Result<(Vec<String>, Array2<f32>)> {
    let file = h5::open_read(path)?;
    read::check_root(&file, path)?;
    let slot = axis.group();
    let field = format!("{slot}/{key}");
    let keys = match h5::node(&file, slot, path, slot)? {
        Some(Node::Group) => h5::group(&file, slot, path, slot)?
            .member_names()
            .map_err(h5::rerr(path, slot))?,
        _ => Vec::new(),
    };
    if !keys.iter().any(|k| k == key) {
        let have = if keys.is_empty() {
            format!("the file has no {slot} entries")
        } else {
            format!("its {slot} keys are: {}", keys.join(", "))
        };
        return Err(ferr(
            path,
            &field,
            format!("no {slot} entry '{key}'; {have}"),
        ));
    }
    let g = h5::group(&file, slot, path, slot)?;
    let values = matrix::read_matrix(&g, key, path, &field, None)?;
    let frame = match axis {
        Axis::Obs => "obs",
        Axis::Var => "var",
    };
    let names = frame_io::read_frame(&file, frame, path, frame)?.index;
    if values.nrows() != names.len() {
        return Err(ferr(
            path,
            &field,
            format!(
                "{} rows but {frame} has {} names",
                values.nrows(),
                names.len()
            ),
        ));
    }
    Ok((names, values))
}
