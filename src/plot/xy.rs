//! Line plots of named series over a shared x axis (e.g. sample quality
//! against the number of velocity evaluations, one line per ODE solver).

use plotly::common::Mode;
use plotly::Scatter;
use serde_json::json;

use super::{Figure, PALETTE};
use crate::error::{Error, Result};

/// One line: `x` and `y` of equal length, drawn in `x` order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XySeries {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// Builds the figure; `log_x` puts x on a log axis.
pub fn xy_lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[XySeries],
    log_x: bool,
) -> Result<Figure> {
    if series.iter().all(|s| s.x.is_empty()) {
        return Err(Error::invalid("xy plot", "no points to draw"));
    }
    let mut fig = Figure::new(title);
    for (i, s) in series.iter().enumerate() {
        if s.x.len() != s.y.len() {
            return Err(Error::Mismatch(format!(
                "xy series '{}': {} x values but {} y values",
                s.name,
                s.x.len(),
                s.y.len()
            )));
        }
        let mut pts: Vec<(f64, f64)> = s.x.iter().copied().zip(s.y.iter().copied()).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (x, y): (Vec<f64>, Vec<f64>) = pts.into_iter().unzip();
        fig.add(
            &*Scatter::new(x, y)
                .mode(Mode::LinesMarkers)
                .name(&s.name)
                .marker(plotly::common::Marker::new().color(PALETTE[i % PALETTE.len()])),
        )?;
    }
    let mut xa = json!({"title": {"text": x_label}});
    if log_x {
        xa["type"] = json!("log");
    }
    fig.set_layout("xaxis", xa);
    fig.set_layout("yaxis", json!({"title": {"text": y_label}}));
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_sorted_and_lengths_checked() {
        let s = XySeries {
            name: "euler".into(),
            x: vec![10.0, 5.0],
            y: vec![0.5, 0.7],
        };
        let fig = xy_lines("q", "NFE", "mmd", std::slice::from_ref(&s), true).unwrap();
        assert_eq!(fig.traces[0]["x"], json!([5.0, 10.0]));
        assert_eq!(fig.traces[0]["y"], json!([0.7, 0.5]));
        assert_eq!(fig.layout["xaxis"]["type"], json!("log"));
        let bad = XySeries { y: vec![1.0], ..s };
        assert!(xy_lines("q", "NFE", "mmd", &[bad], false).is_err());
        assert!(xy_lines("q", "NFE", "mmd", &[], false).is_err());
    }
}
