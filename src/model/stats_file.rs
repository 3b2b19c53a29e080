//! [`DataStats`] on disk: `stats.json` (an index: cell counts, covariates,
//! perturbations) beside `stats.safetensors` (the tensors).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::persist::{read_tensors, write_tensors};
use crate::model::stats::{
    ControlSet, DataStats, MeanShift, PcaBasis, RESPONSE_MIN_STD, STATS_JSON, STATS_TENSORS,
};

/// The JSON index of a stats file.
#[derive(Debug, Serialize, Deserialize)]
struct StatsIndex {
    n_cells: usize,
    pca_variance: Option<Vec<f64>>,
    controls: Vec<ControlEntry>,
    shifts: Vec<ShiftEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ControlEntry {
    covariates: Vec<String>,
    n_kept: usize,
    n_train: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct ShiftEntry {
    perturbation: String,
    covariates: Vec<String>,
    n_cells: usize,
}

impl DataStats {
    /// Writes `stats.json` and `stats.safetensors` into `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = vec![
            ("gene_mean".into(), self.gene_mean.shallow_clone()),
            ("gene_std".into(), self.gene_std.shallow_clone()),
        ];
        if let Some(p) = &self.pca {
            tensors.push(("pca.mean".into(), p.mean.shallow_clone()));
            tensors.push(("pca.components".into(), p.components.shallow_clone()));
        }
        tensors.push(("response_std".into(), self.response_std.shallow_clone()));
        for (i, c) in self.controls.iter().enumerate() {
            tensors.push((format!("controls.{i}"), c.cells.shallow_clone()));
            tensors.push((format!("controls.{i}.mean"), c.mean.shallow_clone()));
        }
        for (i, s) in self.shifts.iter().enumerate() {
            tensors.push((format!("shifts.{i}"), s.shift.shallow_clone()));
        }
        write_tensors(&dir.join(STATS_TENSORS), &tensors)?;
        let index = StatsIndex {
            n_cells: self.n_cells,
            pca_variance: self.pca.as_ref().map(|p| p.variance.clone()),
            controls: self
                .controls
                .iter()
                .map(|c| ControlEntry {
                    covariates: c.covariates.clone(),
                    n_kept: c.cells.size().first().copied().unwrap_or(0) as usize,
                    n_train: c.n_train,
                })
                .collect(),
            shifts: self
                .shifts
                .iter()
                .map(|s| ShiftEntry {
                    perturbation: s.perturbation.clone(),
                    covariates: s.covariates.clone(),
                    n_cells: s.n_cells,
                })
                .collect(),
        };
        crate::atomic::write_json(&dir.join(STATS_JSON), &index)
    }

    /// Reads the stats of a model folder, or `None` when it has none (a
    /// model saved before stats existed). Shapes are checked against `m`
    /// genes; the error names the file and tensor.
    pub fn load(dir: &Path, m: usize) -> Result<Option<DataStats>> {
        let json = dir.join(STATS_JSON);
        if !json.is_file() {
            return Ok(None);
        }
        let index: StatsIndex = crate::atomic::read_json(&json)?;
        let path = dir.join(STATS_TENSORS);
        let mut t = read_tensors(&path)?;
        let has_means = index.controls.is_empty() || t.contains_key("controls.0.mean");
        let has_response_std = t.contains_key("response_std");
        let mut take = |name: &str, shape: &[Option<i64>]| -> Result<Tensor> {
            let v = t.remove(name).ok_or_else(|| {
                Error::format(&path, name, "missing (the file does not match stats.json)")
            })?;
            let s = v.size();
            let ok = s.len() == shape.len()
                && s.iter().zip(shape).all(|(a, b)| b.is_none_or(|b| *a == b));
            if !ok {
                return Err(Error::format(
                    &path,
                    name,
                    format!("shape {s:?}, expected {shape:?} (None: any) for {m} genes"),
                ));
            }
            Ok(v.f_to_kind(Kind::Float)?)
        };
        let mi = Some(m as i64);
        let gene_mean = take("gene_mean", &[mi])?;
        let gene_std = take("gene_std", &[mi])?;
        let pca = match &index.pca_variance {
            Some(v) => Some(PcaBasis {
                mean: take("pca.mean", &[mi])?,
                components: take("pca.components", &[mi, Some(v.len() as i64)])?,
                variance: v.clone(),
            }),
            None => None,
        };
        // Stats written before the response space existed have no control
        // means and no response scale: the kept cells' mean and the gene
        // standard deviation stand in.
        let response_std = if has_response_std {
            take("response_std", &[mi])?
        } else {
            gene_std.f_clamp_min(RESPONSE_MIN_STD)?
        };
        let mut controls = Vec::new();
        for (i, c) in index.controls.iter().enumerate() {
            let cells = take(&format!("controls.{i}"), &[Some(c.n_kept as i64), mi])?;
            let mean = if has_means {
                take(&format!("controls.{i}.mean"), &[mi])?
            } else {
                cells.f_mean_dim(0, false, Kind::Float)?
            };
            controls.push(ControlSet {
                covariates: c.covariates.clone(),
                cells,
                n_train: c.n_train,
                mean,
            });
        }
        let mut shifts = Vec::new();
        for (i, s) in index.shifts.iter().enumerate() {
            shifts.push(MeanShift {
                perturbation: s.perturbation.clone(),
                covariates: s.covariates.clone(),
                n_cells: s.n_cells,
                shift: take(&format!("shifts.{i}"), &[mi])?,
            });
        }
        Ok(Some(DataStats {
            gene_mean,
            gene_std,
            pca,
            controls,
            shifts,
            response_std,
            n_cells: index.n_cells,
        }))
    }
}
