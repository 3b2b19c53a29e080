//! Tests: anndata_io.
