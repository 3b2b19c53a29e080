//! Virtual Cell Challenge submission files (issue 4, section 5).
//!
//! The challenge's `cell-eval prep` expects an `.h5ad` with an obs column
//! `target_gene` (control cells labelled `non-targeting`), the challenge's
//! gene list as var names, exactly and in its order, X as float32 CSR, and at
//! most 200,000 cells. [`export_vcc`] writes such a file from a prediction:
//! its genes are picked (and reordered) by name, a gene of the list that the
//! prediction lacks is an error naming it, and the prediction's control cells
//! (its control label, or `ctrl`) become `non-targeting`.

use std::collections::HashSet;
use std::path::Path;

use ndarray::Array2;
use serde::Serialize;

use crate::anndata::{write_h5ad, AnnData, Categorical, Column, DataFrame, WriteOptions, XFormat};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// The obs column the challenge reads.
pub const TARGET_GENE: &str = "target_gene";
/// The challenge's control label.
pub const NON_TARGETING: &str = "non-targeting";
/// The challenge's cell limit.
pub const MAX_CELLS: usize = 200_000;

/// What [`export_vcc`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VccReport {
    pub n_cells: usize,
    pub n_genes: usize,
    /// Distinct non-control target genes.
    pub n_perturbations: usize,
    /// Cells labelled `non-targeting`.
    pub n_controls: usize,
}

impl std::fmt::Display for VccReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cells x {} genes: {} perturbations, {} {NON_TARGETING} cells",
            self.n_cells, self.n_genes, self.n_perturbations, self.n_controls
        )
    }
}

/// Reads the challenge's gene list: one gene per line (the first field of a
/// CSV line), no header, as `cell-eval prep` reads it. Empty lines are
/// skipped; a duplicated gene is an error.
pub fn read_gene_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut genes = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let field = line
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .trim();
        if field.is_empty() {
            continue;
        }
        if !seen.insert(field.to_string()) {
            return Err(Error::format(
                path,
                format!("line {}", i + 1),
                format!("gene '{field}' is listed twice"),
            ));
        }
        genes.push(field.to_string());
    }
    if genes.is_empty() {
        return Err(Error::format(path, "genes", "the gene list is empty"));
    }
    Ok(genes)
}

/// The submission AnnData: `[n_cells, genes.len()]` X (the prediction's
/// columns picked by name), obs `target_gene`, var names `genes`.
pub fn vcc_anndata(pred: &Dataset, genes: &[String]) -> Result<AnnData> {
    vcc_anndata_with(pred, None, genes)
}

/// As [`vcc_anndata`], with the control cells of `controls` (e.g. the real
/// control cells of the data set) appended as `non-targeting` cells, as a
/// challenge participant adds the measured controls to a prediction of the
/// perturbed cells only. Their obs names get a `ctrl_` prefix.
pub fn vcc_anndata_with(
    pred: &Dataset,
    controls: Option<&Dataset>,
    genes: &[String],
) -> Result<AnnData> {
    let extra: Vec<usize> = match controls {
        Some(c) => (0..c.n_cells())
            .filter(|&i| c.unit_of(i).is_control())
            .collect(),
        None => Vec::new(),
    };
    let n = pred.n_cells() + extra.len();
    if n > MAX_CELLS {
        return Err(Error::invalid(
            "prediction",
            format!(
                "{} has {n} cells (with the appended controls); a Virtual Cell Challenge submission holds at most {MAX_CELLS}",
                pred.source_name()
            ),
        ));
    }
    let cols = pred.gene_columns(genes, "the gene list", "the prediction")?;
    let rows: Vec<usize> = (0..pred.n_cells()).collect();
    let mut values = pred.x.rows_vec(&rows, Some(&cols))?;
    let mut labels: Vec<String> = (0..pred.n_cells())
        .map(|i| {
            let u = pred.unit_of(i);
            if u.is_control() {
                NON_TARGETING.to_string()
            } else {
                u.label.clone()
            }
        })
        .collect();
    let mut index = pred.obs.index.clone();
    if let (Some(c), false) = (controls, extra.is_empty()) {
        let ccols = c.gene_columns(genes, "the gene list", "the control cells")?;
        values.extend(c.x.rows_vec(&extra, Some(&ccols))?);
        labels.extend(std::iter::repeat_n(NON_TARGETING.to_string(), extra.len()));
        index.extend(extra.iter().map(|&i| format!("ctrl_{}", c.obs.index[i])));
    }
    let x = Array2::from_shape_vec((n, cols.len()), values)
        .map_err(|e| Error::Mismatch(e.to_string()))?;
    if !labels.iter().any(|l| l == NON_TARGETING) {
        return Err(Error::invalid(
            "prediction",
            format!(
                "{} has no control cells ('{}' in obs column '{}'); the challenge needs {NON_TARGETING} cells (append the measured ones: --controls)",
                pred.source_name(),
                pred.columns.control,
                pred.columns.perturbation
            ),
        ));
    }
    let mut obs = DataFrame::with_index(index);
    obs.insert(
        TARGET_GENE,
        Column::Categorical(Categorical::from_labels(&labels, true)),
    )?;
    Ok(AnnData {
        x: x.into(),
        obs,
        var: DataFrame::with_index(genes.to_vec()),
        ..Default::default()
    })
}

/// Writes the submission file `out` (float32 CSR X, atomically).
pub fn export_vcc(pred: &Dataset, genes: &[String], out: &Path) -> Result<VccReport> {
    export_vcc_with(pred, None, genes, out)
}

/// As [`export_vcc`], with the control cells of `controls` appended (see
/// [`vcc_anndata_with`]).
pub fn export_vcc_with(
    pred: &Dataset,
    controls: Option<&Dataset>,
    genes: &[String],
    out: &Path,
) -> Result<VccReport> {
    let ad = vcc_anndata_with(pred, controls, genes)?;
    let labels: Vec<String> = (0..ad.n_obs())
        .filter_map(|i| ad.obs.get(TARGET_GENE).and_then(|c| c.label(i)))
        .collect();
    let n_controls = labels.iter().filter(|l| *l == NON_TARGETING).count();
    let mut perts: Vec<&String> = labels.iter().filter(|l| *l != NON_TARGETING).collect();
    perts.sort();
    perts.dedup();
    write_h5ad(
        out,
        &ad,
        &WriteOptions {
            x_format: XFormat::Csr,
            ..Default::default()
        },
    )?;
    Ok(VccReport {
        n_cells: ad.n_obs(),
        n_genes: ad.n_vars(),
        n_perturbations: perts.len(),
        n_controls,
    })
}
