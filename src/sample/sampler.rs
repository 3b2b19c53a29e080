//! The `Sampler`: generates cells for conditions by integrating the learned
//! ODE from Gaussian noise (model.md, "Flow matching", sampling):
//!
//! ```text
//! x0 ~ N(0, I)                                   [n, m], seeded per condition
//! v  = v_u + w (v_c - v_u)                        classifier-free guidance
//!      v_c = v_theta(x, t, Enc(c)), v_u = v_theta(x, t, 0)
//! x1 = ODE-solve(v, x0, t: 0 -> 1, steps)        Euler (default), midpoint,
//!                                                  Heun or adaptive dopri5
//! ```
//!
//! With `w = 1` only the conditional pass runs; otherwise the conditional and
//! unconditional rows go through ONE forward of doubled batch. Everything
//! runs under no-grad, in chunks whose size comes from a memory budget: the
//! model's estimated activation bytes per row (e.g.
//! [`UNetVelocity::activation_bytes_per_row`](crate::model::UNetVelocity::activation_bytes_per_row)),
//! doubled as a margin, into `memory` bytes (default: a quarter of the
//! machine's available memory, at most 8 GiB, on the CPU; 4 GiB on CUDA),
//! optionally capped at `max_batch` rows.
//!
//! Seeding: the noise of condition `c` is drawn on the CPU (ChaCha8) from
//! `(seed, c)`, so a condition's cells do not depend on which other
//! conditions are requested, on the batch size, or on the device. The solvers
//! draw nothing from libtorch; sampling still holds
//! [`rng_guard`](crate::device::rng_guard) (seeded with `seed`) so that a
//! velocity field that did draw would reproduce too.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Tensor};

use crate::anndata::{AnnData, DataFrame};
use crate::data::{obs_for_conditions, Condition, Dataset, ObsColumns, Part, Split};
use crate::error::{Error, Result};
use crate::model::{Family, Model, ModelConfig, VelocityField};
pub use crate::sample::config::{parse_bytes, SampleConfig};
use crate::sample::solver::Integration;
use crate::train::derive_seed;

/// Generates cells from a trained [`Model`].
#[derive(Debug, Clone)]
pub struct Sampler {
    pub config: SampleConfig,
    /// Velocity evaluations and steps of the integrations so far (summed
    /// over batches).
    pub cost: std::cell::Cell<Integration>,
    /// Integrated batches so far.
    pub batches: std::cell::Cell<usize>,
}

/// `x` `[n, m]` (any device/float kind) as an f32 array.
fn tensor_to_array(x: &Tensor, n: usize, m: usize) -> Result<Array2<f32>> {
    let x = x
        .f_to_kind(Kind::Float)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?; // [n, m]
    let mut buf = vec![0f32; n * m];
    x.f_copy_data(&mut buf, n * m)?;
    Array2::from_shape_vec((n, m), buf).map_err(|e| Error::Mismatch(e.to_string()))
}

/// Seed-derivation tags of the sampler.
mod tags {
    /// The control cells a floor starts from.
    pub const CONTROLS: u64 = 0xc047_2015;
}

/// A 64-bit FNV-1a hash of a condition (its perturbations and covariates).
fn condition_hash(c: &Condition) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in c
        .perturbations
        .iter()
        .chain(std::iter::once(&"@".to_string()))
        .chain(c.covariates.iter())
    {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl Sampler {
    /// A sampler with `config`.
    pub fn new(config: SampleConfig) -> Result<Sampler> {
        config.validate()?;
        Ok(Sampler {
            config,
            cost: Default::default(),
            batches: Default::default(),
        })
    }

    /// The source noise of `cond`: `[n, d]` f32 on the CPU, from a ChaCha8
    /// stream seeded with `(seed, cond)` (not libtorch's process-wide
    /// generator, so other threads cannot disturb it).
    pub fn source_noise(&self, cond: &Condition, n: usize, d: usize) -> Result<Tensor> {
        let m = d;
        let mut rng =
            ChaCha8Rng::seed_from_u64(derive_seed(self.config.seed, &[condition_hash(cond)]));
        let v: Vec<f32> = (0..n * m)
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect();
        Ok(Tensor::f_from_slice(&v)?.f_reshape([n as i64, m as i64])?) // [n, m]
    }

    /// Where the flow of `cond` starts: `[n, d]` on the CPU — Gaussian
    /// noise ([`source_noise`](Self::source_noise)), or for FM PCA OT control
    /// cells of the condition's covariate in flow space (drawn from the
    /// model's reservoir with a seed from `(seed, cond)`).
    pub fn source(&self, model: &Model, cond: &Condition, n: usize, d: usize) -> Result<Tensor> {
        if model.config.ot().is_none() {
            return self.source_noise(cond, n, d);
        }
        let seed = derive_seed(self.config.seed, &[condition_hash(cond), tags::CONTROLS]);
        let x = model.stats()?.draw_controls(cond, n, seed)?; // [n, m]
        let _guard = tch::no_grad_guard();
        let space = model.flow_space()?;
        let k = space.covariate_index(&cond.covariates)?;
        let cov = Tensor::f_full([n as i64], k, (Kind::Int64, Device::Cpu))?; // [n]
        let z = space.encode(&x.f_to_device(model.device())?, Some(&cov))?; // [n, d]
        Ok(z.f_to_device(Device::Cpu)?)
    }

    /// The guided velocity of `net` at `x` `[b, m]`, time `t`, condition
    /// encodings `cond` `[b, n_c]` and null conditions `null` `[b, n_c]`
    /// -> `[b, m]`.
    fn guided_velocity(
        &self,
        net: &dyn VelocityField,
        x: &Tensor,
        t: f64,
        cond: &Tensor,
        null: &Tensor,
    ) -> Result<Tensor> {
        let b = x.size().first().copied().unwrap_or(0);
        let w = self.config.guidance;
        if !self.config.guided() {
            let tt = Tensor::f_full([b], t, (Kind::Float, x.device()))?; // [b]
            return net.velocity(x, &tt, cond, false);
        }
        let xx = Tensor::f_cat(&[x, x], 0)?; // [2b, m]
        let cc = Tensor::f_cat(&[cond, null], 0)?; // [2b, n_c]
        let tt = Tensor::f_full([2 * b], t, (Kind::Float, x.device()))?; // [2b]
        let v = net.velocity(&xx, &tt, &cc, false)?; // [2b, m]
        let v_c = v.f_narrow(0, 0, b)?; // [b, m]
        let v_u = v.f_narrow(0, b, b)?; // [b, m]
        Ok(v_u.f_add(&v_c.f_sub(&v_u)?.f_mul_scalar(w)?)?)
    }

    /// Integrates one batch from source noise `x0` `[b, m]` under condition
    /// encodings `cond` `[b, n_c]` with guidance, under no-grad -> `[b, m]`
    /// (before clipping). With `w = 1` each solver evaluation is one forward
    /// of `b` rows; otherwise one forward of `2b` rows (conditional rows
    /// first, then the null condition).
    pub fn integrate_batch(
        &self,
        net: &dyn VelocityField,
        x0: &Tensor,
        cond: &Tensor,
    ) -> Result<Tensor> {
        self.config.validate()?;
        let _rng = crate::device::rng_guard(Some(self.config.seed));
        let _guard = tch::no_grad_guard();
        let null = cond.f_zeros_like()?; // [b, n_c]
        let (x, cost) = self.config.solver.integrate(
            x0.shallow_clone(),
            self.config.steps,
            self.config.tolerance(),
            |x, t| self.guided_velocity(net, x, t, cond, &null),
        )?;
        let sum = self.cost.get();
        self.cost.set(Integration {
            nfe: sum.nfe + cost.nfe,
            steps: sum.steps + cost.steps,
            rejected: sum.rejected + cost.rejected,
        });
        self.batches.set(self.batches.get() + 1);
        Ok(x)
    }

    /// Mean velocity evaluations per integrated batch so far (0 before
    /// any).
    pub fn mean_nfe(&self) -> f64 {
        self.cost.get().nfe as f64 / self.batches.get().max(1) as f64
    }

    /// Generates `n_each` cells for every condition in `conds` (in order):
    /// `[conds.len() * n_each, m]`. Unknown perturbations or covariate values
    /// are errors that list the known ones.
    pub fn sample_matrix(
        &self,
        model: &Model,
        conds: &[Condition],
        n_each: usize,
    ) -> Result<Array2<f32>> {
        self.config.validate()?;
        match model.config.family() {
            Family::Flow => self.sample_flow(model, conds, n_each),
            Family::Floor | Family::Response => self.sample_from_controls(model, conds, n_each),
        }
    }

    /// The models that start from control cells of each condition's
    /// covariate (drawn from the model's reservoir with a seed from
    /// `(seed, condition)`, as PerturBench maps up to 1000 control cells per
    /// covariate): the `control` floor returns them, `additive` adds the
    /// summed single-perturbation shifts, the response baselines map them
    /// through their network -> `[conds.len() * n_each, m]`.
    fn sample_from_controls(
        &self,
        model: &Model,
        conds: &[Condition],
        n_each: usize,
    ) -> Result<Array2<f32>> {
        if self.config.guided() {
            return Err(Error::invalid(
                "guidance",
                format!(
                    "w = {} applies to flow models; {} has no guidance (use w = 1)",
                    self.config.guidance,
                    model.config.display_name()
                ),
            ));
        }
        let enc = model.encode(conds)?; // [C, n_c]; unknown perturbations / covariates
        let stats = model.stats()?;
        let m = model.n_genes();
        let mut out = Array2::<f32>::zeros((conds.len() * n_each, m));
        let _guard = tch::no_grad_guard();
        for (i, c) in conds.iter().enumerate() {
            if crate::progress::interrupted() {
                return Err(Error::Interrupted);
            }
            let seed = derive_seed(self.config.seed, &[condition_hash(c), tags::CONTROLS]);
            let mut x = stats.draw_controls(c, n_each, seed)?; // [n, m]
            match model.config.family() {
                Family::Response => {
                    let row = enc.f_narrow(0, i as i64, 1)?; // [1, n_c]
                    let mut parts = Vec::new();
                    let chunk = self.config.chunk_cells(model);
                    for start in (0..n_each).step_by(chunk) {
                        let len = chunk.min(n_each - start) as i64;
                        let xb = x
                            .f_narrow(0, start as i64, len)?
                            .f_to_device(model.device())?;
                        let cb = row.f_expand([len, row.size()[1]], false)?; // [b, n_c]
                        parts.push(
                            model
                                .predict_response(&xb, &cb, false)?
                                .f_to_device(Device::Cpu)?,
                        );
                    }
                    x = Tensor::f_cat(&parts, 0)?; // [n, m]
                }
                _ if matches!(model.config, ModelConfig::Additive(_)) => {
                    x = x.f_add(&stats.additive_shift(c)?.f_unsqueeze(0)?)?;
                }
                _ if matches!(model.config, ModelConfig::Mean(_)) && !c.is_control() => {
                    x = x.f_add(&stats.mean_shift(c)?.f_unsqueeze(0)?)?;
                }
                _ => {}
            }
            if self.config.clip_negative {
                x = x.f_clamp_min(0.0)?;
            }
            let block = tensor_to_array(&x, n_each, m)?;
            out.slice_mut(ndarray::s![i * n_each..(i + 1) * n_each, ..])
                .assign(&block);
        }
        Ok(out)
    }

    /// Flow models: noise in the flow space, ODE, decoded to genes.
    fn sample_flow(
        &self,
        model: &Model,
        conds: &[Condition],
        n_each: usize,
    ) -> Result<Array2<f32>> {
        let m = model.n_genes();
        let d = model.flow_dim();
        let space = model.flow_space()?;
        let enc = model.encode(conds)?; // [C, n_c]
                                        // Each condition's row in a covariate-dependent flow space.
        let space_cov: Vec<i64> = conds
            .iter()
            .map(|c| space.covariate_index(&c.covariates))
            .collect::<Result<_>>()?;
        let space_cov = Tensor::f_from_slice(&space_cov)?.f_to_device(model.device())?; // [C]
        let total = conds.len() * n_each;
        let mut out = Array2::<f32>::zeros((total, m));
        if total == 0 {
            return Ok(out);
        }
        let chunk = self.config.chunk_cells(model);
        let _rng = crate::device::rng_guard(Some(self.config.seed));
        let _guard = tch::no_grad_guard();
        let bar = crate::progress::bar(total as u64, "sample");
        let mut cached: Option<(usize, Tensor)> = None;
        let mut start = 0usize;
        while start < total {
            if crate::progress::interrupted() {
                bar.finish_and_clear();
                return Err(Error::Interrupted);
            }
            let end = (start + chunk).min(total);
            // Source noise and condition rows of this chunk.
            let mut parts = Vec::new();
            let mut rows = Vec::with_capacity(end - start);
            let mut r = start;
            while r < end {
                let ci = r / n_each;
                let stop = ((ci + 1) * n_each).min(end);
                if cached.as_ref().map(|(c, _)| *c) != Some(ci) {
                    cached = Some((ci, self.source(model, &conds[ci], n_each, d)?));
                }
                if let Some((_, noise)) = &cached {
                    parts.push(noise.f_narrow(0, (r - ci * n_each) as i64, (stop - r) as i64)?);
                }
                rows.extend(std::iter::repeat_n(ci as i64, stop - r));
                r = stop;
            }
            let x0 = Tensor::f_cat(&parts, 0)?.f_to_device(model.device())?; // [b, d]
            let idx = Tensor::f_from_slice(&rows)?.f_to_device(model.device())?; // [b]
            let cond = enc.f_index_select(0, &idx)?; // [b, n_c]
            let z1 = self.integrate_batch(model, &x0, &cond)?; // [b, d]
            let cov = space_cov.f_index_select(0, &idx)?; // [b]
            let x1 = space.decode(&z1.f_to_kind(Kind::Float)?, Some(&cov))?; // [b, m]
            let x1 = if self.config.clip_negative {
                x1.f_clamp_min(0.0)?
            } else {
                x1
            };
            let block = tensor_to_array(&x1, end - start, m)?;
            out.slice_mut(ndarray::s![start..end, ..]).assign(&block);
            bar.inc((end - start) as u64);
            start = end;
        }
        bar.finish_and_clear();
        Ok(out)
    }

    /// Generates `n_each` cells per condition and returns them as AnnData:
    /// X `[conds.len() * n_each, m]`, obs with the model's perturbation and
    /// covariate columns, var names = the model's genes, and the settings in
    /// `uns["primeflow_sample"]`. Unseen combinations of seen perturbations
    /// work; unknown perturbations are errors.
    pub fn sample_conditions(
        &self,
        model: &Model,
        conds: &[Condition],
        n_each: usize,
    ) -> Result<AnnData> {
        let x = self.sample_matrix(model, conds, n_each)?;
        let columns = ObsColumns {
            perturbation: model.vocab.perturbation_column.clone(),
            covariates: model.vocab.covariate_columns.clone(),
            control: model.vocab.control.clone(),
        };
        let per_cell: Vec<Condition> = conds
            .iter()
            .flat_map(|c| std::iter::repeat_n(c.clone(), n_each))
            .collect();
        let obs = obs_for_conditions(&columns, &per_cell)?;
        let mut var = DataFrame::with_index(model.genes.clone());
        var.index_name = "gene".into();
        let mut uns = serde_json::Map::new();
        let mut info = serde_json::to_value(&self.config)
            .map_err(|e| Error::invalid("sample config", e.to_string()))?;
        if let Some(o) = info.as_object_mut() {
            o.insert("cells_per_unit".into(), n_each.into());
            o.insert("mean_nfe".into(), self.mean_nfe().into());
            // .h5ad uns has no null: unset options are left out.
            o.retain(|_, v| !v.is_null());
            o.insert(
                "checkpoint".into(),
                model
                    .source
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
                    .into(),
            );
        }
        uns.insert("primeflow_sample".into(), info);
        Ok(AnnData {
            x: x.into(),
            obs,
            var,
            layers: Default::default(),
            uns,
        })
    }

    /// Generates `n_each` cells for every non-control unit of `ds` (a whole
    /// file or a split part selected from one), in the dataset's unit order
    /// (see [`sample_conditions`](Self::sample_conditions)). The one way the
    /// CLI and the scripting layer sample a dataset's units.
    pub fn sample_dataset(&self, model: &Model, ds: &Dataset, n_each: usize) -> Result<AnnData> {
        model.check_data(ds)?;
        let conds: Vec<Condition> = ds
            .units()
            .iter()
            .filter(|u| !u.is_control())
            .map(|u| u.condition())
            .collect();
        if conds.is_empty() {
            return Err(Error::invalid(
                "sample target",
                format!("{} has no perturbed units", ds.source_name()),
            ));
        }
        self.sample_conditions(model, &conds, n_each)
    }

    /// The non-control units of `part` in `ds`, in the dataset's unit order.
    pub fn split_conditions(ds: &Dataset, split: &Split, part: Part) -> Result<Vec<Condition>> {
        if split.parts.len() != ds.n_cells() {
            return Err(Error::Mismatch(format!(
                "the split covers {} cells, {} has {}",
                split.parts.len(),
                ds.source_name(),
                ds.n_cells()
            )));
        }
        Ok(ds
            .units()
            .iter()
            .filter(|u| !u.is_control() && u.cells.first().is_some_and(|&c| split.parts[c] == part))
            .map(|u| u.condition())
            .collect())
    }

    /// Generates `n_each` cells for every non-control unit of `part` of the
    /// split of `ds` (see [`sample_conditions`](Self::sample_conditions)).
    pub fn sample_split(
        &self,
        model: &Model,
        ds: &Dataset,
        split: &Split,
        part: Part,
        n_each: usize,
    ) -> Result<AnnData> {
        model.check_data(ds)?;
        let conds = Self::split_conditions(ds, split, part)?;
        if conds.is_empty() {
            return Err(Error::invalid(
                "split",
                format!(
                    "the {} part of {} has no perturbed units",
                    part.as_str(),
                    ds.source_name()
                ),
            ));
        }
        self.sample_conditions(model, &conds, n_each)
    }
}
