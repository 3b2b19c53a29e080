//! What a training step minimises, by model family:
//!
//! * flow models: the conditional flow-matching loss from Gaussian noise
//!   (paper Alg. 1, [`crate::flow::cfm_loss_with`]) over every training
//!   cell, controls included;
//! * PerturBench's baselines: `MSE(f(x_ctrl, c), x)` over the perturbed
//!   training cells, each paired with a control cell of its covariate drawn
//!   afresh every time it is used (PerturBench's
//!   `SingleCellPerturbationWithControls`; control cells are not examples).
//!
//! A step's randomness (noise, time, condition dropout, control partners,
//! dropout masks) comes from the seed the trainer derives from
//! `(run seed, step, micro-batch)`, so resumed runs stay bit-identical.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::flow::{cfm_loss_with, FlowNoise, Path as FlowPath};
use crate::model::{Family, Model};
use crate::train::cells::Cells;

/// The loss a model is trained with.
#[derive(Debug)]
pub enum Objective {
    /// Conditional flow matching along `path`.
    Cfm(FlowPath),
    /// Mean squared error of a control-to-perturbed prediction.
    Response,
}

impl Objective {
    /// The objective of `model`'s family (`None` for models without
    /// weights).
    pub fn for_model(model: &Model, path: FlowPath) -> Option<Objective> {
        match model.config.family() {
            Family::Flow => Some(Objective::Cfm(path)),
            Family::Response => Some(Objective::Response),
            Family::Floor => None,
        }
    }

    /// Positions of the cells that are training examples.
    pub fn examples(&self, cells: &Cells) -> Vec<i64> {
        match self {
            Objective::Cfm(_) => (0..cells.len()).collect(),
            Objective::Response => cells.perturbed.clone(),
        }
    }

    /// The mean loss of the examples `idx` (positions in `cells`), with
    /// every draw from `seed`; condition dropout with probability
    /// `prob_unconditional` (flows only); `train` switches dropout on.
    #[allow(clippy::too_many_arguments)]
    pub fn loss(
        &self,
        model: &Model,
        cells: &Cells,
        idx: &[i64],
        seed: u64,
        prob_unconditional: f64,
        train: bool,
        autocast: bool,
    ) -> Result<Tensor> {
        let (x1, cond) = cells.batch(idx)?; // [b, d], [b, n_c]
        match self {
            Objective::Cfm(path) => {
                let noise = FlowNoise::draw(
                    idx.len() as i64,
                    model.flow_dim() as i64,
                    path.sigma() > 0.0,
                    prob_unconditional,
                    model.device(),
                    seed,
                )?;
                tch::autocast(autocast, || {
                    cfm_loss_with(model, path, &x1, &cond, &noise, train)
                })
            }
            Objective::Response => {
                // Seed libtorch too: dropout inside the network draws from it.
                let _rng = crate::device::rng_guard(Some(seed));
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
