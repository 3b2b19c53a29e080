//! `Report`: one self-contained HTML page per experiment with every table
//! and figure, and plotly.js inlined once (not once per figure): headings,
//! paragraphs, preformatted text, HTML tables and [`Figure`]s in order.

use std::fmt::Write as _;
use std::path::Path;

use super::{html_escape, safe_json, Figure};
use crate::error::Result;

/// One block of a report.
#[derive(Debug, Clone)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A paragraph of plain text.
    Text(String),
    /// Preformatted text (a terminal table, a log).
    Pre(String),
    /// Trusted HTML (a table rendered by the library).
    Html(String),
    /// A plotly figure and its height in pixels.
    Figure(Figure, usize),
}

/// An HTML report page.
#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Report {
    /// An empty report titled `title`.
    pub fn new(title: &str) -> Report {
        Report {
            title: title.to_string(),
            blocks: Vec::new(),
        }
    }

    /// Appends a block.
    pub fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }

    /// The page: every block in order, plotly.js inlined once (only when
    /// the report has a figure).
    pub fn to_html(&self) -> String {
        let has_fig = self.blocks.iter().any(|b| matches!(b, Block::Figure(..)));
        let mut body = String::new();
        let mut n_fig = 0usize;
        for b in &self.blocks {
            match b {
                Block::Heading(t) => {
                    let _ = writeln!(body, "<h2>{}</h2>", html_escape(t));
                }
                Block::Text(t) => {
                    let _ = writeln!(body, "<p>{}</p>", html_escape(t));
                }
                Block::Pre(t) => {
                    let _ = writeln!(body, "<pre>{}</pre>", html_escape(t));
                }
                Block::Html(h) => {
                    let _ = writeln!(body, "<div class=\"table\">{h}</div>");
                }
                Block::Figure(f, height) => {
                    let id = format!("primeflow-figure-{n_fig}");
                    n_fig += 1;
                    let _ = writeln!(
                        body,
                        "<div id=\"{id}\" style=\"width:100%;height:{height}px;\"></div>\n<script type=\"text/javascript\">Plotly.newPlot(\"{id}\", {}, {}, {{\"responsive\": true}});</script>",
                        safe_json(&serde_json::Value::Array(f.traces.clone())),
                        safe_json(&f.layout)
                    );
                }
            }
        }
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>{title}</title>\n{js}\n<style>body{{font-family:sans-serif;margin:2em;}} table{{border-collapse:collapse;}} td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right;}} pre{{background:#f6f6f6;padding:1em;overflow-x:auto;}}</style>\n</head>\n<body>\n<h1>{title}</h1>\n{body}</body>\n</html>\n",
            title = html_escape(&self.title),
            js = if has_fig {
                plotly::Plot::offline_js_sources()
            } else {
                String::new()
            },
        )
    }

    /// Writes the page to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, self.to_html().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_plotly_js_for_every_figure() {
        let mut r = Report::new("exp <1>");
        r.push(Block::Heading("Metrics".into()));
        r.push(Block::Html("<table><tr><td>1</td></tr></table>".into()));
        for i in 0..3 {
            let mut f = Figure::new(&format!("f{i}"));
            f.add(&*plotly::Scatter::new(vec![1.0], vec![2.0])).unwrap();
            r.push(Block::Figure(f, 300));
        }
        let html = r.to_html();
        let one = Figure::new("x").to_html().len();
        assert!(
            html.len() < one + 20_000,
            "plotly.js inlined more than once"
        );
        // plotly.js itself mentions `Plotly.newPlot`; the figures add one each.
        let in_js = plotly::Plot::offline_js_sources()
            .matches("Plotly.newPlot")
            .count();
        assert_eq!(html.matches("Plotly.newPlot").count(), in_js + 3);
        assert!(html.contains("exp &lt;1&gt;"));
        assert!(!super::super::has_external_script(&html));
        // No figure: no plotly.js at all.
        let mut t = Report::new("t");
        t.push(Block::Text("a".into()));
        assert!(t.to_html().len() < 2000);
    }
}
