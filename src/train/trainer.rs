//! The `Trainer`: conditional flow matching with classifier-free guidance
//! (model.md, "Flow matching"; paper Alg. 1) for the flow models, mean
//! squared error on (control, perturbed) pairs for PerturBench's baselines
//! ([`Objective`]), statistics only for the floors; one optimizer step at a
//! time:
//!
//! ```text
//! for step in 1..=steps:
//!     for each of grad_accum micro-batches (cells from the shuffling sampler):
//!         seed libtorch from (seed, step, micro)       # t, x0, eps, mask, dropout
//!         loss = CFM(v_theta, x1, c)  / grad_accum ; backward
//!     clip global grad norm ; AdamW(lr_at(step))
//!     log / validate / checkpoint ; stop on Ctrl-C or early stopping
//! ```
//!
//! Every random draw of a step derives from `(seed, step)`, so training k
//! steps, stopping (even by SIGKILL after a checkpoint), resuming and going on
//! to N gives the same weights bit for bit as training N steps in one go (on
//! the same device and thread count).
//!
//! With `config.stream` the cells come from the file instead
//! (`train::stream`: chunks read ahead by a thread, shuffled within a
//! buffer); the batches are still a function of `(seed, micro-batch)` and
//! the checkpoint records the loader's position.
//!
//! Ctrl-C (`progress::interrupted`) stops after the current step; the
//! checkpoint of that step is written (when an output folder is given) and
//! [`Trainer::fit`] returns `Ok` with `History::interrupted` set — the caller
//! decides whether that is an error (the CLI exits with 130).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::batches::{derive_seed, tags, BatchSampler};
use crate::train::cells::Cells;
use crate::train::checkpoint::{
    load_checkpoint, save_checkpoint, TrainState, EMA_STATE_FILE, OPTIMIZER_FILE,
};
use crate::train::config::{Precision, TrainConfig};
use crate::train::ema::Ema;
use crate::train::history::{History, HistoryRow};
use crate::train::objective::Objective;
use crate::train::optimizer::AdamW;
use crate::train::stream::{StreamLoader, StreamPlan, StreamSource};

/// Where a resumed run picks up.
#[derive(Debug)]
struct Resume {
    state: TrainState,
    optimizer: std::collections::BTreeMap<String, Tensor>,
    /// The averaged weights, when the run keeps an EMA.
    ema: Option<std::collections::BTreeMap<String, Tensor>>,
    history: History,
    dir: PathBuf,
}

/// Trains a [`Model`] with conditional flow matching.
#[derive(Debug)]
pub struct Trainer {
    /// The settings; `steps` may be raised before `fit` to extend a resumed
    /// run.
    pub config: TrainConfig,
    /// Stop (with a checkpoint) once this step is done, without changing
    /// `config.steps` and so the learning-rate schedule; `None` trains to
    /// `config.steps`.
    pub stop_at: Option<usize>,
    resume: Option<Resume>,
}

/// A fingerprint of a dataset's genes and cells (names and units), to check
/// that a resumed run sees the same training data (FNV-1a, hex).
pub fn data_fingerprint(ds: &Dataset) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&ds.n_cells().to_string());
    for g in &ds.genes {
        eat(g);
    }
    for (i, name) in ds.obs.index.iter().enumerate() {
        eat(name);
        eat(&ds.unit_of(i).name());
    }
    format!("{h:016x}")
}

impl Trainer {
    /// A trainer for a fresh run.
    pub fn new(config: TrainConfig) -> Result<Trainer> {
        config.validate()?;
        Ok(Trainer {
            config,
            stop_at: None,
            resume: None,
        })
    }

    /// Reopens the newest checkpoint of `out` on `device`: the trainer (with
    /// the saved settings, optimizer state, step and history) and the model.
    pub fn resume(out: &Path, device: Device) -> Result<(Trainer, Model)> {
        let ck = load_checkpoint(out, device)?;
        let trainer = Trainer {
            config: ck.train,
            stop_at: None,
            resume: Some(Resume {
                state: ck.state,
                optimizer: ck.optimizer,
                ema: ck.ema,
                history: ck.history,
                dir: ck.dir,
            }),
        };
        Ok((trainer, ck.model))
    }

    /// Completed steps of the run this trainer continues (0 when fresh).
    pub fn start_step(&self) -> usize {
        self.resume.as_ref().map(|r| r.state.step).unwrap_or(0)
    }

    /// Trains `model` on every cell of `train` until `config.steps`, with
    /// validation on `val` (when `val_every` is set) and checkpoints in `out`
    /// (when given). Returns the history (also written to `out`). Holds
    /// [`rng_guard`](crate::device::rng_guard) for the whole run, so a seeded
    /// run reproduces even when other threads use the library meanwhile
    /// (they wait).
    pub fn fit(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        val: Option<&Dataset>,
        out: Option<&Path>,
    ) -> Result<History> {
        let cfg = self.config.clone();
        cfg.validate()?;
        // Own libtorch's generators for the whole run: every step reseeds
        // them (FlowNoise::draw) and its dropout continues from there, so no
        // other thread may draw in between (device::rng_guard).
        let _rng = crate::device::rng_guard(Some(cfg.seed));
        let device = model.device();
        let autocast = match cfg.precision {
            Precision::Fp32 => false,
            Precision::Bf16 if device.is_cuda() => true,
            Precision::Bf16 => {
                return Err(Error::invalid(
                    "precision",
                    "bf16 autocast needs a CUDA device; use fp32 on the CPU",
                ))
            }
        };
        model.check_data(train)?;
        if let Some(v) = val {
            model.check_data(v)?;
        }
        if train.n_cells() == 0 {
            return Err(Error::invalid(
                "training data",
                format!("{} has no training cells", train.source_name()),
            ));
        }
        let objective = Objective::for_model(model, cfg.flow_path()?);
        let source = match &cfg.stream {
            Some(_) => Some(stream_source(model, &objective, train)?),
            None => None,
        };
        // The streamed statistics passes honour Ctrl-C from here on.
        crate::progress::clear_interrupt();
        if !model.has_stats() {
            match &source {
                None => model.fit_stats(train, cfg.control_cells, cfg.seed)?,
                Some(src) => model.set_stats(crate::model::DataStats::fit_streamed(
                    train,
                    src,
                    &crate::model::stats::StatsOptions {
                        control_cells: cfg.control_cells,
                        pca_components: model.config.pca_components(),
                        seed: cfg.seed,
                    },
                )?)?,
            }
        }
        let flow = objective.is_some();
        let cells = if flow {
            Cells::new(model, train, None, false)?
        } else {
            Cells::empty()
        };
        let val_cells = match (val, cfg.val_every) {
            (Some(v), Some(_)) if flow && v.n_cells() > 0 => {
                let mut rows: Vec<usize> = (0..v.n_cells()).collect();
                rows.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(
                    cfg.seed,
                    &[tags::VAL],
                )));
                rows.truncate(cfg.val_cells);
                rows.sort_unstable();
                if v.x.is_absent() {
                    // Opened for streaming: read the (few) validation cells.
                    let mut vs = v.subset(&rows)?;
                    vs.provenance = v.provenance.clone();
                    let src = StreamSource::of(&vs)?;
                    let all: Vec<usize> = (0..vs.n_cells()).collect();
                    vs.x = src.read(&src.open()?, &all)?;
                    Some(Cells::new(model, &vs, None, true)?).filter(|c| !c.is_empty())
                } else {
                    Some(Cells::new(model, v, Some(&rows), true)?).filter(|c| !c.is_empty())
                }
            }
            _ => None,
        };
        let fingerprint = data_fingerprint(train);
        let params = model.named_parameters();
        let mut opt = AdamW::new(
            params
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
            cfg.beta1,
            cfg.beta2,
            cfg.adam_eps,
            cfg.weight_decay,
        )?;
        let mut ema = match cfg.ema_decay {
            Some(d) => Some(Ema::new(&params, d)?),
            None => None,
        };
        let mut state = TrainState {
            step: 0,
            optimizer_steps: 0,
            best_val: None,
            evals_since_best: 0,
            data_fingerprint: fingerprint.clone(),
            n_train_cells: train.n_cells(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            loader: None,
        };
        let mut history = History::default();
        if let Some(r) = self.resume.take() {
            if r.state.data_fingerprint != fingerprint {
                let msg = format!(
                    "the training cells of {} ({} cells) differ from those of checkpoint {} ({} cells); resume with the same data, filters and split",
                    train.source_name(),
                    train.n_cells(),
                    r.dir.display(),
                    r.state.n_train_cells
                );
                self.resume = Some(r);
                return Err(Error::Mismatch(msg));
            }
            opt.load_state(
                &r.dir.join(OPTIMIZER_FILE),
                &r.optimizer,
                r.state.optimizer_steps,
            )?;
            if let (Some(e), Some(stored)) = (ema.as_mut(), r.ema.as_ref()) {
                e.load(&r.dir.join(EMA_STATE_FILE), stored)?;
            }
            state = r.state;
            history = r.history;
        }
        history.interrupted = false;
        history.stopped_early = false;
        crate::progress::clear_interrupt();
        let Some(objective) = objective else {
            // The floors have no weights: their statistics are the model.
            if let Some(out) = out {
                save_checkpoint(out, model, &cfg, &state, &opt, ema.as_ref(), &history)?;
            }
            return Ok(history);
        };
        let examples = objective.examples(&cells);
        if examples.is_empty() {
            return Err(Error::invalid(
                "training data",
                format!(
                    "{} has no training examples for {} (it trains on perturbed cells)",
                    train.source_name(),
                    model.config.display_name()
                ),
            ));
        }
        let b = cfg.batch_size;
        let mut draw = match (&source, &cfg.stream) {
            (Some(src), Some(sc)) => {
                let plan = StreamPlan::new(train.n_cells(), sc, cfg.seed)?;
                let drawn = (state.step * cfg.grad_accum * b) as u64;
                if let Some(saved) = state.loader {
                    if saved != plan.position(drawn) {
                        return Err(Error::Mismatch(format!(
                            "the checkpoint's stream position {saved:?} is not where step {} of this stream starts ({:?}); resume with the run's own stream settings",
                            state.step,
                            plan.position(drawn)
                        )));
                    }
                }
                Draw::Stream(StreamLoader::start(src.clone(), plan, drawn)?)
            }
            _ => Draw::Memory(BatchSampler::new(examples.len(), cfg.seed)),
        };
        let bar = crate::progress::bar(cfg.steps as u64, "train");
        bar.set_position(state.step as u64);
        let mut loss_sum = Tensor::f_zeros([], (Kind::Float, device))?;
        let (mut n_summed, mut cells_since, mut t_since) = (0usize, 0usize, Instant::now());
        for step in state.step + 1..=cfg.steps {
            let lr = cfg.lr_at(step);
            opt.zero_grad();
            for a in 0..cfg.grad_accum {
                let micro = ((step - 1) * cfg.grad_accum + a) as u64;
                let seed = derive_seed(cfg.seed, &[tags::STEP, step as u64, a as u64]);
                let loss = match &mut draw {
                    Draw::Memory(sampler) => {
                        let idx: Vec<i64> = sampler
                            .batch(micro, b)
                            .into_iter()
                            .map(|i| examples[i])
                            .collect();
                        objective.loss(
                            model,
                            &cells,
                            &idx,
                            seed,
                            cfg.prob_unconditional,
                            cfg.covariate_dropout,
                            true,
                            autocast,
                        )?
                    }
                    Draw::Stream(loader) => {
                        let (idx, values) = loader.next_batch(b)?;
                        let x1 = cells.encode_values(&idx, &values)?; // [b, d]
                        let cond = cells.cond(&idx)?; // [b, n_c]
                        objective.loss_on(
                            model,
                            &x1,
                            &cond,
                            seed,
                            cfg.prob_unconditional,
                            cfg.covariate_dropout,
                            true,
                            autocast,
                        )?
                    }
                };
                loss.f_div_scalar(cfg.grad_accum as f64)?.f_backward()?;
                let _guard = tch::no_grad_guard();
                let _ = loss_sum.f_add_(&loss.f_detach()?)?;
            }
            if cfg.grad_clip > 0.0 {
                let _ = opt.clip_grad_norm(cfg.grad_clip)?;
            }
            opt.step(lr)?;
            if let Some(e) = ema.as_mut() {
                e.update(&params)?;
            }
            state.step = step;
            state.optimizer_steps = opt.steps_taken();
            if let Draw::Stream(loader) = &draw {
                state.loader = Some(loader.position());
            }
            history.final_step = step;
            n_summed += cfg.grad_accum;
            cells_since += b * cfg.grad_accum;
            bar.inc(1);

            let validate = cfg.val_every.is_some_and(|k| step % k == 0) && val_cells.is_some();
            let interrupted = crate::progress::interrupted();
            if step % cfg.log_every == 0 || step == cfg.steps || validate || interrupted {
                let loss = loss_sum.f_double_value(&[])? / n_summed.max(1) as f64;
                if !loss.is_finite() {
                    return Err(Error::invalid(
                        "training",
                        format!("the loss became {loss} at step {step}; lower the learning rate (now {lr}) or check the data"),
                    ));
                }
                let val_loss = match (&val_cells, validate) {
                    (Some(v), true) => Some(validation_loss(model, &objective, v, &cfg, autocast)?),
                    _ => None,
                };
                let secs = t_since.elapsed().as_secs_f64().max(1e-9);
                history.push(HistoryRow {
                    step,
                    loss,
                    lr,
                    val_loss,
                    cells_per_s: cells_since as f64 / secs,
                });
                bar.set_prefix(format!(
                    "loss {loss:.4} {:.0} cells/s",
                    cells_since as f64 / secs
                ));
                if let Some(vl) = val_loss {
                    if state.best_val.is_none_or(|(_, best)| vl < best) {
                        state.best_val = Some((step, vl));
                        state.evals_since_best = 0;
                    } else {
                        state.evals_since_best += 1;
                    }
                    history.best_val_loss = state.best_val;
                    if cfg
                        .early_stopping_patience
                        .is_some_and(|p| state.evals_since_best >= p)
                    {
                        history.stopped_early = true;
                    }
                }
                let _ = loss_sum.f_zero_()?;
                n_summed = 0;
                cells_since = 0;
                t_since = Instant::now();
            }
            let stop = interrupted || history.stopped_early || self.stop_at == Some(step);
            history.interrupted = interrupted;
            if let Some(out) = out {
                if (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0)
                    || stop
                    || step == cfg.steps
                {
                    save_checkpoint(out, model, &cfg, &state, &opt, ema.as_ref(), &history)?;
                }
            }
            if stop {
                break;
            }
        }
        bar.finish_and_clear();
        // Sampling uses the averaged weights (the checkpoints hold both).
        if let Some(e) = &ema {
            e.copy_to(&params)?;
        }
        Ok(history)
    }
}

/// Where micro-batches come from.
enum Draw {
    /// Epoch-wise shuffled cells held in memory.
    Memory(BatchSampler),
    /// Cells streamed from the file.
    Stream(StreamLoader),
}

/// The file to stream `train` from, after checking that the model trains
/// on given cells in a gene-sized space (see `train::stream`).
fn stream_source(
    model: &Model,
    objective: &Option<Objective>,
    train: &Dataset,
) -> Result<StreamSource> {
    let name = model.config.display_name();
    if model.config.pca_components().is_some() {
        return Err(Error::invalid(
            "streaming",
            format!("{name} flows in PCA space, fitted on every training cell at once; train it without streaming"),
        ));
    }
    if matches!(objective, Some(Objective::CfmOt(..) | Objective::Response)) {
        return Err(Error::invalid(
            "streaming",
            format!("{name} pairs each training cell with control cells drawn from the whole training set; train it without streaming"),
        ));
    }
    StreamSource::of(train)
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
        let seed = derive_seed(cfg.seed, &[tags::VAL, k as u64]);
        let loss = objective.loss(model, cells, idx, seed, 0.0, 0.0, false, autocast)?;
        total += loss.f_double_value(&[])? * idx.len() as f64;
        count += idx.len();
    }
    Ok(total / count.max(1) as f64)
}
