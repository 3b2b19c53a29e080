//! `Metrics` and `MetricsTable`: PerturBench's evaluation
//! ([`crate::metrics`], metrics.md) from scripts.
//!
//! ```rhai
//! let table = Metrics().evaluate(pred, split.test);      // MetricsTable
//! print(table);                                           // metric | value
//! let rmse = table.get("rmse_average");
//! table.to_csv("out/metrics_unet.csv");
//! let cmp = Metrics().compare(#{unet: [t_seed0, t_seed1], mlp: [t2, t3]});
//! print(cmp);                                             // models x metrics, mean ± sd
//! ```
//!
//! `evaluate` shows a progress bar and honours Ctrl-C (kind `interrupted`).
//!
//! `Metrics(#{profile: "vcc"})` (or `"minimal"`) scores with cell-eval's
//! metrics instead ([`crate::metrics::vcc`]); its `evaluate` returns a
//! `CellEvalTable` ([`super::cell_eval`]).

use std::path::Path;
use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::cell_eval::CellEvalHandle;
use super::comparison::{compare_map, ComparisonHandle};
use super::convert::{path_arg, string_array, to_dynamic, Opts};
use super::dataset::DatasetHandle;
use super::error::{guard, to_rhai, RhaiResult};
use super::notebook::Html;
use crate::metrics::{evaluate_cell_eval, CellEvalOptions, Evaluation, Metrics, MetricsConfig};

/// An evaluator handle (immutable settings; cheap to clone): PerturBench's
/// metrics, or with a cell-eval profile set, cell-eval's.
#[derive(Debug, Clone)]
pub struct MetricsHandle(pub Rc<Metrics>, pub Option<CellEvalOptions>);

/// One evaluation's results (cheap to clone).
#[derive(Debug, Clone)]
pub struct TableHandle(pub Rc<Evaluation>);

const KEYS: [&str; 11] = [
    "profile",
    "threads",
    "metrics",
    "pca_components",
    "top_k",
    "pseudocount",
    "rank",
    "device",
    "precision",
    "block_cells",
    "mmd_pairs",
];

/// A `MetricsConfig` from a script map (unknown keys list the valid ones).
pub fn metrics_config(map: Map) -> RhaiResult<MetricsConfig> {
    metrics_settings(map).map(|s| s.0)
}

/// The settings of `Metrics(map)`: PerturBench's config, and cell-eval's
/// options when `profile` is a cell-eval profile (`vcc`, `minimal`).
pub fn metrics_settings(map: Map) -> RhaiResult<(MetricsConfig, Option<CellEvalOptions>)> {
    let o = Opts::new("Metrics settings", map, &KEYS)?;
    let cell_eval = match o.string("profile")?.as_deref().map(str::trim) {
        None | Some("perturbench") => None,
        Some(p) => Some(CellEvalOptions {
            profile: p.parse().map_err(to_rhai)?,
            threads: o.count("threads")?.unwrap_or(0),
            ..Default::default()
        }),
    };
    let mut c = MetricsConfig::default();
    if let Some(v) = o.strings("metrics")? {
        c.metrics = v;
    }
    if let Some(v) = o.count("pca_components")? {
        c.pca_components = v;
    }
    if let Some(v) = o.count("top_k")? {
        c.top_k = v;
    }
    if let Some(v) = o.float("pseudocount")? {
        c.pseudocount = v;
    }
    if let Some(v) = o.string("rank")? {
        c.rank = v.parse().map_err(to_rhai)?;
    }
    if let Some(v) = o.string("device")? {
        c.device = v;
    }
    if let Some(v) = o.string("precision")? {
        c.precision = v.parse().map_err(to_rhai)?;
    }
    if let Some(v) = o.count("block_cells")? {
        c.block_cells = v;
    }
    if let Some(v) = o.string("mmd_pairs")? {
        c.mmd_pairs = v.parse().map_err(to_rhai)?;
    }
    Ok((c, cell_eval))
}

impl TableHandle {
    /// The summary as an HTML table (notebooks).
    pub fn html(&self) -> Html {
        Html(self.0.summary_html())
    }
}

#[export_module]
pub mod metrics_api {
    use super::*;

    /// PerturBench's metrics (metrics.md): per-unit RMSE, cosine of
    /// log-fold changes, DEG recall, energy MMD, and their rank versions.
    /// ```rhai
    /// let table = Metrics().evaluate(pred, split.test);
    /// ```
    pub type Metrics = MetricsHandle;

    /// The result of an evaluation: one value per metric (the mean over the
    /// scored units) and the per-unit scores. Prints as a table.
    /// ```rhai
    /// let table = Metrics().evaluate(pred, test);
    /// print(table.get("rmse_average"));
    /// ```
    pub type MetricsTable = TableHandle;

    /// An evaluator with PerturBench v2's ten metrics on the CPU.
    /// ```rhai
    /// let metrics = Metrics();
    /// ```
    #[rhai_fn(name = "Metrics", return_raw)]
    pub fn new_default() -> RhaiResult<Metrics> {
        new_metrics(Map::new())
    }

    /// An evaluator from settings: `metrics` (names or `"all"`), `top_k`
    /// (50), `pca_components` (30), `pseudocount` (0.1), `rank` (`v2`,
    /// `v1`), `device` (`cpu`, `cuda`, `auto`), `precision` (`f32`, `f64`),
    /// `block_cells`, `mmd_pairs` (`bounded`, `all`); `profile`:
    /// `perturbench` (default) or a cell-eval
    /// 0.8.2 profile, `vcc` or `minimal` (with `threads`, 0 = all cores).
    /// Unknown keys and metric names are errors listing the valid ones.
    /// ```rhai
    /// let metrics = Metrics(#{metrics: ["rmse_average", "cosine_logfc"], top_k: 20});
    /// let vcc = Metrics(#{profile: "vcc"});
    /// ```
    #[rhai_fn(name = "Metrics", return_raw)]
    pub fn new_metrics(settings: Map) -> RhaiResult<Metrics> {
        let (cfg, cell_eval) = metrics_settings(settings)?;
        let m = crate::metrics::Metrics::new(cfg).map_err(to_rhai)?;
        Ok(MetricsHandle(Rc::new(m), cell_eval))
    }

    /// Scores generated cells `pred` against the reference cells `reference`
    /// (both `[cells, genes]` datasets with the same columns), unit by unit
    /// (covariate values x perturbation), into a `MetricsTable`. Shows
    /// progress; Ctrl-C stops it. With a cell-eval profile: a
    /// `CellEvalTable` of cell-eval's metrics per perturbation (both
    /// datasets loaded with the perturbation column and control label of
    /// the VCC files, e.g. `target_gene` / `non-targeting`).
    /// ```rhai
    /// let table = Metrics().evaluate(pred, split.test);
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn evaluate(
        metrics: &mut Metrics,
        pred: DatasetHandle,
        reference: DatasetHandle,
    ) -> RhaiResult<Dynamic> {
        if let Some(opts) = metrics.1.clone() {
            let r = guard(|| evaluate_cell_eval(&pred.0, &reference.0, &opts))?;
            return Ok(Dynamic::from(CellEvalHandle(Rc::new(r))));
        }
        let m = metrics.0.clone();
        let ev = guard(|| m.evaluate(&pred.0, &reference.0))?;
        Ok(Dynamic::from(TableHandle(Rc::new(ev))))
    }

    /// Groups tables by model: `#{name: table or [tables], ...}` (one table
    /// per seed) -> mean ± sd (sample sd) per model and metric.
    /// ```rhai
    /// let cmp = Metrics().compare(#{"U-Net": [t0, t1, t2], "MLP": [t3, t4, t5]});
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn compare(metrics: &mut Metrics, groups: Map) -> RhaiResult<ComparisonHandle> {
        let _ = metrics;
        compare_map(&groups)
    }

    /// As `compare`, with the rows in the order of `order` (an array of
    /// the map's keys; maps iterate in sorted order).
    /// ```rhai
    /// let cmp = Metrics().compare(#{"U-Net": [t0], "MLP": [t1]}, ["U-Net", "MLP"]);
    /// ```
    #[rhai_fn(name = "compare", pure, return_raw)]
    pub fn compare_in_order(
        metrics: &mut Metrics,
        groups: Map,
        order: Array,
    ) -> RhaiResult<ComparisonHandle> {
        let _ = metrics;
        let order: Vec<String> = order.iter().map(|v| v.to_string()).collect();
        super::super::comparison::compare_ordered(&groups, &order)
    }

    /// The metric names this evaluator computes, in order.
    /// ```rhai
    /// Metrics().metrics
    /// ```
    #[rhai_fn(get = "metrics", pure)]
    pub fn evaluator_metrics(metrics: &mut Metrics) -> Array {
        if let Some(o) = &metrics.1 {
            return string_array(o.profile.columns());
        }
        string_array(metrics.0.specs().iter().map(|s| s.name()))
    }

    /// The settings as a map.
    /// ```rhai
    /// Metrics().config.top_k   // 50
    /// ```
    #[rhai_fn(get = "config", pure, return_raw)]
    pub fn evaluator_config(metrics: &mut Metrics) -> RhaiResult<Dynamic> {
        to_dynamic(metrics.0.config())
    }

    /// `Metrics(...)` with its metric names.
    /// ```rhai
    /// print(Metrics());
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn evaluator_string(metrics: &mut Metrics) -> String {
        if let Some(o) = &metrics.1 {
            return format!(
                "Metrics(cell-eval profile {}: {})",
                o.profile.as_str(),
                o.profile.columns().join(", ")
            );
        }
        let names: Vec<String> = metrics.0.specs().iter().map(|s| s.name()).collect();
        format!(
            "Metrics({}; device {})",
            names.join(", "),
            metrics.0.config().device
        )
    }

    /// The value of one metric (the mean over units); unknown names are
    /// errors listing the computed ones.
    /// ```rhai
    /// let rmse = table.get("rmse_average");
    /// ```
    #[rhai_fn(name = "get", pure, return_raw)]
    pub fn table_get(table: &mut MetricsTable, name: &str) -> RhaiResult<f64> {
        table.0.get(name).ok_or_else(|| {
            to_rhai(crate::Error::unknown(
                "metric of this table",
                name,
                &table.0.metrics,
            ))
        })
    }

    /// The metric names, in the requested order.
    /// ```rhai
    /// for m in table.metrics { print(m) }
    /// ```
    #[rhai_fn(get = "metrics", pure)]
    pub fn table_metrics(table: &mut MetricsTable) -> Array {
        string_array(&table.0.metrics)
    }

    /// The number of scored units.
    /// ```rhai
    /// table.n_units
    /// ```
    #[rhai_fn(get = "n_units", pure)]
    pub fn table_n_units(table: &mut MetricsTable) -> i64 {
        table.0.per_unit.len() as i64
    }

    /// Seconds the evaluation took.
    /// ```rhai
    /// table.seconds
    /// ```
    #[rhai_fn(get = "seconds", pure)]
    pub fn table_seconds(table: &mut MetricsTable) -> f64 {
        table.0.seconds
    }

    /// The summary as a map metric -> value.
    /// ```rhai
    /// table.summary().rmse_average
    /// ```
    #[rhai_fn(name = "summary", pure)]
    pub fn table_summary(table: &mut MetricsTable) -> Map {
        table
            .0
            .metrics
            .iter()
            .map(|m| {
                (
                    m.into(),
                    Dynamic::from_float(table.0.get(m).unwrap_or(f64::NAN)),
                )
            })
            .collect()
    }

    /// Every scored unit as a map: `cov_key`, `perturbation`, `n_pred`,
    /// `n_ref` and one key per metric.
    /// ```rhai
    /// let worst = table.per_unit().reduce(|a, u| if a == () || u.rmse_average > a.rmse_average { u } else { a });
    /// ```
    #[rhai_fn(pure)]
    pub fn per_unit(table: &mut MetricsTable) -> Array {
        table
            .0
            .per_unit
            .iter()
            .map(|u| {
                let mut m = Map::new();
                m.insert("cov_key".into(), Dynamic::from(u.cov_key.clone()));
                m.insert("perturbation".into(), Dynamic::from(u.perturbation.clone()));
                m.insert("n_pred".into(), Dynamic::from_int(u.n_pred as i64));
                m.insert("n_ref".into(), Dynamic::from_int(u.n_ref as i64));
                for (k, v) in &u.values {
                    m.insert(k.into(), Dynamic::from_float(*v));
                }
                Dynamic::from_map(m)
            })
            .collect()
    }

    /// Writes the whole evaluation (summary, per-unit scores, pairwise
    /// matrices, settings) as JSON and returns the path.
    /// ```rhai
    /// table.to_json("out/metrics.json");
    /// ```
    #[rhai_fn(name = "to_json", pure, return_raw)]
    pub fn table_to_json(table: &mut MetricsTable, path: &str) -> RhaiResult<String> {
        let p = path_arg("metrics file", path)?;
        let t = table.0.clone();
        guard(|| t.to_json(&p))?;
        Ok(path.to_string())
    }

    /// Writes the per-unit table as CSV (one row per unit, a last row
    /// `ALL,mean,...` with the summary) and returns the path.
    /// ```rhai
    /// table.to_csv("out/metrics.csv");
    /// ```
    #[rhai_fn(name = "to_csv", pure, return_raw)]
    pub fn table_to_csv(table: &mut MetricsTable, path: &str) -> RhaiResult<String> {
        let p = path_arg("metrics file", path)?;
        let t = table.0.clone();
        guard(|| t.to_csv(&p))?;
        Ok(path.to_string())
    }

    /// The summary as a table: one line per metric, and warnings about
    /// units only one side has.
    /// ```rhai
    /// print(table);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn table_string(table: &mut MetricsTable) -> String {
        table.0.to_string().trim_end().to_string()
    }
}

#[export_module]
pub mod metrics_static {
    use super::*;

    /// Reads a table written by `table.to_json(path)`.
    /// ```rhai
    /// let t = Metrics::load("out/quickstart/runs/PRiMeFlow_U_Net_w_3_seed0.json");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load(path: &str) -> RhaiResult<TableHandle> {
        let p = path_arg("metrics file", path)?;
        let ev = guard(|| Evaluation::from_json(Path::new(&p)))?;
        Ok(TableHandle(Rc::new(ev)))
    }

    /// Every metric name the evaluator understands.
    /// ```rhai
    /// Metrics::names()
    /// ```
    pub fn names() -> Array {
        string_array(crate::metrics::all_metric_names())
    }
}

/// Registers `Metrics`, `MetricsTable` and `Metrics::load`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<MetricsHandle>("Metrics");
    engine.register_type_with_name::<TableHandle>("MetricsTable");
    engine.register_global_module(exported_module!(metrics_api).into());
    engine.register_static_module("Metrics", exported_module!(metrics_static).into());
}
