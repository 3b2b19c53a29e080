//! Metric comparison bars: one panel per metric (metrics live on different
//! scales), one bar per model with its standard deviation over seeds as the
//! error bar (the layout of the paper's Tables 2-9, drawn).

use plotly::common::{ErrorData, ErrorType, Marker};
use plotly::Bar;
use serde_json::{json, Value};

use super::{axis_key, axis_names, panel_title, Figure, PALETTE};
use crate::error::{Error, Result};

/// One (model, metric) cell: mean over seeds and its sd (none for one run).
#[derive(Debug, Clone, PartialEq)]
pub struct BarRow {
    pub model: String,
    pub metric: String,
    pub mean: f64,
    pub sd: Option<f64>,
}

/// Builds the figure; metrics and models keep their first-seen order.
pub fn metric_bars(rows: &[BarRow], columns: usize) -> Result<Figure> {
    let mut metrics: Vec<&str> = Vec::new();
    let mut models: Vec<&str> = Vec::new();
    for r in rows {
        if !metrics.contains(&r.metric.as_str()) {
            metrics.push(&r.metric);
        }
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    if metrics.is_empty() {
        return Err(Error::invalid("metric bars", "no rows to draw"));
    }
    let cols = columns.clamp(1, metrics.len());
    let nrows = metrics.len().div_ceil(cols);
    let mut fig = Figure::new("Model comparison (mean +- sd over seeds)");
    let mut annotations = Vec::new();
    for (i, metric) in metrics.iter().enumerate() {
        let (xa, ya) = axis_names(i);
        let (c, r) = (i % cols, i / cols);
        let gap = 0.03;
        let xd = [
            c as f64 / cols as f64 + gap,
            (c + 1) as f64 / cols as f64 - gap,
        ];
        let yd = [
            1.0 - (r + 1) as f64 / nrows as f64 + gap * 2.0,
            1.0 - r as f64 / nrows as f64 - gap * 2.0,
        ];
        fig.set_layout(
            &axis_key(&xa),
            json!({"domain": xd, "anchor": ya, "showticklabels": false}),
        );
        fig.set_layout(&axis_key(&ya), json!({"domain": yd, "anchor": xa}));
        annotations.push(panel_title(i, metric));
        for (j, model) in models.iter().enumerate() {
            let Some(row) = rows
                .iter()
                .find(|r| r.metric == *metric && r.model == *model)
            else {
                continue;
            };
            let mut bar = Bar::new(vec![model.to_string()], vec![row.mean])
                .name(*model)
                .legend_group(*model)
                .show_legend(i == 0)
                .marker(Marker::new().color(PALETTE[j % PALETTE.len()]))
                .x_axis(&xa)
                .y_axis(&ya);
            if let Some(sd) = row.sd.filter(|s| s.is_finite()) {
                bar = bar.error_y(
                    ErrorData::new(ErrorType::Data)
                        .array(vec![sd])
                        .visible(true),
                );
            }
            fig.add(&*bar)?;
        }
    }
    fig.set_layout("annotations", Value::Array(annotations));
    fig.set_layout("height", json!(300 * nrows));
    fig.set_layout("bargap", json!(0.2));
    Ok(fig)
}
