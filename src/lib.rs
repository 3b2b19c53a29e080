//! # primeflow
//!
//! PRiMeFlow (arXiv 2604.13986) in Rust: conditional flow matching in
//! gene-expression space with a U-Net velocity field and classifier-free
//! guidance, PerturBench's metrics, and a Rhai scripting environment.
//!
//! Layout (the core never depends on the scripting layer):
//! * [`anndata`]: `.h5ad` reading and writing.
//! * [`data`]: `Dataset`, `Condition`, units and splits.
//! * [`sim`]: the seeded Perturb-seq simulator (the embedded default data).
//! * [`model`]: velocity fields (`UNetVelocity`, `MlpVelocity`).
//! * [`flow`]: probability paths and the CFM loss.
//! * [`ot`]: mini-batch (unbalanced) entropic OT couplings for FM PCA OT.
//! * [`train`]: the `Trainer`, its config and checkpoints.
//! * [`sample`]: the `Sampler` (Euler/Heun, guidance).
//! * [`metrics`]: PerturBench's metrics and evaluation reports.
//! * [`export`]: Virtual Cell Challenge submission files.
//! * `script`, `plot` (feature `scripting`): the Rhai engine, REPL, plotly views.

pub mod anndata;
pub mod atomic;
pub mod data;
pub mod device;
pub mod error;
pub mod export;
pub mod flow;
pub mod metrics;
pub mod model;
pub mod ot;
pub mod overlay;
pub mod progress;
pub mod sample;
pub mod sim;
pub mod train;

#[cfg(feature = "scripting")]
pub mod plot;
#[cfg(feature = "scripting")]
pub mod script;

pub use error::{Error, Result};
