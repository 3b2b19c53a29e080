//! Exports of predictions to other tools' formats.
//!
//! * [`vcc`]: Virtual Cell Challenge submission files (`target_gene`,
//!   `non-targeting`, the challenge's gene list, float32 CSR, <= 200,000 cells).

pub mod vcc;

pub use vcc::{
    export_vcc, export_vcc_with, read_gene_list, vcc_anndata, vcc_anndata_with, VccReport,
};
