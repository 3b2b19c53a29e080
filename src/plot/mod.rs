//! Plots (feature `scripting`): the paper's Figure 1 PCA view, training loss
//! curves and metric comparison bars, as self-contained offline HTML.
//!
//! Traces are built with the `plotly` crate's typed traces; the layout is a
//! JSON object so a figure can hold any number of panels. The page inlines
//! plotly.js (`plotly_embed_js`), so it renders with no network: no
//! `<script src=...>` anywhere (a test checks it). Files are written
//! atomically. For notebooks, [`Figure::iframe_html`] wraps the page in an
//! `<iframe srcdoc=...>`, which renders offline inside Jupyter.

pub mod bars;
pub mod loss;
pub mod pca_view;
pub mod report;
pub mod xy;

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};

pub use bars::{metric_bars, BarRow};
pub use loss::{loss_curves, LossSeries};
pub use pca_view::{pca_view, PcaViewOptions};
pub use report::{Block, Report};
pub use xy::{xy_lines, XySeries};

/// Colours for models, in order (grey and green are the reference's).
pub const PALETTE: [&str; 8] = [
    "#d62728", "#1f77b4", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
];

/// A figure: plotly traces and a layout, ready to render as HTML.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The figure's title (also the HTML page title).
    pub title: String,
    /// plotly trace objects.
    pub traces: Vec<Value>,
    /// plotly layout object.
    pub layout: Value,
}

impl Figure {
    /// An empty figure titled `title`.
    pub fn new(title: &str) -> Figure {
        Figure {
            title: title.to_string(),
            traces: Vec::new(),
            layout: json!({"title": {"text": title}, "plot_bgcolor": "white", "paper_bgcolor": "white"}),
        }
    }

    /// Adds a typed plotly trace.
    pub fn add<T: serde::Serialize + ?Sized>(&mut self, trace: &T) -> Result<()> {
        let v =
            serde_json::to_value(trace).map_err(|e| Error::invalid("plot trace", e.to_string()))?;
        self.traces.push(v);
        Ok(())
    }

    /// Sets `layout[key] = value`.
    pub fn set_layout(&mut self, key: &str, value: Value) {
        if let Some(m) = self.layout.as_object_mut() {
            m.insert(key.to_string(), value);
        }
    }

    /// The plotly JSON `{data, layout}`.
    pub fn to_json(&self) -> Value {
        json!({"data": self.traces, "layout": self.layout})
    }

    /// A standalone HTML page with plotly.js inlined (no network needed).
    pub fn to_html(&self) -> String {
        let data = safe_json(&Value::Array(self.traces.clone()));
        let layout = safe_json(&self.layout);
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>{title}</title>\n{js}\n</head>\n<body>\n\
             <div id=\"primeflow-figure\" style=\"width:100%;height:95vh;\"></div>\n\
             <script type=\"text/javascript\">\nPlotly.newPlot(\"primeflow-figure\", {data}, {layout}, {{\"responsive\": true}});\n</script>\n</body>\n</html>\n",
            title = html_escape(&self.title),
            js = plotly::Plot::offline_js_sources(),
        )
    }

    /// The page inside an `<iframe srcdoc=...>` (for notebooks).
    pub fn iframe_html(&self, height_px: usize) -> String {
        let doc = self.to_html().replace('&', "&amp;").replace('"', "&quot;");
        format!("<iframe srcdoc=\"{doc}\" style=\"width:100%;height:{height_px}px;border:none;\"></iframe>")
    }

    /// Writes the HTML page to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, self.to_html().as_bytes())
    }
}

/// JSON that can sit inside a `<script>` element (`</` escaped).
pub(crate) fn safe_json(v: &Value) -> String {
    v.to_string().replace("</", "<\\/")
}

pub(crate) use crate::metrics::table::escape as html_escape;

/// Plotly's axis names for panel `i` (0-based): `("x", "y")`, `("x2", "y2")`...
pub fn axis_names(i: usize) -> (String, String) {
    if i == 0 {
        ("x".into(), "y".into())
    } else {
        (format!("x{}", i + 1), format!("y{}", i + 1))
    }
}

/// Layout key of an axis name: `x` -> `xaxis`, `y3` -> `yaxis3`.
pub fn axis_key(name: &str) -> String {
    let (letter, n) = name.split_at(1);
    format!("{letter}axis{n}")
}

/// A panel title placed above panel `i`.
pub fn panel_title(i: usize, text: &str) -> Value {
    let (x, y) = axis_names(i);
    json!({
        "text": format!("<b>{}</b>", html_escape(text)),
        "showarrow": false,
        "xref": format!("{x} domain"),
        "yref": format!("{y} domain"),
        "x": 0.5, "y": 1.08, "xanchor": "center", "yanchor": "bottom",
    })
}

/// True when the HTML loads a script from elsewhere: some `<script ...>`
/// tag has a `src` attribute. The body of each script is skipped up to its
/// `</script>`, so JavaScript text is never mistaken for a tag.
pub fn has_external_script(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("<script") {
        let after = &rest[i..];
        let Some(tag_end) = after.find('>') else {
            return false;
        };
        let tag = &after[..tag_end];
        let has_src = tag
            .split(|c: char| c.is_whitespace())
            .any(|attr| attr.trim_start_matches('/').starts_with("src=") || attr == "src");
        if has_src {
            return true;
        }
        let body = &after[tag_end..];
        match body.find("</script") {
            Some(j) => rest = &body[j + 8..],
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_self_contained() {
        let mut f = Figure::new("t </script>");
        f.add(&*plotly::Scatter::new(vec![1.0, 2.0], vec![3.0, 4.0]))
            .unwrap();
        let html = f.to_html();
        assert!(!has_external_script(&html));
        assert!(html.contains("Plotly.newPlot"));
        assert!(!html.contains("t </script>"));
        assert!(has_external_script(
            "<html><script type=\"x\" src=\"https://cdn\"></script>"
        ));
    }

    #[test]
    fn axis_names_follow_plotly() {
        assert_eq!(axis_names(0), ("x".to_string(), "y".to_string()));
        assert_eq!(axis_names(2), ("x3".to_string(), "y3".to_string()));
        assert_eq!(axis_key("x"), "xaxis");
        assert_eq!(axis_key("y3"), "yaxis3");
    }
}
