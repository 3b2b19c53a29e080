//! Sampling from a trained model: the [`Sampler`] (classifier-free guidance,
//! memory-bounded batches) and the ODE [`Solver`]s (Euler, Heun).

pub mod config;
pub mod sampler;
pub mod solver;

pub use sampler::{SampleConfig, Sampler};
pub use solver::Solver;
