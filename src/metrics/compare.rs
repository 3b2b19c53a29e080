//! Several runs (training seeds) of several models -> the paper's table
//! layout (PRiMeFlow Tables 2-9, PerturBench): one row per model, one column
//! per metric, `mean ± sd` over the seeds. The sd is the sample standard
//! deviation (ddof = 1, as pandas' `std`); with one seed it is NaN and only
//! the mean is shown. NaN summaries are skipped. The best mean of each
//! column (highest for cosine / DEG recall, lowest for errors, MMD and every
//! rank metric) is marked: bold in Markdown and HTML, `*` in the terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::report::{csv_field, Evaluation};
use super::table::Cell;
use crate::error::Result;

/// Mean and sample sd of one (model, metric) cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(with = "nan_f64")]
    pub mean: f64,
    #[serde(with = "nan_f64")]
    pub sd: f64,
    /// Runs with a finite value.
    pub n: usize,
}

/// One model's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    pub model: String,
    /// Seeds of its runs, in the order given.
    pub seeds: Vec<u64>,
    /// Metric -> statistic.
    pub values: BTreeMap<String, Stat>,
}

/// Models x metrics, mean ± sd over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Metric columns, in first-seen order.
    pub metrics: Vec<String>,
    /// Model rows, in first-seen order.
    pub rows: Vec<ModelRow>,
}

/// Groups `runs` (model name, seed, evaluation) by model.
pub fn compare(runs: &[(String, u64, Evaluation)]) -> Comparison {
    let mut metrics: Vec<String> = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let mut seeds: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut values: BTreeMap<(&str, String), Vec<f64>> = BTreeMap::new();
    for (model, seed, ev) in runs {
        if !order.contains(model) {
            order.push(model.clone());
        }
        seeds.entry(model.as_str()).or_default().push(*seed);
        for m in &ev.metrics {
            if !metrics.contains(m) {
                metrics.push(m.clone());
            }
        }
        for (m, v) in &ev.summary {
            if !metrics.contains(m) {
                metrics.push(m.clone());
            }
            values
                .entry((model.as_str(), m.clone()))
                .or_default()
                .push(*v);
        }
    }
    let rows = order
        .iter()
        .map(|model| ModelRow {
            model: model.clone(),
            seeds: seeds.get(model.as_str()).cloned().unwrap_or_default(),
            values: metrics
                .iter()
                .map(|m| {
                    (
                        m.clone(),
                        stat(
                            values
                                .get(&(model.as_str(), m.clone()))
                                .map(|v| v.as_slice())
                                .unwrap_or(&[]),
                        ),
                    )
                })
                .collect(),
        })
        .collect();
    Comparison { metrics, rows }
}

/// Mean and sample sd (ddof 1) of the finite values.
pub fn stat(v: &[f64]) -> Stat {
    let x: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = x.len();
    if n == 0 {
        return Stat {
            mean: f64::NAN,
            sd: f64::NAN,
            n,
        };
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 {
        (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        f64::NAN
    };
    Stat { mean, sd, n }
}

/// Whether a larger value of the summary metric `name` is better (`None`
/// for names that are not PerturBench metrics).
pub fn higher_is_better(name: &str) -> Option<bool> {
    let spec = super::config::MetricSpec::parse(name).ok()?;
    Some(!spec.rank && spec.metric.is_similarity())
}

/// `mean ± sd` (4 decimals; the mean alone with one run; `-` when none).
pub fn stat_cell(s: Stat) -> String {
    if s.mean.is_nan() {
        "-".into()
    } else if s.sd.is_nan() {
        format!("{:.4}", s.mean)
    } else {
        format!("{:.4} ± {:.4}", s.mean, s.sd)
    }
}

impl Comparison {
    /// The best mean of `metric` over the rows (see [`higher_is_better`]);
    /// `None` when no row has a value or the direction is unknown.
    pub fn best(&self, metric: &str) -> Option<f64> {
        let hi = higher_is_better(metric)?;
        self.rows
            .iter()
            .filter_map(|r| r.values.get(metric).map(|s| s.mean))
            .filter(|v| v.is_finite())
            .reduce(|a, b| if (b > a) == hi { b } else { a })
    }

    /// True when `model` holds the best mean of `metric` (ties count), at
    /// the 4 decimals shown.
    pub fn is_best(&self, model: &str, metric: &str) -> bool {
        match (self.best(metric), self.get(model, metric)) {
            (Some(b), Some(s)) if s.mean.is_finite() => (b - s.mean).abs() < 5e-5,
            _ => false,
        }
    }

    /// Header (`model`, `runs`, metrics) and rows of `mean ± sd` cells, the
    /// best cell of each column marked bold.
    pub fn table(&self) -> (Vec<String>, Vec<Vec<Cell>>) {
        let mut header = vec!["model".to_string(), "runs".to_string()];
        header.extend(self.metrics.iter().cloned());
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut row = vec![
                    Cell::from(r.model.clone()),
                    Cell::from(r.seeds.len().to_string()),
                ];
                for m in &self.metrics {
                    row.push(Cell {
                        text: stat_cell(r.values.get(m).copied().unwrap_or(stat(&[]))),
                        bold: self.is_best(&r.model, m),
                    });
                }
                row
            })
            .collect();
        (header, rows)
    }

    /// The comparison as a Markdown table, the best of each column in bold.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.table();
        super::table::markdown(&header, &rows)
    }

    /// The comparison as an HTML table, the best of each column in bold.
    pub fn html(&self) -> String {
        let (header, rows) = self.table();
        super::table::html(&header, &rows)
    }

    /// The cell of `model` and `metric`.
    pub fn get(&self, model: &str, metric: &str) -> Option<Stat> {
        self.rows
            .iter()
            .find(|r| r.model == model)
            .and_then(|r| r.values.get(metric).copied())
    }

    /// Writes the comparison as JSON (atomically).
    pub fn to_json(&self, path: &Path) -> Result<()> {
        crate::atomic::write_json(path, self)
    }

    /// Writes `model,n_runs,<metric>_mean,<metric>_sd,...` (atomically).
    pub fn to_csv(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, self.csv().as_bytes())
    }

    /// The CSV text of [`to_csv`](Self::to_csv).
    pub fn csv(&self) -> String {
        let mut s = String::from("model,n_runs");
        for m in &self.metrics {
            let _ = write!(s, ",{m}_mean,{m}_sd");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = write!(s, "{},{}", csv_field(&r.model), r.seeds.len());
            for m in &self.metrics {
                let st = r.values.get(m).copied().unwrap_or(stat(&[]));
                let _ = write!(s, ",{},{}", num(st.mean), num(st.sd));
            }
            s.push('\n');
        }
        s
    }
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (_, table) = self.table();
        let cells: Vec<Vec<String>> = table
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| {
                        if c.bold {
                            format!("{}*", c.text)
                        } else {
                            c.text
                        }
                    })
                    .collect()
            })
            .collect();
        let mw = self
            .rows
            .iter()
            .map(|r| r.model.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let widths: Vec<usize> = self
            .metrics
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let w = cells
                    .iter()
                    .map(|row| row[j + 2].chars().count())
                    .max()
                    .unwrap_or(1);
                w.max(m.chars().count())
            })
            .collect();
        write!(f, "{:<mw$}  {:>5}", "model", "runs")?;
        for (m, w) in self.metrics.iter().zip(&widths) {
            write!(f, "  {:>w$}", m)?;
        }
        writeln!(f)?;
        for (r, row) in self.rows.iter().zip(&cells) {
            write!(f, "{:<mw$}  {:>5}", r.model, r.seeds.len())?;
            for (c, w) in row[2..].iter().zip(&widths) {
                write!(f, "  {:>w$}", c)?;
            }
            writeln!(f)?;
        }
        if self.rows.len() > 1 {
            writeln!(f, "(* best in its column)")?;
        }
        Ok(())
    }
}

/// f64 with non-finite values as `null`.
mod nan_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        v.is_finite().then_some(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
