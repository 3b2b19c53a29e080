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
    let args = cli::Cli::parse();
    // The batch runner forks children and must not start the Ctrl-C thread.
    if !matches!(args.command, cli::Command::Batch(_)) {
        primeflow::progress::install_ctrlc();
    }
    if let Err(err) = cli::dispatch(args) {
        std::process::exit(cli::report(&err));
    }
}
