//! `Run`: one training run in progress, the state [`Trainer::fit`]'s loop
//! advances through named steps:
//!
//! ```text
//! prepare            statistics, cells, optimizer, EMA, resumed state   (trainer.rs)
//! start_drawing      the batch source: shuffled cells in memory, or the stream
//! for each step:
//!     step               grad_accum micro-batches, clip, AdamW, EMA
//!     log_and_validate   the loss window, validation, early stopping
//!     checkpoint         when due, on a stop, at the end
//! finish             the averaged (EMA) weights into the model
//! ```
//!
//! [`Trainer::fit`]: super::Trainer::fit

use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;
use tch::{Kind, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::batches::{derive_seed, tags, BatchSampler};
use crate::train::cells::Cells;
use crate::train::checkpoint::{save_checkpoint, TrainState};
use crate::train::config::TrainConfig;
use crate::train::ema::Ema;
use crate::train::history::{History, HistoryRow};
use crate::train::objective::{LossDraws, Objective};
use crate::train::optimizer::AdamW;
use crate::train::stream::{StreamLoader, StreamPlan, StreamSource};

/// Where micro-batches come from.
enum Draw {
    /// Not started (floors, or before [`Run::start_drawing`]).
    None,
    /// Epoch-wise shuffled examples held in memory.
    Memory(BatchSampler),
    /// Cells streamed from the file.
    Stream(StreamLoader),
}

/// What [`Trainer::prepare`](super::Trainer) hands to a run.
pub(super) struct RunParts {
    pub cfg: TrainConfig,
    pub autocast: bool,
    /// `None` for the floors (no weights).
    pub objective: Option<Objective>,
    /// The file the cells stream from (`config.stream`).
    pub source: Option<StreamSource>,
    pub cells: Cells,
    pub val_cells: Option<Cells>,
    pub params: Vec<(String, Tensor)>,
    pub opt: AdamW,
    pub ema: Option<Ema>,
    pub state: TrainState,
    pub history: History,
}

/// The loss summed since the last log line, and the throughput window.
struct Window {
    /// `[]` sum of the micro-batch losses on the model's device.
    loss_sum: Tensor,
    micro_batches: usize,
    cells: usize,
    since: Instant,
}

/// A training run in progress (see the module docs).
pub(super) struct Run {
    pub cfg: TrainConfig,
    autocast: bool,
    objective: Option<Objective>,
    source: Option<StreamSource>,
    cells: Cells,
    val_cells: Option<Cells>,
    /// Indices into `cells` the objective trains on.
    examples: Vec<i64>,
    params: Vec<(String, Tensor)>,
    opt: AdamW,
    ema: Option<Ema>,
    pub state: TrainState,
    pub history: History,
    draw: Draw,
    window: Option<Window>,
}

impl Run {
    pub(super) fn new(p: RunParts) -> Run {
        Run {
            cfg: p.cfg,
            autocast: p.autocast,
            objective: p.objective,
            source: p.source,
            cells: p.cells,
            val_cells: p.val_cells,
            examples: Vec::new(),
            params: p.params,
            opt: p.opt,
            ema: p.ema,
            state: p.state,
            history: p.history,
            draw: Draw::None,
            window: None,
        }
    }

    /// False for the floors: nothing to optimise.
    pub(super) fn trains_weights(&self) -> bool {
        self.objective.is_some()
    }

    fn objective(&self) -> Result<&Objective> {
        self.objective
            .as_ref()
            .ok_or_else(|| Error::invalid("training", "this model has no weights to train"))
    }

    /// Starts the batch source at the run's step: the seeded shuffling
    /// sampler over the objective's examples, or the stream loader at the
    /// position the checkpoint recorded (checked against the settings).
    pub(super) fn start_drawing(&mut self, model: &Model, train: &Dataset) -> Result<()> {
        self.examples = self.objective()?.examples(&self.cells);
        if self.examples.is_empty() {
            return Err(Error::invalid(
                "training data",
                format!(
                    "{} has no training examples for {} (it trains on perturbed cells)",
                    train.source_name(),
                    model.config.display_name()
                ),
            ));
        }
        let cfg = &self.cfg;
        self.draw = match (&self.source, &cfg.stream) {
            (Some(src), Some(sc)) => {
                let plan = StreamPlan::new(train.n_cells(), sc, cfg.seed)?;
                let drawn = (self.state.step * cfg.grad_accum * cfg.batch_size) as u64;
                if let Some(saved) = self.state.loader {
                    if saved != plan.position(drawn) {
                        return Err(Error::Mismatch(format!(
                            "the checkpoint's stream position {saved:?} is not where step {} of this stream starts ({:?}); resume with the run's own stream settings",
                            self.state.step,
                            plan.position(drawn)
                        )));
                    }
                }
                Draw::Stream(StreamLoader::start(src.clone(), plan, drawn)?)
            }
            _ => Draw::Memory(BatchSampler::new(self.examples.len(), cfg.seed)),
        };
        let device = self
            .params
            .first()
            .map(|(_, t)| t.device())
            .unwrap_or(tch::Device::Cpu);
        self.window = Some(Window {
            loss_sum: Tensor::f_zeros([], (Kind::Float, device))?,
            micro_batches: 0,
            cells: 0,
            since: Instant::now(),
        });
        Ok(())
    }

    /// Optimizer step `step` (1-based): `grad_accum` micro-batches, each
    /// seeded from `(seed, step, micro)`, backward, clipping, AdamW at the
    /// step's learning rate, the EMA update, the recorded stream position.
    pub(super) fn step(&mut self, model: &mut Model, step: usize) -> Result<()> {
        let Run {
            cfg,
            autocast,
            objective,
            cells,
            examples,
            params,
            opt,
            ema,
            state,
            history,
            draw,
            window,
            ..
        } = self;
        let (Some(objective), Some(window)) = (objective.as_ref(), window.as_mut()) else {
            return Err(Error::invalid(
                "training",
                "the run has not started drawing batches",
            ));
        };
        let b = cfg.batch_size;
        let lr = cfg.lr_at(step);
        opt.zero_grad();
        for a in 0..cfg.grad_accum {
            let micro = ((step - 1) * cfg.grad_accum + a) as u64;
            let draws = LossDraws {
                seed: derive_seed(cfg.seed, &[tags::STEP, step as u64, a as u64]),
                prob_unconditional: cfg.prob_unconditional,
                covariate_dropout: cfg.covariate_dropout,
                train: true,
                autocast: *autocast,
            };
            let loss = match draw {
                Draw::None => {
                    return Err(Error::invalid("training", "no batch source"));
                }
                Draw::Memory(sampler) => {
                    let idx: Vec<i64> = sampler
                        .batch(micro, b)
                        .into_iter()
                        .map(|i| examples[i])
                        .collect();
                    objective.loss(model, cells, &idx, &draws)?
                }
                Draw::Stream(loader) => {
                    let (idx, values) = loader.next_batch(b)?;
                    let x1 = cells.encode_values(&idx, &values)?; // [b, d]
                    let cond = cells.cond(&idx)?; // [b, n_c]
                    objective.loss_on(model, &x1, &cond, &draws)?
                }
            };
            loss.f_div_scalar(cfg.grad_accum as f64)?.f_backward()?;
            let _guard = tch::no_grad_guard();
            let _ = window.loss_sum.f_add_(&loss.f_detach()?)?;
        }
        if cfg.grad_clip > 0.0 {
            let _ = opt.clip_grad_norm(cfg.grad_clip)?;
        }
        opt.step(lr)?;
        if let Some(e) = ema.as_mut() {
            e.update(params)?;
        }
        state.step = step;
        state.optimizer_steps = opt.steps_taken();
        if let Draw::Stream(loader) = draw {
            state.loader = Some(loader.position());
        }
        history.final_step = step;
        window.micro_batches += cfg.grad_accum;
        window.cells += b * cfg.grad_accum;
        Ok(())
    }

    /// On a log step (every `log_every`, the last step, a validation step
    /// or an interruption): the mean loss since the last line (an error if
    /// it is not finite), the validation loss when due, early stopping.
    pub(super) fn log_and_validate(
        &mut self,
        model: &Model,
        step: usize,
        interrupted: bool,
        bar: &ProgressBar,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let validate =
            cfg.val_every.is_some_and(|k| step.is_multiple_of(k)) && self.val_cells.is_some();
        if !(step.is_multiple_of(cfg.log_every) || step == cfg.steps || validate || interrupted) {
            return Ok(());
        }
        let Some(objective) = self.objective.as_ref() else {
            return Err(Error::invalid(
                "training",
                "this model has no weights to train",
            ));
        };
        let Some(window) = self.window.as_mut() else {
            return Err(Error::invalid(
                "training",
                "the run has not started drawing batches",
            ));
        };
        let lr = cfg.lr_at(step);
        let loss = window.loss_sum.f_double_value(&[])? / window.micro_batches.max(1) as f64;
        if !loss.is_finite() {
            return Err(Error::invalid(
                "training",
                format!("the loss became {loss} at step {step}; lower the learning rate (now {lr}) or check the data"),
            ));
        }
        let val_loss = match (&self.val_cells, validate) {
            (Some(v), true) => Some(validation_loss(model, objective, v, cfg, self.autocast)?),
            _ => None,
        };
        let secs = window.since.elapsed().as_secs_f64().max(1e-9);
        let cells_per_s = window.cells as f64 / secs;
        self.history.push(HistoryRow {
            step,
            loss,
            lr,
            val_loss,
            cells_per_s,
        });
        bar.set_prefix(format!("loss {loss:.4} {cells_per_s:.0} cells/s"));
        if let Some(vl) = val_loss {
            let state = &mut self.state;
            if state.best_val.is_none_or(|(_, best)| vl < best) {
                state.best_val = Some((step, vl));
                state.evals_since_best = 0;
            } else {
                state.evals_since_best += 1;
            }
            self.history.best_val_loss = state.best_val;
            if cfg
                .early_stopping_patience
                .is_some_and(|p| state.evals_since_best >= p)
            {
                self.history.stopped_early = true;
            }
        }
        let _ = window.loss_sum.f_zero_()?;
        window.micro_batches = 0;
        window.cells = 0;
        window.since = Instant::now();
        Ok(())
    }

    /// True when `step` is a periodic checkpoint step or the last one.
    pub(super) fn checkpoint_due(&self, step: usize) -> bool {
        (self.cfg.checkpoint_every > 0 && step.is_multiple_of(self.cfg.checkpoint_every))
            || step == self.cfg.steps
    }

    /// Writes the run's checkpoint into `out` (atomically; see `checkpoint`).
    pub(super) fn checkpoint(&self, model: &Model, out: &Path) -> Result<()> {
        save_checkpoint(
            out,
            model,
            &self.cfg,
            &self.state,
            &self.opt,
            self.ema.as_ref(),
            &self.history,
        )?;
        Ok(())
    }

    /// Ends the run: sampling uses the averaged weights (the checkpoints
    /// hold both), so the EMA is copied into the model's parameters.
    pub(super) fn finish(self) -> Result<History> {
        if let Some(e) = &self.ema {
            e.copy_to(&self.params)?;
        }
        Ok(self.history)
    }
}

/// Mean loss over the validation examples (no dropout, no condition
/// dropout, fixed draws so evaluations are comparable).
fn validation_loss(
    model: &Model,
    objective: &Objective,
    cells: &Cells,
    cfg: &TrainConfig,
    autocast: bool,
) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    // Validation cells of a covariate without validation controls cannot
    // be paired; they are left out.
    let examples: Vec<i64> = objective
        .examples(cells)
        .into_iter()
        .filter(|&i| {
            !matches!(objective, Objective::Response)
                || !cells.controls_by_cov[cells.cell_cov[i as usize]].is_empty()
        })
        .collect();
    let (mut total, mut count) = (0f64, 0usize);
    for (k, idx) in examples.chunks(cfg.batch_size.max(1)).enumerate() {
        let draws = LossDraws {
            seed: derive_seed(cfg.seed, &[tags::VAL, k as u64]),
            prob_unconditional: 0.0,
            covariate_dropout: 0.0,
            train: false,
            autocast,
        };
        let loss = objective.loss(model, cells, idx, &draws)?;
        total += loss.f_double_value(&[])? * idx.len() as f64;
        count += idx.len();
    }
    Ok(total / count.max(1) as f64)
}
