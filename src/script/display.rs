//! How a cell's value is shown in a notebook: one MIME bundle per value,
//! shared by the Jupyter kernel (`execute_result`) and the evcxr
//! [`super::notebook`] display.
//!
//! | value | `text/plain` | `text/html` | `application/vnd.plotly.v1+json` |
//! |---|---|---|---|
//! | any | what `print` shows | | |
//! | `MetricsTable`, `Comparison` | the terminal table | an HTML table (best mean in bold) | |
//! | `Dataset` | its summary | the summary, preformatted | |
//! | `Plot` | `Plot 'title'` | an `<iframe srcdoc>` of the self-contained page | `{data, layout}` |
//! | `Report` | `Report 'title' (n blocks)` | an `<iframe srcdoc>` of the page | |
//!
//! JupyterLab renders the plotly JSON when its plotly renderer is present
//! and the HTML otherwise; the classic notebook renders the HTML. Both work
//! offline: the HTML inlines plotly.js.

use rhai::{Dynamic, Engine};
use serde_json::Value;

use super::engine::display_value;
use super::notebook::Html;
use super::plot::PlotHandle;
use super::report::ReportHandle;

/// The MIME type of plotly figures.
pub const PLOTLY_MIME: &str = "application/vnd.plotly.v1+json";

/// A value's representations, richest last.
#[derive(Debug, Clone, PartialEq)]
pub struct MimeBundle {
    /// `text/plain`: always present.
    pub plain: String,
    /// `text/html`, for tables, datasets, figures and reports.
    pub html: Option<String>,
    /// `application/vnd.plotly.v1+json` (`{data, layout}`), for figures.
    pub plotly: Option<Value>,
}

impl MimeBundle {
    /// A bundle with only text.
    pub fn text(plain: impl Into<String>) -> MimeBundle {
        MimeBundle {
            plain: plain.into(),
            html: None,
            plotly: None,
        }
    }

    /// `(mime type, value)` pairs as Jupyter's `data` field holds them.
    pub fn entries(&self) -> Vec<(&'static str, Value)> {
        let mut v = vec![("text/plain", Value::String(self.plain.clone()))];
        if let Some(h) = &self.html {
            v.push(("text/html", Value::String(h.clone())));
        }
        if let Some(p) = &self.plotly {
            v.push((PLOTLY_MIME, p.clone()));
        }
        v
    }
}

/// The bundle of `v` (see the module docs); `text/plain` comes from the
/// same `to_string` a script's `print` uses.
pub fn bundle(engine: &Engine, v: &Dynamic) -> MimeBundle {
    let plain = display_value(engine, v);
    if let Some(p) = v.read_lock::<PlotHandle>() {
        return MimeBundle {
            plain,
            html: Some(Html::figure(&p.0).0),
            plotly: Some(p.0.to_json()),
        };
    }
    if let Some(r) = v.read_lock::<ReportHandle>() {
        let page = r.0.borrow().to_html();
        return MimeBundle {
            plain,
            html: Some(iframe(&page, 800)),
            plotly: None,
        };
    }
    MimeBundle {
        plain,
        html: super::rich_html(v),
        plotly: None,
    }
}

/// A whole HTML page inside an `<iframe srcdoc=...>` (its scripts run in
/// the frame, so a notebook shows it as a browser would).
pub fn iframe(page: &str, height_px: usize) -> String {
    let doc = page.replace('&', "&amp;").replace('"', "&quot;");
    format!(
        "<iframe srcdoc=\"{doc}\" style=\"width:100%;height:{height_px}px;border:none;\"></iframe>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_have_only_text() {
        let engine = Engine::new();
        let b = bundle(&engine, &Dynamic::from_int(42));
        assert_eq!(b, MimeBundle::text("42"));
        assert_eq!(b.entries().len(), 1);
    }

    #[test]
    fn figures_carry_plotly_json_and_html() {
        let engine = Engine::new();
        let mut fig = crate::plot::Figure::new("t");
        fig.add(&serde_json::json!({"type": "scatter", "x": [1], "y": [2]}))
            .unwrap();
        let v = Dynamic::from(PlotHandle(std::rc::Rc::new(fig)));
        let b = bundle(&engine, &v);
        let p = b.plotly.as_ref().unwrap();
        assert!(p["data"].is_array() && p["layout"].is_object());
        assert!(b.html.as_deref().unwrap().starts_with("<iframe srcdoc="));
        let mimes: Vec<&str> = b.entries().iter().map(|(m, _)| *m).collect();
        assert_eq!(mimes, ["text/plain", "text/html", PLOTLY_MIME]);
    }
}
