//! The Rhai scripting environment (feature `scripting`): one engine for the
//! REPL, `primeflow run`, the tests and the notebooks, with the objects users
//! compose experiments from.
//!
//! ```rhai
//! let data = Dataset::simulate(#{preset: "tiny", seed: 0});
//! let split = data.split("combination", 42);
//! let model = UNetVelocity("tiny");
//! let history = Trainer(#{steps: 200}).fit(model, split.train);
//! let pred = Sampler().sample(model, split.test, #{cells: 100, guidance: 3.0, seed: 0});
//! print(Metrics().evaluate(pred, split.test));
//! ```
//!
//! Layout: [`engine`] (the builder, limits, `--set` params, the stdlib
//! resolver), [`error`] (core errors -> catchable Rhai errors), [`help`],
//! [`repl`] (with [`block`] detection), [`runner`], [`display`] (a value's
//! MIME bundle), [`kernel`] (`primeflow kernel`, the Jupyter kernel),
//! [`notebook`] and [`held_session`] (the evcxr path), and one file per
//! object.
//! The core library never depends on this module.

pub mod block;
pub mod cell_eval;
pub mod comparison;
pub mod condition;
pub mod convert;
pub mod dataset;
mod dataset_args;
pub mod display;
pub mod engine;
pub mod error;
pub mod held_session;
pub mod help;
mod help_parse;
pub mod imports;
pub mod kernel;
pub mod metrics;
pub mod model;
mod model_spec;
pub mod notebook;
pub mod plot;
pub mod repl;
pub mod report;
pub mod runner;
pub mod sampler;
pub mod sim_embeddings;
pub mod split;
pub mod trainer;
mod trainer_config;
pub mod util;
pub mod vcc;

pub use engine::{
    build_engine, display_value, notice, parse_set, parse_sets, parse_value, EngineOptions, Limits,
    OutputBuffer, Params, PrintSink,
};
pub use error::{describe, guard, script_error, to_rhai, RhaiResult};
pub use help::HelpIndex;
pub use repl::{EvalError, Outcome, Session};
pub use rhai;
pub use runner::{run_file, run_source, ScriptFailure};

/// Registers every object type and its functions (called by
/// [`build_engine`]).
pub fn register_objects(engine: &mut rhai::Engine) {
    dataset::register(engine);
    split::register(engine);
    condition::register(engine);
    model::register(engine);
    trainer::register(engine);
    sampler::register(engine);
    metrics::register(engine);
    cell_eval::register(engine);
    vcc::register(engine);
    sim_embeddings::register(engine);
    comparison::register(engine);
    plot::register(engine);
    report::register(engine);
    util::register(engine);
}

/// The HTML form of an object value for notebooks (tables, datasets), if
/// it has one.
pub(crate) fn rich_html(v: &rhai::Dynamic) -> Option<String> {
    if let Some(d) = v.read_lock::<dataset::DatasetHandle>() {
        return Some(notebook::Html::pre(&d.0.summary().to_string()).0);
    }
    if let Some(t) = v.read_lock::<metrics::TableHandle>() {
        return Some(t.html().0);
    }
    if let Some(c) = v.read_lock::<comparison::ComparisonHandle>() {
        return Some(c.html().0);
    }
    None
}
