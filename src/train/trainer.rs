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

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::batches::{derive_seed, tags};
use crate::train::cells::Cells;
use crate::train::checkpoint::{load_checkpoint, TrainState, EMA_STATE_FILE, OPTIMIZER_FILE};
use crate::train::config::{Precision, TrainConfig};
use crate::train::ema::Ema;
use crate::train::history::History;
use crate::train::objective::Objective;
use crate::train::optimizer::AdamW;
use crate::train::run::{Run, RunParts};
use crate::train::stream::StreamSource;

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
        let mut run = self.prepare(model, train, val, cfg)?;
        crate::progress::clear_interrupt();
        if !run.trains_weights() {
            // The floors have no weights: their statistics are the model.
            if let Some(out) = out {
                run.checkpoint(model, out)?;
            }
            return Ok(run.history);
        }
        run.start_drawing(model, train)?;
        let steps = run.cfg.steps;
        let bar = crate::progress::bar(steps as u64, "train");
        bar.set_position(run.state.step as u64);
        for step in run.state.step + 1..=steps {
            run.step(model, step)?;
            bar.inc(1);
            let interrupted = crate::progress::interrupted();
            run.log_and_validate(model, step, interrupted, &bar)?;
            let stop = interrupted || run.history.stopped_early || self.stop_at == Some(step);
            run.history.interrupted = interrupted;
            if let Some(out) = out {
                if run.checkpoint_due(step) || stop {
                    run.checkpoint(model, out)?;
                }
            }
            if stop {
                break;
            }
        }
        bar.finish_and_clear();
        run.finish()
    }

    /// Everything a run needs before its first step: the device checks, the
    /// model's statistics, the training and validation cells, the
    /// optimizer and EMA, and (when resuming) their saved state.
    fn prepare(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        val: Option<&Dataset>,
        cfg: TrainConfig,
    ) -> Result<Run> {
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
        Ok(Run::new(RunParts {
            cfg,
            autocast,
            objective,
            source,
            cells,
            val_cells,
            params,
            opt,
            ema,
            state,
            history,
        }))
    }
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
