//! The integration-test suite: one binary (each extra one relinks libtorch).
//! Areas live in their own modules.

mod common;

mod anndata_index_types;
mod anndata_io;
mod anndata_reuse;
mod cli;
mod data;
mod embedding;
mod embedding_tables;
mod exit_codes;
mod export;
mod floors;
mod flow;
mod fuzz;
mod hdf5_lib;
mod kernel;
mod kinds;
mod metrics;
mod mmd_pairs;
mod model;
mod ot;
mod presets;
mod readme_scale;
mod run_dir;
mod sample;
mod script;
mod sim;
mod stream;
mod train;
mod vcc_metrics;
