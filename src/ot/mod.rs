//! Mini-batch optimal-transport couplings for FM PCA OT (model.md,
//! "Ablations and baselines"; paper Tables 16-17).

pub mod config;
pub mod cost;
pub mod sinkhorn;

pub use config::{OtConfig, ScaleCost};
pub use cost::{cost_scale, sq_euclidean};
pub use sinkhorn::{sinkhorn, SinkhornOutput};
