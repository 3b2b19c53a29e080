//! `primeflow kernel`: a Jupyter kernel for the Rhai engine, the same
//! engine, objects and stdlib as `primeflow repl` and `primeflow run`, with
//! one persistent [`Session`](crate::script::Session) per kernel: variables,
//! functions and imported modules live across cells.
//!
//! ```sh
//! primeflow kernel install --user        # then pick "Rhai (primeflow)" in Jupyter
//! primeflow kernel --connection-file /path/kernel-1234.json   # what Jupyter runs
//! ```
//!
//! Crates: [`jupyter_protocol`] for the message types (every request, reply
//! and IOPub content of protocol 5.3, with serde), the pure-Rust `zeromq`
//! crate on a tokio runtime for the five sockets (no libzmq to build or
//! link), and RustCrypto's `hmac`/`sha2` for the signatures. The wire
//! framing is ours ([`wire`], a hundred lines): it checks signatures before
//! parsing anything and reports what it refuses instead of failing the
//! socket loop.
//!
//! Threads: Rhai's values are `!Send` (`Rc` handles), so the session lives
//! on the calling thread ([`executor`]), and the sockets run on their own
//! thread ([`io`]). Requests cross by a channel; everything sent out goes
//! through one ordered queue ([`outbox`]). An `interrupt_request` (or
//! SIGINT) sets the flag Ctrl-C sets in the REPL
//! ([`crate::progress::request_interrupt`]): a running `fit` stops after
//! its current step with the model as far as it got, `sample` and the
//! script stop at their next check, and the cell ends with an
//! `interrupted` error.
//!
//! Files: [`connection`] (the connection file), [`wire`] (framing and
//! HMAC), [`io`] (sockets), [`outbox`], [`executor`] (the engine thread),
//! [`streams`] (print, notices, progress), [`introspect`] (completion,
//! inspection, `is_complete`), [`info`] (`kernel_info`), [`spec`]
//! (`kernel install`).

pub mod connection;
pub mod executor;
pub mod info;
pub mod introspect;
pub mod io;
pub mod outbox;
pub mod spec;
pub mod streams;
pub mod wire;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::engine::{EngineOptions, Limits};
use crate::error::{Error, Result};

/// Options of [`run`].
#[derive(Debug, Clone, Default)]
pub struct KernelOptions {
    /// The engine's limits (the REPL's: no operation limit by default).
    pub limits: Limits,
}

/// Serves the kernel described by `connection_file` until a
/// `shutdown_request` (or the parent process is gone). Returns an error
/// only when it cannot start: an unreadable connection file or a port that
/// cannot be bound.
pub fn run(connection_file: &Path, opts: &KernelOptions) -> Result<()> {
    let conn = connection::read(connection_file)?;
    let signer = wire::Signer::new(&conn.key);
    // Every SIGINT only interrupts: a second one must not end the session.
    crate::progress::set_second_interrupt_exits(false);
    crate::progress::install_ctrlc();
    let session_id = uuid::Uuid::new_v4().to_string();
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let outbox = outbox::Outbox::new(out_tx, &session_id);
    let (work_tx, work_rx) = std::sync::mpsc::channel();
    let stopping = Arc::new(AtomicBool::new(false));
    let sockets = io::start(
        conn.clone(),
        signer,
        outbox.clone(),
        out_rx,
        work_tx,
        stopping.clone(),
    )
    .map_err(|e| Error::invalid("kernel", e))?;
    io::log(format!(
        "serving {} (shell {}, iopub {}, control {}, stdin {}, heartbeat {})",
        connection_file.display(),
        conn.shell_port,
        conn.iopub_port,
        conn.control_port,
        conn.stdin_port,
        conn.hb_port
    ));
    let engine = EngineOptions {
        limits: opts.limits.clone(),
        ..EngineOptions::default()
    };
    executor::Executor::new(engine, outbox.clone(), work_rx, stopping).run();
    // Flush what is queued (the shutdown reply, the last outputs), then end.
    outbox.close();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !sockets.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::progress::set_sink(None);
    io::log("shut down");
    Ok(())
}
