//! Which cells a run uses: the file, the obs columns, row filters
//! (`dataset=norman19`) and the split. Saved as `data.json` in a training
//! output folder so `sample` can rebuild the same held-out units.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, LoadOptions, ObsColumns, Part, Split, SplitOptions, Task};
use crate::error::{Error, Result};

/// How cells are assigned to train/val/test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SplitSpec {
    /// Every cell trains; there is no validation or test part.
    #[default]
    None,
    /// A split CSV (see `Split::read_csv`); unlisted controls are split with
    /// `seed`.
    File { path: PathBuf, seed: u64 },
    /// A generated split.
    Task {
        task: Task,
        seed: u64,
        holdout_fraction: Option<f64>,
    },
}

/// A data set-up: file, columns, filters and split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The `.h5ad` file.
    pub path: PathBuf,
    /// Perturbation/covariate columns and the control label.
    pub columns: ObsColumns,
    /// Use `layers/<name>` instead of X.
    pub layer: Option<String>,
    /// Keep only cells whose obs column equals the value (all must hold).
    pub filters: Vec<(String, String)>,
    /// The split.
    pub split: SplitSpec,
}

/// Parses `COL=VALUE`.
pub fn parse_filter(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((c, v)) if !c.trim().is_empty() => Ok((c.trim().to_string(), v.trim().to_string())),
        _ => Err(Error::invalid(
            "filter",
            format!("'{s}' is not COL=VALUE (e.g. dataset=norman19)"),
        )),
    }
}

/// The cells of `ds` that pass every `(column, value)` filter, as a new
/// dataset. An empty result is an error that lists the column's values.
pub fn apply_filters(ds: Dataset, filters: &[(String, String)]) -> Result<Dataset> {
    if filters.is_empty() {
        return Ok(ds);
    }
    let mut keep = vec![true; ds.n_cells()];
    for (col, value) in filters {
        let hits = ds
            .cells_where(col, value)
            .map_err(|e| Error::invalid(format!("filter {col}={value}"), e.to_string()))?;
        if hits.is_empty() {
            let mut values: Vec<String> = ds.obs.labels("obs", col).unwrap_or_default();
            values.sort();
            values.dedup();
            return Err(Error::unknown(
                format!("value of obs column '{col}' in {}", ds.source_name()),
                value.as_str(),
                &values,
            ));
        }
        let mut pass = vec![false; ds.n_cells()];
        for h in hits {
            pass[h] = true;
        }
        for (k, p) in keep.iter_mut().zip(pass) {
            *k &= p;
        }
    }
    let rows: Vec<usize> = keep
        .iter()
        .enumerate()
        .filter(|(_, k)| **k)
        .map(|(i, _)| i)
        .collect();
    if rows.is_empty() {
        return Err(Error::invalid(
            "filters",
            format!(
                "no cell of {} passes all of them together",
                ds.source_name()
            ),
        ));
    }
    ds.subset(&rows)
}

impl DataSpec {
    /// A spec for `path` with default columns, no filters and no split.
    pub fn new(path: impl Into<PathBuf>) -> DataSpec {
        DataSpec {
            path: path.into(),
            columns: ObsColumns::default(),
            layer: None,
            filters: Vec::new(),
            split: SplitSpec::None,
        }
    }

    /// Reads the file and applies the filters.
    pub fn load(&self) -> Result<Dataset> {
        let ds = Dataset::load(
            &self.path,
            &LoadOptions {
                columns: self.columns.clone(),
                layer: self.layer.clone(),
                allow_negative: false,
            },
        )?;
        apply_filters(ds, &self.filters)
    }

    /// The split of `ds` (`None` when every cell trains).
    pub fn split(&self, ds: &Dataset) -> Result<Option<Split>> {
        match &self.split {
            SplitSpec::None => Ok(None),
            SplitSpec::File { path, seed } => Ok(Some(Split::read_csv(path, ds, *seed)?)),
            SplitSpec::Task {
                task,
                seed,
                holdout_fraction,
            } => {
                let mut opts = SplitOptions::new(*task);
                opts.seed = *seed;
                opts.holdout_fraction = *holdout_fraction;
                Ok(Some(Split::generate(ds, &opts)?))
            }
        }
    }

    /// The training cells and, when the split has any, the validation
    /// cells of `ds`.
    pub fn train_val(&self, ds: &Dataset) -> Result<(Dataset, Option<Dataset>)> {
        match self.split(ds)? {
            None => Ok((ds.clone(), None)),
            Some(split) => {
                let train = ds.subset(&split.cells(Part::Train))?;
                let val_rows = split.cells(Part::Val);
                let val = if val_rows.is_empty() {
                    None
                } else {
                    Some(ds.subset(&val_rows)?)
                };
                Ok((train, val))
            }
        }
    }

    /// Writes this spec as `data.json` in `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::atomic::write_json(&dir.join("data.json"), self)
    }

    /// Reads `dir/data.json` when present.
    pub fn read(dir: &Path) -> Result<Option<DataSpec>> {
        let p = dir.join("data.json");
        if p.is_file() {
            Ok(Some(crate::atomic::read_json(&p)?))
        } else {
            Ok(None)
        }
    }
}
