//! `primeflow split`: write a train/val/test split (CSV) of an .h5ad file
//! for a task (metrics.md, "Data splits").

use std::path::PathBuf;

use anyhow::Context;
use primeflow::data::{Dataset, LoadOptions, ObsColumns, Split, SplitOptions, Task};

use super::args::ColumnArgs;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input data (.h5ad).
    pub file: PathBuf,
    /// covariate-transfer, combination or unseen-perturbation.
    #[arg(long)]
    pub task: String,
    /// Random seed (PerturBench uses 42).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Held-out fraction: of each covariate's perturbations (transfer,
    /// default 0.3) or of the eligible combinations (default 0.7).
    #[arg(long = "holdout-fraction")]
    pub holdout_fraction: Option<f64>,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Output CSV (cell, perturbation, covariates, split).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let task = Task::parse(&args.task)?;
    let opts = LoadOptions {
        columns: args.columns.resolve(ObsColumns::default()),
        layer: None,
        allow_negative: true,
    };
    let ds = Dataset::load(&args.file, &opts)?;
    let split = Split::generate(
        &ds,
        &SplitOptions {
            holdout_fraction: args.holdout_fraction,
            seed: args.seed,
            ..SplitOptions::new(task)
        },
    )?;
    split
        .write_csv(&args.out, &ds)
        .with_context(|| format!("writing the split to {}", args.out.display()))?;
    let summary = split.summary(&ds);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "split of {} ({} cells): task {}, seed {} -> {}",
            args.file.display(),
            ds.n_cells(),
            args.task,
            args.seed,
            args.out.display()
        );
        print!("{summary}");
    }
    Ok(())
}
