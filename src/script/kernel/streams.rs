//! How text reaches the notebook while a cell runs: `print`/`debug` on
//! stdout, notices of native functions ("training interrupted after step
//! N") on stderr, and progress bars (training, sampling, evaluation) on
//! stdout as one line that redraws itself (`\r`, as in a terminal; Jupyter
//! front ends overwrite the line).
//!
//! All three go out at once, as IOPub `stream` messages of the running
//! cell, so a long `fit` shows its progress while it runs.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use jupyter_protocol::Stdio;

use super::outbox::Outbox;
use crate::progress::{ProgressEvent, ProgressSink};
use crate::script::engine::PrintSink;

/// The kernel's text streams over one outbox.
#[derive(Clone)]
pub struct Streams {
    outbox: Outbox,
    /// A progress line is drawn and not yet ended by a newline.
    line_open: Arc<AtomicBool>,
}

impl Streams {
    pub fn new(outbox: Outbox) -> Streams {
        Streams {
            outbox,
            line_open: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Ends an open progress line, so what follows starts on its own line.
    pub fn end_line(&self) {
        if self.line_open.swap(false, Ordering::SeqCst) {
            self.outbox.stream(Stdio::Stdout, "\n");
        }
    }

    fn text(&self, name: Stdio, text: &str) {
        self.end_line();
        self.outbox.stream(name, text);
    }

    /// `print` and `debug` output (the engine's print sink).
    pub fn print_sink(&self) -> PrintSink {
        let s = self.clone();
        PrintSink(Rc::new(move |t: &str| s.text(Stdio::Stdout, t)))
    }

    /// Native functions' notices, on stderr.
    pub fn notice_sink(&self) -> PrintSink {
        let s = self.clone();
        PrintSink(Rc::new(move |t: &str| s.text(Stdio::Stderr, t)))
    }

    /// Progress bars as a redrawn line.
    pub fn progress_sink(&self) -> ProgressSink {
        let s = self.clone();
        ProgressSink(Arc::new(move |ev: ProgressEvent<'_>| match ev {
            ProgressEvent::Line(line) => {
                s.line_open.store(true, Ordering::SeqCst);
                s.outbox.stream(Stdio::Stdout, &format!("\r{line}"));
            }
            ProgressEvent::Done => s.end_line(),
        }))
    }
}
