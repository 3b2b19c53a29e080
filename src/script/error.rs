//! Core errors as Rhai errors, and Rhai errors as readable messages.
//!
//! A failing call into the core becomes a catchable runtime error whose value
//! is a map `#{error: "primeflow", kind: "unknown", message: "..."}`: the
//! `kind` is [`crate::Error::kind`] (`io`, `format`, `invalid`, `unknown`,
//! `mismatch`, `torch`, `interrupted`) and the message is the core's message
//! (libtorch errors arrive without their C++ stack trace). Scripts catch it
//! like any Rhai error:
//!
//! ```rhai
//! try { Dataset::load("missing.h5ad") } catch (err) { print(err.kind + ": " + err.message) }
//! ```
//!
//! A panic inside the core is caught by [`guard`] and reported as kind
//! `internal`, so a script never takes the host (REPL, kernel) down.

use std::panic::AssertUnwindSafe;

use rhai::{Dynamic, EvalAltResult, Map, Position};

/// Result of a function callable from Rhai.
pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A catchable Rhai runtime error `#{error: "primeflow", kind, message}`.
pub fn script_error(kind: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    let mut m = Map::new();
    m.insert("error".into(), Dynamic::from("primeflow".to_string()));
    m.insert("kind".into(), Dynamic::from(kind.to_string()));
    m.insert("message".into(), Dynamic::from(message.into()));
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from_map(m),
        Position::NONE,
    ))
}

/// The core error `e` as a catchable Rhai error (same kind and message).
pub fn to_rhai(e: crate::Error) -> Box<EvalAltResult> {
    script_error(e.kind(), e.to_string())
}

/// An `invalid` error about `what` (an argument or option name).
pub fn invalid(what: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    to_rhai(crate::Error::invalid(what, message))
}

/// Runs a call into the core: its error becomes a Rhai error of the same
/// kind; a panic becomes kind `internal` instead of unwinding into Rhai.
pub fn guard<T>(f: impl FnOnce() -> crate::Result<T>) -> RhaiResult<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_rhai(e)),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let first = what.lines().next().unwrap_or("").to_string();
            Err(script_error(
                "internal",
                format!("internal error (please report it): {first}"),
            ))
        }
    }
}

/// `(kind, message)` of a primeflow runtime error value, if `v` is one.
pub fn primeflow_error(v: &Dynamic) -> Option<(String, String)> {
    let m = v.read_lock::<Map>()?;
    let kind = m.get("kind")?.clone().into_string().ok()?;
    let message = m.get("message")?.clone().into_string().ok()?;
    Some((kind, message))
}

/// A readable one-paragraph description of `err` without its position:
/// primeflow errors as `error [kind]: message`, Rhai's own errors as Rhai
/// words them, and calls through script functions as `... (in function
/// 'name', line L)` so the user sees where inside a stdlib helper it failed.
pub fn describe(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(v, _) => match primeflow_error(v) {
            Some((kind, message)) => format!("error [{kind}]: {message}"),
            None if v.is_string() => format!("error: {}", v.clone().into_string().unwrap_or_default()),
            None => format!("error: thrown {v}"),
        },
        EvalAltResult::ErrorInFunctionCall(name, src, inner, _) => {
            let mut s = describe(inner);
            let at = inner.position();
            let place = if src.is_empty() { String::new() } else { format!(" of '{src}'") };
            if name.starts_with("anon$") {
                s.push_str(&format!("\n  in a closure{place}"));
            } else {
                s.push_str(&format!("\n  in function '{name}'{place}"));
            }
            if let (Some(l), Some(c)) = (at.line(), at.position()) {
                s.push_str(&format!(" at line {l}, column {c}"));
            }
            s
        }
        EvalAltResult::ErrorInModule(name, inner, _) => {
            format!("{}\n  in module '{name}'", describe(inner))
        }
        EvalAltResult::ErrorTerminated(..) => "interrupted (Ctrl-C)".to_string(),
        EvalAltResult::ErrorTooManyOperations(..) => {
            "error [limit]: too many operations (the script ran past the engine's max_operations limit)".to_string()
        }
        EvalAltResult::ErrorStackOverflow(..) => "error [limit]: call stack too deep (the engine's max_call_levels limit)".to_string(),
        EvalAltResult::ErrorDataTooLarge(what, ..) => {
            format!("error [limit]: {what} too large (the engine's size limits)")
        }
        EvalAltResult::ErrorParsing(p, _) => format!("syntax error: {p}"),
        other => {
            let text = other.to_string();
            let text = match (text.rfind(" (line "), text.ends_with(')')) {
                (Some(i), true) => text[..i].to_string(),
                _ => text,
            };
            format!("error: {text}")
        }
    }
}

/// The kind of `err`: the primeflow kind for core errors, `limit`,
/// `interrupted`, `syntax`, or `script` for Rhai's own errors.
pub fn kind(err: &EvalAltResult) -> String {
    match err.unwrap_inner() {
        EvalAltResult::ErrorRuntime(v, _) => primeflow_error(v)
            .map(|(k, _)| k)
            .unwrap_or_else(|| "script".into()),
        EvalAltResult::ErrorTerminated(..) => "interrupted".into(),
        EvalAltResult::ErrorTooManyOperations(..)
        | EvalAltResult::ErrorStackOverflow(..)
        | EvalAltResult::ErrorDataTooLarge(..)
        | EvalAltResult::ErrorTooManyVariables(..)
        | EvalAltResult::ErrorTooManyModules(..) => "limit".into(),
        EvalAltResult::ErrorParsing(..) => "syntax".into(),
        _ => "script".into(),
    }
}

/// `(line, column)` (1-based) of `err` in the top-level script, if known.
pub fn location(err: &EvalAltResult) -> Option<(usize, usize)> {
    let p = err.position();
    Some((p.line()?, p.position().unwrap_or(1)))
}

/// Renders `err` for a terminal: the source line with a caret under the
/// failing position (when `source` holds that line), then the description.
pub fn render_with_caret(source: &str, err: &EvalAltResult) -> String {
    let text = describe(err);
    let Some((line, col)) = location(err) else {
        return text;
    };
    let Some(src_line) = source.split('\n').nth(line.saturating_sub(1)) else {
        return text;
    };
    let multi = source.trim_end().contains('\n');
    let prefix = if multi {
        format!("{line}: ")
    } else {
        String::new()
    };
    let pad = prefix.len() + col.saturating_sub(1);
    format!("{prefix}{src_line}\n{:pad$}^ {text}", "", pad = pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_kind_and_message() {
        let e = to_rhai(crate::Error::unknown("perturbation", "Z", &["A", "B"]));
        let (k, m) = match &*e {
            EvalAltResult::ErrorRuntime(v, _) => primeflow_error(v).unwrap(),
            _ => panic!("not a runtime error"),
        };
        assert_eq!(k, "unknown");
        assert!(m.contains("'Z'") && m.contains("known: A, B"), "{m}");
        assert!(
            describe(&e).starts_with("error [unknown]: "),
            "{}",
            describe(&e)
        );
    }

    #[test]
    fn panics_become_internal_errors() {
        let r: RhaiResult<()> = guard(|| panic!("boom"));
        let e = r.unwrap_err();
        assert_eq!(kind(&e), "internal");
        assert!(describe(&e).contains("boom"));
    }
}
