//! `primeflow repl`: the interactive Rhai REPL (history file, multi-line
//! input, tab completion, `:help`, `:functions`, `:vars`; Ctrl-C stops a
//! running call and returns to the prompt).

use std::path::PathBuf;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// History file (default: ~/.local/share/primeflow/history).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Pre-set variables, as for `primeflow run --set`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop one input after this many Rhai operations (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_operations: u64,
}

/// Runs the subcommand.
#[cfg(feature = "scripting")]
pub fn run(args: Args) -> anyhow::Result<()> {
    use primeflow::script;
    let sets = script::parse_sets(&args.set)?;
    let opts = script::repl::ReplOptions {
        engine: script::EngineOptions {
            limits: script::Limits {
                max_operations: args.max_operations,
                ..script::Limits::default()
            },
            params: script::Params::new(sets),
            ..script::EngineOptions::default()
        },
        history: args.history,
    };
    script::repl::run_repl(&opts)?;
    Ok(())
}

/// Runs the subcommand (built without the `scripting` feature).
#[cfg(not(feature = "scripting"))]
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this primeflow was built without the 'scripting' feature")
}
