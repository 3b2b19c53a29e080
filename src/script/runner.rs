//! `primeflow run SCRIPT.rhai [--set key=value ...]`: runs a script file with
//! the shared engine. `--set` values are variables in the script's scope and
//! the values `param(name, default)` returns. A failure names the file, line
//! and column, and shows the failing line with a caret.

use std::path::{Path, PathBuf};

use rhai::{Dynamic, EvalAltResult, Scope};

use super::engine::{build_engine, EngineOptions, Limits, OutputBuffer, Params};
use super::error::{describe, kind, location};

/// A script that did not run to completion.
#[derive(Debug, Clone)]
pub struct ScriptFailure {
    /// The script's path as given.
    pub file: PathBuf,
    /// 1-based line and column in the script, when known.
    pub line: Option<usize>,
    pub col: Option<usize>,
    /// `interrupted`, `limit`, `syntax`, `script`, `io` or a core kind.
    pub kind: String,
    /// The description (possibly several lines: the call chain).
    pub message: String,
    /// The failing source line, when known.
    pub source_line: Option<String>,
}

impl ScriptFailure {
    /// The process exit code: 130 interrupted, 2 for bad input (syntax,
    /// unreadable script, invalid or unknown values, bad files), else 1.
    pub fn exit_code(&self) -> i32 {
        match self.kind.as_str() {
            "interrupted" => 130,
            "syntax" | "io" | "format" | "invalid" | "unknown" | "mismatch" => 2,
            _ => 1,
        }
    }

    /// `file:line:col: message`, then the line with a caret.
    pub fn render(&self) -> String {
        let mut s = match (self.line, self.col) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", self.file.display(), self.message),
            (Some(l), None) => format!("{}:{l}: {}", self.file.display(), self.message),
            _ => format!("{}: {}", self.file.display(), self.message),
        };
        if let (Some(l), Some(c), Some(src)) = (self.line, self.col, &self.source_line) {
            let num = format!("{l:>4} | ");
            s.push_str(&format!(
                "\n{num}{src}\n{}| {}^",
                " ".repeat(num.len() - 2),
                " ".repeat(c.saturating_sub(1))
            ));
        }
        s
    }
}

impl std::fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for ScriptFailure {}

fn failure(file: &Path, source: &str, err: &EvalAltResult) -> ScriptFailure {
    let loc = location(err);
    let message = describe(err);
    ScriptFailure {
        file: file.to_path_buf(),
        line: loc.map(|l| l.0),
        col: loc.map(|l| l.1),
        kind: kind(err),
        message,
        source_line: loc.and_then(|(l, _)| {
            source
                .split('\n')
                .nth(l.saturating_sub(1))
                .map(|s| s.trim_end().to_string())
        }),
    }
}

/// Runs the script at `path` with `--set` values `sets`. Warnings about
/// `--set` keys the script never read go to stderr.
// A failure is reported once per script run; its size does not matter.
#[allow(clippy::result_large_err)]
pub fn run_file(
    path: &Path,
    sets: Vec<(String, Dynamic)>,
    limits: &Limits,
    output: Option<OutputBuffer>,
) -> Result<(), ScriptFailure> {
    let source = std::fs::read_to_string(path).map_err(|e| ScriptFailure {
        file: path.to_path_buf(),
        line: None,
        col: None,
        kind: "io".into(),
        message: format!("cannot read the script: {e}"),
        source_line: None,
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf());
    run_source(path, &source, sets, limits, dir, output)
}

/// Runs `source` (named `file` in messages) with the shared engine.
// A failure is reported once per script run; its size does not matter.
#[allow(clippy::result_large_err)]
pub fn run_source(
    file: &Path,
    source: &str,
    sets: Vec<(String, Dynamic)>,
    limits: &Limits,
    script_dir: Option<PathBuf>,
    output: Option<OutputBuffer>,
) -> Result<(), ScriptFailure> {
    let params = Params::new(sets.clone());
    let opts = EngineOptions {
        limits: limits.clone(),
        params: params.clone(),
        script_dir,
        output,
        ..EngineOptions::default()
    };
    let engine = build_engine(&opts);
    let mut scope = Scope::new();
    for (k, v) in sets {
        // Dotted keys (`train.steps`) are only reachable through param().
        if !k.contains('.') {
            scope.push_dynamic(k, v);
        }
    }
    crate::progress::clear_interrupt();
    let mut ast = engine
        .compile_with_scope(&scope, source)
        .map_err(|e| failure(file, source, &EvalAltResult::from(e)))?;
    ast.set_source(file.display().to_string());
    engine
        .run_ast_with_scope(&mut scope, &ast)
        .map_err(|e| failure(file, source, &e))?;
    for k in params.unread() {
        eprintln!(
            "warning: --set {k} was given but the script never asked for it (param(\"{k}\", ...))"
        );
    }
    Ok(())
}
