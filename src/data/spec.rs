//! Which cells a run uses: the file (or the simulator's settings), the obs
//! columns, row filters (`dataset=norman19`) and the split. Saved as
//! `data.json` in a training output folder (see `train::run_dir`) so
//! `train --resume` and `sample` rebuild the same cells and held-out units.
//!
//! Every dataset [`DataSpec::load`] and [`DataSpec::train_val`] make carries
//! its [`Provenance`], so whichever front-end trained on it can record it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, LoadOptions, ObsColumns, Part, Provenance, Split, SplitOptions, Task};
use crate::error::{Error, Result};
use crate::sim::SimConfig;

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
        /// Cap on held-out perturbations per covariate key (transfer;
        /// `None`: the default, 200).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_holdout: Option<usize>,
    },
}

impl SplitSpec {
    /// The options of a generated split.
    pub fn options(
        task: Task,
        seed: u64,
        holdout_fraction: Option<f64>,
        max_holdout: Option<usize>,
    ) -> SplitOptions {
        let mut opts = SplitOptions::new(task);
        opts.seed = seed;
        opts.holdout_fraction = holdout_fraction;
        if let Some(m) = max_holdout {
            opts.max_holdout = m;
        }
        opts
    }
}

/// A data set-up: file, columns, filters and split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The `.h5ad` file (with `simulate`: the simulated data's name, for
    /// messages).
    pub path: PathBuf,
    /// Simulate the cells with these settings instead of reading `path`
    /// (the simulator is seeded, so this rebuilds the same cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulate: Option<SimConfig>,
    /// Accept negative values (data that is not log1p-like).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_negative: bool,
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
            simulate: None,
            allow_negative: false,
            columns: ObsColumns::default(),
            layer: None,
            filters: Vec::new(),
            split: SplitSpec::None,
        }
    }

    /// A spec for the simulated data of `cfg` (default columns, no
    /// filters, no split); `name` is used in messages.
    pub fn simulated(cfg: SimConfig, name: impl Into<PathBuf>) -> DataSpec {
        DataSpec {
            simulate: Some(cfg),
            ..DataSpec::new(name)
        }
    }

    /// The load options of the file.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            columns: self.columns.clone(),
            layer: self.layer.clone(),
            allow_negative: self.allow_negative,
        }
    }

    /// Reads the file (or simulates the data) and applies the filters. The
    /// dataset's provenance is this spec without its split.
    pub fn load(&self) -> Result<Dataset> {
        let ds = match &self.simulate {
            None => Dataset::load(&self.path, &self.load_options())?,
            Some(cfg) => {
                if self.layer.is_some() {
                    return Err(Error::invalid(
                        format!("data set-up of {}", self.path.display()),
                        "simulated data has no layers; 'layer' must be null",
                    ));
                }
                cfg.validate()?;
                let ad = crate::sim::simulate(cfg)?;
                Dataset::from_anndata(
                    ad,
                    self.columns.clone(),
                    Some(&self.path),
                    self.allow_negative,
                )?
            }
        };
        let mut ds = apply_filters(ds, &self.filters)?;
        ds.provenance = Some(Provenance::whole(DataSpec {
            split: SplitSpec::None,
            ..self.clone()
        }));
        Ok(ds)
    }

    /// As [`load`](Self::load), with X left in the file
    /// ([`Dataset::open_for_streaming`]); simulated data is an error (it
    /// has no file to stream from).
    pub fn open_for_streaming(&self) -> Result<Dataset> {
        if self.simulate.is_some() {
            return Err(Error::invalid(
                format!("data set-up of {}", self.path.display()),
                "simulated data has no file to stream from; write it with `primeflow simulate` first",
            ));
        }
        let ds = Dataset::open_for_streaming(&self.path, &self.load_options())?;
        let mut ds = apply_filters(ds, &self.filters)?;
        ds.provenance = Some(Provenance::whole(DataSpec {
            split: SplitSpec::None,
            ..self.clone()
        }));
        Ok(ds)
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
                max_holdout,
            } => {
                let opts = SplitSpec::options(*task, *seed, *holdout_fraction, *max_holdout);
                Ok(Some(Split::generate(ds, &opts)?))
            }
        }
    }

    /// The training cells and, when the split has any, the validation
    /// cells of `ds` (which [`load`](Self::load) made), each with its
    /// provenance.
    pub fn train_val(&self, ds: &Dataset) -> Result<(Dataset, Option<Dataset>)> {
        match self.split(ds)? {
            None => Ok((ds.clone(), None)),
            Some(split) => {
                let mut train = ds.subset(&split.cells(Part::Train))?;
                train.provenance = Some(Provenance::part(self.clone(), Part::Train));
                let val_rows = split.cells(Part::Val);
                let val = if val_rows.is_empty() {
                    None
                } else {
                    let mut val = ds.subset(&val_rows)?;
                    val.provenance = Some(Provenance::part(self.clone(), Part::Val));
                    Some(val)
                };
                Ok((train, val))
            }
        }
    }
}
