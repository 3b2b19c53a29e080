//! The Rhai session primeflow holds for evcxr notebooks, so evcxr never
//! carries Rhai values from one cell to the next.
//!
//! # Why (the `free(): invalid pointer` crash)
//!
//! evcxr compiles every cell into its own shared object (a `cdylib` that
//! links primeflow, rhai and all their dependencies statically) and loads
//! it with `dlopen(RTLD_LOCAL)`. Each cell therefore runs its own copy of
//! every crate, statics included. A Rhai session kept in an evcxr variable
//! was built by one cell's copy and used by the next cell's copy, whose
//! statics differ:
//! * `thin-vec` (inside Rhai's AST and engine) marks an empty vector by a
//!   pointer to its static `EMPTY_HEADER` and frees any other pointer. The
//!   later copy compares with *its* `EMPTY_HEADER`, so it frees the first
//!   copy's static: `free(): invalid pointer` (gdb on a two-`cdylib`
//!   reproduction: `free(0x7ffff78cecf8) thin_vec::EMPTY_HEADER in section
//!   .rodata of libcell_a.so`).
//! * Rhai hashes function names with `ahash` seeded per process at first
//!   use (its `runtime-rng` feature), i.e. per copy: the later copy's
//!   lookups miss what the first registered ("Function not found: +").
//!
//! # The fix
//!
//! Only one copy ever touches the session: the first copy that needs it
//! creates it (thread-local to that copy) and publishes a [`Bridge`], a
//! table of `extern "C"` functions, through the one thing every copy
//! shares, the process environment (`PRIMEFLOW_NOTEBOOK_BRIDGE=<pid>:<address>`).
//! Later copies find the bridge there and call through it: code goes in as
//! bytes, the cell's output comes back as JSON bytes written into the
//! caller's buffer by the caller's own callback, so no Rust value crosses
//! between copies. evcxr never unloads a cell's shared object, so the
//! published functions stay valid for the life of the process. In a plain
//! program (one copy) the bridge is simply this copy's.
//!
//! The session lives on the thread that first used it (evcxr runs every
//! cell on one thread); a call from another thread gets that thread's own
//! session.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::AssertUnwindSafe;

use super::display::bundle;
use super::engine::{EngineOptions, OutputBuffer};
use super::notebook::Cell;
use super::repl::Session;

/// The environment variable that carries the bridge's address.
pub const BRIDGE_VAR: &str = "PRIMEFLOW_NOTEBOOK_BRIDGE";

/// Layout version of [`Bridge`]: copies built from a different primeflow
/// refuse a bridge they do not understand.
const BRIDGE_MAGIC: u64 = 0x7072_6d66_6c77_0001;

/// What a call asks of the session.
const OP_RUN: u32 = 0;
const OP_RESET: u32 = 1;
const OP_VALUE: u32 = 2;

/// Receives the reply bytes (JSON of a [`Cell`]) in the caller's copy.
type WriteFn = extern "C" fn(out: *mut c_void, data: *const u8, len: usize);

/// The functions the session's copy publishes.
#[repr(C)]
pub struct Bridge {
    magic: u64,
    call: extern "C" fn(op: u32, code: *const u8, len: usize, out: *mut c_void, write: WriteFn),
}

static BRIDGE: Bridge = Bridge {
    magic: BRIDGE_MAGIC,
    call: bridge_call,
};

/// The session and the buffer its `print` writes to.
struct Held {
    session: Session,
    output: OutputBuffer,
}

impl Held {
    fn new() -> Held {
        // Progress bars would clutter the cell's output.
        crate::progress::set_quiet(true);
        let output = OutputBuffer::default();
        let opts = EngineOptions {
            output: Some(output.clone()),
            ..EngineOptions::default()
        };
        Held {
            session: Session::new(&opts),
            output,
        }
    }

    fn run(&mut self, code: &str) -> Cell {
        self.output.borrow_mut().clear();
        let r = self.session.eval(code);
        let printed = std::mem::take(&mut *self.output.borrow_mut());
        match r {
            Ok(v) if v.is_unit() => Cell {
                printed,
                ..Cell::default()
            },
            Ok(v) => {
                let b = bundle(self.session.engine(), &v);
                Cell {
                    printed,
                    text: Some(b.plain),
                    rich: b.html,
                    error: None,
                }
            }
            Err(e) => Cell {
                printed,
                error: Some(e),
                ..Cell::default()
            },
        }
    }

    fn value(&self, name: &str) -> Cell {
        Cell {
            text: self
                .session
                .var(name)
                .map(|v| super::engine::display_value(self.session.engine(), &v)),
            ..Cell::default()
        }
    }
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// The bridge's entry point; runs in the copy that published it.
extern "C" fn bridge_call(op: u32, code: *const u8, len: usize, out: *mut c_void, write: WriteFn) {
    // SAFETY: the caller passes a live byte buffer of `len` bytes.
    let bytes = if code.is_null() {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(code, len) }
    };
    let code = String::from_utf8_lossy(bytes);
    let cell = std::panic::catch_unwind(AssertUnwindSafe(|| {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if op == OP_RESET {
                *h = None;
                return Cell::default();
            }
            let held = h.get_or_insert_with(Held::new);
            match op {
                OP_RUN => held.run(&code),
                OP_VALUE => held.value(&code),
                _ => Cell::default(),
            }
        })
    }))
    .unwrap_or_else(|_| Cell {
        error: Some("internal error (please report it); the session goes on".into()),
        ..Cell::default()
    });
    let json = serde_json::to_vec(&cell).unwrap_or_default();
    write(out, json.as_ptr(), json.len());
}

/// Collects the reply in the calling copy.
extern "C" fn collect(out: *mut c_void, data: *const u8, len: usize) {
    if out.is_null() || data.is_null() {
        return;
    }
    // SAFETY: `out` is the `Vec<u8>` [`call`] passed; `data` has `len` bytes.
    let buf = unsafe { &mut *(out as *mut Vec<u8>) };
    buf.extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
}

/// The bridge published in this process, or this copy's (published now).
fn bridge() -> &'static Bridge {
    let pid = std::process::id();
    if let Ok(v) = std::env::var(BRIDGE_VAR) {
        let parsed = v.split_once(':').and_then(|(p, a)| {
            let p: u32 = p.parse().ok()?;
            let a = usize::from_str_radix(a.trim_start_matches("0x"), 16).ok()?;
            Some((p, a))
        });
        // A value inherited from a parent process names another pid.
        if let Some((_, addr)) = parsed.filter(|(p, a)| *p == pid && *a != 0) {
            // SAFETY: this process published the address of a `static
            // Bridge` in a shared object that is never unloaded; the magic
            // guards against a bridge of another layout.
            let b = unsafe { &*(addr as *const Bridge) };
            if b.magic == BRIDGE_MAGIC {
                return b;
            }
        }
    }
    let addr = &BRIDGE as *const Bridge as usize;
    std::env::set_var(BRIDGE_VAR, format!("{pid}:{addr:x}"));
    &BRIDGE
}

fn call(op: u32, code: &str) -> Cell {
    let mut buf: Vec<u8> = Vec::new();
    (bridge().call)(
        op,
        code.as_ptr(),
        code.len(),
        &mut buf as *mut Vec<u8> as *mut c_void,
        collect,
    );
    serde_json::from_slice(&buf).unwrap_or_else(|e| Cell {
        error: Some(format!(
            "the notebook session sent an unreadable reply: {e}"
        )),
        ..Cell::default()
    })
}

/// Runs Rhai `code` in the session the library holds.
pub fn run(code: &str) -> Cell {
    call(OP_RUN, code)
}

/// Ends the held session; the next [`run`] starts a fresh one.
pub fn reset() {
    let _ = call(OP_RESET, "");
}

/// A variable of the held session as text (`None` when undefined).
pub fn value(name: &str) -> Option<String> {
    call(OP_VALUE, name).text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_session_keeps_state_and_publishes_its_bridge() {
        reset();
        assert_eq!(run("let x = 20; x + 1").text.as_deref(), Some("21"));
        assert_eq!(run("x * 2").text.as_deref(), Some("40"));
        assert_eq!(value("x").as_deref(), Some("20"));
        let published = std::env::var(BRIDGE_VAR).unwrap();
        assert!(published.starts_with(&format!("{}:", std::process::id())));
        assert!(run("nosuch()").error.is_some());
        reset();
        assert!(value("x").is_none());
    }
}
