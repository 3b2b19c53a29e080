//! `Evaluation`: the result of [`super::Metrics::evaluate`] — the summary
//! (metric -> mean over units), the per-unit table, the pairwise matrices of
//! the rank metrics and the units that could not be scored — as JSON, CSV and
//! a readable terminal table. NaN and infinities are written as JSON `null`
//! and as `NaN`/`inf` in CSV.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::MetricsConfig;
use crate::error::{Error, Result};

/// One scored unit's metric values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitScores {
    pub cov_key: String,
    pub perturbation: String,
    /// Predicted cells of the unit.
    pub n_pred: usize,
    /// Reference cells of the unit.
    pub n_ref: usize,
    /// Metric name -> value (rank metrics: the unit's normalised rank).
    #[serde(with = "nan_map")]
    pub values: BTreeMap<String, f64>,
}

/// `M[q, p] = metric(pred_q, ref_p)` of one covariate key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairwiseMatrix {
    /// Predicted perturbations (rows).
    pub rows: Vec<String>,
    /// Reference perturbations (columns).
    pub cols: Vec<String>,
    /// `[rows, cols]`.
    #[serde(with = "nan_matrix")]
    pub values: Vec<Vec<f64>>,
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Metric name -> unweighted mean over the scored units (NaN units
    /// skipped, as pandas does; NaN when every unit is NaN).
    #[serde(with = "nan_map")]
    pub summary: BTreeMap<String, f64>,
    /// Metric names in the requested order.
    pub metrics: Vec<String>,
    /// One row per scored unit, sorted by (covariate key, perturbation).
    pub per_unit: Vec<UnitScores>,
    /// Covariate key -> rank metric name -> its pairwise matrix.
    pub pairwise: BTreeMap<String, BTreeMap<String, PairwiseMatrix>>,
    /// `cov_key/perturbation` units only the prediction has (not scored).
    pub only_in_pred: Vec<String>,
    /// `cov_key/perturbation` units only the reference has (not scored).
    pub only_in_ref: Vec<String>,
    /// Control cells of the prediction replaced by the reference's.
    pub dropped_pred_controls: usize,
    /// Negative values among the prediction's expression values (scored as
    /// generated: flow models spread near-zero genes around 0), and the
    /// number of values.
    #[serde(default)]
    pub pred_negative_values: usize,
    #[serde(default)]
    pub pred_values: usize,
    /// MMD rank metric name -> `[computed, total]` off-diagonal unit pairs
    /// over the covariate keys (`mmd_pairs = bounded` decides the others
    /// from bounds; their pairwise values are null).
    #[serde(default)]
    pub mmd_pairs_computed: BTreeMap<String, [usize; 2]>,
    /// The settings used.
    pub config: MetricsConfig,
    /// Wall time of the evaluation.
    pub seconds: f64,
}

/// Mean of the non-NaN values (NaN when there are none).
pub fn mean_skip_nan(v: &[f64]) -> f64 {
    let (s, n) = v
        .iter()
        .filter(|x| !x.is_nan())
        .fold((0.0, 0usize), |(s, n), &x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

impl Evaluation {
    /// Header (`metric`, `value`) and one row per metric of the summary
    /// (six decimals).
    pub fn summary_table(&self) -> (Vec<String>, Vec<Vec<super::table::Cell>>) {
        let header = vec!["metric".to_string(), "value".to_string()];
        let rows = self
            .metrics
            .iter()
            .map(|m| {
                vec![
                    m.as_str().into(),
                    format!("{:.6}", self.get(m).unwrap_or(f64::NAN)).into(),
                ]
            })
            .collect();
        (header, rows)
    }

    /// The summary as HTML: a line with the number of scored units, then
    /// the table (notebooks, report pages).
    pub fn summary_html(&self) -> String {
        let (header, rows) = self.summary_table();
        format!(
            "<div>PerturBench metrics: {} units</div>{}",
            self.per_unit.len(),
            super::table::html(&header, &rows)
        )
    }

    /// The summary as a Markdown table.
    pub fn summary_markdown(&self) -> String {
        let (header, rows) = self.summary_table();
        super::table::markdown(&header, &rows)
    }

    /// The summary value of metric `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.summary.get(name).copied()
    }

    /// The per-unit row of `cov_key`/`perturbation`.
    pub fn unit(&self, cov_key: &str, perturbation: &str) -> Option<&UnitScores> {
        self.per_unit
            .iter()
            .find(|u| u.cov_key == cov_key && u.perturbation == perturbation)
    }

    /// Writes the whole evaluation as JSON (atomically).
    pub fn to_json(&self, path: &Path) -> Result<()> {
        crate::atomic::write_json(path, self)
    }

    /// Reads an evaluation written by [`to_json`](Self::to_json).
    pub fn from_json(path: &Path) -> Result<Evaluation> {
        crate::atomic::read_json(path)
    }

    /// Writes the per-unit table as CSV (atomically): `cov_key,
    /// perturbation, n_pred, n_ref` and one column per metric, then a last
    /// row `ALL,mean,...` with the summary.
    pub fn to_csv(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, self.csv().as_bytes())
    }

    /// The CSV text of [`to_csv`](Self::to_csv).
    pub fn csv(&self) -> String {
        let mut s = String::from("cov_key,perturbation,n_pred,n_ref");
        for m in &self.metrics {
            s.push(',');
            s.push_str(&csv_field(m));
        }
        s.push('\n');
        for u in &self.per_unit {
            let _ = write!(
                s,
                "{},{},{},{}",
                csv_field(&u.cov_key),
                csv_field(&u.perturbation),
                u.n_pred,
                u.n_ref
            );
            for m in &self.metrics {
                let _ = write!(
                    s,
                    ",{}",
                    fmt_csv(u.values.get(m).copied().unwrap_or(f64::NAN))
                );
            }
            s.push('\n');
        }
        let n_pred: usize = self.per_unit.iter().map(|u| u.n_pred).sum();
        let n_ref: usize = self.per_unit.iter().map(|u| u.n_ref).sum();
        let _ = write!(s, "ALL,mean,{n_pred},{n_ref}");
        for m in &self.metrics {
            let _ = write!(s, ",{}", fmt_csv(self.get(m).unwrap_or(f64::NAN)));
        }
        s.push('\n');
        s
    }

    /// Writes every pairwise matrix as `dir/pairwise_<metric>_<cov_key>.csv`
    /// (rows: predicted perturbations; columns: reference perturbations) and
    /// returns the paths written.
    pub fn pairwise_to_csv(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut written = Vec::new();
        for (cov, mats) in &self.pairwise {
            for (metric, m) in mats {
                let safe: String = cov
                    .chars()
                    .map(|c| {
                        if c.is_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("pairwise_{metric}_{safe}.csv"));
                let mut s = String::from("pred\\ref");
                for c in &m.cols {
                    s.push(',');
                    s.push_str(&csv_field(c));
                }
                s.push('\n');
                for (r, row) in m.rows.iter().zip(&m.values) {
                    s.push_str(&csv_field(r));
                    for v in row {
                        let _ = write!(s, ",{}", fmt_csv(*v));
                    }
                    s.push('\n');
                }
                crate::atomic::write_bytes(&path, s.as_bytes())?;
                written.push(path);
            }
        }
        Ok(written)
    }

    /// Units whose value of `metric` is NaN.
    pub fn nan_units(&self, metric: &str) -> usize {
        self.per_unit
            .iter()
            .filter(|u| u.values.get(metric).map(|v| v.is_nan()).unwrap_or(false))
            .count()
    }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let covs: std::collections::BTreeSet<&str> =
            self.per_unit.iter().map(|u| u.cov_key.as_str()).collect();
        writeln!(
            f,
            "PerturBench metrics: {} units in {} covariate keys (rank {:?}, PCA {}, top-k {}, {:.1} s)",
            self.per_unit.len(),
            covs.len(),
            self.config.rank,
            self.config.pca_components,
            self.config.top_k,
            self.seconds
        )?;
        let w = self
            .metrics
            .iter()
            .map(|m| m.len())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(f, "  {:<w$}  {:>12}", "metric", "value")?;
        for m in &self.metrics {
            let v = self.get(m).unwrap_or(f64::NAN);
            let nan = self.nan_units(m);
            let note = if nan > 0 {
                format!("  ({nan} NaN units skipped)")
            } else {
                String::new()
            };
            writeln!(f, "  {:<w$}  {:>12.7}{note}", m, v)?;
        }
        let list = |v: &[String]| {
            let shown: Vec<&str> = v.iter().take(10).map(|s| s.as_str()).collect();
            format!(
                "{}{}",
                shown.join(", "),
                if v.len() > 10 { ", ..." } else { "" }
            )
        };
        if !self.only_in_pred.is_empty() {
            writeln!(
                f,
                "warning: {} units only in the prediction (not scored): {}",
                self.only_in_pred.len(),
                list(&self.only_in_pred)
            )?;
        }
        if !self.only_in_ref.is_empty() {
            writeln!(
                f,
                "warning: {} units only in the reference (not scored): {}",
                self.only_in_ref.len(),
                list(&self.only_in_ref)
            )?;
        }
        if self.dropped_pred_controls > 0 {
            writeln!(
                f,
                "note: {} control cells of the prediction were replaced by the reference's controls",
                self.dropped_pred_controls
            )?;
        }
        if self.pred_negative_values > 0 {
            writeln!(
                f,
                "note: {} of the prediction's {} values are negative ({:.2}%); they are scored as generated",
                self.pred_negative_values,
                self.pred_values,
                100.0 * self.pred_negative_values as f64 / self.pred_values.max(1) as f64
            )?;
        }
        Ok(())
    }
}

fn fmt_csv(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Quotes a CSV field when needed.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// f64 values with non-finite ones as `null`.
pub(crate) mod nan_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let o: BTreeMap<&String, Option<f64>> = m
            .iter()
            .map(|(k, v)| (k, v.is_finite().then_some(*v)))
            .collect();
        o.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let o: BTreeMap<String, Option<f64>> = BTreeMap::deserialize(d)?;
        Ok(o.into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

/// `Vec<Vec<f64>>` with non-finite values as `null`.
pub(crate) mod nan_matrix {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        let o: Vec<Vec<Option<f64>>> = m
            .iter()
            .map(|r| r.iter().map(|v| v.is_finite().then_some(*v)).collect())
            .collect();
        o.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        let o: Vec<Vec<Option<f64>>> = Vec::deserialize(d)?;
        Ok(o.into_iter()
            .map(|r| r.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            .collect())
    }
}
