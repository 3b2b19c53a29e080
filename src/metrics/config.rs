//! `MetricsConfig` and the metric names it understands (metrics.md).
//!
//! A summary metric is a per-unit metric on one aggregation, optionally as a
//! rank (specificity) metric. Names follow PerturBench: `<metric>_<agg>` and
//! `<metric>_rank_<agg>` (`rmse_average`, `cosine_rank_logfc`), plus the
//! aliases `deg_recall[_rank]` (top-k recall on t-scores) and
//! `mmd_gex[_rank]`, `mmd_pca[_rank]` (energy MMD on the cells themselves and
//! on the reference PCA).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The ten metrics PerturBench v2 reports (issue 4, section 2).
pub const DEFAULT_METRICS: [&str; 10] = [
    "rmse_average",
    "rmse_rank_average",
    "cosine_logfc",
    "cosine_rank_logfc",
    "deg_recall",
    "deg_recall_rank",
    "mmd_gex",
    "mmd_gex_rank",
    "mmd_pca",
    "mmd_pca_rank",
];

/// How cells of a unit are summarised before a per-unit metric
/// (metrics.md, "Aggregations").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Mean of X over the unit's cells, `[G]`.
    Average,
    /// `log2(mean_p + 0.1) - log2(mean_ctrl + 0.1)`, `[G]`.
    Logfc,
    /// Welch t-scores against the covariate's controls with `n_p` for both
    /// variance terms (scanpy `t-test_overestim_var`), `[G]`.
    Scores,
    /// The cells projected on the reference's principal components, `[n, k]`.
    Pca,
    /// The cells themselves, `[n, G]`.
    None,
}

impl Aggregation {
    /// The name used in metric names.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Average => "average",
            Aggregation::Logfc => "logfc",
            Aggregation::Scores => "scores",
            Aggregation::Pca => "pca",
            Aggregation::None => "none",
        }
    }
}

/// A per-unit metric (metrics.md, "Per-unit metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitMetric {
    Rmse,
    Mse,
    Mae,
    Cosine,
    Pearson,
    /// `r2_score(pred, ref)`: PerturBench passes the prediction as `y_true`.
    R2,
    /// |top-k(pred) ∩ top-k(ref)| / k by |value| ("DEG recall" on scores).
    TopKRecall,
    /// Energy-kernel MMD between the unit's predicted and reference cells.
    Mmd,
}

impl UnitMetric {
    /// True when larger is better (cosine, pearson, r2, top-k recall).
    pub fn is_similarity(self) -> bool {
        matches!(
            self,
            UnitMetric::Cosine | UnitMetric::Pearson | UnitMetric::R2 | UnitMetric::TopKRecall
        )
    }

    /// The name used in metric names.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitMetric::Rmse => "rmse",
            UnitMetric::Mse => "mse",
            UnitMetric::Mae => "mae",
            UnitMetric::Cosine => "cosine",
            UnitMetric::Pearson => "pearson",
            UnitMetric::R2 => "r2",
            UnitMetric::TopKRecall => "top_k_recall",
            UnitMetric::Mmd => "mmd",
        }
    }

    const VECTOR: [UnitMetric; 7] = [
        UnitMetric::Rmse,
        UnitMetric::Mse,
        UnitMetric::Mae,
        UnitMetric::Cosine,
        UnitMetric::Pearson,
        UnitMetric::R2,
        UnitMetric::TopKRecall,
    ];
}

/// One summary metric: a per-unit metric on an aggregation, or its rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricSpec {
    pub metric: UnitMetric,
    pub aggregation: Aggregation,
    /// The rank (specificity) version: 0 perfect, about 0.5 random.
    pub rank: bool,
}

impl MetricSpec {
    /// Parses a metric name (`rmse_average`, `cosine_rank_logfc`,
    /// `deg_recall`, `mmd_pca_rank`, ...).
    pub fn parse(name: &str) -> Result<MetricSpec> {
        let n = name.trim();
        let spec = |metric, aggregation, rank| {
            Ok(MetricSpec {
                metric,
                aggregation,
                rank,
            })
        };
        match n {
            "deg_recall" => return spec(UnitMetric::TopKRecall, Aggregation::Scores, false),
            "deg_recall_rank" => return spec(UnitMetric::TopKRecall, Aggregation::Scores, true),
            "mmd_gex" | "mmd_none" => return spec(UnitMetric::Mmd, Aggregation::None, false),
            "mmd_gex_rank" | "mmd_rank_none" => {
                return spec(UnitMetric::Mmd, Aggregation::None, true)
            }
            "mmd_pca" => return spec(UnitMetric::Mmd, Aggregation::Pca, false),
            "mmd_pca_rank" | "mmd_rank_pca" => {
                return spec(UnitMetric::Mmd, Aggregation::Pca, true)
            }
            _ => {}
        }
        for m in UnitMetric::VECTOR {
            for a in [
                Aggregation::Average,
                Aggregation::Logfc,
                Aggregation::Scores,
            ] {
                if n == format!("{}_{}", m.as_str(), a.as_str()) {
                    return spec(m, a, false);
                }
                if n == format!("{}_rank_{}", m.as_str(), a.as_str()) {
                    return spec(m, a, true);
                }
            }
        }
        Err(Error::unknown("metric", n, &all_metric_names()))
    }

    /// The canonical name (`deg_recall` for top-k recall on scores,
    /// `mmd_gex`/`mmd_pca` for MMD).
    pub fn name(&self) -> String {
        match (self.metric, self.aggregation) {
            (UnitMetric::TopKRecall, Aggregation::Scores) => {
                if self.rank {
                    "deg_recall_rank".into()
                } else {
                    "deg_recall".into()
                }
            }
            (UnitMetric::Mmd, a) => {
                let space = if a == Aggregation::Pca { "pca" } else { "gex" };
                if self.rank {
                    format!("mmd_{space}_rank")
                } else {
                    format!("mmd_{space}")
                }
            }
            (m, a) => {
                if self.rank {
                    format!("{}_rank_{}", m.as_str(), a.as_str())
                } else {
                    format!("{}_{}", m.as_str(), a.as_str())
                }
            }
        }
    }

    /// The same metric without the rank.
    pub fn base(&self) -> MetricSpec {
        MetricSpec {
            rank: false,
            ..*self
        }
    }
}

/// Every metric name `MetricSpec::parse` accepts (canonical forms).
pub fn all_metric_names() -> Vec<String> {
    let mut v = Vec::new();
    for m in UnitMetric::VECTOR {
        for a in [
            Aggregation::Average,
            Aggregation::Logfc,
            Aggregation::Scores,
        ] {
            for rank in [false, true] {
                v.push(
                    MetricSpec {
                        metric: m,
                        aggregation: a,
                        rank,
                    }
                    .name(),
                );
            }
        }
    }
    for a in [Aggregation::None, Aggregation::Pca] {
        for rank in [false, true] {
            v.push(
                MetricSpec {
                    metric: UnitMetric::Mmd,
                    aggregation: a,
                    rank,
                }
                .name(),
            );
        }
    }
    v
}

/// Which denominator the rank metrics use (metrics.md, "Rank metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankConvention {
    /// PerturBench v2: divide by `n - 1` (0 when `n = 1`).
    #[default]
    V2,
    /// PerturBench v1: divide by `n`.
    V1,
}

impl std::str::FromStr for RankConvention {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v2" | "2" => Ok(RankConvention::V2),
            "v1" | "1" => Ok(RankConvention::V1),
            other => Err(Error::unknown("rank convention", other, &["v1", "v2"])),
        }
    }
}

/// Floating-point type of the gene-space distance products (MMD GEX).
/// Aggregations, PCA projections and every sum are computed in f64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 matrix products on covariate-centred cells; pairs whose squared
    /// distance is within rounding of 0 (duplicated cells) are recomputed
    /// exactly. About 2x faster on CPU; matches f64 to ~1e-6 relative.
    #[default]
    F32,
    /// f64 throughout.
    F64,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" | "single" => Ok(Precision::F32),
            "f64" | "float64" | "double" => Ok(Precision::F64),
            other => Err(Error::unknown("precision", other, &["f32", "f64"])),
        }
    }
}

/// Which unit pairs the MMD rank metrics compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MmdPairs {
    /// Bound every pair's cross distance from the units' moments and
    /// compute only the pairs the bounds cannot place against their
    /// column's diagonal (`metrics::mmd_bounds`): the same ranks; the
    /// pairwise matrix has values for the computed pairs only. Applies on
    /// the CPU with f32 products; elsewhere every pair is computed.
    #[default]
    Bounded,
    /// Every pair (the whole pairwise matrix).
    All,
}

impl std::str::FromStr for MmdPairs {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bounded" => Ok(MmdPairs::Bounded),
            "all" => Ok(MmdPairs::All),
            other => Err(Error::unknown("mmd_pairs", other, &["bounded", "all"])),
        }
    }
}

/// Settings of an evaluation. `Default` is PerturBench v2 as metrics.md
/// describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Summary metric names (see [`MetricSpec::parse`]); `all` expands to
    /// every known metric. Default: [`DEFAULT_METRICS`].
    pub metrics: Vec<String>,
    /// Principal components of the `pca` aggregation (30 in the paper).
    pub pca_components: usize,
    /// k of top-k recall ("DEG recall@50").
    pub top_k: usize,
    /// Pseudocount of `logfc` (0.1).
    pub pseudocount: f64,
    /// Rank denominator: v2 `n - 1` (default) or v1 `n`.
    pub rank: RankConvention,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: String,
    /// Precision of gene-space distance products.
    pub precision: Precision,
    /// Reference cells per distance block (bounds memory: a block holds
    /// `unit cells x block_cells` distances).
    pub block_cells: usize,
    /// Which unit pairs the MMD rank metrics compute (`bounded`, `all`).
    pub mmd_pairs: MmdPairs,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            metrics: DEFAULT_METRICS.iter().map(|s| s.to_string()).collect(),
            pca_components: 30,
            top_k: 50,
            pseudocount: 0.1,
            rank: RankConvention::V2,
            device: "cpu".into(),
            precision: Precision::F32,
            block_cells: 4096,
            mmd_pairs: MmdPairs::Bounded,
        }
    }
}

impl MetricsConfig {
    /// The parsed metrics, in the order given (duplicates removed; `all`
    /// expanded). Errors name the unknown metric and list the known ones.
    pub fn specs(&self) -> Result<Vec<MetricSpec>> {
        let mut out: Vec<MetricSpec> = Vec::new();
        for name in &self.metrics {
            let names: Vec<String> = if name.trim() == "all" {
                all_metric_names()
            } else {
                vec![name.clone()]
            };
            for n in names {
                let s = MetricSpec::parse(&n)?;
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::invalid("metrics", "no metric was requested"));
        }
        Ok(out)
    }

    /// Checks the numeric settings.
    pub fn validate(&self) -> Result<()> {
        if self.top_k == 0 {
            return Err(Error::invalid("top_k", "must be at least 1"));
        }
        if self.pca_components == 0 {
            return Err(Error::invalid("pca_components", "must be at least 1"));
        }
        if !(self.pseudocount.is_finite() && self.pseudocount > 0.0) {
            return Err(Error::invalid(
                "pseudocount",
                format!("{} is not a positive number", self.pseudocount),
            ));
        }
        if self.block_cells == 0 {
            return Err(Error::invalid("block_cells", "must be at least 1"));
        }
        crate::device::parse_device(&self.device)?;
        self.specs().map(|_| ())
    }
}
