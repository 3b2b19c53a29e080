//! Training loss curves: the training loss (solid) and, where evaluated,
//! the validation loss (dashed) against the optimizer step, one colour per
//! run, on one set of axes (log-scaled loss by default).

use plotly::common::{DashType, Line, Mode};
use plotly::Scatter;
use serde_json::json;

use super::{Figure, PALETTE};
use crate::error::{Error, Result};

/// One run's curves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossSeries {
    /// Legend name (the model or run).
    pub name: String,
    /// Steps of `loss`, `[n]`.
    pub steps: Vec<f64>,
    /// Training loss per logged step, `[n]`.
    pub loss: Vec<f64>,
    /// Steps of `val_loss`, `[v]`.
    pub val_steps: Vec<f64>,
    /// Validation loss, `[v]`.
    pub val_loss: Vec<f64>,
}

/// Builds the figure; `log_y` puts the loss on a log axis.
pub fn loss_curves(series: &[LossSeries], log_y: bool) -> Result<Figure> {
    if series.iter().all(|s| s.loss.is_empty()) {
        return Err(Error::invalid(
            "loss plot",
            "no logged steps to draw (train first, or log more often)",
        ));
    }
    let mut fig = Figure::new("Training loss");
    for (i, s) in series.iter().enumerate() {
        if s.steps.len() != s.loss.len() || s.val_steps.len() != s.val_loss.len() {
            return Err(Error::Mismatch(format!(
                "loss series '{}': steps and values differ in length",
                s.name
            )));
        }
        let color = PALETTE[i % PALETTE.len()];
        fig.add(
            &*Scatter::new(s.steps.clone(), s.loss.clone())
                .mode(Mode::Lines)
                .name(format!("{} (train)", s.name))
                .line(Line::new().color(color).width(2.0)),
        )?;
        if !s.val_loss.is_empty() {
            fig.add(
                &*Scatter::new(s.val_steps.clone(), s.val_loss.clone())
                    .mode(Mode::LinesMarkers)
                    .name(format!("{} (validation)", s.name))
                    .line(Line::new().color(color).dash(DashType::Dash)),
            )?;
        }
    }
    fig.set_layout("xaxis", json!({"title": {"text": "step"}}));
    let mut y = json!({"title": {"text": "CFM loss (MSE)"}});
    if log_y {
        y["type"] = json!("log");
    }
    fig.set_layout("yaxis", y);
    Ok(fig)
}
