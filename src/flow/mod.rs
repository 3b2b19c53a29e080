//! Conditional flow matching (model.md, "Flow matching"; paper Alg. 1).
//!
//! * [`path`]: probability paths `x_t` between a Gaussian source `x0` and a
//!   data cell `x1` (independent coupling), and their target velocities.
//! * [`loss`]: the CFM loss (mean squared error between predicted and target
//!   velocity) with classifier-free-guidance condition dropout.

pub mod loss;
pub mod path;

pub use loss::{cfm_loss, cfm_loss_with, drop_conditions, FlowNoise};
pub use path::{Path, PathKind};
