//! Tables as HTML and Markdown: the one renderer of every table primeflow
//! shows (evaluation summaries, model comparisons; notebooks, reports and
//! the scripting layer only wrap these strings). Cells are plain text,
//! escaped; a cell may be marked bold.

/// One table cell: its text and whether it is emphasised (the best value of
/// a column).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub bold: bool,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, bold: false }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// `s` with `& < > "` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An HTML `<table>` with a header row (inline styles: it renders the same
/// in a notebook, a report page or a browser).
pub fn html(header: &[String], rows: &[Vec<Cell>]) -> String {
    let mut s =
        String::from("<table style=\"border-collapse:collapse;font-family:monospace\">\n<tr>");
    for h in header {
        s.push_str(&format!(
            "<th style=\"text-align:left;padding:2px 8px;border-bottom:1px solid #888\">{}</th>",
            escape(h)
        ));
    }
    s.push_str("</tr>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let t = escape(&c.text);
            let t = if c.bold { format!("<b>{t}</b>") } else { t };
            s.push_str(&format!("<td style=\"padding:2px 8px\">{t}</td>"));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>");
    s
}

/// A GitHub-flavoured Markdown table (`|` in cells escaped, bold as `**`).
pub fn markdown(header: &[String], rows: &[Vec<Cell>]) -> String {
    let line = |cells: Vec<String>| {
        format!(
            "| {} |\n",
            cells
                .iter()
                .map(|c| c.replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join(" | ")
        )
    };
    let mut s = line(header.to_vec());
    s.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        s.push_str(&line(
            r.iter()
                .map(|c| {
                    if c.bold {
                        format!("**{}**", c.text)
                    } else {
                        c.text.clone()
                    }
                })
                .collect(),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_escaped_and_bold_is_marked_in_both_forms() {
        let header = vec!["model".to_string(), "a|b".to_string()];
        let rows = vec![vec![
            Cell::from("<U-Net> & co"),
            Cell {
                text: "0.5 ± 0.1".into(),
                bold: true,
            },
        ]];
        let h = html(&header, &rows);
        assert!(h.contains("&lt;U-Net&gt; &amp; co"), "{h}");
        assert!(h.contains("<b>0.5 ± 0.1</b>"), "{h}");
        assert!(!h.contains("<U-Net>"), "{h}");
        let m = markdown(&header, &rows);
        assert_eq!(
            m,
            "| model | a\\|b |\n|---|---|\n| <U-Net> & co | **0.5 ± 0.1** |\n"
        );
    }
}
