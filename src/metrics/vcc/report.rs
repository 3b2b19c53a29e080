//! `CellEvalReport`: per-perturbation values of cell-eval's metrics and
//! their summary, under cell-eval's names.
//!
//! The summary of a metric is what cell-eval writes to `agg_results.csv`
//! (polars `describe()`): `count`, `null_count`, `mean`, `std` (ddof 1),
//! `min`, `25%`, `50%`, `75%`, `max`, the quantiles by the nearest rank
//! `round_half_up(q (n - 1))` of the sorted values. NaN values (e.g. a
//! constant effect in `pearson_delta`) are counted and propagate as in
//! polars.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The summary rows of cell-eval's `agg_results.csv`, in its order.
pub const SUMMARY_STATS: [&str; 9] = [
    "count",
    "null_count",
    "mean",
    "std",
    "min",
    "25%",
    "50%",
    "75%",
    "max",
];

/// One metric: its per-perturbation values and their summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricColumn {
    /// cell-eval's name (`mae`, `discrimination_score_l1`, `overlap_at_N`).
    pub name: String,
    /// `[P]` one value per perturbation, in [`CellEvalReport::perturbations`]
    /// order.
    pub values: Vec<f64>,
    /// [`SUMMARY_STATS`] in order, `[9]`.
    pub summary: Vec<f64>,
}

/// What `primeflow evaluate --profile vcc` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellEvalReport {
    /// `vcc` or `minimal`.
    pub profile: String,
    /// cell-eval's version whose conventions these are.
    pub cell_eval_version: String,
    /// The control label.
    pub control: String,
    /// `[P]` non-control perturbations, sorted (byte order, as numpy's
    /// `unique`).
    pub perturbations: Vec<String>,
    /// The metrics, in cell-eval's column order (DE metrics first).
    pub metrics: Vec<MetricColumn>,
}

/// polars `describe()` of one column.
pub fn describe(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let count = n as f64;
    let mean = values.iter().sum::<f64>() / count;
    let std = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if n == 0 {
            return f64::NAN;
        }
        let i = (p * (n - 1) as f64 + 0.5).floor() as usize;
        sorted[i.min(n - 1)]
    };
    let (min, max) = if n == 0 {
        (f64::NAN, f64::NAN)
    } else {
        (sorted[0], sorted[n - 1])
    };
    vec![count, 0.0, mean, std, min, q(0.25), q(0.5), q(0.75), max]
}

impl MetricColumn {
    /// A metric column with its summary.
    pub fn new(name: &str, values: Vec<f64>) -> MetricColumn {
        let summary = describe(&values);
        MetricColumn {
            name: name.to_string(),
            values,
            summary,
        }
    }

    /// The mean over perturbations.
    pub fn mean(&self) -> f64 {
        self.summary[2]
    }
}

impl CellEvalReport {
    /// The mean of metric `name` over perturbations, if reported.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.mean())
    }

    /// The per-perturbation table (cell-eval's `results.csv`): a column
    /// `perturbation` then one per metric.
    pub fn results_csv(&self) -> String {
        let mut s = String::from("perturbation");
        for m in &self.metrics {
            s.push(',');
            s.push_str(&m.name);
        }
        s.push('\n');
        for (i, p) in self.perturbations.iter().enumerate() {
            s.push_str(&crate::metrics::report::csv_field(p));
            for m in &self.metrics {
                s.push_str(&format!(",{}", m.values[i]));
            }
            s.push('\n');
        }
        s
    }

    /// The summary table (cell-eval's `agg_results.csv`): a column
    /// `statistic` then one per metric.
    pub fn agg_csv(&self) -> String {
        let mut s = String::from("statistic");
        for m in &self.metrics {
            s.push(',');
            s.push_str(&m.name);
        }
        s.push('\n');
        for (i, stat) in SUMMARY_STATS.iter().enumerate() {
            s.push_str(stat);
            for m in &self.metrics {
                s.push_str(&format!(",{}", m.summary[i]));
            }
            s.push('\n');
        }
        s
    }

    /// Writes the report as JSON (atomically).
    pub fn to_json(&self, path: &Path) -> Result<()> {
        crate::atomic::write_json(path, self)
    }

    /// Writes [`results_csv`](Self::results_csv) (atomically).
    pub fn to_csv(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, self.results_csv().as_bytes())
    }

    /// Writes [`agg_csv`](Self::agg_csv) (atomically).
    pub fn agg_to_csv(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, self.agg_csv().as_bytes())
    }
}

impl std::fmt::Display for CellEvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cell-eval {} profile '{}': {} perturbations (control '{}')",
            self.cell_eval_version,
            self.profile,
            self.perturbations.len(),
            self.control
        )?;
        let w = self
            .metrics
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(f, "{:<w$}  {:>10}  {:>10}", "metric", "mean", "std")?;
        for m in &self.metrics {
            writeln!(
                f,
                "{:<w$}  {:>10.6}  {:>10.6}",
                m.name, m.summary[2], m.summary[3]
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quantiles as polars 2.1 `describe()` gives them for 0..n
    /// (`pl.DataFrame({"m": [0., 1., ...]}).describe()`).
    #[test]
    fn describe_matches_polars_nearest_quantiles() {
        let cases: [(usize, [f64; 3]); 5] = [
            (2, [0.0, 1.0, 1.0]),
            (3, [1.0, 1.0, 2.0]),
            (4, [1.0, 2.0, 2.0]),
            (6, [1.0, 3.0, 4.0]),
            (7, [2.0, 3.0, 5.0]),
        ];
        for (n, want) in cases {
            let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let d = describe(&v);
            assert_eq!(&d[5..8], &want, "n = {n}");
        }
        let d = describe(&[0.1, 0.5, 0.2, 0.9, 0.3]);
        assert!((d[3] - 0.316227766).abs() < 1e-9);
    }
}
