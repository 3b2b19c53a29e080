//! Subcommands, one file each.

pub mod args;
pub mod batch;
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
    /// Score predicted cells against reference cells with PerturBench's metrics (or cell-eval's: --profile vcc).
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
    /// Run primeflow commands (JSON argument arrays on stdin), each in its
    /// own forked process with a timeout; print how each ended (for the
    /// mutation-fuzz test and benchmark).
    #[command(hide = true)]
    Batch(batch::Args),
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
        Command::Batch(a) => batch::run(a),
    }
}

/// The exit code for `err`: that of the first primeflow [`Error`] in its
/// chain (2 bad input, 74 the machine's I/O failed, 130 Ctrl-C, 1 libtorch;
/// see [`primeflow::Error::exit_code`]), else 1.
///
/// [`Error`]: primeflow::Error
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|c| c.downcast_ref::<primeflow::Error>())
        .map_or(primeflow::error::EXIT_FAILURE, |e| e.exit_code())
}

/// Prints `err` (`error: ...`) and each of its causes (`  caused by: ...`)
/// to stderr and returns the exit code.
pub fn report(err: &anyhow::Error) -> i32 {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    exit_code(err)
}
