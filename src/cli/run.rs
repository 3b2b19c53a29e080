//! `primeflow run SCRIPT.rhai [--set key=value ...]`: runs a Rhai script with
//! the shared engine (see `primeflow::script`). Exit 0 on success; on a
//! script error, `file:line:col: message` on stderr and a non-zero exit (2
//! for bad input, 130 for Ctrl-C, 1 otherwise).

use std::path::PathBuf;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The script to run.
    pub script: PathBuf,
    /// A value for the script: `key=value` (numbers, true/false, JSON arrays
    /// such as [1,3], else a string). Visible as a variable and through
    /// `param("key", default)`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop a script after this many Rhai operations (0: no limit).
    #[arg(long, default_value_t = 500_000_000)]
    pub max_operations: u64,
    /// Deepest nesting of function calls.
    #[arg(long, default_value_t = 64)]
    pub max_call_depth: usize,
    /// Largest string (bytes), array and map (entries) a script may build.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_string_size: usize,
    #[arg(long, default_value_t = 4_000_000)]
    pub max_array_size: usize,
    #[arg(long, default_value_t = 100_000)]
    pub max_map_size: usize,
}

/// Runs the subcommand.
#[cfg(feature = "scripting")]
pub fn run(args: Args) -> anyhow::Result<()> {
    use primeflow::script;
    let sets = script::parse_sets(&args.set)?;
    let limits = script::Limits {
        max_operations: args.max_operations,
        max_call_levels: args.max_call_depth,
        max_string_size: args.max_string_size,
        max_array_size: args.max_array_size,
        max_map_size: args.max_map_size,
        ..script::Limits::default()
    };
    match script::run_file(&args.script, sets, &limits, None) {
        Ok(()) => Ok(()),
        Err(f) => {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            eprintln!("{}", f.render());
            std::process::exit(f.exit_code());
        }
    }
}

/// Runs the subcommand (built without the `scripting` feature).
#[cfg(not(feature = "scripting"))]
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this primeflow was built without the 'scripting' feature")
}
