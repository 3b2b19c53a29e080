//! The conditional flow-matching loss with classifier-free-guidance training
//! (model.md, "Flow matching"; paper Alg. 1):
//!
//! ```text
//! t ~ U(0, 1),  x0 ~ N(0, I),  eps ~ N(0, I)          (independent coupling)
//! c' = 0 with probability prob_unconditional, else c   (per cell)
//! L  = mean_{b, g} ( v_theta(x_t, t, c')[b, g] - u_t[b, g] )^2
//! ```
//!
//! Randomness comes from one seed per call ([`FlowNoise::draw`]) so a training
//! step is a pure function of `(weights, batch, seed)`; the Trainer derives the
//! seed from `(run seed, step)`, which makes resumed runs bit-identical.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::flow::path::Path;
use crate::model::VelocityField;

/// The random draws of one CFM batch.
#[derive(Debug)]
pub struct FlowNoise {
    /// Source samples `x0 ~ N(0, I)`, `[B, m]`.
    pub x0: Tensor,
    /// Times `t ~ U(0, 1)`, `[B]`.
    pub t: Tensor,
    /// Path noise `eps ~ N(0, I)`, `[B, m]` (zeros when `sigma = 0`).
    pub eps: Tensor,
    /// 1 where the cell keeps its condition, 0 where it is replaced by the
    /// null condition, `[B, 1]` f32.
    pub keep: Tensor,
}

impl FlowNoise {
    /// Seeds libtorch's generators with `seed`, then draws `t` `[B]`, `x0`
    /// `[B, m]`, `eps` `[B, m]` (only when `with_eps`) and the guidance mask
    /// `[B, 1]`, in that order, on `device`, holding
    /// [`rng_guard`](crate::device::rng_guard). Later draws of the same step
    /// (dropout) continue from this generator state, so they are determined
    /// by `seed` too as long as the caller holds the guard around both (the
    /// Trainer holds it for its whole run, [`cfm_loss`] for its call).
    pub fn draw(
        batch: i64,
        genes: i64,
        with_eps: bool,
        prob_unconditional: f64,
        device: Device,
        seed: u64,
    ) -> Result<FlowNoise> {
        if !(0.0..=1.0).contains(&prob_unconditional) {
            return Err(Error::invalid(
                "prob_unconditional",
                format!("{prob_unconditional} is not in [0, 1]"),
            ));
        }
        let _rng = crate::device::rng_guard(Some(seed));
        let opts = (Kind::Float, device);
        let t = Tensor::f_rand([batch], opts)?;
        let x0 = Tensor::f_randn([batch, genes], opts)?;
        let eps = if with_eps {
            Tensor::f_randn([batch, genes], opts)?
        } else {
            Tensor::f_zeros([batch, genes], opts)?
        };
        let u = Tensor::f_rand([batch, 1], opts)?;
        let keep = u.f_ge(prob_unconditional)?.f_to_kind(Kind::Float)?;
        Ok(FlowNoise { x0, t, eps, keep })
    }
}

/// Classifier-free-guidance dropout: rows of `cond` `[B, n_c]` where `keep`
/// `[B, 1]` is 0 become the null condition (all zeros).
pub fn drop_conditions(cond: &Tensor, keep: &Tensor) -> Result<Tensor> {
    Ok(cond.f_mul(keep)?)
}

/// The CFM loss (scalar) for data `x1` `[B, m]` under conditions `cond`
/// `[B, n_c]` with the given draws. `train` switches dropout (in the network)
/// on; condition dropout is applied whenever `noise.keep` says so.
pub fn cfm_loss_with(
    net: &dyn VelocityField,
    path: &Path,
    x1: &Tensor,
    cond: &Tensor,
    noise: &FlowNoise,
    train: bool,
) -> Result<Tensor> {
    let x_t = path.sample_xt(&noise.x0, x1, &noise.t, &noise.eps)?; // [B, m]
    let u_t = path.target(&noise.x0, x1, &noise.t)?; // [B, m]
    let c = drop_conditions(cond, &noise.keep)?; // [B, n_c]
    let v = net.velocity(&x_t, &noise.t, &c, train)?; // [B, m]
    if v.size() != u_t.size() {
        return Err(Error::Mismatch(format!(
            "the velocity field returned {:?}, the target is {:?}",
            v.size(),
            u_t.size()
        )));
    }
    // Mean squared error over cells and genes, accumulated in f32 even under
    // autocast.
    Ok(v.f_to_kind(Kind::Float)?
        .f_sub(&u_t)?
        .f_square()?
        .f_mean(Kind::Float)?)
}

/// The CFM loss with fresh draws from `seed` (see [`FlowNoise::draw`]).
pub fn cfm_loss(
    net: &dyn VelocityField,
    path: &Path,
    x1: &Tensor,
    cond: &Tensor,
    prob_unconditional: f64,
    train: bool,
    seed: u64,
) -> Result<Tensor> {
    let size = x1.size();
    let (b, m) = match size.as_slice() {
        [b, m] => (*b, *m),
        _ => return Err(Error::Mismatch(format!("x1 must be [B, m], got {size:?}"))),
    };
    // Own the generators from the draws through the forward (dropout).
    let _rng = crate::device::rng_guard(None);
    let noise = FlowNoise::draw(
        b,
        m,
        path.sigma() > 0.0,
        prob_unconditional,
        x1.device(),
        seed,
    )?;
    cfm_loss_with(net, path, x1, cond, &noise, train)
}
