//! `primeflow batch` (hidden): runs many primeflow commands, each in its own
//! process, and reports how each one ended. The mutation-fuzz test and
//! benchmark use it to run hundreds of commands on corrupted files.
//!
//! Each input line (stdin) is a JSON array of arguments, e.g.
//! `["info", "--json", "f.h5ad"]`. For each line the batch process forks; the
//! child runs the command exactly as `main` would (same dispatch, same error
//! printing, same exit code) with its stdout discarded and its stderr
//! captured, and the parent waits for it with a timeout (then kills it). One
//! JSON line per command goes to stdout: the exit code, or the signal that
//! killed it (a segfault or abort), whether it timed out, its wall time and
//! the end of its stderr.
//!
//! Why fork instead of exec: starting the binary loads libtorch and ending
//! it runs libtorch's static destructors, together about a second per
//! process on a busy 2-core machine; a forked child starts from the parent's
//! already-loaded image and ends with HDF5's shutdown (`H5close`) and
//! `_exit`, in milliseconds, yet a crash still only kills that child. The
//! parent never touches HDF5 or libtorch before forking, so every child
//! starts with both uninitialised, as a fresh process does.

use std::io::{BufRead, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each command may run before it is killed (SIGKILL) and
    /// reported as timed out.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Characters of each command's stderr kept in the report (its end).
    #[arg(long = "stderr-chars", default_value_t = 400)]
    pub stderr_chars: usize,
}

/// How one command ended.
#[derive(Debug, Serialize)]
struct Outcome {
    args: Vec<String>,
    /// Exit code when the process exited (0 ok, 2 bad input, ...).
    code: Option<i32>,
    /// The signal that ended it (11 SIGSEGV, 6 SIGABRT, 9 SIGKILL after a
    /// timeout or from the OOM killer).
    signal: Option<i32>,
    timed_out: bool,
    seconds: f64,
    /// The end of its stderr.
    stderr: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.timeout.is_nan() || args.timeout <= 0.0 {
        anyhow::bail!(primeflow::Error::invalid(
            "--timeout",
            format!("{} is not a positive number of seconds", args.timeout)
        ));
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut err_file = tempfile_in_tmp().context("creating the stderr capture file")?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Vec<String> = serde_json::from_str(&line).map_err(|e| {
            primeflow::Error::invalid(
                format!("stdin line {}", n + 1),
                format!("expected a JSON array of strings: {e}"),
            )
        })?;
        err_file
            .set_len(0)
            .context("truncating the stderr capture")?;
        err_file.rewind().context("rewinding the stderr capture")?;
        let outcome = run_one(&cmd, &err_file, timeout, args.stderr_chars)?;
        serde_json::to_writer(&mut out, &outcome)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(())
}

/// An anonymous temporary file (unlinked at once).
fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
    let p = std::env::temp_dir().join(format!(".primeflow-batch-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)?;
    let _ = std::fs::remove_file(&p);
    Ok(f)
}

fn run_one(
    cmd: &[String],
    err_file: &std::fs::File,
    timeout: Duration,
    keep: usize,
) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    // SAFETY: the parent is single-threaded apart from threads that hold no
    // locks the child needs (batch never installs the Ctrl-C thread); the
    // child only runs ordinary Rust code and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork failed");
    }
    if pid == 0 {
        child(cmd, err_file.as_raw_fd());
    }
    let (mut code, mut signal, mut timed_out) = (None, None, false);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                code = Some(libc::WEXITSTATUS(status));
            } else if libc::WIFSIGNALED(status) {
                signal = Some(libc::WTERMSIG(status));
            }
            break;
        }
        if r < 0 {
            return Err(std::io::Error::last_os_error()).context("waitpid failed");
        }
        if !timed_out && t0.elapsed() > timeout {
            timed_out = true;
            // SAFETY: killing our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut stderr = String::new();
    let mut f = err_file;
    f.rewind()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let s = String::from_utf8_lossy(&bytes);
    let chars: Vec<char> = s.chars().collect();
    stderr.extend(&chars[chars.len().saturating_sub(keep)..]);
    Ok(Outcome {
        args: cmd.to_vec(),
        code,
        signal,
        timed_out,
        seconds: t0.elapsed().as_secs_f64(),
        stderr,
    })
}

/// The forked child: stdout to /dev/null, stderr to `err_fd`, then the
/// command as `main` runs it. Never returns.
fn child(cmd: &[String], err_fd: i32) -> ! {
    // SAFETY: plain descriptor juggling in the child.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::close(null);
        }
        libc::dup2(err_fd, 2);
    }
    let argv = std::iter::once("primeflow".to_string()).chain(cmd.iter().cloned());
    // A panic must end this child (exit code 101, as Rust's main does), never
    // unwind back into the batch loop.
    let run = std::panic::AssertUnwindSafe(|| match super::Cli::try_parse_from(argv) {
        Ok(cli) if matches!(cli.command, super::Command::Batch(_)) => {
            eprintln!("error: batch cannot run itself");
            2
        }
        Ok(cli) => match super::dispatch(cli) {
            Ok(()) => 0,
            Err(err) => super::report(&err),
        },
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
    });
    let code = std::panic::catch_unwind(run).unwrap_or(101);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // Shut HDF5 down as a normal exit would (it closes whatever is still
    // open, which a corrupted file could make crash), then leave without the
    // other exit handlers: libtorch's static destructors take about 0.3 s per
    // process and have nothing to do with the files read.
    // SAFETY: H5close is HDF5's documented shutdown, safe to call at any
    // time; _exit ends the process at once.
    unsafe {
        H5close();
        libc::_exit(code)
    }
}

extern "C" {
    /// HDF5's library shutdown (the library that the hdf5 crate links).
    fn H5close() -> i32;
}
