//! `primeflow kernel`: the Jupyter kernel for Rhai (see
//! `primeflow::script::kernel`).
//!
//! ```sh
//! primeflow kernel install --user            # or --prefix "$VIRTUAL_ENV"
//! primeflow kernel --connection-file FILE    # what Jupyter runs (kernel.json argv)
//! ```

use std::path::PathBuf;

/// Arguments.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// The connection file Jupyter wrote (ports, key, transport).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub connection_file: Option<PathBuf>,
    /// Stop one cell after this many Rhai operations (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_operations: u64,
}

/// `primeflow kernel` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write the kernelspec so Jupyter lists "Rhai (primeflow)".
    Install(InstallArgs),
}

/// Arguments of `primeflow kernel install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Into Jupyter's user data folder ($JUPYTER_DATA_DIR or
    /// ~/.local/share/jupyter); the default.
    #[arg(long, conflicts_with = "prefix")]
    pub user: bool,
    /// Into PREFIX/share/jupyter (e.g. a virtual environment).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<PathBuf>,
    /// The kernel's name (notebooks record it in metadata.kernelspec.name).
    #[arg(long, default_value = "primeflow")]
    pub name: String,
    /// The name shown in Jupyter's kernel picker.
    #[arg(long, default_value = "Rhai (primeflow)")]
    pub display_name: String,
}

/// Runs the subcommand.
#[cfg(feature = "scripting")]
pub fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context;
    use primeflow::script::kernel;
    match (args.action, args.connection_file) {
        (Some(Action::Install(i)), _) => {
            let location = match i.prefix {
                Some(p) => kernel::spec::Location::Prefix(p),
                None => kernel::spec::Location::User,
            };
            let exe = std::env::current_exe().context("cannot find this binary's path")?;
            let dir = kernel::spec::install(&location, &i.name, &i.display_name, &exe)?;
            println!(
                "installed kernelspec '{}' ({}) in {}",
                i.name,
                i.display_name,
                dir.display()
            );
            Ok(())
        }
        (None, Some(file)) => {
            let opts = kernel::KernelOptions {
                limits: primeflow::script::Limits {
                    max_operations: args.max_operations,
                    ..primeflow::script::Limits::default()
                },
            };
            kernel::run(&file, &opts)?;
            Ok(())
        }
        (None, None) => anyhow::bail!(
            "give --connection-file FILE (Jupyter does), or run `primeflow kernel install`"
        ),
    }
}

/// Runs the subcommand (built without the `scripting` feature).
#[cfg(not(feature = "scripting"))]
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this primeflow was built without the 'scripting' feature")
}
