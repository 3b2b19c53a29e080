//! The `primeflow` command: a thin layer that parses arguments, calls the
//! library and turns errors into exit codes (2 for bad input, 1 for other
//! failures, 130 when interrupted). It never panics on user input.

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
    primeflow::progress::install_ctrlc();
    match cli::dispatch(args) {
        Ok(()) => {}
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                let c = cause.to_string();
                if !err.to_string().contains(&c) {
                    eprintln!("  caused by: {c}");
                }
            }
            std::process::exit(cli::exit_code(&err));
        }
    }
}
