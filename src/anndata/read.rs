//! Reading .h5ad (being written).
use std::path::Path;
use crate::error::Result;
use super::AnnData;
/// Options for [`read_h5ad`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions { pub layer: Option<String>, pub rows: Option<Vec<usize>>, pub load_layers: bool }
/// Reads `path`.
pub fn read_h5ad(path: &Path, opts: &ReadOptions) -> Result<AnnData> { let _ = (path, opts); Err(crate::Error::invalid("h5ad", "not yet implemented")) }
