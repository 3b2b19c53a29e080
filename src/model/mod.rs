//! Velocity fields `v_theta(x_t, t, c)` for conditional flow matching
//! (model.md). Training and sampling drive any [`VelocityField`].

pub mod unet;

pub use unet::{UNetConfig, UNetVelocity};

use tch::Tensor;

use crate::error::Result;

/// A conditional velocity field.
///
/// Shapes: `x_t` `[B, m]` f32, `t` `[B]` f32 in `[0, 1]`, `cond` `[B, n_c]`
/// f32 (the condition encoding; the zero row is the null condition) ->
/// velocity `[B, m]` f32. `train` switches dropout on.
pub trait VelocityField: std::fmt::Debug {
    /// Predicts the velocity at `(x_t, t)` under condition `cond`.
    fn velocity(&self, x_t: &Tensor, t: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor>;
}
