//! Subcommands, one file each.

pub mod evaluate;
pub mod export_vcc;
pub mod info;
pub mod kernel;
pub mod repl;
pub mod run;
pub mod sample;
pub mod simulate;
pub mod split;
pub mod train;
pub mod train_settings;

use clap::{Parser, Subcommand};

/// PRiMeFlow: conditional flow matching for single-cell perturbation
/// responses, with PerturBench's metrics and a Rhai scripting environment.
#[derive(Debug, Parser)]
#[command(name = "primeflow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe an .h5ad file: shape, X encoding, obs/var columns, layers.
    Info(info::Args),
    /// Generate a synthetic Perturb-seq data set (.h5ad) with known ground truth.
    Simulate(simulate::Args),
    /// Write a train/val/test split (CSV) for a task.
    Split(split::Args),
    /// Train a velocity field (U-Net or MLP) with conditional flow matching.
    Train(train::Args),
    /// Generate cells from a trained checkpoint.
    Sample(sample::Args),
    /// Score predicted cells against reference cells with PerturBench's metrics.
    Evaluate(evaluate::Args),
    /// Write a Virtual Cell Challenge submission file.
    #[command(name = "export-vcc")]
    ExportVcc(export_vcc::Args),
    /// Run a Rhai script.
    Run(run::Args),
    /// Start the interactive Rhai REPL.
    Repl(repl::Args),
    /// The Jupyter kernel for Rhai (`primeflow kernel install` registers it).
    Kernel(kernel::Args),
}

/// Runs one subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Split(a) => split::run(a),
        Command::Train(a) => train::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::ExportVcc(a) => export_vcc::run(a),
        Command::Run(a) => run::run(a),
        Command::Repl(a) => repl::run(a),
        Command::Kernel(a) => kernel::run(a),
    }
}

/// 2 for bad input (a file, a value, a name), 130 for Ctrl-C, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<primeflow::Error>() {
            return match e {
                primeflow::Error::Interrupted => 130,
                primeflow::Error::Torch(_) => 1,
                _ => 2,
            };
        }
    }
    1
}
