//! `Plot`: script bindings of [`crate::plot`]: the Figure 1 PCA view
//! (`data.pca_view(...)`), loss curves (`loss_plot(...)`) and metric bars
//! (`metric_bars(...)`), saved as self-contained offline HTML.

use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::condition::condition_arg;
use super::convert::{number, path_arg, Opts};
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, RhaiResult};
use crate::plot::{loss_curves, BarRow, Figure, LossSeries, PcaViewOptions};

/// A figure handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct PlotHandle(pub Rc<Figure>);

/// Loss series from a history-like value: a `History` object, or a map
/// `#{steps: [...], loss: [...], val_steps: [...], val_loss: [...]}`.
pub fn loss_series(name: &str, v: &Dynamic) -> RhaiResult<LossSeries> {
    if let Some(s) = history_series(name, v) {
        return Ok(s);
    }
    let Some(m) = v.read_lock::<Map>() else {
        return Err(invalid(
            "loss_plot",
            format!("'{name}': {v} is not a training history"),
        ));
    };
    let nums = |k: &str| -> RhaiResult<Vec<f64>> {
        match m.get(k) {
            None => Ok(vec![]),
            Some(a) => a
                .read_lock::<Array>()
                .ok_or_else(|| invalid("loss_plot", format!("'{name}.{k}' is not an array")))?
                .iter()
                .map(|x| {
                    number(x).ok_or_else(|| {
                        invalid("loss_plot", format!("'{name}.{k}' holds {x}, not a number"))
                    })
                })
                .collect(),
        }
    };
    Ok(LossSeries {
        name: name.to_string(),
        steps: nums("steps")?,
        loss: nums("loss")?,
        val_steps: nums("val_steps")?,
        val_loss: nums("val_loss")?,
    })
}

/// Bar rows from an array of maps `#{model, metric, mean, sd}` or from a
/// comparison object.
pub fn bar_rows(v: &Dynamic) -> RhaiResult<Vec<BarRow>> {
    if let Some(rows) = comparison_rows(v) {
        return Ok(rows);
    }
    let a = v.read_lock::<Array>().ok_or_else(|| {
        invalid(
            "metric_bars",
            format!(
                "{v} is neither a comparison nor an array of #{{model, metric, mean, sd}} maps"
            ),
        )
    })?;
    a.iter()
        .map(|r| {
            let m = r
                .read_lock::<Map>()
                .ok_or_else(|| invalid("metric_bars", format!("row {r} is not a map")))?
                .clone();
            let o = Opts::new("metric_bars row", m, &["model", "metric", "mean", "sd"])?;
            Ok(BarRow {
                model: o.string("model")?.unwrap_or_default(),
                metric: o
                    .string("metric")?
                    .ok_or_else(|| invalid("metric_bars row", "'metric' is required"))?,
                mean: o
                    .float("mean")?
                    .ok_or_else(|| invalid("metric_bars row", "'mean' is required"))?,
                sd: o.float("sd")?,
            })
        })
        .collect()
}

/// A `History` object as loss series (filled in by the trainer bindings).
fn history_series(name: &str, v: &Dynamic) -> Option<LossSeries> {
    v.read_lock::<super::trainer::HistoryHandle>()
        .map(|h| h.series(name))
}

/// A `Comparison` object as bar rows.
fn comparison_rows(v: &Dynamic) -> Option<Vec<BarRow>> {
    v.read_lock::<super::comparison::ComparisonHandle>()
        .map(|c| c.bar_rows())
}

#[export_module]
pub mod plot_api {
    use super::*;

    /// A figure (PCA view, loss curves, metric bars). `.save(path)` writes a
    /// self-contained HTML page that renders offline.
    /// ```rhai
    /// let fig = test.pca_view("KLF1+MAP2K6 @ k562", #{unet: pred});
    /// print(fig.save("out/pca.html"));
    /// ```
    pub type Plot = PlotHandle;

    /// The paper's Figure 1 view: PCA of this (reference) dataset's cells in
    /// grey, the condition's true cells in green, and each model's sampled
    /// cells of the condition (100) in its own panel, all on the same axes.
    /// ```rhai
    /// let fig = split.test.pca_view("KLF1+MAP2K6 @ k562", #{unet: pred_unet, mlp: pred_mlp});
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn pca_view(
        reference: &mut DatasetHandle,
        condition: Dynamic,
        predictions: Map,
    ) -> RhaiResult<Plot> {
        pca_view_with(reference, condition, predictions, Map::new())
    }

    /// The PCA view with options: `cells` (100 per model), `seed` (0),
    /// `max_background` (5000 grey cells), `columns` (4 panels per row).
    /// ```rhai
    /// let fig = test.pca_view("KLF1 @ k562", #{unet: pred}, #{cells: 50, seed: 1});
    /// ```
    #[rhai_fn(name = "pca_view", pure, return_raw)]
    pub fn pca_view_with(
        reference: &mut DatasetHandle,
        condition: Dynamic,
        predictions: Map,
        options: Map,
    ) -> RhaiResult<Plot> {
        let o = Opts::new(
            "pca_view options",
            options,
            &["cells", "seed", "max_background", "columns"],
        )?;
        let mut opts = PcaViewOptions::default();
        if let Some(c) = o.count("cells")? {
            opts.cells = c.max(1);
        }
        if let Some(s) = o.seed("seed")? {
            opts.seed = s;
        }
        if let Some(b) = o.count("max_background")? {
            opts.max_background = b.max(1);
        }
        if let Some(c) = o.count("columns")? {
            opts.columns = c.max(1);
        }
        let cond = condition_arg(&condition)?.resolve(&reference.0.vocab())?;
        let mut preds = Vec::new();
        for (name, v) in &predictions {
            let d = v.read_lock::<DatasetHandle>().ok_or_else(|| {
                invalid(
                    "pca_view",
                    format!(
                        "'{name}' is {} ({}), not a Dataset of generated cells",
                        v,
                        v.type_name()
                    ),
                )
            })?;
            preds.push((name.to_string(), d.0.clone()));
        }
        let refs: Vec<(String, &crate::data::Dataset)> =
            preds.iter().map(|(n, d)| (n.clone(), d.as_ref())).collect();
        let r = reference.0.clone();
        let fig = guard(|| crate::plot::pca_view(&r, &cond, &refs, &opts))?;
        Ok(PlotHandle(Rc::new(fig)))
    }

    /// The loss curves of this history.
    /// ```rhai
    /// history.plot().save("out/loss.html");
    /// ```
    #[rhai_fn(name = "plot", pure, return_raw)]
    pub fn history_plot(h: &mut super::super::trainer::HistoryHandle) -> RhaiResult<Plot> {
        let fig = guard(|| loss_curves(&[h.series("model")], true))?;
        Ok(PlotHandle(Rc::new(fig)))
    }

    /// Training loss curves (train solid, validation dashed; log-scaled
    /// loss) of one history, or of several: a map name -> history.
    /// ```rhai
    /// let fig = loss_plot(#{unet: h_unet, mlp: h_mlp});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn loss_plot(history: Dynamic) -> RhaiResult<Plot> {
        let is_map_of_runs = history
            .read_lock::<Map>()
            .is_some_and(|m| !m.contains_key("loss") && !m.is_empty());
        let series = if is_map_of_runs {
            let m = history
                .read_lock::<Map>()
                .map(|m| m.clone())
                .unwrap_or_default();
            m.iter()
                .map(|(k, v)| loss_series(k, v))
                .collect::<RhaiResult<Vec<_>>>()?
        } else {
            vec![loss_series("model", &history)?]
        };
        let fig = guard(|| loss_curves(&series, true))?;
        Ok(PlotHandle(Rc::new(fig)))
    }

    /// Metric comparison bars: one panel per metric, one bar per model with
    /// the sd over seeds as its error bar. Takes a comparison (from
    /// `Metrics().compare(...)`) or an array of `#{model, metric, mean, sd}`.
    /// ```rhai
    /// let fig = metric_bars(Metrics().compare(#{unet: [m1, m2], mlp: [m3, m4]}));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn metric_bars(comparison: Dynamic) -> RhaiResult<Plot> {
        let rows = bar_rows(&comparison)?;
        let fig = guard(|| crate::plot::metric_bars(&rows, 5))?;
        Ok(PlotHandle(Rc::new(fig)))
    }

    /// Lines of named series over one x axis (e.g. quality against
    /// velocity evaluations per solver). `series` maps each line's name to
    /// its points `[[x, y], ...]`; `log_x` (default false) logs the x axis.
    /// ```rhai
    /// let fig = xy_plot(#{title: "Quality vs NFE", x: "NFE", y: "mmd_gex",
    ///                     series: #{euler: [[5, 0.9], [100, 0.6]]}, log_x: true});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn xy_plot(spec: Map) -> RhaiResult<Plot> {
        let text = |k: &str, d: &str| -> String {
            spec.get(k)
                .map(|v| v.to_string())
                .unwrap_or_else(|| d.to_string())
        };
        let log_x = match spec.get("log_x") {
            None => false,
            Some(v) => v
                .as_bool()
                .map_err(|_| invalid("xy_plot 'log_x'", "must be true or false"))?,
        };
        let series_map = spec
            .get("series")
            .and_then(|v| v.read_lock::<Map>().map(|m| m.clone()))
            .ok_or_else(|| invalid("xy_plot 'series'", "must be a map of name -> [[x, y], ...]"))?;
        let mut series = Vec::new();
        for (name, pts) in series_map {
            let pts = pts.into_typed_array::<Dynamic>().map_err(|_| {
                invalid(
                    &format!("xy_plot series '{name}'"),
                    "must be an array of [x, y] pairs",
                )
            })?;
            let mut s = crate::plot::XySeries {
                name: name.to_string(),
                ..Default::default()
            };
            for p in pts {
                let pair = p
                    .into_typed_array::<Dynamic>()
                    .ok()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| {
                        invalid(
                            &format!("xy_plot series '{name}'"),
                            "each point must be [x, y]",
                        )
                    })?;
                let num = |v: &Dynamic| {
                    number(v).ok_or_else(|| {
                        invalid(
                            &format!("xy_plot series '{name}'"),
                            format!("{v} is not a number"),
                        )
                    })
                };
                s.x.push(num(&pair[0])?);
                s.y.push(num(&pair[1])?);
            }
            series.push(s);
        }
        let fig = guard(|| {
            crate::plot::xy_lines(
                &text("title", "plot"),
                &text("x", "x"),
                &text("y", "y"),
                &series,
                log_x,
            )
        })?;
        Ok(PlotHandle(Rc::new(fig)))
    }

    /// Writes the figure as a self-contained HTML page (plotly.js inlined;
    /// renders offline) and returns the path.
    /// ```rhai
    /// print(fig.save("out/pca.html"));
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save(fig: &mut Plot, path: &str) -> RhaiResult<String> {
        let p = path_arg("plot file", path)?;
        let f = fig.0.clone();
        guard(|| f.save(&p))?;
        Ok(path.to_string())
    }

    /// The figure's title.
    /// ```rhai
    /// fig.title
    /// ```
    #[rhai_fn(get = "title", pure)]
    pub fn title(fig: &mut Plot) -> String {
        fig.0.title.clone()
    }

    /// The number of traces drawn.
    /// ```rhai
    /// fig.n_traces
    /// ```
    #[rhai_fn(get = "n_traces", pure)]
    pub fn n_traces(fig: &mut Plot) -> i64 {
        fig.0.traces.len() as i64
    }

    /// The plotly JSON (`data` and `layout`) as a map.
    /// ```rhai
    /// fig.to_json().layout.title
    /// ```
    #[rhai_fn(pure)]
    pub fn to_json(fig: &mut Plot) -> Dynamic {
        super::super::convert::from_json(&fig.0.to_json())
    }

    /// `Plot 'title' (n traces)`.
    /// ```rhai
    /// print(fig);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(fig: &mut Plot) -> String {
        format!(
            "Plot '{}' ({} traces); .save(\"file.html\") writes it",
            fig.0.title,
            fig.0.traces.len()
        )
    }
}

/// Registers `Plot` and the plotting functions.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<PlotHandle>("Plot");
    engine.register_global_module(exported_module!(plot_api).into());
}
