//! [`DataStats`] fitted on streamed training cells: the same statistics as
//! [`DataStats::fit`] (see `stats`), from two passes over the file in
//! bounded memory (per-gene and per-unit sums, then the response scale) and
//! a read of the kept control cells. Per-gene and per-unit sums add the
//! cells in the same order as in memory, so means, standard deviations,
//! control means and mean shifts are bit-identical; the response scale
//! agrees to f64 rounding. A PCA basis is not fitted (streaming serves
//! gene-space models).

use std::collections::BTreeMap;

use tch::Tensor;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::stats::{
    control_groups, kept_controls, ControlSet, DataStats, MeanShift, StatsOptions, RESPONSE_MIN_STD,
};
use crate::train::stream::StreamSource;

/// Cells per read in the statistics passes.
const PASS_CHUNK: usize = 8192;

impl DataStats {
    /// The stats of the cells of `ds` (opened for streaming: obs in
    /// memory), their values read from `src`.
    pub fn fit_streamed(
        ds: &Dataset,
        src: &StreamSource,
        opts: &StatsOptions,
    ) -> Result<DataStats> {
        let (n, m) = (ds.n_cells(), ds.n_genes());
        if n == 0 {
            return Err(Error::invalid(
                "training data",
                format!("{} has no cells", ds.source_name()),
            ));
        }
        if opts.pca_components.is_some() {
            return Err(Error::invalid(
                "streaming",
                "models that flow in PCA space need a PCA of every training cell; train them without streaming",
            ));
        }
        let cell_unit = ds.cell_units();
        let n_units = ds.units().len();
        let mut sum = vec![0f64; m];
        let mut sq = vec![0f64; m];
        // [U, m] per-unit sums.
        let mut unit_sum = vec![0f64; n_units * m];
        src.for_each_chunk(PASS_CHUNK, |first, x| {
            x.for_each_row(|i, row| {
                let u = cell_unit[first + i];
                let us = &mut unit_sum[u * m..(u + 1) * m];
                for (((s, q), a), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(us).zip(row) {
                    let v = v as f64;
                    *s += v;
                    *q += v * v;
                    *a += v;
                }
                Ok(())
            })
        })?;
        let (mean, std) = super::stats::mean_std(&sum, &sq, n);
        let unit_mean = |u: usize| -> Vec<f32> {
            let k = ds.units()[u].cells.len().max(1) as f64;
            unit_sum[u * m..(u + 1) * m]
                .iter()
                .map(|s| (s / k) as f32)
                .collect()
        };
        let reader = src.open()?;
        let mut controls = Vec::new();
        let mut control_mean: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for (key, cells, covariates) in control_groups(ds) {
            // Every control unit of the key (`control` and `ctrl` labels).
            let mut acc = vec![0f64; m];
            for (u, _) in ds
                .units()
                .iter()
                .enumerate()
                .filter(|(_, u)| u.is_control() && u.cov_key == key)
            {
                for (a, s) in acc.iter_mut().zip(&unit_sum[u * m..(u + 1) * m]) {
                    *a += s;
                }
            }
            let k = cells.len() as f64;
            let mu: Vec<f32> = acc.iter().map(|s| (s / k) as f32).collect();
            control_mean.insert(key.clone(), mu.clone());
            let kept = kept_controls(&cells, opts, controls.len());
            let x = src
                .read(&reader, &kept)?
                .rows_vec(&(0..kept.len()).collect::<Vec<_>>(), None)?;
            controls.push(ControlSet {
                covariates,
                cells: Tensor::f_from_slice(&x)?.f_reshape([kept.len() as i64, m as i64])?, // [r, m]
                n_train: cells.len(),
                mean: Tensor::f_from_slice(&mu)?,
            });
        }
        let mut shifts = Vec::new();
        for (u, unit) in ds.units().iter().enumerate() {
            if unit.perturbations.len() != 1 {
                continue;
            }
            let Some(base) = control_mean.get(&unit.cov_key) else {
                continue;
            };
            let shift: Vec<f32> = unit_mean(u).iter().zip(base).map(|(a, b)| a - b).collect();
            shifts.push(MeanShift {
                perturbation: unit.perturbations[0].clone(),
                covariates: unit.covariates.clone(),
                n_cells: unit.cells.len(),
                shift: Tensor::f_from_slice(&shift)?,
            });
        }
        // Second pass: the response scale.
        let unit_base: Vec<Option<&Vec<f32>>> = ds
            .units()
            .iter()
            .map(|u| control_mean.get(&u.cov_key))
            .collect();
        let mut rsq = vec![0f64; m];
        let mut rn = 0usize;
        src.for_each_chunk(PASS_CHUNK, |first, x| {
            x.for_each_row(|i, row| {
                let Some(mu) = unit_base[cell_unit[first + i]] else {
                    return Ok(());
                };
                for ((q, &v), &b) in rsq.iter_mut().zip(row).zip(mu.iter()) {
                    let d = (v - b) as f64;
                    *q += d * d;
                }
                rn += 1;
                Ok(())
            })
        })?;
        let rsd: Vec<f32> = rsq
            .iter()
            .map(|q| (q / rn.max(1) as f64).sqrt().max(RESPONSE_MIN_STD) as f32)
            .collect();
        Ok(DataStats {
            gene_mean: Tensor::f_from_slice(&mean)?,
            gene_std: Tensor::f_from_slice(&std)?,
            pca: None,
            controls,
            shifts,
            response_std: Tensor::f_from_slice(&rsd)?,
            n_cells: n,
        })
    }
}
