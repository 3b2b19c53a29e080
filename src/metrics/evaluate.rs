//! `Metrics`: scores a prediction against a reference with PerturBench's
//! metrics (metrics.md) and returns an [`Evaluation`].
//!
//! Per covariate key, one pass over the reference's and one over the
//! prediction's unit cells (each unit copied to a tensor once) collects: the
//! moments for `average`, `logfc` and `scores`; the PCA projections; and the
//! distance sums of the energy MMD (each predicted unit against its own
//! reference unit; for the MMD ranks also the moments that bound every other
//! pair, after which the pairs the bounds leave undecided are computed, or
//! with `mmd_pairs = all` every pair, [`super::mmd_acc`]). The per-unit matrices `M[q, p]` of the vector
//! metrics are then a few batched tensor ops, the ranks come from them
//! ([`super::rank`]), and the summary is the NaN-skipping mean over units.

use std::collections::BTreeMap;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::aggregate::{logfc, stack, to_vec2, Moments};
use super::config::{Aggregation, MetricSpec, MetricsConfig, MmdPairs, Precision, UnitMetric};
use super::distance::DistanceOptions;
use super::mmd_acc::{MmdAcc, PairMode, SideCells};
use super::pca::Pca;
use super::per_unit::pairwise;
use super::plan::{CovPlan, Plan};
use super::rank::ranks;
use super::report::{mean_skip_nan, Evaluation, PairwiseMatrix, UnitScores};
use super::source::RowSource;
use super::ttest::t_scores;
use crate::data::Dataset;
use crate::error::{Error, Result};

/// PerturBench's metrics with a fixed configuration.
#[derive(Debug)]
pub struct Metrics {
    cfg: MetricsConfig,
    specs: Vec<MetricSpec>,
    device: Device,
}

/// What the requested metrics need computed.
#[derive(Debug, Default, Clone, Copy)]
struct Needs {
    controls: bool,
    scores: bool,
    pca: bool,
    gex: bool,
    gex_rank: bool,
    pca_rank: bool,
}

/// The per-unit values (and matrices) of one covariate key.
struct CovResult {
    /// spec -> one value per unit of the covariate (label order).
    values: BTreeMap<MetricSpec, Vec<f64>>,
    /// rank spec -> `[U, U]` row-major matrix.
    matrices: BTreeMap<MetricSpec, Vec<f64>>,
    /// MMD rank spec -> (pairs computed, off-diagonal pairs).
    pairs_computed: BTreeMap<MetricSpec, (usize, usize)>,
}

impl Metrics {
    /// Checks `cfg` (metric names, sizes, device) and builds the evaluator.
    pub fn new(cfg: MetricsConfig) -> Result<Metrics> {
        cfg.validate()?;
        let specs = cfg.specs()?;
        let device = crate::device::parse_device(&cfg.device)?;
        Ok(Metrics { cfg, specs, device })
    }

    /// The configuration.
    pub fn config(&self) -> &MetricsConfig {
        &self.cfg
    }

    /// The parsed metrics, in the requested order.
    pub fn specs(&self) -> &[MetricSpec] {
        &self.specs
    }

    fn dist_opts(&self) -> DistanceOptions {
        let kind = match self.cfg.precision {
            Precision::F32 => Kind::Float,
            Precision::F64 => Kind::Double,
        };
        DistanceOptions {
            kind,
            block: self.cfg.block_cells as i64,
        }
    }

    /// The pairs an MMD accumulator computes: its own unit only without
    /// the rank; with it, bounded (CPU, f32) or all.
    fn pair_mode(&self, rank: bool) -> PairMode {
        let bounded = self.cfg.mmd_pairs == MmdPairs::Bounded
            && self.cfg.precision == Precision::F32
            && self.device == Device::Cpu;
        match (rank, bounded) {
            (false, _) => PairMode::Diagonal,
            (true, true) => PairMode::Bounded,
            (true, false) => PairMode::All,
        }
    }

    fn needs(&self) -> Needs {
        let mut n = Needs::default();
        for s in &self.specs {
            match (s.metric, s.aggregation) {
                (UnitMetric::Mmd, Aggregation::Pca) => {
                    n.pca = true;
                    n.pca_rank |= s.rank;
                }
                (UnitMetric::Mmd, _) => {
                    n.gex = true;
                    n.gex_rank |= s.rank;
                }
                (_, Aggregation::Logfc) => n.controls = true,
                (_, Aggregation::Scores) => {
                    n.controls = true;
                    n.scores = true;
                }
                _ => {}
            }
        }
        n
    }

    /// Scores `pred` against `reference` (both `[cells, genes]` datasets with
    /// the same obs columns). The reference's control cells serve as both
    /// files' controls; see [`Plan`] for which cells are compared.
    pub fn evaluate(&self, pred: &Dataset, reference: &Dataset) -> Result<Evaluation> {
        let start = Instant::now();
        let _no_grad = tch::no_grad_guard();
        let plan = Plan::new(pred, reference)?;
        if plan.n_units() == 0 {
            return Err(Error::Mismatch(format!(
                "no perturbed unit is present in both the prediction ({}) and the reference ({}); only in the prediction: [{}]; only in the reference: [{}]",
                pred.source_name(),
                reference.source_name(),
                plan.only_in_pred.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
                plan.only_in_ref.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let needs = self.needs();
        // X in memory, or read unit by unit from the file (streamed).
        let pred_src = RowSource::of(pred, true)?;
        let ref_src = RowSource::of(reference, false)?;
        let pca = if needs.pca {
            let kind = if self.cfg.precision == Precision::F64 {
                Kind::Double
            } else {
                Kind::Float
            };
            let rows: Vec<usize> = (0..reference.n_cells()).collect();
            Some(Pca::fit_source(
                &ref_src,
                &rows,
                self.cfg.pca_components,
                kind,
                self.device,
            )?)
        } else {
            None
        };
        let bar = crate::progress::bar(plan.n_units() as u64, "evaluate");
        let mut per_unit: Vec<UnitScores> = Vec::new();
        let mut pairwise_out: BTreeMap<String, BTreeMap<String, PairwiseMatrix>> = BTreeMap::new();
        let mut pairs_computed: BTreeMap<String, [usize; 2]> = BTreeMap::new();
        let mut pooled: BTreeMap<MetricSpec, Vec<f64>> = BTreeMap::new();
        for cov in &plan.covs {
            let res = self.evaluate_cov(
                (&pred_src, &ref_src),
                reference,
                &plan,
                cov,
                pca.as_ref(),
                needs,
                &bar,
            )?;
            let labels: Vec<String> = cov.units.iter().map(|u| u.label.clone()).collect();
            for (i, u) in cov.units.iter().enumerate() {
                let mut values = BTreeMap::new();
                for s in &self.specs {
                    let v = res
                        .values
                        .get(s)
                        .and_then(|v| v.get(i))
                        .copied()
                        .unwrap_or(f64::NAN);
                    values.insert(s.name(), v);
                }
                per_unit.push(UnitScores {
                    cov_key: cov.cov_key.clone(),
                    perturbation: u.label.clone(),
                    n_pred: u.pred_cells.len(),
                    n_ref: u.ref_cells.len(),
                    values,
                });
            }
            for (s, v) in res.values {
                pooled.entry(s).or_default().extend(v);
            }
            for (s, (c, t)) in res.pairs_computed {
                let e = pairs_computed.entry(s.name()).or_insert([0, 0]);
                e[0] += c;
                e[1] += t;
            }
            let n = labels.len();
            for (s, m) in res.matrices {
                let values = m.chunks(n.max(1)).map(|r| r.to_vec()).collect();
                pairwise_out.entry(cov.cov_key.clone()).or_default().insert(
                    s.name(),
                    PairwiseMatrix {
                        rows: labels.clone(),
                        cols: labels.clone(),
                        values,
                    },
                );
            }
        }
        bar.finish_and_clear();
        let summary = self
            .specs
            .iter()
            .map(|s| {
                (
                    s.name(),
                    mean_skip_nan(pooled.get(s).map(|v| v.as_slice()).unwrap_or(&[])),
                )
            })
            .collect();
        Ok(Evaluation {
            summary,
            metrics: self.specs.iter().map(|s| s.name()).collect(),
            per_unit,
            pairwise: pairwise_out,
            mmd_pairs_computed: pairs_computed,
            only_in_pred: plan.only_in_pred.clone(),
            only_in_ref: plan.only_in_ref.clone(),
            dropped_pred_controls: plan.dropped_pred_controls,
            // Streamed: the negatives of the scored units' cells.
            pred_negative_values: if pred_src.is_file() {
                pred_src.negatives_read()
            } else {
                pred.x.count_stored(|v| v < 0.0)
            },
            pred_values: pred.n_cells() * pred.n_genes(),
            config: self.cfg.clone(),
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_cov(
        &self,
        (pred, ref_rows): (&RowSource, &RowSource),
        reference: &Dataset,
        plan: &Plan,
        cov: &CovPlan,
        pca: Option<&Pca>,
        needs: Needs,
        bar: &indicatif::ProgressBar,
    ) -> Result<CovResult> {
        let dev = self.device;
        let opts = self.dist_opts();
        let u = cov.units.len();
        // --- reference side ---
        let mut ref_mom = Vec::with_capacity(u);
        let mut ref_cells: Vec<Tensor> = Vec::new();
        let mut ref_proj: Vec<Tensor> = Vec::new();
        let mut proj_buf: Option<Tensor> = None;
        for unit in &cov.units {
            let t = ref_rows.tensor(&unit.ref_cells, None, dev)?;
            ref_mom.push(Moments::of(&t)?);
            if let Some(p) = pca {
                ref_proj.push(p.project_in(&t, &mut proj_buf)?);
            }
            if needs.gex {
                ref_cells.push(t);
            }
        }
        let ctrl = if needs.controls {
            if cov.controls.is_empty() {
                return Err(Error::invalid(
                    "reference",
                    format!(
                        "covariate key '{}' has no control cells ('{}' in column '{}'); logfc and t-scores need them",
                        cov.cov_key, reference.columns.control, reference.columns.perturbation
                    ),
                ));
            }
            Some(Moments::of(&ref_rows.tensor(&cov.controls, None, dev)?)?)
        } else {
            None
        };
        let n_ref: Vec<usize> = cov.units.iter().map(|x| x.ref_cells.len()).collect();
        let gex_mode = self.pair_mode(needs.gex_rank);
        let pca_mode = self.pair_mode(needs.pca_rank);
        let gex = if needs.gex {
            let bounded = gex_mode == PairMode::Bounded;
            Some(SideCells::new(&ref_cells, &n_ref, &opts, dev, bounded)?)
        } else {
            None
        };
        drop(ref_cells);
        let pcs = if pca.is_some() {
            let bounded = pca_mode == PairMode::Bounded;
            Some(SideCells::new(&ref_proj, &n_ref, &opts, dev, bounded)?)
        } else {
            None
        };
        // --- prediction side ---
        let mut pred_mom = Vec::with_capacity(u);
        let mut gex_acc = MmdAcc::new(u, gex_mode);
        let mut pca_acc = MmdAcc::new(u, pca_mode);
        // Each unit's projection is kept for its undecided PCA pairs
        // (`[n_q, k]`, 240 kB per 1,000 cells at k = 30): projecting it
        // again cost a GEMM over every gene.
        let mut pred_proj: Vec<Option<Tensor>> = Vec::with_capacity(u);
        for (q, unit) in cov.units.iter().enumerate() {
            if crate::progress::interrupted() {
                return Err(Error::Interrupted);
            }
            let t = pred.tensor(&unit.pred_cells, plan.gene_map.as_deref(), dev)?;
            pred_mom.push(Moments::of(&t)?);
            if let Some(side) = &gex {
                gex_acc.add(q, &t, side, &opts)?;
            }
            pred_proj.push(match (pca, &pcs) {
                (Some(p), Some(side)) => {
                    let pp = p.project_in(&t, &mut proj_buf)?;
                    pca_acc.add(q, &pp, side, &opts)?;
                    (pca_mode == PairMode::Bounded).then_some(pp)
                }
                _ => None,
            });
            bar.inc(1);
        }
        let n_pred: Vec<usize> = cov.units.iter().map(|x| x.pred_cells.len()).collect();
        // --- MMD rank pairs the bounds left undecided ---
        let gex_todo = match &gex {
            Some(side) => gex_acc.undecided(side, &n_pred, &n_ref)?,
            None => Vec::new(),
        };
        let pca_todo = match &pcs {
            Some(side) => pca_acc.undecided(side, &n_pred, &n_ref)?,
            None => Vec::new(),
        };
        for (q, ps) in &gex_todo {
            if crate::progress::interrupted() {
                return Err(Error::Interrupted);
            }
            let t = pred.tensor(&cov.units[*q].pred_cells, plan.gene_map.as_deref(), dev)?;
            if let Some(side) = &gex {
                gex_acc.add_exact(*q, &t, side, ps, &opts)?;
            }
        }
        for (q, ps) in &pca_todo {
            if crate::progress::interrupted() {
                return Err(Error::Interrupted);
            }
            let (Some(side), Some(Some(pp))) = (&pcs, pred_proj.get(*q)) else {
                return Err(Error::invalid(
                    "metrics",
                    "internal: a PCA projection was not kept",
                ));
            };
            pca_acc.add_exact(*q, pp, side, ps, &opts)?;
        }
        // --- aggregations and matrices ---
        let mean_p = stack(&pred_mom.iter().map(|m| &m.mean).collect::<Vec<_>>())?;
        let mean_r = stack(&ref_mom.iter().map(|m| &m.mean).collect::<Vec<_>>())?;
        let mut aggs: BTreeMap<Aggregation, (Tensor, Tensor)> = BTreeMap::new();
        let mut out = CovResult {
            values: BTreeMap::new(),
            matrices: BTreeMap::new(),
            pairs_computed: BTreeMap::new(),
        };
        for spec in &self.specs {
            let base = spec.base();
            let (matrix, reported): (Vec<f64>, Option<Vec<f64>>) = match spec.metric {
                UnitMetric::Mmd => {
                    let (acc, side) = if spec.aggregation == Aggregation::Pca {
                        (&pca_acc, &pcs)
                    } else {
                        (&gex_acc, &gex)
                    };
                    let side = side.as_ref().ok_or_else(|| {
                        Error::invalid("metrics", "internal: MMD cells were not prepared")
                    })?;
                    if spec.rank {
                        out.pairs_computed.insert(*spec, acc.pairs_computed());
                    }
                    let (ranked, reported) = acc.matrix(&n_pred, &side.self_sums, &n_ref)?;
                    (ranked, Some(reported))
                }
                _ => {
                    if let std::collections::btree_map::Entry::Vacant(e) =
                        aggs.entry(spec.aggregation)
                    {
                        let pair = self.aggregate(
                            spec.aggregation,
                            &mean_p,
                            &mean_r,
                            &pred_mom,
                            &ref_mom,
                            &n_pred,
                            &n_ref,
                            ctrl.as_ref(),
                        )?;
                        e.insert(pair);
                    }
                    let (ap, ar) = aggs.get(&spec.aggregation).ok_or_else(|| {
                        Error::invalid("metrics", "internal: missing aggregation")
                    })?;
                    let m = pairwise(spec.metric, ap, ar, self.cfg.top_k)?;
                    (to_vec2(&m)?.0, None)
                }
            };
            // For MMD without rank only the diagonal was computed (NaN elsewhere).
            let diag: Vec<f64> = (0..u)
                .map(|i| matrix.get(i * u + i).copied().unwrap_or(f64::NAN))
                .collect();
            if spec.rank {
                out.values.insert(
                    *spec,
                    ranks(&matrix, u, spec.metric.is_similarity(), self.cfg.rank),
                );
                out.matrices.insert(*spec, reported.unwrap_or(matrix));
            } else {
                out.values.insert(*spec, diag);
            }
            let _ = base;
        }
        Ok(out)
    }

    /// The `[U, G]` prediction and reference matrices of a vector aggregation.
    #[allow(clippy::too_many_arguments)]
    fn aggregate(
        &self,
        agg: Aggregation,
        mean_p: &Tensor,
        mean_r: &Tensor,
        pred_mom: &[Moments],
        ref_mom: &[Moments],
        n_pred: &[usize],
        n_ref: &[usize],
        ctrl: Option<&Moments>,
    ) -> Result<(Tensor, Tensor)> {
        let ctrl = || {
            ctrl.ok_or_else(|| {
                Error::invalid("metrics", "internal: control moments were not computed")
            })
        };
        match agg {
            Aggregation::Average => Ok((mean_p.shallow_clone(), mean_r.shallow_clone())),
            Aggregation::Logfc => {
                let c = ctrl()?;
                Ok((
                    logfc(mean_p, &c.mean, self.cfg.pseudocount)?,
                    logfc(mean_r, &c.mean, self.cfg.pseudocount)?,
                ))
            }
            Aggregation::Scores => {
                let c = ctrl()?;
                let var_p = stack(&pred_mom.iter().map(|m| &m.var).collect::<Vec<_>>())?;
                let var_r = stack(&ref_mom.iter().map(|m| &m.var).collect::<Vec<_>>())?;
                Ok((
                    t_scores(mean_p, &var_p, n_pred, &c.mean, &c.var)?,
                    t_scores(mean_r, &var_r, n_ref, &c.mean, &c.var)?,
                ))
            }
            Aggregation::Pca | Aggregation::None => Err(Error::invalid(
                "metrics",
                format!("aggregation '{}' is for mmd only", agg.as_str()),
            )),
        }
    }
}
