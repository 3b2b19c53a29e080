//! What a training step minimises, by model family:
//!
//! * flow models: the conditional flow-matching loss from Gaussian noise
//!   (paper Alg. 1, [`crate::flow::cfm_loss_with`]) over every training
//!   cell, controls included;
//! * FM PCA OT: the same loss with the source `x0` replaced by control cells
//!   of the condition's covariate, paired with its cells by a mini-batch
//!   OT plan (CellFlow-style; [`crate::ot`]): each micro-batch draws
//!   `batch_size / num_samples_per_condition` conditions (uniformly over the
//!   training units), `num_samples_per_condition` cells of each and as many
//!   control cells of its covariate (without replacement while they last),
//!   solves one entropic plan per condition (batched) and draws the pairs
//!   from it;
//! * PerturBench's baselines: `MSE(f(x_ctrl, c), x)` over the perturbed
//!   training cells, each paired with a control cell of its covariate drawn
//!   afresh every time it is used (PerturBench's
//!   `SingleCellPerturbationWithControls`; control cells are not examples).
//!
//! A step's randomness (noise, time, condition dropout, control partners,
//! dropout masks) comes from the seed the trainer derives from
//! `(run seed, step, micro-batch)`, so resumed runs stay bit-identical.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::flow::{cfm_loss_with, FlowNoise, Path as FlowPath};
use crate::model::{Family, Model};
use crate::train::cells::Cells;

/// The draws and switches of one loss evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossDraws {
    /// Seed of every draw (noise, time, condition dropout, control
    /// partners, dropout masks).
    pub seed: u64,
    /// Probability of dropping a row's whole condition (flows only).
    pub prob_unconditional: f64,
    /// Probability of dropping a row's covariate block alone (flows only;
    /// drawn after the flow's noise, so 0 draws nothing).
    pub covariate_dropout: f64,
    /// Dropout inside the network on (training) or off (validation).
    pub train: bool,
    /// Mixed-precision autocast.
    pub autocast: bool,
}

/// The loss a model is trained with.
#[derive(Debug)]
pub enum Objective {
    /// Conditional flow matching along `path`.
    Cfm(FlowPath),
    /// Conditional flow matching from OT-paired control cells.
    CfmOt(FlowPath, crate::ot::OtConfig),
    /// Mean squared error of a control-to-perturbed prediction.
    Response,
}

impl Objective {
    /// The objective of `model`'s family (`None` for models without
    /// weights).
    pub fn for_model(model: &Model, path: FlowPath) -> Option<Objective> {
        match model.config.family() {
            Family::Flow => Some(match model.config.ot() {
                Some(ot) => Objective::CfmOt(path, ot.clone()),
                None => Objective::Cfm(path),
            }),
            Family::Response => Some(Objective::Response),
            Family::Floor => None,
        }
    }

    /// Positions of the cells that are training examples.
    pub fn examples(&self, cells: &Cells) -> Vec<i64> {
        match self {
            Objective::Cfm(_) => (0..cells.len()).collect(),
            Objective::Response => cells.perturbed.clone(),
            // Draws its own conditions; the perturbed cells only size the
            // trainer's batches.
            Objective::CfmOt(..) => {
                if cells.pairable_units().is_empty() {
                    Vec::new()
                } else {
                    cells.perturbed.clone()
                }
            }
        }
    }

    /// The mean loss of the examples `idx` (positions in `cells`; for
    /// [`Objective::CfmOt`] only their number matters), with every draw
    /// from `draws.seed` (see [`LossDraws`]).
    pub fn loss(
        &self,
        model: &Model,
        cells: &Cells,
        idx: &[i64],
        draws: &LossDraws,
    ) -> Result<Tensor> {
        let (seed, train, autocast) = (draws.seed, draws.train, draws.autocast);
        match self {
            Objective::Cfm(_) => {
                let (x1, cond) = cells.batch(idx)?; // [b, d], [b, n_c]
                self.loss_on(model, &x1, &cond, draws)
            }
            Objective::CfmOt(path, ot) => {
                let (x0, x1, cond) = ot_batch(cells, ot, idx.len(), seed)?; // [b, d] x2, [b, n_c]
                cfm_loss_drawn(model, path, Some(x0), &x1, &cond, draws)
            }
            Objective::Response => {
                // Seed libtorch too: dropout inside the network draws from it.
                let _rng = crate::device::rng_guard(Some(seed));
                let (x1, cond) = cells.batch(idx)?; // [b, m], [b, n_c]
                let partners = cells.control_partners(idx, seed)?;
                let ctrl = cells.rows(&partners)?; // [b, m]
                let pred = tch::autocast(autocast, || model.predict_response(&ctrl, &cond, train))?;
                if pred.size() != x1.size() {
                    return Err(Error::Mismatch(format!(
                        "the model predicted {:?}, the cells are {:?}",
                        pred.size(),
                        x1.size()
                    )));
                }
                Ok(pred
                    .f_to_kind(Kind::Float)?
                    .f_sub(&x1)?
                    .f_square()?
                    .f_mean(Kind::Float)?)
            }
        }
    }
}

impl Objective {
    /// The conditional flow-matching loss of given cells: flow-space
    /// coordinates `x1` `[b, d]` and condition encodings `cond` `[b, n_c]`
    /// (streamed training reads them outside [`Cells`]); the draws as in
    /// [`Objective::loss`]. Only [`Objective::Cfm`]: the others pair cells
    /// within the training data.
    pub fn loss_on(
        &self,
        model: &Model,
        x1: &Tensor,
        cond: &Tensor,
        draws: &LossDraws,
    ) -> Result<Tensor> {
        let Objective::Cfm(path) = self else {
            return Err(Error::invalid(
                "streaming",
                "only the plain flow-matching objective trains on given cells; models that pair cells with control cells (FM PCA OT, PerturBench's baselines) train without streaming",
            ));
        };
        cfm_loss_drawn(model, path, None, x1, cond, draws)
    }
}

/// The flow-matching loss of targets `x1` `[b, d]` under conditions `cond`
/// `[b, n_c]` along `path`, in this draw order: the flow's noise (source,
/// time, condition dropout with probability `draws.prob_unconditional`)
/// from `draws.seed`, its source then replaced by `x0` `[b, d]` when given
/// (FM PCA OT's paired control cells), then the covariate dropout (see
/// [`drop_covariates`]).
fn cfm_loss_drawn(
    model: &Model,
    path: &FlowPath,
    x0: Option<Tensor>,
    x1: &Tensor,
    cond: &Tensor,
    draws: &LossDraws,
) -> Result<Tensor> {
    let mut noise = FlowNoise::draw(
        x1.size().first().copied().unwrap_or(0),
        model.flow_dim() as i64,
        path.sigma() > 0.0,
        draws.prob_unconditional,
        model.device(),
        draws.seed,
    )?;
    if let Some(x0) = x0 {
        noise.x0 = x0;
    }
    let cond = drop_covariates(model, cond, draws.covariate_dropout)?;
    tch::autocast(draws.autocast, || {
        cfm_loss_with(model, path, x1, &cond, &noise, draws.train)
    })
}

/// `k` of `pool`, seeded: without replacement while the pool lasts (a
/// shuffled prefix), cycling through fresh shuffles beyond it.
fn draw(pool: &[i64], k: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let mut p = pool.to_vec();
        p.shuffle(rng);
        out.extend(p.into_iter().take(k - out.len()));
    }
    out
}

/// One FM PCA OT micro-batch of about `b` pairs: `(x0, x1, cond)`, source
/// controls `[C s, d]`, their OT-paired target cells `[C s, d]` and the
/// targets' condition encodings `[C s, n_c]` (see the module docs).
fn ot_batch(
    cells: &Cells,
    ot: &crate::ot::OtConfig,
    b: usize,
    seed: u64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let units = cells.pairable_units();
    if units.is_empty() {
        return Err(Error::invalid(
            "training data",
            "FM PCA OT needs perturbed cells whose covariate has control cells",
        ));
    }
    let s = ot.num_samples_per_condition;
    let n_cond = (b / s).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(crate::train::derive_seed(seed, &[0x07]));
    let (mut src, mut tgt, mut unit_rows) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n_cond {
        let u = units[rng.gen_range(0..units.len())];
        tgt.extend(draw(&cells.unit_cells[u], s, &mut rng));
        src.extend(draw(&cells.controls_by_cov[cells.unit_cov[u]], s, &mut rng));
        unit_rows.extend(std::iter::repeat_n(u as i64, s));
    }
    let d = cells.dim();
    let (c, s) = (n_cond as i64, s as i64);
    let x_src = cells.rows(&src)?.f_reshape([c, s, d])?; // [C, s, d]
    let x_tgt = cells.rows(&tgt)?.f_reshape([c, s, d])?; // [C, s, d]
    let pairs = {
        let _g = tch::no_grad_guard();
        crate::ot::ot_pairs(&x_src, &x_tgt, ot, crate::train::derive_seed(seed, &[0x08]))?
    };
    let (x0, x1) = pairs.gather(&x_src, &x_tgt)?; // [C, s, d] each
    let units_t = Tensor::f_from_slice(&unit_rows)?.f_to_device(cells.device())?; // [C s]
    let cond = cells.unit_cond.f_index_select(0, &units_t)?; // [C s, n_c]
    Ok((x0.f_reshape([c * s, d])?, x1.f_reshape([c * s, d])?, cond))
}

/// `cond` `[b, n_c]` with its covariate columns (after the perturbation
/// block) zeroed in each row with probability `p`, drawn from
/// libtorch's current generator; `p = 0` returns `cond` and draws nothing.
/// The network then also learns each perturbation's response without the
/// covariate, the part that transfers to covariates it never saw with it.
fn drop_covariates(model: &Model, cond: &Tensor, p: f64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(cond.shallow_clone());
    }
    let size = cond.size();
    let (b, n_c) = (size[0], size[1]);
    let n_p = (model.vocab.perturbation_width() as i64).min(n_c);
    let opts = (tch::Kind::Float, cond.device());
    let drop = Tensor::f_rand([b, 1], opts)?
        .f_lt(p)?
        .f_to_kind(tch::Kind::Float)?; // [b, 1]
    let cols = Tensor::f_cat(
        &[
            Tensor::f_zeros([1, n_p], opts)?,
            Tensor::f_ones([1, n_c - n_p], opts)?,
        ],
        1,
    )?; // [1, n_c]
    Ok(cond.f_mul(&drop.f_mul(&cols)?.f_neg()?.f_add_scalar(1.0)?)?)
}
