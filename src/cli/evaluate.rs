//! `primeflow evaluate`: score predicted cells against reference cells with
//! PerturBench's metrics (metrics.md) and print the summary table. The
//! reference is a file (`--ref test.h5ad`) or one part of a split of a file
//! (`--ref data.h5ad --split split.csv --which test`, optionally after
//! `--filter COL=VALUE`), so the output of `primeflow split` and `sample`
//! can be scored without writing the test cells out first.
//!
//! `--profile vcc` (or `minimal`) scores with cell-eval 0.8.2's metrics
//! instead ([`primeflow::metrics::vcc`]): the Virtual Cell Challenge's
//! overlap_at_N, mae and discrimination_score_l1, per perturbation and
//! summarised, under cell-eval's names; the perturbation column then
//! defaults to `target_gene` and the control to `non-targeting`.

use std::path::PathBuf;

use primeflow::data::{Dataset, LoadOptions, ObsColumns, Part};
use primeflow::metrics::{
    check_cell_eval_pair, score_cell_eval, CellEvalOptions, CellEvalSide, Metrics, MetricsConfig,
};
use primeflow::train::{DataSpec, SplitSpec};

use super::args::{ColumnArgs, SplitArgs};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Predicted cells (.h5ad), scored as generated (negative values are
    /// allowed and counted); its control cells are replaced by the
    /// reference's.
    #[arg(long)]
    pub pred: PathBuf,
    /// Reference cells (.h5ad), e.g. the test split, with its control
    /// cells; with --split, the file the split was made of.
    #[arg(long = "ref")]
    pub reference: PathBuf,
    /// The reference file's split (--split or --task, as given to `train`)
    /// and filters: score against its --which part only (its perturbed
    /// units and control cells).
    #[command(flatten)]
    pub which_cells: SplitArgs,
    /// Which part of the split is the reference: train, val or test.
    #[arg(long, default_value = "test")]
    pub which: String,
    /// Leave X in both files and read each unit's cells when it is scored
    /// (files larger than memory; memory is bounded by one covariate's
    /// reference cells). Values are checked as they are read; the count of
    /// negative predicted values covers the scored units' cells.
    #[arg(long)]
    pub stream: bool,
    /// Which metrics: `perturbench` (PerturBench's, metrics.md), or a
    /// cell-eval 0.8.2 profile, `vcc` (the Virtual Cell Challenge's:
    /// overlap_at_N, mae, discrimination_score_l1) or `minimal`.
    #[arg(long, default_value = "perturbench")]
    pub profile: String,
    /// Threads of the cell-eval profiles' differential expression (0: all
    /// cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Comma-separated metric names, or `all` (default: the ten PerturBench
    /// metrics rmse_average, rmse_rank_average, cosine_logfc,
    /// cosine_rank_logfc, deg_recall, deg_recall_rank, mmd_gex, mmd_gex_rank,
    /// mmd_pca, mmd_pca_rank).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Principal components of the PCA space.
    #[arg(long = "pca-components", default_value_t = 30)]
    pub pca_components: usize,
    /// k of DEG recall (top-k by |t|).
    #[arg(long = "top-k", default_value_t = 50)]
    pub top_k: usize,
    /// Rank denominator: v2 (n - 1) or v1 (n).
    #[arg(long, default_value = "v2")]
    pub rank: String,
    /// Precision of gene-space distance products: f32 or f64.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Pairs of units the MMD rank metrics compute: `bounded` (bound every
    /// pair from the units' moments and compute only those the bounds
    /// cannot rank; same ranks, far fewer products; CPU with f32) or `all`
    /// (every pair: the whole pairwise MMD matrix)
    #[arg(long = "mmd-pairs", default_value = "bounded")]
    pub mmd_pairs: String,
    /// Write the whole evaluation (summary, per-unit, pairwise) as JSON
    /// (with a cell-eval profile: per-perturbation values and summaries).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the per-unit table (and a summary row) as CSV (with a
    /// cell-eval profile: its results.csv, one row per perturbation).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write every pairwise rank matrix as CSV into this folder.
    #[arg(long = "pairwise-dir")]
    pub pairwise_dir: Option<PathBuf>,
    /// Also print the per-unit table.
    #[arg(long = "per-unit")]
    pub per_unit: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The reference cells: the file, filtered, and the --which part of
/// --split.
fn reference(args: &Args, opts: &LoadOptions) -> anyhow::Result<Dataset> {
    let spec = DataSpec {
        path: args.reference.clone(),
        simulate: None,
        allow_negative: opts.allow_negative,
        columns: opts.columns.clone(),
        layer: None,
        filters: args.which_cells.parsed_filters()?,
        split: args.which_cells.spec()?.unwrap_or(SplitSpec::None),
    };
    let ds = if args.stream {
        spec.open_for_streaming()?
    } else {
        spec.load()?
    };
    match spec.split(&ds)? {
        None => Ok(ds),
        Some(split) => {
            let part = Part::parse(&args.which)?;
            let rows = split.cells(part);
            if rows.is_empty() {
                return Err(primeflow::Error::invalid(
                    "--which",
                    format!(
                        "the {} part of {} is empty",
                        part.as_str(),
                        args.reference.display()
                    ),
                )
                .into());
            }
            Ok(ds.subset(&rows)?)
        }
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    primeflow::progress::install_ctrlc();
    primeflow::progress::clear_interrupt();
    if args.quiet {
        primeflow::progress::set_quiet(true);
    }
    if args.profile.trim() != "perturbench" {
        if args.stream {
            return Err(primeflow::Error::invalid(
                "--stream",
                format!(
                    "streams the perturbench profile only; the '{}' profile loads both files",
                    args.profile.trim()
                ),
            )
            .into());
        }
        return run_cell_eval(&args);
    }
    let opts = LoadOptions {
        columns: args.columns.resolve(ObsColumns::default()),
        ..Default::default()
    };
    let mut cfg = MetricsConfig {
        pca_components: args.pca_components,
        top_k: args.top_k,
        rank: args.rank.parse()?,
        precision: args.precision.parse()?,
        device: args.device.clone(),
        mmd_pairs: args.mmd_pairs.parse()?,
        ..Default::default()
    };
    if !args.metrics.is_empty() {
        cfg.metrics = args
            .metrics
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }
    let metrics = Metrics::new(cfg)?;
    // The reference must be log1p expression; predictions are scored as
    // generated (flow models produce some small negative values, which the
    // report counts).
    let reference = reference(&args, &opts)?;
    let pred = if args.pred == args.reference
        && !args.which_cells.split_given()
        && args.which_cells.filters.is_empty()
    {
        reference.clone()
    } else {
        let pred_opts = LoadOptions {
            allow_negative: true,
            ..opts.clone()
        };
        if args.stream {
            Dataset::open_for_streaming(&args.pred, &pred_opts)?
        } else {
            Dataset::load(&args.pred, &pred_opts)?
        }
    };
    let ev = metrics.evaluate(&pred, &reference)?;
    print!("{ev}");
    if args.per_unit {
        print!("{}", ev.csv());
    }
    if let Some(p) = &args.json {
        ev.to_json(p)?;
    }
    if let Some(p) = &args.csv {
        ev.to_csv(p)?;
    }
    if let Some(d) = &args.pairwise_dir {
        ev.pairwise_to_csv(d)?;
    }
    Ok(())
}

/// `--profile vcc|minimal`: cell-eval's metrics on the whole of both files
/// (no covariates; --split/--filter still select the reference cells).
fn run_cell_eval(args: &Args) -> anyhow::Result<()> {
    let profile = args.profile.parse()?;
    let opts = LoadOptions {
        columns: args.columns.resolve(ObsColumns {
            perturbation: primeflow::export::vcc::TARGET_GENE.into(),
            covariates: Vec::new(),
            control: primeflow::export::vcc::NON_TARGETING.into(),
        }),
        ..Default::default()
    };
    let pred_opts = LoadOptions {
        allow_negative: true,
        ..opts.clone()
    };
    // One X in memory at a time: the real file is read and summarised
    // (pseudobulks, DE tables), then the prediction is read into the real
    // X's memory, so a pair of multi-gigabyte files touches fresh memory
    // once. The prediction's obs and genes are checked first, so a
    // mismatched pair fails before any X is read.
    let pred_head = Dataset::open_for_streaming(&args.pred, &pred_opts)?;
    let real = reference(args, &opts)?;
    check_cell_eval_pair(&pred_head, &real)?;
    let ce = CellEvalOptions {
        profile,
        threads: args.threads,
        ..Default::default()
    };
    let threads = ce.worker_threads();
    let real_side = CellEvalSide::of(&real, true, threads)?;
    let (genes, control) = (real.genes.clone(), real.columns.control.clone());
    let pred = Dataset::load_reusing(&args.pred, &pred_opts, real.into_x_buffers())?;
    check_cell_eval_pair(&pred, &pred_head)?;
    let pred_side = CellEvalSide::of(&pred, false, threads)?;
    drop(pred);
    let report = score_cell_eval(&pred_side, &real_side, &genes, &control, &ce)?;
    print!("{report}");
    if args.per_unit {
        print!("{}", report.results_csv());
    }
    if let Some(p) = &args.json {
        report.to_json(p)?;
    }
    if let Some(p) = &args.csv {
        report.to_csv(p)?;
    }
    Ok(())
}
