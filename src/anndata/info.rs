//! `inspect_h5ad`: what is in a file, without loading X (being written).
use std::path::Path;
use serde::Serialize;
use crate::error::Result;
/// Summary of an .h5ad file.
#[derive(Debug, Clone, Serialize)]
pub struct H5adInfo {}
/// Reads the structure of `path`.
pub fn inspect_h5ad(path: &Path) -> Result<H5adInfo> { let _ = path; Err(crate::Error::invalid("h5ad", "not yet implemented")) }
