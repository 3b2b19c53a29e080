//! Writing .h5ad (being written).
use std::path::Path;
use crate::error::Result;
use super::AnnData;
/// X encoding on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XFormat { #[default] Csr, Dense }
/// Options for [`write_h5ad`].
#[derive(Debug, Clone, Default)]
pub struct WriteOptions { pub x_format: XFormat }
/// Writes `ad` to `path` atomically.
pub fn write_h5ad(path: &Path, ad: &AnnData, opts: &WriteOptions) -> Result<()> { let _ = (path, ad, opts); Err(crate::Error::invalid("h5ad", "not yet implemented")) }
