//! Mini-batch optimal-transport couplings for FM PCA OT (model.md,
//! "Ablations and baselines"; paper Tables 16-17).

pub mod config;
pub mod cost;

pub use config::{OtConfig, ScaleCost};
pub use cost::{cost_scale, sq_euclidean};
