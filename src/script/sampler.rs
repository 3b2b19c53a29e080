//! `Sampler`: generates cells from a trained model by integrating the
//! learned ODE with classifier-free guidance ([`crate::sample::Sampler`]).
//! The result is a `Dataset` of generated cells with the model's
//! perturbation and covariate columns, ready for `Metrics().evaluate`.
//!
//! ```rhai
//! let pred = Sampler().sample(model, split.test, #{cells: 1000, guidance: 3.0, steps: 100, solver: "euler", seed: 0});
//! ```

use std::path::Path;
use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Dynamic, Map};

use super::condition::conditions_arg;
use super::convert::{from_json, to_json};
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, to_rhai, RhaiResult};
use super::model::ModelHandle;
use crate::data::{Condition, Dataset, ObsColumns};
use crate::sample::{SampleConfig, Sampler, Solver};

/// A sampler handle (immutable settings; cheap to clone) and the mean
/// velocity evaluations per batch of its last `sample` call.
#[derive(Debug, Clone)]
pub struct SamplerHandle(pub Rc<SampleConfig>, pub Rc<std::cell::Cell<f64>>);

/// `base` with the keys of `map` applied: the keys are `SampleConfig`'s
/// field names (`cells_per_unit`, `guidance`, `steps`, `solver`, `rtol`,
/// `atol`, `memory`, `max_batch`, `seed`, `clip_negative`), as in a
/// `--config` file; `cells` is accepted for `cells_per_unit` and `memory`
/// may be a size string (`"2G"`). Unknown keys are errors listing the valid
/// ones.
fn apply(base: &SampleConfig, map: Map, what: &str) -> RhaiResult<SampleConfig> {
    let mut over = serde_json::Map::new();
    for (k, v) in map {
        let key = match k.as_str() {
            "cells" => "cells_per_unit",
            other => other,
        };
        let value = match key {
            "memory" if v.is_string() => serde_json::json!(crate::sample::sampler::parse_bytes(
                &v.to_string()
            )
            .map_err(to_rhai)?),
            "solver" => serde_json::json!(Solver::parse(&v.to_string()).map_err(to_rhai)?),
            _ => to_json(&v)?,
        };
        over.insert(key.to_string(), value);
    }
    let c: SampleConfig =
        crate::overlay::overlay(base, &serde_json::Value::Object(over), what).map_err(to_rhai)?;
    if c.cells_per_unit == 0 {
        return Err(invalid(
            &format!("{what} 'cells_per_unit'"),
            "must be at least 1",
        ));
    }
    c.validate().map_err(to_rhai)?;
    Ok(c)
}

/// Generates cells for `target` (a Dataset: its perturbed units; or
/// conditions) with `cfg`.
fn sample(
    cfg: &SampleConfig,
    model: &ModelHandle,
    target: &Dynamic,
) -> RhaiResult<(DatasetHandle, f64)> {
    let label = model.type_label();
    model.with_model(|m| {
        let sampler = Sampler::new(cfg.clone()).map_err(to_rhai)?;
        let _rng = crate::device::rng_guard(None);
        let n = cfg.cells_per_unit;
        let ad = if let Some(ds) = target.read_lock::<DatasetHandle>() {
            guard(|| sampler.sample_dataset(m, &ds.0, n))?
        } else {
            let conds: Vec<Condition> = conditions_arg(target)?
                .iter()
                .map(|c| c.resolve(&m.vocab))
                .collect::<RhaiResult<_>>()?;
            guard(|| sampler.sample_conditions(m, &conds, n))?
        };
        let columns = ObsColumns {
            perturbation: m.vocab.perturbation_column.clone(),
            covariates: m.vocab.covariate_columns.clone(),
            control: m.vocab.control.clone(),
        };
        let name = format!(
            "{label} samples (w={}, {} steps, seed {})",
            cfg.guidance, cfg.steps, cfg.seed
        );
        let ds = guard(|| Dataset::from_anndata(ad, columns, Some(Path::new(&name)), true))?;
        Ok((DatasetHandle::new(ds), sampler.mean_nfe()))
    })
}

#[export_module]
pub mod sampler_api {
    use super::*;

    /// Generates cells from a trained model: Euler (or Heun) integration of
    /// the learned ODE from Gaussian noise, with classifier-free guidance
    /// weight w (1: purely conditional).
    /// ```rhai
    /// let sampler = Sampler(#{guidance: 3.0, steps: 100});
    /// let pred = sampler.sample(model, split.test);
    /// ```
    pub type Sampler = SamplerHandle;

    /// A sampler with the paper's settings (100 Euler steps, w = 1, 1000
    /// cells per condition, seed 0).
    /// ```rhai
    /// let sampler = Sampler();
    /// ```
    #[rhai_fn(name = "Sampler")]
    pub fn new_default() -> Sampler {
        SamplerHandle(Rc::new(SampleConfig::default()), Rc::default())
    }

    /// A sampler from settings: `cells` (per condition), `guidance`,
    /// `steps`, `solver` (`euler`, `midpoint`, `heun`, `dopri5` with `rtol`,
    /// `atol`), `seed`, `memory` (bytes per forward, e.g. `"2G"`), `max_batch`,
    /// `clip_negative`.
    /// ```rhai
    /// let sampler = Sampler(#{cells: 500, guidance: 3.0, solver: "heun", seed: 1});
    /// ```
    #[rhai_fn(name = "Sampler", return_raw)]
    pub fn new_sampler(settings: Map) -> RhaiResult<Sampler> {
        Ok(SamplerHandle(
            Rc::new(apply(
                &SampleConfig::default(),
                settings,
                "Sampler settings",
            )?),
            Rc::default(),
        ))
    }

    /// Generates cells for every perturbed unit of a dataset (e.g. the
    /// test part of a split), or for conditions (a string, a `Condition`
    /// or an array, unseen combinations included). Returns a `Dataset`.
    /// ```rhai
    /// let pred = Sampler().sample(model, split.test);
    /// let combo = Sampler().sample(model, ["KLF1+MAP2K6 @ k562"]);
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn sample(
        s: &mut Sampler,
        model: ModelHandle,
        target: Dynamic,
    ) -> RhaiResult<DatasetHandle> {
        let (ds, nfe) = super::sample(&s.0, &model, &target)?;
        s.1.set(nfe);
        Ok(ds)
    }

    /// As `sample`, with settings for this call (`cells`, `guidance`,
    /// `steps`, `solver`, `seed`, `max_batch`, `clip_negative`).
    /// ```rhai
    /// let pred = Sampler().sample(model, split.test, #{cells: 1000, guidance: 3.0, steps: 100, solver: "euler", seed: 0});
    /// ```
    #[rhai_fn(name = "sample", pure, return_raw)]
    pub fn sample_with(
        s: &mut Sampler,
        model: ModelHandle,
        target: Dynamic,
        settings: Map,
    ) -> RhaiResult<DatasetHandle> {
        let cfg = apply(&s.0, settings, "sample settings")?;
        let (ds, nfe) = super::sample(&cfg, &model, &target)?;
        s.1.set(nfe);
        Ok(ds)
    }

    /// Velocity evaluations per integrated batch in this sampler's last
    /// `sample` call (mean over batches; 0 before any). With guidance each
    /// evaluation is one forward of a doubled batch.
    /// ```rhai
    /// let s = Sampler(#{solver: "dopri5", rtol: 1e-3, atol: 1e-3});
    /// let pred = s.sample(model, split.test);
    /// print(s.last_nfe);
    /// ```
    #[rhai_fn(get = "last_nfe", pure)]
    pub fn last_nfe(s: &mut Sampler) -> f64 {
        s.1.get()
    }

    /// The settings as a map.
    /// ```rhai
    /// Sampler().config.steps   // 100
    /// ```
    #[rhai_fn(get = "config", pure)]
    pub fn config(s: &mut Sampler) -> Dynamic {
        serde_json::to_value(&*s.0)
            .map(|j| from_json(&j))
            .unwrap_or(Dynamic::UNIT)
    }

    /// The settings in one line.
    /// ```rhai
    /// print(Sampler());
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(s: &mut Sampler) -> String {
        let c = &s.0;
        format!(
            "Sampler: {} cells per condition, guidance w = {}, {} {:?} steps, seed {}",
            c.cells_per_unit, c.guidance, c.steps, c.solver, c.seed
        )
    }
}

/// Registers `Sampler`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<SamplerHandle>("Sampler");
    engine.register_global_module(exported_module!(sampler_api).into());
}
