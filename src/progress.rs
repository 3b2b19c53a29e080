//! Progress reporting and Ctrl-C handling shared by long calls (training,
//! sampling, evaluation, simulation).
//!
//! A process-wide interrupt flag is set by Ctrl-C (once the handler is
//! installed with [`install_ctrlc`]) or by an embedding host (a Jupyter
//! kernel's `interrupt_request`, [`request_interrupt`]); long loops poll
//! [`interrupted`] between steps and stop cleanly, and the caller clears it
//! with [`clear_interrupt`].
//!
//! Progress bars draw on a terminal's stderr, or, when a host has set a
//! [`ProgressSink`] (the kernel: its output stream), as text lines to it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();
static QUIET: AtomicBool = AtomicBool::new(false);
static SECOND_EXITS: AtomicBool = AtomicBool::new(true);
static SINK: RwLock<Option<ProgressSink>> = RwLock::new(None);

/// Installs the Ctrl-C handler (idempotent). The first Ctrl-C sets the flag;
/// a second one while the flag is still set exits the process (unless a
/// host turned that off with [`set_second_interrupt_exits`]).
pub fn install_ctrlc() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            let exits = SECOND_EXITS.load(Ordering::SeqCst);
            INTERRUPTS.fetch_add(1, Ordering::SeqCst);
            if INTERRUPTED.swap(true, Ordering::SeqCst) && exits {
                eprintln!("\nsecond Ctrl-C: exiting");
                std::process::exit(130);
            }
            if exits {
                eprintln!("\nCtrl-C: stopping after the current step (press again to exit)");
            } else {
                eprintln!("interrupt (SIGINT): stopping after the current step");
            }
        });
    });
}

/// Whether a second Ctrl-C (SIGINT) while the first is pending exits the
/// process (default). A kernel turns it off: there every SIGINT only
/// interrupts, so the session is never lost.
pub fn set_second_interrupt_exits(exits: bool) {
    SECOND_EXITS.store(exits, Ordering::SeqCst);
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
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// How many interrupts (Ctrl-C, SIGINT, [`request_interrupt`]) this process
/// has seen: a host compares it before and after a call to learn whether
/// the call was interrupted, even when the flag was cleared since.
pub fn interrupt_count() -> u64 {
    INTERRUPTS.load(Ordering::SeqCst)
}

/// Turns progress bars off (tests, notebooks) or on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// What a [`ProgressSink`] receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProgressEvent<'a> {
    /// The bar's current text (one line), e.g. `train [=====>   ] 40/100 ...`.
    Line(&'a str),
    /// The bar finished or was cleared.
    Done,
}

/// Receives progress bars as text instead of a terminal (a kernel's output
/// stream); called at most a few times a second per bar.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(ProgressEvent<'_>) + Send + Sync>);

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// Sends progress bars to `sink` (or, with `None`, back to the terminal).
pub fn set_sink(sink: Option<ProgressSink>) {
    if let Ok(mut s) = SINK.write() {
        *s = sink;
    }
}

/// Redraws per second of a bar drawn to a sink.
const SINK_HZ: u8 = 2;

/// indicatif's terminal interface over a [`ProgressSink`]: each redraw's
/// text is gathered and handed over as one line when indicatif flushes.
#[derive(Debug)]
struct SinkTerm {
    sink: ProgressSink,
    frame: Mutex<String>,
    shown: AtomicBool,
}

impl SinkTerm {
    fn push(&self, s: &str) {
        // indicatif writes a `\r` and trailing filler spaces: keep the text.
        let t = s.trim_matches(|c: char| c == '\r' || c == '\n').trim_end();
        if t.trim().is_empty() {
            return;
        }
        if let Ok(mut f) = self.frame.lock() {
            if !f.is_empty() {
                f.push(' ');
            }
            f.push_str(t);
        }
    }
}

impl TermLike for SinkTerm {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.push(s);
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.push(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        let frame = match self.frame.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => return Ok(()),
        };
        let line = frame.trim_end();
        if line.is_empty() {
            if self.shown.swap(false, Ordering::SeqCst) {
                (self.sink.0)(ProgressEvent::Done);
            }
        } else {
            self.shown.store(true, Ordering::SeqCst);
            (self.sink.0)(ProgressEvent::Line(line));
        }
        Ok(())
    }
}

impl Drop for SinkTerm {
    fn drop(&mut self) {
        if self.shown.swap(false, Ordering::SeqCst) {
            (self.sink.0)(ProgressEvent::Done);
        }
    }
}

/// A progress bar of `len` steps with `msg`: drawn to the [`ProgressSink`]
/// when one is set, else on stderr (hidden when quiet or when stderr is not
/// a terminal).
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    if QUIET.load(Ordering::SeqCst) {
        return ProgressBar::hidden();
    }
    let sink = SINK.read().ok().and_then(|s| s.clone());
    let pb = match sink {
        Some(sink) => {
            let term = SinkTerm {
                sink,
                frame: Mutex::new(String::new()),
                shown: AtomicBool::new(false),
            };
            ProgressBar::with_draw_target(
                Some(len),
                ProgressDrawTarget::term_like_with_hz(Box::new(term), SINK_HZ),
            )
        }
        None => ProgressBar::new(len),
    };
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {prefix}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(msg.to_string());
    pb
}
