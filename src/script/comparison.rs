//! `Comparison`: several runs of several models as the paper's table layout
//! (models x metrics, mean ± sd over runs; [`crate::metrics::compare()`]),
//! from `Metrics().compare(#{name: table or [tables], ...})`.
//!
//! ```rhai
//! let cmp = Metrics().compare(#{unet: [t0, t1, t2], mlp: [t3, t4, t5]});
//! print(cmp);
//! cmp.to_markdown("out/metrics.md");
//! metric_bars(cmp).save("out/metrics.html");
//! ```

use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::convert::{path_arg, string_array};
use super::error::{guard, invalid, to_rhai, RhaiResult};
use super::metrics::TableHandle;
use super::notebook::Html;
use crate::metrics::{compare, Comparison, Evaluation, Stat};
use crate::plot::BarRow;

/// Models x metrics, mean ± sd over runs (cheap to clone).
#[derive(Debug, Clone)]
pub struct ComparisonHandle(pub Rc<Comparison>);

/// The tables of one comparison entry: a table or an array of tables.
fn tables_of(name: &str, v: &Dynamic) -> RhaiResult<Vec<Rc<Evaluation>>> {
    if let Some(t) = v.read_lock::<TableHandle>() {
        return Ok(vec![t.0.clone()]);
    }
    let not_table = |x: &Dynamic| {
        invalid(
            "compare",
            format!(
                "'{name}' holds {x} ({}), not a MetricsTable from Metrics().evaluate(...)",
                x.type_name()
            ),
        )
    };
    let a = v.read_lock::<Array>().ok_or_else(|| not_table(v))?;
    if a.is_empty() {
        return Err(invalid("compare", format!("'{name}' is an empty array")));
    }
    a.iter()
        .map(|x| {
            x.read_lock::<TableHandle>()
                .map(|t| t.0.clone())
                .ok_or_else(|| not_table(x))
        })
        .collect()
}

/// `Metrics().compare(...)` on a map name -> table(s); runs are numbered
/// 0, 1, ... in array order.
pub fn compare_map(groups: &Map) -> RhaiResult<ComparisonHandle> {
    let order: Vec<String> = groups.keys().map(|k| k.to_string()).collect();
    compare_ordered(groups, &order)
}

/// `Metrics().compare(groups, order)`: rows in the order of `order` (every
/// key of `groups` must be listed once).
pub fn compare_ordered(groups: &Map, order: &[String]) -> RhaiResult<ComparisonHandle> {
    if groups.is_empty() {
        return Err(invalid(
            "compare",
            "the map is empty; give #{model: table or [tables], ...}",
        ));
    }
    let missing: Vec<String> = groups
        .keys()
        .map(|k| k.to_string())
        .filter(|k| !order.contains(k))
        .collect();
    if !missing.is_empty() || order.len() != groups.len() {
        return Err(invalid(
            "compare",
            format!(
                "the order must list every model once; groups: [{}], order: [{}]",
                groups
                    .keys()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                order.join(", ")
            ),
        ));
    }
    let mut runs = Vec::new();
    for name in order {
        let v = &groups[name.as_str()];
        for (i, t) in tables_of(name, v)?.into_iter().enumerate() {
            runs.push((name.to_string(), i as u64, (*t).clone()));
        }
    }
    Ok(ComparisonHandle(Rc::new(compare(&runs))))
}

fn nan_stat() -> Stat {
    crate::metrics::compare::stat(&[])
}

impl ComparisonHandle {
    /// The comparison as a Markdown table (best per column in bold).
    pub fn markdown(&self) -> String {
        self.0.markdown()
    }

    /// One bar per (model, metric) with its sd.
    pub fn bar_rows(&self) -> Vec<BarRow> {
        let c = &self.0;
        let mut out = Vec::new();
        for r in &c.rows {
            for m in &c.metrics {
                let s = r.values.get(m).copied().unwrap_or_else(nan_stat);
                if s.mean.is_finite() {
                    out.push(BarRow {
                        model: r.model.clone(),
                        metric: m.clone(),
                        mean: s.mean,
                        sd: s.sd.is_finite().then_some(s.sd),
                    });
                }
            }
        }
        out
    }

    /// The comparison as an HTML table (notebooks), the best of each
    /// column in bold.
    pub fn html(&self) -> Html {
        Html(self.0.html())
    }
}

fn stat_map(s: Stat) -> Map {
    let mut m = Map::new();
    m.insert("mean".into(), Dynamic::from_float(s.mean));
    m.insert("sd".into(), Dynamic::from_float(s.sd));
    m.insert("n".into(), Dynamic::from_int(s.n as i64));
    m
}

#[export_module]
pub mod comparison_api {
    use super::*;

    /// Models x metrics, mean ± sd over runs (the paper's table layout).
    /// Prints as a table.
    /// ```rhai
    /// let cmp = Metrics().compare(#{unet: [t0, t1], mlp: [t2, t3]});
    /// print(cmp);
    /// ```
    pub type Comparison = ComparisonHandle;

    /// The cell of `model` and `metric` as `#{mean, sd, n}` (sd is NaN for
    /// one run); unknown names are errors listing the known ones.
    /// ```rhai
    /// let s = cmp.get("U-Net", "rmse_average");
    /// print(`${s.mean} +- ${s.sd}`);
    /// ```
    #[rhai_fn(name = "get", pure, return_raw)]
    pub fn comparison_get(cmp: &mut Comparison, model: &str, metric: &str) -> RhaiResult<Map> {
        let c = &cmp.0;
        if !c.rows.iter().any(|r| r.model == model) {
            let models: Vec<&str> = c.rows.iter().map(|r| r.model.as_str()).collect();
            return Err(to_rhai(crate::Error::unknown("model", model, &models)));
        }
        c.get(model, metric)
            .map(stat_map)
            .ok_or_else(|| to_rhai(crate::Error::unknown("metric", metric, &c.metrics)))
    }

    /// The model names (rows), in first-seen order.
    /// ```rhai
    /// cmp.models
    /// ```
    #[rhai_fn(get = "models", pure)]
    pub fn comparison_models(cmp: &mut Comparison) -> Array {
        string_array(cmp.0.rows.iter().map(|r| r.model.as_str()))
    }

    /// The metric names (columns).
    /// ```rhai
    /// cmp.metrics
    /// ```
    #[rhai_fn(get = "metrics", pure)]
    pub fn comparison_metrics(cmp: &mut Comparison) -> Array {
        string_array(&cmp.0.metrics)
    }

    /// Every cell as `#{model, metric, mean, sd, n}` (the input of
    /// `metric_bars` and `table::format`).
    /// ```rhai
    /// let rows = cmp.rows();
    /// ```
    #[rhai_fn(name = "rows", pure)]
    pub fn comparison_rows(cmp: &mut Comparison) -> Array {
        let c = &cmp.0;
        let mut out = Array::new();
        for r in &c.rows {
            for m in &c.metrics {
                let mut map = stat_map(r.values.get(m).copied().unwrap_or_else(nan_stat));
                map.insert("model".into(), Dynamic::from(r.model.clone()));
                map.insert("metric".into(), Dynamic::from(m.clone()));
                out.push(Dynamic::from_map(map));
            }
        }
        out
    }

    /// Writes `model,n_runs,<metric>_mean,<metric>_sd,...` and returns the
    /// path.
    /// ```rhai
    /// cmp.to_csv("out/metrics.csv");
    /// ```
    #[rhai_fn(name = "to_csv", pure, return_raw)]
    pub fn comparison_to_csv(cmp: &mut Comparison, path: &str) -> RhaiResult<String> {
        let p = path_arg("comparison file", path)?;
        let c = cmp.0.clone();
        guard(|| c.to_csv(&p))?;
        Ok(path.to_string())
    }

    /// Writes the comparison as JSON and returns the path.
    /// ```rhai
    /// cmp.to_json("out/comparison.json");
    /// ```
    #[rhai_fn(name = "to_json", pure, return_raw)]
    pub fn comparison_to_json(cmp: &mut Comparison, path: &str) -> RhaiResult<String> {
        let p = path_arg("comparison file", path)?;
        let c = cmp.0.clone();
        guard(|| c.to_json(&p))?;
        Ok(path.to_string())
    }

    /// Writes the comparison as a Markdown table (`mean ± sd` cells) and
    /// returns the path.
    /// ```rhai
    /// cmp.to_markdown("out/metrics.md");
    /// ```
    #[rhai_fn(name = "to_markdown", pure, return_raw)]
    pub fn comparison_to_markdown(cmp: &mut Comparison, path: &str) -> RhaiResult<String> {
        let p = path_arg("comparison file", path)?;
        let text = cmp.markdown();
        guard(|| crate::atomic::write_bytes(&p, text.as_bytes()))?;
        Ok(path.to_string())
    }

    /// The comparison as Markdown text.
    /// ```rhai
    /// print(cmp.markdown());
    /// ```
    #[rhai_fn(name = "markdown", pure)]
    pub fn comparison_markdown(cmp: &mut Comparison) -> String {
        cmp.markdown()
    }

    /// The comparison as an aligned table.
    /// ```rhai
    /// print(cmp);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn comparison_string(cmp: &mut Comparison) -> String {
        cmp.0.to_string().trim_end().to_string()
    }
}

/// Registers `Comparison`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<ComparisonHandle>("Comparison");
    engine.register_global_module(exported_module!(comparison_api).into());
}
