//! `Report`: one HTML page per experiment with every table and figure
//! ([`crate::plot::Report`]; plotly.js inlined once).
//!
//! ```rhai
//! let r = Report("Guidance sweep");
//! r.heading("Metrics");
//! r.add(comparison);          // a table, best per column in bold
//! r.add(loss_plot(h));        // a figure
//! r.text("Trained 300 steps on 2 CPU cores.");
//! r.save("out/report.html");
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use rhai::plugin::*;
use rhai::Dynamic;

use super::comparison::ComparisonHandle;
use super::convert::path_arg;
use super::error::{guard, invalid, RhaiResult};
use super::metrics::TableHandle;
use super::plot::PlotHandle;
use crate::plot::{Block, Report};

/// A report handle (cheap to clone; clones share the page).
#[derive(Debug, Clone)]
pub struct ReportHandle(pub Rc<RefCell<Report>>);

#[export_module]
pub mod report_api {
    use super::*;

    /// A report page being assembled.
    /// ```rhai
    /// let r = Report("My experiment");
    /// ```
    pub type Report = ReportHandle;

    /// An empty report titled `title`.
    /// ```rhai
    /// let r = Report("Paper table");
    /// ```
    #[rhai_fn(name = "Report")]
    pub fn new_report(title: &str) -> Report {
        ReportHandle(Rc::new(RefCell::new(crate::plot::Report::new(title))))
    }

    /// Adds a section heading.
    /// ```rhai
    /// r.heading("Held-out units");
    /// ```
    pub fn heading(r: &mut Report, text: &str) {
        r.0.borrow_mut().push(Block::Heading(text.to_string()));
    }

    /// Adds a paragraph.
    /// ```rhai
    /// r.text("3 seeds, 2 CPU cores.");
    /// ```
    pub fn text(r: &mut Report, text: &str) {
        r.0.borrow_mut().push(Block::Text(text.to_string()));
    }

    /// Adds preformatted text (e.g. `comparison.to_string()`).
    /// ```rhai
    /// r.pre(`${comparison}`);
    /// ```
    pub fn pre(r: &mut Report, text: &str) {
        r.0.borrow_mut().push(Block::Pre(text.to_string()));
    }

    /// Adds a figure (`Plot`), a comparison (models x metrics, best per
    /// column in bold) or an evaluation table.
    /// ```rhai
    /// r.add(metric_bars(comparison));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn add(r: &mut Report, item: Dynamic) -> RhaiResult<()> {
        let block = if let Some(p) = item.read_lock::<PlotHandle>() {
            let height = if p.0.title.contains("PCA") { 700 } else { 500 };
            Block::Figure((*p.0).clone(), height)
        } else if let Some(c) = item.read_lock::<ComparisonHandle>() {
            Block::Html(c.html().0)
        } else if let Some(t) = item.read_lock::<TableHandle>() {
            Block::Pre(t.0.to_string())
        } else {
            return Err(invalid(
                "Report.add",
                format!(
                    "a {} cannot go in a report; add a Plot, a Comparison or a metrics table (or use text/pre)",
                    item.type_name()
                ),
            ));
        };
        r.0.borrow_mut().push(block);
        Ok(())
    }

    /// Writes the page atomically and returns its path.
    /// ```rhai
    /// print(r.save("out/report.html"));
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save(r: &mut Report, path: &str) -> RhaiResult<String> {
        let p = path_arg("report file", path)?;
        let page = r.0.borrow().clone();
        guard(|| page.save(&p))?;
        Ok(path.to_string())
    }

    /// The page as an HTML string.
    /// ```rhai
    /// let html = r.to_html();
    /// ```
    #[rhai_fn(pure)]
    pub fn to_html(r: &mut Report) -> String {
        r.0.borrow().to_html()
    }

    /// `Report 'title' (n blocks)`.
    /// ```rhai
    /// print(r);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(r: &mut Report) -> String {
        let r = r.0.borrow();
        format!("Report '{}' ({} blocks)", r.title, r.blocks.len())
    }
}

/// Registers `Report`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<ReportHandle>("Report");
    engine.register_global_module(exported_module!(report_api).into());
}
