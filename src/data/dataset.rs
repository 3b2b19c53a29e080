//! `Dataset`: cells x genes expression with the obs columns that say which
//! perturbation and covariates each cell has, grouped into units.
//!
//! A *unit* is a (covariate key, perturbation label) pair (metrics.md); the
//! covariate key joins a cell's covariate values with `_`. Control units hold
//! the control cells of their covariate key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::anndata::{self, AnnData, Column, DataFrame, Expr, ReadOptions, XBuffers};
use crate::data::condition::{Condition, ConditionVocab};
use crate::data::unit::group_units;
use crate::error::{Error, Result};

pub use crate::data::summary::{CovSummary, DatasetSummary};
pub use crate::data::unit::Unit;

/// Which obs columns carry the perturbation and covariates, and the control
/// label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsColumns {
    /// Perturbation label column (default `condition`).
    pub perturbation: String,
    /// Covariate columns (default `[cell_type]`); may be empty.
    pub covariates: Vec<String>,
    /// The label of control cells (default `control`; `ctrl` is always
    /// understood too).
    pub control: String,
}

impl Default for ObsColumns {
    fn default() -> Self {
        ObsColumns {
            perturbation: "condition".into(),
            covariates: vec!["cell_type".into()],
            control: "control".into(),
        }
    }
}

/// Options for [`Dataset::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub columns: ObsColumns,
    /// Train on `layers/<name>` instead of X.
    pub layer: Option<String>,
    /// Allow negative values (by default data must be log1p-like, >= 0).
    pub allow_negative: bool,
}

/// Cells x genes expression with perturbation and covariate annotations.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `[n_cells, n_genes]` expression (log1p-normalised by convention),
    /// dense or CSR as the file stored it; shared (not copied) by subsets.
    pub x: Expr,
    /// Gene names, `n_genes`.
    pub genes: Vec<String>,
    /// All obs columns of the source (cells in row order).
    pub obs: DataFrame,
    /// var dataframe of the source.
    pub var: DataFrame,
    /// Which columns mean what.
    pub columns: ObsColumns,
    /// The file this came from, if any (for messages).
    pub source: Option<PathBuf>,
    /// How to rebuild these cells (set by the code paths that make a
    /// dataset reproducibly: `DataSpec::load`, splits, filters); `None`
    /// for cells with no recorded set-up, e.g. a subset by row indices.
    pub provenance: Option<crate::data::Provenance>,
    units: Vec<Unit>,
    cell_unit: Vec<usize>,
}

impl Dataset {
    /// This dataset's column of each of `genes`, in their order. A gene it
    /// lacks is an error naming up to 20 of the missing ones; `whose`
    /// names the list and `this` the dataset in the message (e.g. "the
    /// reference", "the prediction").
    pub fn gene_columns(&self, genes: &[String], whose: &str, this: &str) -> Result<Vec<usize>> {
        let pos: std::collections::HashMap<&str, usize> = self
            .genes
            .iter()
            .enumerate()
            .map(|(i, g)| (g.as_str(), i))
            .collect();
        let mut cols = Vec::with_capacity(genes.len());
        let mut missing: Vec<&str> = Vec::new();
        for g in genes {
            match pos.get(g.as_str()) {
                Some(&i) => cols.push(i),
                None => missing.push(g),
            }
        }
        if missing.is_empty() {
            return Ok(cols);
        }
        let shown: Vec<&str> = missing.iter().take(20).copied().collect();
        Err(Error::Mismatch(format!(
            "{} of the {} genes of {whose} are missing from {this} ({}): {}{}",
            missing.len(),
            genes.len(),
            self.source_name(),
            shown.join(", "),
            if missing.len() > 20 { ", ..." } else { "" }
        )))
    }

    /// Reads `path` (.h5ad) and checks it: columns present with no missing
    /// values, X finite and (unless allowed) non-negative.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
        Self::load_reusing(path, opts, XBuffers::default())
    }

    /// [`load`](Self::load), with a CSR X read into the memory of `reuse`
    /// (the X of a dataset no longer needed, [`Dataset::into_x_buffers`]):
    /// a command that reads two large files one after the other touches
    /// fresh memory once.
    pub fn load_reusing(path: &Path, opts: &LoadOptions, reuse: XBuffers) -> Result<Dataset> {
        let ad = anndata::read_h5ad_reusing(
            path,
            &ReadOptions {
                layer: opts.layer.clone(),
                ..ReadOptions::default()
            },
            reuse,
        )?;
        Self::from_anndata(ad, opts.columns.clone(), Some(path), opts.allow_negative)
    }

    /// Drops everything but the memory of X, for the next
    /// [`load_reusing`](Self::load_reusing) (empty when X is shared with
    /// another dataset, e.g. a subset still alive).
    pub fn into_x_buffers(self) -> XBuffers {
        self.x.into_buffers()
    }

    /// Reads obs and var of `path` and leaves X (or the layer) in the file
    /// ([`Expr::absent`](crate::anndata::Expr::absent)): cells, units and
    /// genes as [`load`](Self::load) gives them, for streaming training
    /// (`train::stream` reads the values chunk by chunk and checks them as
    /// they arrive).
    pub fn open_for_streaming(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
        let ad = anndata::read_h5ad(
            path,
            &ReadOptions {
                layer: opts.layer.clone(),
                obs_only: true,
                ..ReadOptions::default()
            },
        )?;
        Self::from_anndata(ad, opts.columns.clone(), Some(path), opts.allow_negative)
    }

    /// Builds a dataset from an in-memory AnnData (validated as in
    /// [`load`](Self::load)); `source` is used in messages.
    pub fn from_anndata(
        ad: AnnData,
        columns: ObsColumns,
        source: Option<&Path>,
        allow_negative: bool,
    ) -> Result<Dataset> {
        let src = source
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("<memory>"));
        let field = |f: &str| f.to_string();
        if ad.obs.len() != ad.x.nrows() {
            return Err(Error::format(
                &src,
                "obs",
                format!(
                    "obs has {} rows but X has {} cells",
                    ad.obs.len(),
                    ad.x.nrows()
                ),
            ));
        }
        if ad.var.len() != ad.x.ncols() {
            return Err(Error::format(
                &src,
                "var",
                format!(
                    "var has {} rows but X has {} genes",
                    ad.var.len(),
                    ad.x.ncols()
                ),
            ));
        }
        // Values: finite, non-negative unless allowed (the zeros a CSR
        // matrix does not store are both). A fast pass first; the located
        // error only when it fails.
        let ok = |v: f32| v.is_finite() & (allow_negative | (v >= 0.0));
        if !ad.x.all_stored(ok) {
            ad.x.for_each_stored(|i, j, v| {
                if ok(v) {
                    return Ok(());
                }
                let what = if !v.is_finite() {
                    "a non-finite value"
                } else {
                    "a negative value (log1p data expected)"
                };
                Err(Error::format(
                    &src,
                    field("X"),
                    format!(
                        "{what} {v} at cell {i} ('{}'), gene {j} ('{}')",
                        ad.obs.index[i], ad.var.index[j]
                    ),
                ))
            })?;
        }
        let check_col = |name: &str| -> Result<Vec<String>> {
            ad.obs.labels("obs", name).map_err(|e| match e {
                Error::Unknown { .. } | Error::Invalid { .. } => {
                    Error::format(&src, format!("obs/{name}"), e.to_string())
                }
                other => other,
            })
        };
        for c in &columns.covariates {
            if let Some(w) = float_covariate_warning(&ad.obs, c, &src) {
                eprintln!("{w}");
            }
        }
        let perts = check_col(&columns.perturbation)?;
        let covs: Vec<Vec<String>> = columns
            .covariates
            .iter()
            .map(|c| check_col(c))
            .collect::<Result<_>>()?;
        let (units, cell_unit) = group_units(&perts, &covs, &columns.control);
        Ok(Dataset {
            x: ad.x,
            genes: ad.var.index.clone(),
            obs: ad.obs,
            var: ad.var,
            columns,
            source: source.map(|p| p.to_path_buf()),
            provenance: None,
            units,
            cell_unit,
        })
    }

    /// An AnnData view of this dataset (X shared, obs and var copied).
    pub fn to_anndata(&self) -> AnnData {
        AnnData {
            x: self.x.clone(),
            obs: self.obs.clone(),
            var: self.var.clone(),
            layers: Default::default(),
            uns: Default::default(),
        }
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.x.nrows()
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.x.ncols()
    }

    /// Where the data came from, for messages.
    pub fn source_name(&self) -> String {
        self.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<memory>".into())
    }

    /// All units, sorted by (covariate key, label).
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The unit index of every cell.
    pub fn cell_units(&self) -> &[usize] {
        &self.cell_unit
    }

    /// The unit of cell `i`.
    pub fn unit_of(&self, cell: usize) -> &Unit {
        &self.units[self.cell_unit[cell]]
    }

    /// The condition of every cell, in row order.
    pub fn cell_conditions(&self) -> Vec<Condition> {
        self.cell_unit
            .iter()
            .map(|&u| self.units[u].condition())
            .collect()
    }

    /// Covariate keys, sorted.
    pub fn cov_keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.units.iter().map(|u| u.cov_key.clone()).collect();
        k.dedup();
        k
    }

    /// Control cells of covariate key `cov_key` (may be empty).
    pub fn control_cells(&self, cov_key: &str) -> Vec<usize> {
        self.units
            .iter()
            .filter(|u| u.is_control() && u.cov_key == cov_key)
            .flat_map(|u| u.cells.iter().copied())
            .collect()
    }

    /// Sorted distinct perturbation labels (including control).
    pub fn conditions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.units.iter().map(|u| u.label.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The vocabulary of this data: all single perturbations and covariate
    /// values, sorted.
    pub fn vocab(&self) -> ConditionVocab {
        let mut perts: Vec<String> = self
            .units
            .iter()
            .flat_map(|u| u.perturbations.iter().cloned())
            .collect();
        perts.sort();
        perts.dedup();
        let covariates = (0..self.columns.covariates.len())
            .map(|j| {
                let mut v: Vec<String> =
                    self.units.iter().map(|u| u.covariates[j].clone()).collect();
                v.sort();
                v.dedup();
                v
            })
            .collect();
        ConditionVocab {
            perturbation_column: self.columns.perturbation.clone(),
            covariate_columns: self.columns.covariates.clone(),
            control: self.columns.control.clone(),
            perturbations: perts,
            covariates,
            encoding: Default::default(),
            embeddings: None,
        }
    }

    /// The cells `rows` (in that order) as a new dataset (with no
    /// provenance: the caller sets it when the rows have a set-up). X is
    /// shared with this dataset, not copied.
    pub fn subset(&self, rows: &[usize]) -> Result<Dataset> {
        let ad = AnnData {
            x: self.x.select(rows)?,
            obs: self.obs.take(rows),
            var: self.var.clone(),
            layers: Default::default(),
            uns: Default::default(),
        };
        let mut ds = Self::from_anndata(ad, self.columns.clone(), self.source.as_deref(), true)?;
        ds.source = self.source.clone();
        Ok(ds)
    }

    /// Cells whose obs column `col` has label `value`.
    pub fn cells_where(&self, col: &str, value: &str) -> Result<Vec<usize>> {
        let c = self.obs.column("obs", col)?;
        Ok((0..c.len())
            .filter(|&i| c.label(i).as_deref() == Some(value))
            .collect())
    }

    /// Mean expression of `cells`, `[n_genes]` (zeros when empty; cells
    /// out of range are skipped).
    pub fn mean_of(&self, cells: &[usize]) -> Vec<f32> {
        let mut m = vec![0f64; self.n_genes()];
        for &c in cells.iter().filter(|&&c| c < self.n_cells()) {
            // Adding the zeros a CSR row does not store changes no f64 sum.
            match self.x.row(c) {
                Some(anndata::Row::Dense(r)) => {
                    for (a, &v) in m.iter_mut().zip(r.iter()) {
                        *a += v as f64;
                    }
                }
                _ => {
                    for (a, v) in m.iter_mut().zip(self.x.row_vec(c)) {
                        *a += v as f64;
                    }
                }
            }
        }
        let n = cells.len().max(1) as f64;
        m.into_iter().map(|v| (v / n) as f32).collect()
    }

    /// A summary for printing or JSON.
    pub fn summary(&self) -> DatasetSummary {
        let mut per_cov: BTreeMap<String, CovSummary> = BTreeMap::new();
        for u in &self.units {
            let e = per_cov.entry(u.cov_key.clone()).or_default();
            if u.is_control() {
                e.control_cells += u.cells.len();
            } else {
                e.perturbations += 1;
                e.perturbed_cells += u.cells.len();
                if u.perturbations.len() > 1 {
                    e.combinations += 1;
                }
            }
        }
        DatasetSummary {
            source: self.source_name(),
            n_cells: self.n_cells(),
            n_genes: self.n_genes(),
            perturbation_column: self.columns.perturbation.clone(),
            covariate_columns: self.columns.covariates.clone(),
            control: self.columns.control.clone(),
            n_units: self.units.iter().filter(|u| !u.is_control()).count(),
            n_perturbations: self.vocab().perturbations.len(),
            covariates: per_cov,
        }
    }
}

/// A warning when covariate column `name` of `obs` holds floats: every
/// distinct value becomes a covariate level, which is right for a
/// categorical stored as numbers and wrong for a measurement (one level per
/// cell). `None` for other column kinds.
pub fn float_covariate_warning(obs: &DataFrame, name: &str, src: &Path) -> Option<String> {
    let Some(Column::Float(v)) = obs.get(name) else {
        return None;
    };
    let mut distinct: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    Some(format!(
        "warning: {}: covariate column 'obs/{name}' is a float array; each of its {} distinct values \
         becomes a covariate level. If it is categorical, store it as one (in Python: \
         adata.obs['{name}'] = adata.obs['{name}'].astype(str).astype('category')); if it is a \
         measurement, it is not a covariate.",
        src.display(),
        distinct.len()
    ))
}

/// Builds an obs frame for generated cells: one categorical column per
/// perturbation/covariate column, index `cell_<i>`.
pub fn obs_for_conditions(columns: &ObsColumns, conds: &[Condition]) -> Result<DataFrame> {
    let mut obs = DataFrame::with_index((0..conds.len()).map(|i| format!("cell_{i}")).collect());
    let labels: Vec<String> = conds.iter().map(|c| c.label(&columns.control)).collect();
    obs.insert(
        &columns.perturbation,
        Column::Categorical(anndata::Categorical::from_labels(&labels, true)),
    )?;
    for (j, name) in columns.covariates.iter().enumerate() {
        let vals: Vec<String> = conds
            .iter()
            .map(|c| c.covariates.get(j).cloned().unwrap_or_default())
            .collect();
        obs.insert(
            name,
            Column::Categorical(anndata::Categorical::from_labels(&vals, true)),
        )?;
    }
    Ok(obs)
}
