//! Models of perturbation response (model.md): velocity fields
//! `v_theta(x_t, t, c)` for conditional flow matching, and the baselines and
//! floors they are compared with. Training and sampling drive any
//! [`VelocityField`].
//!
//! * [`unet`]: the PRiMeFlow U-Net ([`UNetVelocity`]).
//! * [`mlp`]: the PRiMeFlow MLP ablation ([`MlpVelocity`]).
//! * [`pca`]: FM PCA, the MLP in PCA space ([`PcaFlowConfig`]).
//! * [`floor`]: the `control` and `additive` floors.
//! * [`space`]: the flow's data space (log1p, standardised, PCA).
//! * [`stats`]: what a model keeps of its training cells ([`DataStats`]).
//! * [`config`]: [`ModelConfig`], which model and its presets.
//! * [`model`]: [`Model`], a model with its weights, genes, condition
//!   vocabulary and statistics (what a checkpoint holds).

pub mod baselines;
pub mod config;
pub mod floor;
pub mod mlp;
#[allow(clippy::module_inception)]
pub mod model;
pub mod pca;
pub mod persist;
pub mod space;
pub mod stats;
mod stats_file;
mod stats_stream;

pub use config::{Family, ModelConfig};
pub use floor::FloorConfig;
pub use mlp::{MlpConfig, MlpVelocity};
pub use model::Model;
pub use pca::{PcaFlowConfig, PcaOtConfig};
pub use space::{DataSpace, FlowSpace};
pub use stats::DataStats;

pub mod unet;

pub use unet::{UNetConfig, UNetVelocity};

use tch::Tensor;

use crate::error::{Error, Result};

/// A conditional velocity field.
///
/// Shapes: `x_t` `[B, m]` f32, `t` `[B]` f32 in `[0, 1]`, `cond` `[B, n_c]`
/// f32 (the condition encoding; the zero row is the null condition) ->
/// velocity `[B, m]` f32. `train` switches dropout on.
pub trait VelocityField: std::fmt::Debug {
    /// Predicts the velocity at `(x_t, t)` under condition `cond`.
    fn velocity(&self, x_t: &Tensor, t: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor>;
}

/// Checks velocity-field inputs: `x_t` `[B, m]`, `t` `[B]`, `cond` `[B, n_c]`
/// with the expected `m` and `n_c`; the error names every shape.
pub fn check_inputs(
    x_t: &Tensor,
    t: &Tensor,
    cond: &Tensor,
    n_genes: usize,
    cond_dim: usize,
) -> Result<()> {
    let (sx, st, sc) = (x_t.size(), t.size(), cond.size());
    let ok = sx.len() == 2
        && st.len() == 1
        && sc.len() == 2
        && sx[0] == st[0]
        && sx[0] == sc[0]
        && sx[1] == n_genes as i64
        && sc[1] == cond_dim as i64;
    if !ok {
        return Err(Error::Mismatch(format!(
            "velocity field inputs must be x_t [B, {n_genes}], t [B], cond [B, {cond_dim}]; got x_t {sx:?}, t {st:?}, cond {sc:?}"
        )));
    }
    Ok(())
}
