//! PerturBench's evaluation metrics (../shared/docs/metrics.md), on libtorch
//! tensors (CPU or CUDA).
//!
//! A prediction and a reference (`Dataset`s with the same perturbation and
//! covariate columns) are compared unit by unit, a unit being a (covariate
//! key, perturbation) pair:
//!
//! * aggregations ([`Aggregation`]): `average`, `logfc`, `scores` (t-scores
//!   against the covariate's controls), `pca` (reference PCA, 30 components),
//!   `none` (the cells);
//! * per-unit metrics ([`UnitMetric`]): rmse, mse, mae, cosine, pearson, r2,
//!   top-k recall ("DEG recall"), energy MMD (gene and PCA space);
//! * rank metrics per covariate key from the pairwise matrices
//!   `M[q, p] = metric(pred_q, ref_p)` ([`rank`]);
//! * summaries: NaN-skipping means over units ([`Evaluation`]); several
//!   seeds x models -> the paper's tables ([`compare()`]).
//!
//! ```no_run
//! # fn main() -> primeflow::Result<()> {
//! use primeflow::data::{Dataset, LoadOptions};
//! use primeflow::metrics::{Metrics, MetricsConfig};
//! let opts = LoadOptions::default(); // condition / [cell_type] / control
//! let reference = Dataset::load("test.h5ad".as_ref(), &opts)?;
//! let pred = Dataset::load("pred.h5ad".as_ref(), &opts)?;
//! let ev = Metrics::new(MetricsConfig::default())?.evaluate(&pred, &reference)?;
//! println!("{ev}");
//! let rmse = ev.get("rmse_average");
//! # let _ = rmse; Ok(()) }
//! ```
//!
//! Conventions beyond metrics.md (each documented where it is implemented):
//! the prediction's own control cells are replaced by the reference's
//! ([`plan`]); rank ties count half ([`rank`]); top-k ties go to the gene
//! listed first ([`per_unit`]); t-scores are rounded to f32 as scanpy stores
//! them ([`ttest`]); summaries skip NaN units (as pandas' `mean`).
//!
//! cell-eval's metrics (the Virtual Cell Challenge's `vcc` profile) are in
//! [`vcc`].

pub mod aggregate;
pub mod compare;
pub mod config;
mod direct;
pub mod distance;
pub mod evaluate;
mod fused;
mod mmd_acc;
mod mmd_bounds;
pub mod pca;
pub mod per_unit;
pub mod plan;
mod points;
pub mod rank;
pub mod report;
pub mod source;
pub mod table;
mod team;
pub mod ttest;
pub mod vcc;

pub use compare::{compare, Comparison, ModelRow, Stat};
pub use config::{
    all_metric_names, Aggregation, MetricSpec, MetricsConfig, MmdPairs, Precision, RankConvention,
    UnitMetric, DEFAULT_METRICS,
};
pub use distance::{energy_mmd, DistanceOptions};
pub use evaluate::Metrics;
pub use pca::Pca;
pub use report::{Evaluation, PairwiseMatrix, UnitScores};
pub use source::RowSource;
pub use vcc::{
    check_cell_eval_pair, evaluate_cell_eval, score_cell_eval, CellEvalOptions, CellEvalProfile,
    CellEvalReport, CellEvalSide,
};
