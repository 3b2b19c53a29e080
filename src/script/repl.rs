//! `primeflow repl`: an interactive session over the shared engine.
//!
//! [`Session::eval_line`] is the whole REPL minus the terminal: it runs one
//! input (several lines when a block is open), keeps variables, functions
//! and imported modules ([`super::imports`]) between inputs, handles `:help NAME`, `:functions [FILTER]`, `:vars` and
//! `:quit`, and returns what to print, errors with a caret under the failing
//! position. Tests drive it directly; [`run_repl`] wraps it in rustyline
//! (history file, multi-line input, tab completion).

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, Scope, AST};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

pub use super::block::{block_state, BlockState};
use super::engine::{build_engine, display_value, EngineOptions};
use super::error::render_with_caret;
use super::help::HelpIndex;

/// What one input produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to show (a statement, an empty line).
    Nothing,
    /// A value or the text of a command, to print.
    Text(String),
    /// An error message (with caret), to print; the session goes on.
    Error(String),
    /// `:quit`.
    Quit,
}

/// A failed input, in parts (the kernel's `error` reply) and rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    /// `syntax`, `script`, `limit`, `interrupted` or a core kind
    /// (`invalid`, `unknown`, `io`, ...); see [`super::error::kind`].
    pub kind: String,
    /// The description without position (possibly several lines).
    pub message: String,
    /// 1-based line and column in the input, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The failing line with a caret under the position, the message and
    /// suggestions for unknown names: what the REPL prints.
    pub rendered: String,
}

/// An interactive session: engine, persistent scope and script functions.
pub struct Session {
    engine: Engine,
    scope: Scope<'static>,
    functions: AST,
    help: HelpIndex,
}

const COMMANDS: [&str; 5] = [":help", ":functions", ":vars", ":quit", ":exit"];

impl Session {
    /// A session over an engine built from `opts`.
    pub fn new(opts: &EngineOptions) -> Session {
        let engine = build_engine(opts);
        let help = HelpIndex::from_engine(&engine);
        let mut scope = Scope::new();
        for (k, v) in opts.params.values() {
            if !k.contains('.') {
                scope.push_dynamic(k, v);
            }
        }
        Session {
            engine,
            scope,
            functions: AST::empty(),
            help,
        }
    }

    /// The engine (for embedding hosts).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The value of variable `name`, if defined.
    pub fn var(&self, name: &str) -> Option<Dynamic> {
        self.scope.get_value::<Dynamic>(name)
    }

    /// Runs one input and returns what to print.
    pub fn eval_line(&mut self, input: &str) -> Outcome {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Outcome::Nothing;
        }
        if let Some(cmd) = self.command(trimmed) {
            return cmd;
        }
        match self.eval(input) {
            Ok(v) if v.is_unit() => Outcome::Nothing,
            Ok(v) => Outcome::Text(display_value(&self.engine, &v)),
            Err(e) => Outcome::Error(e),
        }
    }

    /// The help index (`:help`, completion).
    pub fn help(&self) -> &HelpIndex {
        &self.help
    }

    /// Names of the functions the session's inputs defined (`fn f(..)`).
    pub fn script_functions(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .functions
            .iter_functions()
            .filter(|f| !f.name.starts_with("anon$"))
            .map(|f| f.name.to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Evaluates Rhai code in the session's scope (no `:commands`) and
    /// returns its value, or the error rendered with a caret.
    pub fn eval(&mut self, input: &str) -> Result<Dynamic, String> {
        self.eval_cell(input).map_err(|e| e.rendered)
    }

    /// [`Session::eval`] with the error in parts (kind, message, line,
    /// column) beside its rendering.
    pub fn eval_cell(&mut self, input: &str) -> Result<Dynamic, EvalError> {
        crate::progress::clear_interrupt();
        let ast = match self.engine.compile_with_scope(&self.scope, input) {
            Ok(a) => a,
            Err(e) => return Err(self.failure(input, &EvalAltResult::from(e))),
        };
        let new_fns = ast.clone_functions_only();
        let run = self.functions.merge(&ast);
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &run);
        crate::progress::clear_interrupt();
        // Keep functions defined by this input for later inputs, even when
        // a statement after them failed, and the modules it imported.
        self.functions = self.functions.merge(&new_fns);
        super::imports::keep(&mut self.engine, input);
        result.map_err(|e| self.failure(input, &e))
    }

    fn failure(&self, input: &str, err: &EvalAltResult) -> EvalError {
        let loc = super::error::location(err);
        EvalError {
            kind: super::error::kind(err),
            message: super::error::describe(err),
            line: loc.map(|l| l.0),
            column: loc.map(|l| l.1),
            rendered: self.explain(input, err),
        }
    }

    /// A `:command` (`:help NAME`, `:functions`, `:vars`, `:quit`); `None`
    /// when `line` is not one.
    pub fn command(&self, line: &str) -> Option<Outcome> {
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        let out = match cmd {
            ":help" | ":h" | "help" if cmd != "help" || arg.is_empty() => {
                if arg.is_empty() {
                    Outcome::Text(self.help.overview())
                } else {
                    Outcome::Text(self.help.help_for(arg))
                }
            }
            ":functions" | ":fns" => {
                let all = self.help.signatures();
                let lines: Vec<&str> = all
                    .lines()
                    .filter(|l| arg.is_empty() || l.contains(arg))
                    .collect();
                Outcome::Text(lines.join("\n"))
            }
            ":vars" | ":scope" => Outcome::Text(self.vars()),
            ":quit" | ":q" | ":exit" | "quit" | "exit" if arg.is_empty() => Outcome::Quit,
            c if c.starts_with(':') => Outcome::Error(format!(
                "unknown command '{c}'; commands: {}",
                COMMANDS.join(", ")
            )),
            _ => return None,
        };
        Some(out)
    }

    /// The variables in scope with their types and short values.
    pub fn vars(&self) -> String {
        let mut lines = Vec::new();
        let mut vars: Vec<_> = self.scope.iter_raw().collect();
        vars.reverse();
        for (name, constant, value) in vars {
            let ty = self.engine.map_type_name(value.type_name());
            let mut shown = display_value(&self.engine, value).replace('\n', " ");
            if shown.chars().count() > 60 {
                shown = shown.chars().take(57).collect::<String>() + "...";
            }
            let c = if constant { "const " } else { "" };
            lines.push(format!("{c}{name}: {ty} = {shown}"));
        }
        if lines.is_empty() {
            "(no variables)".into()
        } else {
            lines.join("\n")
        }
    }

    /// An error with a caret and, for unknown names, the closest known ones.
    fn explain(&self, input: &str, err: &EvalAltResult) -> String {
        let mut s = render_with_caret(input, err);
        let unknown = match err.unwrap_inner() {
            EvalAltResult::ErrorFunctionNotFound(sig, _) => {
                Some(sig.split(['(', ' ']).next().unwrap_or("").to_string())
            }
            EvalAltResult::ErrorVariableNotFound(v, _) => Some(v.clone()),
            EvalAltResult::ErrorParsing(rhai::ParseErrorType::VariableUndefined(v), _) => {
                Some(v.clone())
            }
            EvalAltResult::ErrorPropertyNotFound(v, _) => Some(v.clone()),
            EvalAltResult::ErrorDotExpr(..) => None,
            _ => None,
        };
        if let Some(name) = unknown.filter(|n| !n.is_empty()) {
            let mut near = self.help.suggest(&name);
            for (v, _, _) in self.scope.iter_raw() {
                if super::help::edit_distance(&name, v) <= 2 && v != name {
                    near.insert(0, v.to_string());
                }
            }
            near.dedup();
            if !near.is_empty() {
                s.push_str(&format!(
                    "\n  did you mean {}?",
                    near.into_iter().take(3).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        s
    }

    /// False while `input` has an open bracket, brace, parenthesis or
    /// string, or ends with `\` (the REPL then reads another line); see
    /// [`block_state`].
    pub fn is_complete(&self, input: &str) -> bool {
        block_state(input) != BlockState::Incomplete
    }

    /// Tab completion at byte `pos` of `line`: the start of the word being
    /// completed and the candidates (commands, variables, functions; after
    /// `x.`, the methods and properties of `x`'s type).
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let pos = pos.min(line.len());
        let head = line.get(..pos).unwrap_or(line);
        let start = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == ':')
            .last()
            .map(|(i, _)| i)
            .unwrap_or(pos);
        let word = head.get(start..).unwrap_or("");
        let mut out: Vec<String> = Vec::new();
        if start == 0 && word.starts_with(':') {
            out.extend(
                COMMANDS
                    .iter()
                    .filter(|c| c.starts_with(word))
                    .map(|c| c.to_string()),
            );
            return (start, out);
        }
        let before = head.get(..start).unwrap_or("");
        if let Some(recv) = before.strip_suffix('.') {
            let var = super::util::trailing_identifier(recv);
            if let Some(v) = self.scope.get_value::<Dynamic>(var) {
                let ty = self.engine.map_type_name(v.type_name()).to_string();
                out.extend(
                    self.help
                        .members_of(&ty)
                        .into_iter()
                        .filter(|m| m.starts_with(word)),
                );
                return (start, out);
            }
        }
        for (v, _, _) in self.scope.iter_raw() {
            if v.starts_with(word) {
                out.push(v.to_string());
            }
        }
        out.extend(
            self.script_functions()
                .into_iter()
                .filter(|n| n.starts_with(word)),
        );
        out.extend(self.help.names().filter(|n| n.starts_with(word)).cloned());
        out.sort();
        out.dedup();
        (start, out)
    }
}

/// Options of [`run_repl`].
#[derive(Debug, Clone, Default)]
pub struct ReplOptions {
    pub engine: EngineOptions,
    /// History file; default `$XDG_DATA_HOME/primeflow/history` or
    /// `~/.local/share/primeflow/history`.
    pub history: Option<PathBuf>,
}

/// The default history file.
pub fn default_history() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("primeflow").join("history"))
}

struct ReplHelper {
    session: Rc<RefCell<Session>>,
}

impl Completer for ReplHelper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        match self.session.try_borrow() {
            Ok(s) => Ok(s.complete(line, pos)),
            Err(_) => Ok((pos, Vec::new())),
        }
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let complete = self
            .session
            .try_borrow()
            .map(|s| s.is_complete(ctx.input()))
            .unwrap_or(true);
        Ok(if complete {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ReplHelper {}

/// Runs the interactive REPL until `:quit` or Ctrl-D. Ctrl-C at the prompt
/// clears the line; during a call it stops the call and returns to the
/// prompt with every variable intact.
pub fn run_repl(opts: &ReplOptions) -> crate::Result<()> {
    crate::progress::install_ctrlc();
    let session = Rc::new(RefCell::new(Session::new(&opts.engine)));
    let mut rl: Editor<ReplHelper, rustyline::history::DefaultHistory> =
        Editor::new().map_err(|e| crate::Error::invalid("terminal", e.to_string()))?;
    rl.set_helper(Some(ReplHelper {
        session: session.clone(),
    }));
    let history = opts.history.clone().or_else(default_history);
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.load_history(h);
    }
    println!(
        "primeflow {} REPL (Rhai). help() or :help for help, :quit to leave.",
        env!("CARGO_PKG_VERSION")
    );
    // Input so far of an unfinished block. On a terminal the validator
    // keeps the editor open until the block is complete; piped input
    // arrives line by line and is gathered here.
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "primeflow> "
        } else {
            "      ...> "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                if pending.is_empty() && line.trim().is_empty() {
                    continue;
                }
                // A trailing `\` continues the input on the next line.
                if let Some(head) = line.trim_end().strip_suffix('\\') {
                    pending.push_str(head);
                    pending.push('\n');
                    continue;
                }
                pending.push_str(&line);
                pending.push('\n');
                if !session.borrow().is_complete(&pending) {
                    continue;
                }
                let input = std::mem::take(&mut pending);
                let _ = rl.add_history_entry(input.trim_end());
                if let Some(h) = &history {
                    // Saved after every input, so a killed session keeps it.
                    let _ = rl.save_history(h);
                }
                let out = session.borrow_mut().eval_line(&input.replace("\\\n", "\n"));
                match out {
                    Outcome::Nothing => {}
                    Outcome::Text(t) => println!("{t}"),
                    Outcome::Error(e) => eprintln!("{e}"),
                    Outcome::Quit => break,
                }
            }
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => {
                if !pending.trim().is_empty() {
                    eprintln!(
                        "error: the input ended inside an unfinished block:\n{}",
                        pending.trim_end()
                    );
                }
                break;
            }
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        if let Err(e) = rl.save_history(h) {
            eprintln!(
                "warning: could not save the history to {}: {e}",
                h.display()
            );
        }
    }
    Ok(())
}
