//! `primeflow export-vcc`: write a Virtual Cell Challenge submission file
//! (see `primeflow::export::vcc`).

use std::path::PathBuf;

use primeflow::data::{Dataset, LoadOptions, ObsColumns};
use primeflow::export::{export_vcc_with, read_gene_list};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Predicted cells (.h5ad), with control cells.
    #[arg(long)]
    pub pred: PathBuf,
    /// The challenge's gene list (one gene per line, no header).
    #[arg(long)]
    pub genes: PathBuf,
    /// Submission file to write (.h5ad).
    #[arg(long)]
    pub out: PathBuf,
    /// obs column with the perturbation (target gene) labels.
    #[arg(long = "perturbation-col", default_value = "condition")]
    pub perturbation_col: String,
    /// Label of control cells in the prediction (written as non-targeting).
    #[arg(long, default_value = "control")]
    pub control: String,
    /// Append the control cells of this .h5ad (same --perturbation-col and
    /// --control) as non-targeting cells, e.g. the measured controls when
    /// the prediction holds perturbed cells only.
    #[arg(long, value_name = "FILE.h5ad")]
    pub controls: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let genes = read_gene_list(&args.genes)?;
    let opts = LoadOptions {
        columns: ObsColumns {
            perturbation: args.perturbation_col.clone(),
            covariates: Vec::new(),
            control: args.control.clone(),
        },
        ..Default::default()
    };
    // Predictions are exported as generated: an unclipped flow sample
    // spreads near-zero genes around 0 (as `evaluate` scores it); the
    // measured controls must still be log1p data.
    let pred_opts = LoadOptions {
        allow_negative: true,
        ..opts.clone()
    };
    let pred = Dataset::load(&args.pred, &pred_opts)?;
    let controls = match &args.controls {
        Some(p) => Some(Dataset::load(p, &opts)?),
        None => None,
    };
    let report = export_vcc_with(&pred, controls.as_ref(), &genes, &args.out)?;
    println!("wrote {}: {report}", args.out.display());
    Ok(())
}
