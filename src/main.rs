//! The `primeflow` command: a thin layer that parses arguments, calls the
//! library and turns errors into exit codes (2 for bad input, 74 when the
//! machine's I/O failed (disk full, EIO), 1 for other failures, 130 when
//! interrupted). It never panics on user input.

mod cli;

use clap::Parser;

fn main() {
    // Behave like other Unix tools when stdout is closed early
    // (`primeflow info f.h5ad | head`): end quietly instead of panicking in
    // println! on EPIPE.
    // SAFETY: resetting a signal disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // `--version` also names the HDF5 linked in. Answered here so that
    // other commands never touch HDF5 before they run (`batch` forks
    // children that must start with it uninitialised).
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--version" || a == "-V")
    {
        let (a, b, c) = primeflow::anndata::hdf5_version();
        println!("primeflow {} (HDF5 {a}.{b}.{c})", env!("CARGO_PKG_VERSION"));
        return;
    }
    let args = cli::Cli::parse();
    // The batch runner forks children and must not start the Ctrl-C thread.
    if !matches!(args.command, cli::Command::Batch(_)) {
        primeflow::progress::install_ctrlc();
    }
    if let Err(err) = cli::dispatch(args) {
        std::process::exit(cli::report(&err));
    }
}
