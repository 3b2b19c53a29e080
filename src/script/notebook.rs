//! Jupyter display through evcxr: a value with an `evcxr_display(&self)`
//! method prints one `EVCXR_BEGIN_CONTENT <mime> ... EVCXR_END_CONTENT`
//! block, which the evcxr kernel shows as the cell's output.
//!
//! The formatting functions ([`Html::figure`], [`Html::table`],
//! [`Cell::html`]) return strings and are tested without Jupyter; only
//! `evcxr_display` prints. Nothing here panics (a panic restarts the kernel
//! and loses every variable).
//!
//! ```ignore
//! // In notebook cells (Rust, evcxr): the session persists across cells.
//! let mut nb = primeflow::script::notebook::Notebook::new();
//! nb.run(r#"let data = Dataset::simulate("tiny");"#);
//! // a later cell
//! nb.run("data.info()")
//! ```
//!
//! The session itself is held by the library ([`super::held_session`]),
//! not by the `Notebook` value: each evcxr cell runs its own copy of
//! primeflow, and a Rhai session built by one copy crashed the next.

use crate::plot::Figure;

/// An HTML fragment shown as `text/html`.
#[derive(Debug, Clone, PartialEq)]
pub struct Html(pub String);

impl Html {
    /// A figure as an `<iframe srcdoc>` of its self-contained page (renders
    /// offline inside Jupyter; plotly's own notebook output needs a CDN).
    pub fn figure(fig: &Figure) -> Html {
        let h = fig
            .layout
            .get("height")
            .and_then(|v| v.as_u64())
            .unwrap_or(450) as usize
            + 40;
        Html(fig.iframe_html(h))
    }

    /// A table with a header row; cells are escaped.
    pub fn table(header: &[String], rows: &[Vec<String>]) -> Html {
        let rows: Vec<Vec<crate::metrics::table::Cell>> = rows
            .iter()
            .map(|r| r.iter().map(|c| c.as_str().into()).collect())
            .collect();
        Html(crate::metrics::table::html(header, &rows))
    }

    /// An evaluation's summary (metric | value).
    pub fn evaluation(ev: &crate::metrics::Evaluation) -> Html {
        super::metrics::TableHandle(std::rc::Rc::new(ev.clone())).html()
    }

    /// A comparison: models x metrics, `mean ± sd` over seeds.
    pub fn comparison(c: &crate::metrics::Comparison) -> Html {
        super::comparison::ComparisonHandle(std::rc::Rc::new(c.clone())).html()
    }

    /// Preformatted text.
    pub fn pre(text: &str) -> Html {
        Html(format!("<pre>{}</pre>", escape(text)))
    }

    /// Prints the evcxr display block.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }
}

/// HTML-escapes `s`.
pub use crate::metrics::table::escape;

/// What one Rhai cell produced: printed lines, the value, or an error.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    /// Output of `print`/`debug`.
    pub printed: String,
    /// The value as text (unit: none).
    pub text: Option<String>,
    /// The value as HTML when it has a rich form (plots, tables).
    pub rich: Option<String>,
    /// The error, rendered with a caret.
    pub error: Option<String>,
}

impl Cell {
    /// The whole cell output as HTML.
    pub fn html(&self) -> String {
        let mut s = String::new();
        if !self.printed.is_empty() {
            s.push_str(&Html::pre(self.printed.trim_end()).0);
        }
        if let Some(r) = &self.rich {
            s.push_str(r);
        } else if let Some(t) = &self.text {
            s.push_str(&Html::pre(t).0);
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("<pre style=\"color:#b00\">{}</pre>", escape(e)));
        }
        s
    }

    /// Prints the evcxr display block.
    pub fn evcxr_display(&self) {
        Html(self.html()).evcxr_display();
    }

    /// `Err` when the Rhai code failed, so a notebook cell can fail with
    /// `nb.run(code).checked()?` (headless runs then stop there).
    pub fn checked(self) -> crate::Result<Cell> {
        match &self.error {
            Some(e) => Err(crate::Error::invalid("Rhai cell", e.clone())),
            None => Ok(self),
        }
    }
}

/// A handle on the Rhai session the library holds for notebook cells
/// ([`super::held_session`]): the same engine as the REPL and `primeflow
/// run`, with variables, functions and imports kept between cells. The
/// handle holds no Rhai value, so evcxr may keep it in a variable and use
/// it in any later cell; every handle in the process shares the one
/// session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notebook {
    _private: (),
}

impl Notebook {
    /// A handle on the held session (created at its first use).
    pub fn new() -> Notebook {
        Notebook { _private: () }
    }

    /// A handle on a fresh session: the held one is ended first.
    pub fn fresh() -> Notebook {
        super::held_session::reset();
        Notebook::new()
    }

    /// Runs one cell of Rhai code.
    pub fn run(&mut self, code: &str) -> Cell {
        super::held_session::run(code)
    }

    /// A variable of the session, as text (`None` when undefined).
    pub fn value(&self, name: &str) -> Option<String> {
        super::held_session::value(name)
    }
}

/// Runs one cell of Rhai code in the session the library holds: the same
/// as `Notebook::new().run(code)`.
/// ```ignore
/// primeflow::script::notebook::rhai(r#"let data = Dataset::simulate("tiny");"#);
/// primeflow::script::notebook::rhai("data.n_cells")   // a later cell
/// ```
pub fn rhai(code: &str) -> Cell {
    super::held_session::run(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_variables_and_show_errors() {
        let mut nb = Notebook::fresh();
        let c = nb.run("let x = 20; print(\"hi\"); x + 1");
        assert_eq!(c.printed, "hi\n");
        assert_eq!(c.text.as_deref(), Some("21"));
        let c = nb.run("x * 2");
        assert_eq!(c.text.as_deref(), Some("40"));
        let c = nb.run("nosuch(1)");
        assert!(c.error.as_deref().is_some_and(|e| e.contains("^")), "{c:?}");
        assert!(c.html().contains("color:#b00"));
    }

    #[test]
    fn tables_escape_their_cells() {
        let h = Html::table(&["a<b".into()], &[vec!["1 & 2".into()]]);
        assert!(h.0.contains("a&lt;b") && h.0.contains("1 &amp; 2"));
    }
}
