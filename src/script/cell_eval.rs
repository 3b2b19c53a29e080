//! `CellEvalTable`: cell-eval's metrics ([`crate::metrics::vcc`]) from
//! scripts, the result of `Metrics(#{profile: "vcc"}).evaluate(pred, real)`.
//!
//! ```rhai
//! let opts = #{perturbation: "target_gene", covariates: [], control: "non-targeting", allow_negative: true};
//! let pred = Dataset::load("pred.h5ad", opts);
//! let t = Metrics(#{profile: "vcc"}).evaluate(pred, Dataset::load("real.h5ad", opts));
//! print(t);                               // metric | mean | std
//! let des = t.get("overlap_at_N");        // mean over perturbations
//! t.to_json("out/vcc.json");
//! ```

use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::convert::{path_arg, string_array};
use super::error::{guard, to_rhai, RhaiResult};
use crate::metrics::CellEvalReport;

/// One cell-eval evaluation (cheap to clone).
#[derive(Debug, Clone)]
pub struct CellEvalHandle(pub Rc<CellEvalReport>);

#[export_module]
pub mod cell_eval_api {
    use super::*;

    /// cell-eval's metrics of one prediction: per perturbation and their
    /// mean, under cell-eval's names. Prints as a table.
    /// ```rhai
    /// let t = Metrics(#{profile: "vcc"}).evaluate(pred, real);
    /// ```
    pub type CellEvalTable = CellEvalHandle;

    /// The mean over perturbations of one metric (`overlap_at_N`, `mae`,
    /// `discrimination_score_l1`, ...); unknown names are errors listing the
    /// computed ones.
    /// ```rhai
    /// t.get("mae")
    /// ```
    #[rhai_fn(name = "get", pure, return_raw)]
    pub fn get(t: &mut CellEvalTable, name: &str) -> RhaiResult<f64> {
        t.0.get(name).ok_or_else(|| {
            let known: Vec<&str> = t.0.metrics.iter().map(|m| m.name.as_str()).collect();
            to_rhai(crate::Error::unknown("metric of this table", name, &known))
        })
    }

    /// The metric names, in cell-eval's column order.
    /// ```rhai
    /// t.metrics
    /// ```
    #[rhai_fn(get = "metrics", pure)]
    pub fn metrics(t: &mut CellEvalTable) -> Array {
        string_array(t.0.metrics.iter().map(|m| m.name.clone()))
    }

    /// The scored perturbations (sorted).
    /// ```rhai
    /// t.perturbations
    /// ```
    #[rhai_fn(get = "perturbations", pure)]
    pub fn perturbations(t: &mut CellEvalTable) -> Array {
        string_array(&t.0.perturbations)
    }

    /// The means as a map metric -> value.
    /// ```rhai
    /// t.summary().discrimination_score_l1
    /// ```
    #[rhai_fn(name = "summary", pure)]
    pub fn summary(t: &mut CellEvalTable) -> Map {
        t.0.metrics
            .iter()
            .map(|m| (m.name.as_str().into(), Dynamic::from_float(m.mean())))
            .collect()
    }

    /// One map per perturbation: `perturbation` and one key per metric.
    /// ```rhai
    /// t.per_perturbation()[0].mae
    /// ```
    #[rhai_fn(pure)]
    pub fn per_perturbation(t: &mut CellEvalTable) -> Array {
        t.0.perturbations
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut m = Map::new();
                m.insert("perturbation".into(), Dynamic::from(p.clone()));
                for c in &t.0.metrics {
                    m.insert(c.name.as_str().into(), Dynamic::from_float(c.values[i]));
                }
                Dynamic::from_map(m)
            })
            .collect()
    }

    /// Writes the report (per-perturbation values and summaries) as JSON
    /// and returns the path.
    /// ```rhai
    /// t.to_json("out/vcc.json");
    /// ```
    #[rhai_fn(name = "to_json", pure, return_raw)]
    pub fn to_json(t: &mut CellEvalTable, path: &str) -> RhaiResult<String> {
        let p = path_arg("metrics file", path)?;
        let r = t.0.clone();
        guard(|| r.to_json(&p))?;
        Ok(path.to_string())
    }

    /// Writes cell-eval's results.csv (one row per perturbation) and
    /// returns the path.
    /// ```rhai
    /// t.to_csv("out/vcc_results.csv");
    /// ```
    #[rhai_fn(name = "to_csv", pure, return_raw)]
    pub fn to_csv(t: &mut CellEvalTable, path: &str) -> RhaiResult<String> {
        let p = path_arg("metrics file", path)?;
        let r = t.0.clone();
        guard(|| r.to_csv(&p))?;
        Ok(path.to_string())
    }

    /// The summary table.
    /// ```rhai
    /// print(t);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(t: &mut CellEvalTable) -> String {
        t.0.to_string().trim_end().to_string()
    }
}

/// Registers `CellEvalTable`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<CellEvalHandle>("CellEvalTable");
    engine.register_global_module(exported_module!(cell_eval_api).into());
}
