//! The one engine builder (style.md rule 8): the REPL, `primeflow run`, the
//! test suite and the notebooks all call [`build_engine`], so a script
//! behaves the same everywhere.
//!
//! What the engine holds:
//! * the objects (`Dataset`, `Condition`, `UNetVelocity`, `MlpVelocity`,
//!   `Trainer`, `Sampler`, `Metrics`, plots), each registered by its own file;
//! * `param(name, default)` / `params()` for `primeflow run --set key=value`;
//! * the stdlib (`stdlib/*.rhai`, embedded in the binary) as static modules
//!   (`sweep::grid(...)`) that can also be imported (`import "sweep" as s;`);
//!   other `import`s resolve `.rhai` files beside the script;
//! * `help()`, built from the doc comments of everything above;
//! * [`Limits`] (operations, call depth, expression depth, string, array and
//!   map sizes) and Ctrl-C: a pressed Ctrl-C ([`crate::progress::interrupted`])
//!   stops a running script at its next operation and long native calls at
//!   their next step.
//!
//! Scripts have no shell and no general file access: files are read and
//! written only by the objects' `load`/`save`/`to_json`/... functions.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;

use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
use rhai::{
    Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module, ModuleResolver, Position, Scope,
    Shared, AST,
};

use super::error::{invalid, RhaiResult};

/// Resource limits of a script. `0` means "no limit" for `max_operations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Rhai operations per evaluation (a runaway `loop {}` stops here).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting depth (top level; functions get half).
    pub max_expr_depth: usize,
    /// Bytes in one string.
    pub max_string_size: usize,
    /// Elements in one array.
    pub max_array_size: usize,
    /// Entries in one object map.
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 500_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_string_size: 64 << 20,
            max_array_size: 4_000_000,
            max_map_size: 100_000,
        }
    }
}

/// Values given with `--set key=value`, and which of them the script read
/// through `param(...)` (so the runner can warn about typos).
#[derive(Debug, Clone, Default)]
pub struct Params(Rc<RefCell<ParamState>>);

#[derive(Debug, Default)]
struct ParamState {
    values: BTreeMap<String, Dynamic>,
    read: BTreeSet<String>,
    asked: bool,
}

impl Params {
    /// Params from `(key, value)` pairs.
    pub fn new(values: impl IntoIterator<Item = (String, Dynamic)>) -> Self {
        Params(Rc::new(RefCell::new(ParamState {
            values: values.into_iter().collect(),
            ..ParamState::default()
        })))
    }

    /// All `(key, value)` pairs.
    pub fn values(&self) -> Vec<(String, Dynamic)> {
        self.0
            .borrow()
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// All pairs, marking every key as read (a script that takes the whole
    /// map checks the keys itself).
    fn take_all(&self) -> Vec<(String, Dynamic)> {
        let mut s = self.0.borrow_mut();
        s.asked = true;
        let keys: Vec<String> = s.values.keys().cloned().collect();
        s.read.extend(keys);
        s.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Keys given but never read by `param(...)`, when the script called
    /// `param` at all (else every key counts as used through its variable).
    pub fn unread(&self) -> Vec<String> {
        let s = self.0.borrow();
        if !s.asked {
            return Vec::new();
        }
        s.values
            .keys()
            .filter(|k| !s.read.contains(*k))
            .cloned()
            .collect()
    }

    fn get(&self, name: &str) -> Option<Dynamic> {
        let mut s = self.0.borrow_mut();
        s.asked = true;
        s.read.insert(name.to_string());
        s.values.get(name).cloned()
    }
}

/// Where `print` and `debug` output goes: stdout, or a buffer (tests).
pub type OutputBuffer = Rc<RefCell<String>>;

/// A callback that receives each `print`/`debug` line as it is printed,
/// newline included (a kernel streams it to the notebook at once).
#[derive(Clone)]
pub struct PrintSink(pub Rc<dyn Fn(&str)>);

impl std::fmt::Debug for PrintSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrintSink")
    }
}

thread_local! {
    static NOTICE: RefCell<Option<PrintSink>> = const { RefCell::new(None) };
}

/// Sends this thread's notices (see [`notice`]) to `sink` instead of stderr.
pub fn set_notice_sink(sink: Option<PrintSink>) {
    NOTICE.with(|n| *n.borrow_mut() = sink);
}

/// A message from a native function to the user that is not the value of
/// the call (e.g. "training interrupted after step N"): to stderr, or to
/// the host's notice sink (a kernel's stderr stream).
pub fn notice(message: &str) {
    let sink = NOTICE.with(|n| n.borrow().clone());
    match sink {
        Some(s) => (s.0)(&format!("{message}\n")),
        None => eprintln!("{message}"),
    }
}

/// Everything that varies between the REPL, the runner, tests and notebooks.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    pub limits: Limits,
    /// `--set` values for `param(...)`.
    pub params: Params,
    /// Folder that relative `import "x"` statements resolve against (the
    /// script's folder); the working directory when `None`.
    pub script_dir: Option<PathBuf>,
    /// Capture `print`/`debug` here instead of stdout.
    pub output: Option<OutputBuffer>,
    /// Or hand each printed line to this callback (takes precedence over
    /// `output`).
    pub print_sink: Option<PrintSink>,
}

/// The stdlib modules, embedded so the binary works from any folder.
pub const STDLIB: [(&str, &str); 5] = [
    ("sweep", include_str!("../../stdlib/sweep.rhai")),
    ("seeds", include_str!("../../stdlib/seeds.rhai")),
    ("table", include_str!("../../stdlib/table.rhai")),
    ("check", include_str!("../../stdlib/check.rhai")),
    ("experiment", include_str!("../../stdlib/experiment.rhai")),
];

/// Builds the engine (see the module docs). Never panics: a stdlib module
/// that fails to compile is reported on stderr and left out (the test suite
/// checks that none does).
pub fn build_engine(opts: &EngineOptions) -> Engine {
    let mut engine = Engine::new();
    apply_limits(&mut engine, &opts.limits);
    engine.set_strict_variables(true);
    engine.on_progress(|_| {
        if crate::progress::interrupted() {
            Some(Dynamic::from("interrupted".to_string()))
        } else {
            None
        }
    });
    if let Some(sink) = &opts.print_sink {
        let p = sink.clone();
        engine.on_print(move |s| (p.0)(&format!("{s}\n")));
        let p = sink.clone();
        engine.on_debug(move |s, _, _| (p.0)(&format!("{s}\n")));
    } else if let Some(buf) = &opts.output {
        let b = buf.clone();
        engine.on_print(move |s| {
            let mut o = b.borrow_mut();
            o.push_str(s);
            o.push('\n');
        });
        let b = buf.clone();
        engine.on_debug(move |s, _, _| {
            let mut o = b.borrow_mut();
            o.push_str(s);
            o.push('\n');
        });
    }
    let mut resolvers = ModuleResolversCollection::new();
    resolvers.push(StdlibResolver::default());
    let base = opts
        .script_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    resolvers.push(FileModuleResolver::new_with_path(base));
    engine.set_module_resolver(resolvers);

    register_params(&mut engine, &opts.params);
    super::register_objects(&mut engine);
    register_stdlib(&mut engine);
    super::help::register(&mut engine);
    engine
}

/// Sets `limits` on `engine`.
pub fn apply_limits(engine: &mut Engine, limits: &Limits) {
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, (limits.max_expr_depth / 2).max(8));
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
}

fn register_params(engine: &mut Engine, params: &Params) {
    let p = params.clone();
    FuncRegistration::new("param")
        .with_params_info(["name: &str", "default: Dynamic", "Dynamic"])
        .with_comments([
            "/// The value given with `primeflow run SCRIPT --set name=value`, or `default`.",
            "/// An integer given for a float default becomes a float; a value for a string",
            "/// default becomes a string; other type mismatches are errors.",
            "/// ```rhai",
            "/// let steps = param(\"steps\", 200);",
            "/// let out = param(\"out\", \"out/quickstart\");",
            "/// ```",
        ])
        .register_into_engine(
            engine,
            move |name: &str, default: Dynamic| -> RhaiResult<Dynamic> {
                typed_param(&p, name, default)
            },
        );
    let p = params.clone();
    FuncRegistration::new("param")
        .with_params_info(["name: &str", "Dynamic"])
        .with_comments([
            "/// The value given with `--set name=value`; an error when it was not given.",
            "/// ```rhai",
            "/// let data_path = param(\"data\");",
            "/// ```",
        ])
        .register_into_engine(engine, move |name: &str| -> RhaiResult<Dynamic> {
            p.get(name).ok_or_else(|| {
                invalid(
                    "param",
                    format!("'{name}' was not given; pass --set {name}=VALUE"),
                )
            })
        });
    let p = params.clone();
    FuncRegistration::new("params")
        .with_params_info(["Map"])
        .with_comments([
            "/// All `--set` values as a map (keys may be dotted, e.g. `train.steps`).",
            "/// ```rhai",
            "/// for k in params().keys() { print(k) }",
            "/// ```",
        ])
        .register_into_engine(engine, move || -> Map {
            p.take_all()
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect()
        });
}

/// `param(name, default)`: the `--set` value converted to the default's type.
fn typed_param(p: &Params, name: &str, default: Dynamic) -> RhaiResult<Dynamic> {
    let Some(v) = p.get(name) else {
        return Ok(default);
    };
    let bad = |want: &str| {
        invalid(
            &format!("--set {name}"),
            format!("'{v}' is not {want} (the script's default is {default})"),
        )
    };
    if default.is_unit() || default.type_id() == v.type_id() {
        return Ok(v);
    }
    if default.is_float() {
        return v
            .as_int()
            .map(|i| Dynamic::from_float(i as f64))
            .map_err(|_| bad("a number"));
    }
    if default.is_string() {
        return Ok(Dynamic::from(v.to_string()));
    }
    if default.is_int() {
        return Err(bad("an integer"));
    }
    if default.is_bool() {
        return Err(bad("true or false"));
    }
    if default.is_array() {
        // A single value where a list is expected: a list of one.
        return Ok(Dynamic::from_array(vec![v]));
    }
    Err(bad(default.type_name()))
}

/// Resolves `import "sweep"` (or `"stdlib/sweep"`, `"stdlib/sweep.rhai"`)
/// to the embedded stdlib; other paths fall through to the file resolver.
#[derive(Default)]
struct StdlibResolver {
    cache: RefCell<BTreeMap<String, Shared<Module>>>,
}

fn stdlib_name(path: &str) -> Option<&'static str> {
    let p = path.trim_start_matches("./");
    let p = p.strip_prefix("stdlib/").unwrap_or(p);
    let p = p.strip_suffix(".rhai").unwrap_or(p);
    STDLIB.iter().find(|(n, _)| *n == p).map(|(n, _)| *n)
}

impl ModuleResolver for StdlibResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let Some(name) = stdlib_name(path) else {
            return Err(Box::new(EvalAltResult::ErrorModuleNotFound(
                path.to_string(),
                pos,
            )));
        };
        if let Some(m) = self.cache.borrow().get(name) {
            return Ok(m.clone());
        }
        let m = compile_stdlib(engine, name).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                format!("stdlib/{name}.rhai"),
                e,
                pos,
            ))
        })?;
        self.cache.borrow_mut().insert(name.to_string(), m.clone());
        Ok(m)
    }
}

/// Compiles and evaluates one stdlib module.
fn compile_stdlib(engine: &Engine, name: &str) -> Result<Shared<Module>, Box<EvalAltResult>> {
    let src = STDLIB
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or("");
    let mut ast: AST = engine
        .compile(src)
        .map_err(|e| Box::new(EvalAltResult::from(e)))?;
    ast.set_source(format!("stdlib/{name}.rhai"));
    let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)?;
    Ok(Shared::new(module))
}

fn register_stdlib(engine: &mut Engine) {
    for (name, _) in STDLIB {
        match compile_stdlib(engine, name) {
            Ok(m) => {
                engine.register_static_module(name, m);
            }
            Err(e) => eprintln!(
                "warning: stdlib/{name}.rhai: {}",
                super::error::describe(&e)
            ),
        }
    }
}

/// A value as the REPL shows it: through the same `to_string` a script's
/// `print` uses (custom types print as tables or summaries).
pub fn display_value(engine: &Engine, v: &Dynamic) -> String {
    let mut scope = Scope::new();
    scope.push("__value", v.clone());
    match engine.eval_with_scope::<String>(&mut scope, "to_string(__value)") {
        Ok(s) => s,
        Err(_) => v.to_string(),
    }
}

/// Parses a `--set` value: integers, floats, `true`/`false`, JSON arrays and
/// objects (`[1, 3]`, `{"a": 1}`), `"quoted"` strings, else a plain string.
pub fn parse_value(text: &str) -> Dynamic {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Dynamic::from_int(i);
    }
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            return Dynamic::from_float(f);
        }
    }
    match t {
        "true" => return Dynamic::TRUE,
        "false" => return Dynamic::FALSE,
        _ => {}
    }
    if t.starts_with('[')
        || t.starts_with('{')
        || (t.starts_with('"') && t.ends_with('"') && t.len() >= 2)
    {
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(t) {
            if let Ok(d) = rhai::serde::to_dynamic(j) {
                return d;
            }
        }
    }
    Dynamic::from(text.to_string())
}

/// Every `--set KEY=VALUE` of a command line, parsed (see [`parse_set`]).
pub fn parse_sets(args: &[String]) -> crate::Result<Vec<(String, Dynamic)>> {
    args.iter().map(|s| parse_set(s)).collect()
}

/// Parses `key=value` (for `--set`); the key is an identifier or a dotted
/// path of identifiers (`train.steps`: only through `param`/`params`).
pub fn parse_set(arg: &str) -> crate::Result<(String, Dynamic)> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| crate::Error::invalid("--set", format!("'{arg}' is not key=value")))?;
    let k = k.trim();
    let ident = |p: &str| {
        !p.is_empty()
            && !p.starts_with(|c: char| c.is_ascii_digit())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !k.split('.').all(ident) {
        return Err(crate::Error::invalid(
            "--set",
            format!("'{k}' is not a valid name (letters, digits, _; dots between parts)"),
        ));
    }
    Ok((k.to_string(), parse_value(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_are_typed() {
        assert!(parse_value("3").is_int());
        assert!(parse_value("1e-3").is_float());
        assert!(parse_value("true").is_bool());
        assert!(parse_value("[1, 3]").is_array());
        assert_eq!(parse_value("\"12\"").into_string().unwrap(), "12");
        assert_eq!(parse_value("out/dir").into_string().unwrap(), "out/dir");
        assert!(parse_set("bad key=1").is_err());
        assert!(parse_set("noequals").is_err());
    }
}
