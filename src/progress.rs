//! Progress reporting and Ctrl-C handling shared by long calls (training,
//! sampling, evaluation, simulation).
//!
//! A process-wide interrupt flag is set by Ctrl-C (once the handler is
//! installed with [`install_ctrlc`]); long loops poll [`interrupted`] between
//! steps and stop cleanly, and the caller clears it with [`clear_interrupt`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use indicatif::{ProgressBar, ProgressStyle};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
static QUIET: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (idempotent). The first Ctrl-C sets the flag;
/// a second one while the flag is still set exits the process.
pub fn install_ctrlc() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting");
                std::process::exit(130);
            }
            eprintln!("\nCtrl-C: stopping after the current step (press again to exit)");
        });
    });
}

/// True once Ctrl-C was pressed (and not yet cleared).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Clears the interrupt flag (at the start of a long call).
pub fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Sets the interrupt flag programmatically (tests, embedding hosts).
pub fn request_interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns progress bars off (tests, notebooks) or on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// A progress bar of `len` steps with `msg`, hidden when quiet or when
/// stderr is not a terminal.
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    if QUIET.load(Ordering::SeqCst) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {prefix}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(msg.to_string());
    pb
}
