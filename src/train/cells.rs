//! `Cells`: the training (or validation) cells of a run on the model's
//! device, in the model's flow space (gene space for models without a
//! flow): expression `[n, d]`, the condition encoding of each unit
//! `[U, n_c]`, each cell's unit `[n]`, and which cells are controls of which
//! covariate key (for objectives that pair a cell with a control cell).
//!
//! Where the coordinates live: in a gene-sized space (log1p, standardized,
//! response) the cells keep the dataset's rows (dense or CSR, shared, not
//! copied) and each mini-batch is densified, moved to the device and encoded
//! there, so training never holds a second copy of X (nor a dense one of a
//! CSR X). These spaces encode elementwise (a subtraction and a division per
//! value, correctly rounded), so a row gets the same bits alone, in a batch
//! or in the old encode-everything-first chunks: results are bit-identical
//! to encoding up front, and CSR input trains exactly like dense. PCA spaces
//! encode by a matrix product whose bits depend on the chunk, so they still
//! encode once (8,192 rows at a time) into a small `[n, k]` tensor.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use crate::anndata::Expr;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{FlowSpace, Model};

/// Where the flow-space coordinates of the cells come from.
enum Coords {
    /// `[n, d]` encoded once.
    Encoded(Tensor),
    /// `[n, m]` rows (dense or CSR) densified and encoded per batch.
    PerBatch {
        /// The kept cells' expression, in position order.
        x: Expr,
        /// `[n]` each cell's covariate index in `space`.
        cov: Vec<i64>,
        space: FlowSpace,
        device: Device,
    },
}

/// A dataset's cells on a device, in flow space.
pub struct Cells {
    coords: Coords,
    /// `[U, n_c]` condition encoding of each unit of the source dataset.
    pub unit_cond: Tensor,
    /// `[n]` i64 unit of each cell.
    pub cell_unit: Tensor,
    /// Covariate-key index of each cell (CPU).
    pub cell_cov: Vec<usize>,
    /// Per covariate key, the positions of its control cells.
    pub controls_by_cov: Vec<Vec<i64>>,
    /// Positions of the perturbed (non-control) cells.
    pub perturbed: Vec<i64>,
    /// The covariate keys, in index order.
    pub cov_keys: Vec<String>,
    /// Per unit of the source dataset, the positions of its cells.
    pub unit_cells: Vec<Vec<i64>>,
    /// Per unit, its covariate-key index.
    pub unit_cov: Vec<usize>,
}

impl Cells {
    /// The rows `rows` (all when `None`) of `ds` on the model's device,
    /// mapped into the model's flow space. With `skip_unknown`, cells whose
    /// condition the model cannot encode (a perturbation or covariate value
    /// it never saw) are left out instead of being an error (validation
    /// cells).
    pub fn new(
        model: &Model,
        ds: &Dataset,
        rows: Option<&[usize]>,
        skip_unknown: bool,
    ) -> Result<Cells> {
        let device = model.device();
        let units = ds.units();
        let mut unit_ok = vec![true; units.len()];
        if skip_unknown {
            for (ok, u) in unit_ok.iter_mut().zip(units) {
                *ok = model.vocab.encode(&u.condition()).is_ok();
            }
        }
        let rows: Vec<usize> = match rows {
            Some(r) => r.to_vec(),
            None => (0..ds.n_cells()).collect(),
        };
        let rows: Vec<usize> = rows
            .into_iter()
            .filter(|&r| unit_ok[ds.cell_units()[r]])
            .collect();
        let genes = crate::model::FlowSpace::Genes;
        let space = if model.config.family() == crate::model::Family::Flow {
            model.flow_space()?
        } else {
            &genes
        };
        // Per unit, its row in a covariate-dependent space (computed only
        // where needed: other spaces ignore it).
        let unit_space_cov: Vec<i64> = if space.needs_covariates() {
            units
                .iter()
                .zip(&unit_ok)
                .map(|(u, ok)| {
                    if *ok {
                        space.covariate_index(&u.covariates)
                    } else {
                        Ok(0)
                    }
                })
                .collect::<Result<_>>()?
        } else {
            vec![0; units.len()]
        };
        let coords = if space.is_elementwise() {
            Coords::PerBatch {
                x: ds.x.select(&rows)?,
                cov: rows
                    .iter()
                    .map(|&r| unit_space_cov[ds.cell_units()[r]])
                    .collect(),
                space: space.shallow_clone(),
                device,
            }
        } else {
            // Encode in chunks so a PCA space never holds the gene-space
            // copy of every cell at once on the device.
            let mut parts = Vec::new();
            for chunk in rows.chunks(8192) {
                let x = crate::model::stats::rows_tensor(ds, chunk)?.f_to_device(device)?; // [c, m]
                let cov: Vec<i64> = chunk
                    .iter()
                    .map(|&r| unit_space_cov[ds.cell_units()[r]])
                    .collect();
                let cov = Tensor::f_from_slice(&cov)?; // [c]
                parts.push(space.encode(&x, Some(&cov))?); // [c, d]
            }
            Coords::Encoded(if parts.is_empty() {
                Tensor::f_zeros([0, model.flow_dim() as i64], (tch::Kind::Float, device))?
            } else {
                Tensor::f_cat(&parts, 0)? // [n, d]
            })
        };
        // Units the model cannot encode get a null row; no kept cell uses it.
        let mut enc = vec![0f32; units.len() * model.cond_dim()];
        for ((u, ok), chunk) in units
            .iter()
            .zip(&unit_ok)
            .zip(enc.chunks_mut(model.cond_dim().max(1)))
        {
            if *ok {
                model
                    .vocab
                    .encode_into(&u.condition(), chunk)
                    .map_err(|e| {
                        Error::invalid(
                            "training data",
                            format!(
                                "{} cannot be encoded with the model's vocabulary: {e}",
                                ds.source_name()
                            ),
                        )
                    })?;
            }
        }
        let unit_cond = Tensor::f_from_slice(&enc)?
            .f_reshape([units.len() as i64, model.cond_dim() as i64])?
            .f_to_device(device)?; // [U, n_c]
        let cu: Vec<i64> = rows.iter().map(|&r| ds.cell_units()[r] as i64).collect();
        let cell_unit = Tensor::f_from_slice(&cu)?.f_to_device(device)?; // [n]
        let cov_keys = ds.cov_keys();
        let mut controls_by_cov = vec![Vec::new(); cov_keys.len()];
        let mut perturbed = Vec::new();
        let mut cell_cov = Vec::with_capacity(rows.len());
        let mut unit_cells = vec![Vec::new(); units.len()];
        let unit_cov: Vec<usize> = units
            .iter()
            .map(|u| cov_keys.binary_search(&u.cov_key).unwrap_or(0))
            .collect();
        for (pos, &r) in rows.iter().enumerate() {
            let u = ds.unit_of(r);
            unit_cells[ds.cell_units()[r]].push(pos as i64);
            let k = cov_keys.binary_search(&u.cov_key).unwrap_or(0);
            cell_cov.push(k);
            if u.is_control() {
                controls_by_cov[k].push(pos as i64);
            } else {
                perturbed.push(pos as i64);
            }
        }
        Ok(Cells {
            coords,
            unit_cond,
            cell_unit,
            cell_cov,
            controls_by_cov,
            perturbed,
            cov_keys,
            unit_cells,
            unit_cov,
        })
    }

    /// No cells (models without a flow).
    pub fn empty() -> Cells {
        Cells {
            coords: Coords::Encoded(Tensor::new()),
            unit_cond: Tensor::new(),
            cell_unit: Tensor::new(),
            cell_cov: Vec::new(),
            controls_by_cov: Vec::new(),
            perturbed: Vec::new(),
            cov_keys: Vec::new(),
            unit_cells: Vec::new(),
            unit_cov: Vec::new(),
        }
    }

    /// Number of cells.
    pub fn len(&self) -> i64 {
        match &self.coords {
            Coords::Encoded(x) if !x.defined() => 0,
            Coords::Encoded(x) => x.size().first().copied().unwrap_or(0),
            Coords::PerBatch { x, .. } => x.nrows() as i64,
        }
    }

    /// True when there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `d`, the flow-space width.
    pub fn dim(&self) -> i64 {
        match &self.coords {
            Coords::Encoded(x) if !x.defined() => 0,
            Coords::Encoded(x) => x.size().get(1).copied().unwrap_or(0),
            Coords::PerBatch { x, .. } => x.ncols() as i64,
        }
    }

    /// The device the coordinates are on.
    pub fn device(&self) -> Device {
        match &self.coords {
            Coords::Encoded(x) => x.device(),
            Coords::PerBatch { device, .. } => *device,
        }
    }

    /// Flow-space coordinates `[b, d]` and condition encodings `[b, n_c]`
    /// of the cells `idx`.
    pub fn batch(&self, idx: &[i64]) -> Result<(Tensor, Tensor)> {
        let x1 = self.rows(idx)?; // [b, d]
        let it = Tensor::f_from_slice(idx)?.f_to_device(self.cell_unit.device())?; // [b]
        let units = self.cell_unit.f_index_select(0, &it)?; // [b]
        let cond = self.unit_cond.f_index_select(0, &units)?; // [b, n_c]
        Ok((x1, cond))
    }

    /// One control cell of the same covariate key for each cell of `idx`,
    /// drawn uniformly with replacement from a ChaCha8 stream seeded with
    /// `seed` (PerturBench's pairing: a fresh random control partner every
    /// time a cell is used). A key without control cells is an error naming
    /// it.
    pub fn control_partners(&self, idx: &[i64], seed: u64) -> Result<Vec<i64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        idx.iter()
            .map(|&i| {
                let k = self.cell_cov[i as usize];
                let pool = &self.controls_by_cov[k];
                if pool.is_empty() {
                    return Err(Error::invalid(
                        "training data",
                        format!(
                            "covariate '{}' has perturbed cells but no control cells to pair them with",
                            self.cov_keys[k]
                        ),
                    ));
                }
                Ok(pool[rng.gen_range(0..pool.len())])
            })
            .collect()
    }

    /// Units with cells here whose covariate key has control cells here
    /// (the conditions an OT coupling can pair), excluding control units.
    pub fn pairable_units(&self) -> Vec<usize> {
        (0..self.unit_cells.len())
            .filter(|&u| {
                let cells = &self.unit_cells[u];
                !cells.is_empty()
                    && !self.controls_by_cov[self.unit_cov[u]].is_empty()
                    && self.perturbed.binary_search(&cells[0]).is_ok()
            })
            .collect()
    }

    /// Condition encodings `[b, n_c]` of the cells `idx`.
    pub fn cond(&self, idx: &[i64]) -> Result<Tensor> {
        let it = Tensor::f_from_slice(idx)?.f_to_device(self.cell_unit.device())?; // [b]
        let units = self.cell_unit.f_index_select(0, &it)?; // [b]
        Ok(self.unit_cond.f_index_select(0, &units)?) // [b, n_c]
    }

    /// Flow-space coordinates `[b, d]` of the cells `idx` whose gene
    /// values `values` `[b, m]` (row-major) were read elsewhere (streamed
    /// training); only for gene-sized spaces, whose cells are encoded per
    /// batch.
    pub fn encode_values(&self, idx: &[i64], values: &[f32]) -> Result<Tensor> {
        let Coords::PerBatch {
            cov, space, device, ..
        } = &self.coords
        else {
            return Err(Error::invalid(
                "streaming",
                "models that flow in PCA space encode every cell up front; train them without streaming",
            ));
        };
        let pos = self.positions(idx, cov.len())?;
        let m = self.dim();
        if values.len() != pos.len() * m as usize {
            return Err(Error::Mismatch(format!(
                "{} values for {} cells of {m} genes",
                values.len(),
                pos.len()
            )));
        }
        let dense = Tensor::f_from_slice(values)?
            .f_reshape([pos.len() as i64, m])?
            .f_to_device(*device)?; // [b, m]
        let c: Vec<i64> = pos.iter().map(|&p| cov[p]).collect();
        let c = Tensor::f_from_slice(&c)?; // [b]
        space.encode(&dense, Some(&c)) // [b, m]
    }

    /// `idx` as positions below `n`, or an error.
    fn positions(&self, idx: &[i64], n: usize) -> Result<Vec<usize>> {
        idx.iter()
            .map(|&i| usize::try_from(i).ok().filter(|&p| p < n))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                Error::invalid("cell position", format!("a batch index is outside 0..{n}"))
            })
    }

    /// Flow-space coordinates of the cells `idx` `[b, d]` (densified and
    /// encoded here for CSR data in a gene-sized space).
    pub fn rows(&self, idx: &[i64]) -> Result<Tensor> {
        match &self.coords {
            Coords::Encoded(x) => {
                let it = Tensor::f_from_slice(idx)?.f_to_device(x.device())?; // [b]
                Ok(x.f_index_select(0, &it)?)
            }
            Coords::PerBatch {
                x,
                cov,
                space,
                device,
            } => {
                let pos = self.positions(idx, cov.len())?;
                let m = x.ncols() as i64;
                let dense = Tensor::f_from_slice(&x.rows_vec(&pos, None)?)?
                    .f_reshape([pos.len() as i64, m])?
                    .f_to_device(*device)?; // [b, m]
                let c: Vec<i64> = pos.iter().map(|&p| cov[p]).collect();
                let c = Tensor::f_from_slice(&c)?; // [b]
                space.encode(&dense, Some(&c)) // [b, m]
            }
        }
    }
}
