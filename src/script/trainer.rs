//! `Trainer` and `History`: conditional flow-matching training
//! ([`crate::train::Trainer`]) from a script map validated into the core's
//! [`TrainConfig`] (unknown keys are errors that list the valid ones).
//!
//! ```rhai
//! let trainer = Trainer(#{steps: 200, lr: 1e-3, batch_size: 64, seed: 0});
//! let history = trainer.fit(model, split.train);
//! print(history);
//! ```
//!
//! Ctrl-C during `fit` stops after the current step: the model keeps the
//! weights of that step and the script (or REPL line) stops there.
//!
//! With a checkpoint folder, `fit` also records the run there as
//! `primeflow train` does (`train::run_dir`): the training cells' data
//! set-up (`data.json`, when they came from a file or simulation, a filter
//! or a split of one) and the model's kind and preset (`run.json`), so
//! `primeflow train --resume` and `primeflow sample` continue the run.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::convert::{float_array, from_json, path_arg};
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, to_rhai, RhaiResult};
use super::model::{ModelHandle, ModelSlot};
use crate::plot::LossSeries;
use crate::train::{run_dir, History, RunRecord, TrainConfig, Trainer};

pub use super::trainer_config::{train_config, train_spec, TrainSpec};

/// The state behind a trainer handle.
#[derive(Debug)]
pub struct TrainerSlot {
    pub trainer: Trainer,
    /// Checkpoint folder (none: no checkpoints).
    pub out: Option<PathBuf>,
    /// The history of the last `fit`.
    pub history: Option<HistoryHandle>,
    /// The preset and keys the settings came from: a preset means the
    /// paper's setting of whichever model kind `fit` meets, so the config is
    /// resolved again for the model's kind at `fit`.
    pub spec: Option<(String, serde_json::Value)>,
}

/// A trainer handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct TrainerHandle(pub Rc<RefCell<TrainerSlot>>);

/// A training history (cheap to clone).
#[derive(Debug, Clone)]
pub struct HistoryHandle(pub Rc<History>);

impl HistoryHandle {
    /// The curves for plotting.
    pub fn series(&self, name: &str) -> LossSeries {
        let h = &self.0;
        let val: Vec<(f64, f64)> = h
            .rows
            .iter()
            .filter_map(|r| r.val_loss.map(|v| (r.step as f64, v)))
            .collect();
        LossSeries {
            name: name.to_string(),
            steps: h.rows.iter().map(|r| r.step as f64).collect(),
            loss: h.rows.iter().map(|r| r.loss).collect(),
            val_steps: val.iter().map(|v| v.0).collect(),
            val_loss: val.iter().map(|v| v.1).collect(),
        }
    }
}

fn fit_impl(
    t: &TrainerHandle,
    model: &ModelHandle,
    train: &DatasetHandle,
    val: Option<&DatasetHandle>,
) -> RhaiResult<HistoryHandle> {
    // Own libtorch's global generators for the whole run, so a run
    // reproduces even with other seeded work on other threads.
    let _rng = crate::device::rng_guard(None);
    // A preset means the paper's setting of the model's kind.
    {
        let mut slot = t.0.borrow_mut();
        let kind = model.0.borrow().config.kind();
        if let Some((preset, over)) = slot.spec.clone() {
            if slot.trainer.start_step() == 0 {
                let cfg = TrainConfig::preset(kind, &preset)
                    .and_then(|b| b.merged(&over, "Trainer settings"))
                    .map_err(to_rhai)?;
                slot.trainer = crate::train::Trainer::new(cfg).map_err(to_rhai)?;
            }
        }
    }
    let seed = t.0.borrow().trainer.config.seed;
    model.ensure_built(&train.0, seed)?;
    let mut slot = t.0.borrow_mut();
    let out = slot.out.clone();
    let mut ms = model.0.borrow_mut();
    let ModelSlot {
        model: Some(m),
        preset,
        ..
    } = &mut *ms
    else {
        return Err(invalid("model", "it could not be built"));
    };
    let trainer = &mut slot.trainer;
    let fresh = trainer.start_step() == 0;
    let (tr, va) = (train.0.clone(), val.map(|v| v.0.clone()));
    if let (Some(o), true) = (&out, fresh) {
        // The model's preset when it is one (not "loaded" or "resumed").
        let kind = m.config.kind();
        let record = crate::model::ModelConfig::preset(kind, preset)
            .is_ok()
            .then(|| RunRecord {
                kind: kind.to_string(),
                preset: preset.trim().to_ascii_lowercase(),
            });
        guard(|| run_dir::record_fresh_run(o, &tr, record.as_ref()))?;
    }
    let h = guard(|| trainer.fit(m, &tr, va.as_deref(), out.as_deref()))?;
    if let (Some(o), false) = (&out, fresh) {
        guard(|| run_dir::record_resumed_run(o, &tr))?;
    }
    if h.interrupted {
        super::engine::notice(&format!(
            "training interrupted after step {}; the model keeps the weights of that step{}",
            h.final_step,
            out.as_ref()
                .map(|o| format!(" (checkpoint in {})", o.display()))
                .unwrap_or_default()
        ));
    }
    let handle = HistoryHandle(Rc::new(h));
    slot.history = Some(handle.clone());
    Ok(handle)
}

#[export_module]
pub mod trainer_api {
    use super::*;

    /// Trains a model with conditional flow matching and classifier-free
    /// guidance (AdamW, grad clipping, seeded batches; model.md).
    /// ```rhai
    /// let trainer = Trainer(#{steps: 200, lr: 1e-3});
    /// let history = trainer.fit(model, split.train);
    /// ```
    pub type Trainer = TrainerHandle;

    /// The loss history of a training run.
    /// ```rhai
    /// let h = trainer.fit(model, data);
    /// print(h.losses);
    /// ```
    pub type History = HistoryHandle;

    /// A trainer with the library defaults (the paper's optimiser settings).
    /// ```rhai
    /// let trainer = Trainer();
    /// ```
    #[rhai_fn(name = "Trainer", return_raw)]
    pub fn new_default() -> RhaiResult<Trainer> {
        new_trainer(Map::new())
    }

    /// A trainer from settings: `preset` (`tiny`, `small`, `norman19`,
    /// `srivatsan20`), any TrainConfig key (`steps`, `lr`, `batch_size`,
    /// `grad_accum`, `grad_clip`, `prob_unconditional`, `seed`, `val_every`,
    /// `warmup_steps`, `lr_schedule`, `log_every`, ...) and `out` (checkpoint
    /// folder). Unknown keys are errors that list the valid ones.
    /// ```rhai
    /// let trainer = Trainer(#{preset: "tiny", steps: 300, lr: 1e-3, seed: 1});
    /// ```
    #[rhai_fn(name = "Trainer", return_raw)]
    pub fn new_trainer(settings: Map) -> RhaiResult<Trainer> {
        let (cfg, out, spec) = train_spec(&settings, "unet")?;
        let trainer = crate::train::Trainer::new(cfg).map_err(to_rhai)?;
        Ok(TrainerHandle(Rc::new(RefCell::new(TrainerSlot {
            trainer,
            out,
            history: None,
            spec,
        }))))
    }

    /// Trains `model` on every cell of `data` for `steps` steps (building
    /// the model for the data first if needed) and returns the history.
    /// Each call starts a fresh optimizer; use `checkpoint` and `resume` to
    /// continue a run.
    /// ```rhai
    /// let history = trainer.fit(model, split.train);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn fit(
        trainer: &mut Trainer,
        model: ModelHandle,
        data: DatasetHandle,
    ) -> RhaiResult<History> {
        fit_impl(trainer, &model, &data, None)
    }

    /// Trains with a validation set (evaluated every `val_every` steps).
    /// ```rhai
    /// let trainer = Trainer(#{steps: 400, val_every: 100});
    /// let history = trainer.fit(model, split.train, split.val);
    /// ```
    #[rhai_fn(name = "fit", return_raw)]
    pub fn fit_val(
        trainer: &mut Trainer,
        model: ModelHandle,
        train: DatasetHandle,
        val: DatasetHandle,
    ) -> RhaiResult<History> {
        fit_impl(trainer, &model, &train, Some(&val))
    }

    /// Sets the folder for checkpoints (written every `checkpoint_every`
    /// steps and at the end of `fit`) and returns the trainer. `fit` also
    /// records there the training data's set-up (`data.json`, when it came
    /// from a file or simulation, or a split or covariate subset of one) and
    /// the model's kind and preset (`run.json`), so `primeflow train --out
    /// DIR --resume` and `primeflow sample --checkpoint DIR` continue it.
    /// ```rhai
    /// trainer.checkpoint("out/run1");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn checkpoint(trainer: &mut Trainer, dir: &str) -> RhaiResult<Trainer> {
        trainer.0.borrow_mut().out = Some(path_arg("checkpoint folder", dir)?);
        Ok(trainer.clone())
    }

    /// Reopens the newest checkpoint in `dir`: this trainer takes over its
    /// settings, optimizer state, step and history; returns its model. The
    /// next `fit` on the same data continues to `steps`.
    /// ```rhai
    /// let model = trainer.resume("out/run1");
    /// trainer.fit(model, split.train);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn resume(trainer: &mut Trainer, dir: &str) -> RhaiResult<ModelHandle> {
        resume_with(trainer, dir, Map::new())
    }

    /// Resumes with changed `steps` (to extend a run) or `stop_at`.
    /// ```rhai
    /// let model = trainer.resume("out/run1", #{steps: 2000});
    /// ```
    #[rhai_fn(name = "resume", return_raw)]
    pub fn resume_with(trainer: &mut Trainer, dir: &str, settings: Map) -> RhaiResult<ModelHandle> {
        let o =
            super::super::convert::Opts::new("resume settings", settings, &["steps", "stop_at"])?;
        let p = path_arg("checkpoint folder", dir)?;
        let device = tch::Device::cuda_if_available();
        let (mut core, model) = guard(|| crate::train::Trainer::resume(&p, device))?;
        if let Some(s) = o.count("steps")? {
            core.config.steps = s.max(1);
        }
        core.stop_at = o.count("stop_at")?;
        let mut slot = trainer.0.borrow_mut();
        slot.trainer = core;
        slot.out = Some(p);
        slot.spec = None;
        let config = model.config.clone();
        Ok(ModelHandle(Rc::new(RefCell::new(ModelSlot {
            config,
            preset: "resumed".into(),
            device,
            seed: None,
            encoding: (model.vocab.encoding, model.vocab.embeddings.clone()),
            model: Some(model),
        }))))
    }

    /// The history of the last `fit` (unit before any).
    /// ```rhai
    /// trainer.history
    /// ```
    #[rhai_fn(get = "history", pure)]
    pub fn history(trainer: &mut Trainer) -> Dynamic {
        trainer
            .0
            .borrow()
            .history
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)
    }

    /// The validated settings as a map.
    /// ```rhai
    /// trainer.config.lr
    /// ```
    #[rhai_fn(get = "config", pure)]
    pub fn config(trainer: &mut Trainer) -> Dynamic {
        serde_json::to_value(&trainer.0.borrow().trainer.config)
            .map(|j| from_json(&j))
            .unwrap_or(Dynamic::UNIT)
    }

    /// The main settings.
    /// ```rhai
    /// print(trainer);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn trainer_to_string(trainer: &mut Trainer) -> String {
        let s = trainer.0.borrow();
        let c = &s.trainer.config;
        format!(
            "Trainer: {} steps, lr {}, batch {} x {}, p_uncond {}, seed {}{}",
            c.steps,
            c.lr,
            c.batch_size,
            c.grad_accum,
            c.prob_unconditional,
            c.seed,
            s.out
                .as_ref()
                .map(|o| format!(", checkpoints in {}", o.display()))
                .unwrap_or_default()
        )
    }

    /// Logged steps.
    /// ```rhai
    /// history.steps
    /// ```
    #[rhai_fn(get = "steps", pure)]
    pub fn steps(h: &mut History) -> Array {
        h.0.rows
            .iter()
            .map(|r| Dynamic::from_int(r.step as i64))
            .collect()
    }

    /// Training loss per logged step.
    /// ```rhai
    /// history.losses
    /// ```
    #[rhai_fn(get = "losses", pure)]
    pub fn losses(h: &mut History) -> Array {
        float_array(h.0.rows.iter().map(|r| r.loss))
    }

    /// Validation losses (of the steps where they were computed).
    /// ```rhai
    /// history.val_losses
    /// ```
    #[rhai_fn(get = "val_losses", pure)]
    pub fn val_losses(h: &mut History) -> Array {
        float_array(h.0.rows.iter().filter_map(|r| r.val_loss))
    }

    /// The first logged training loss (unit when none).
    /// ```rhai
    /// history.first_loss
    /// ```
    #[rhai_fn(get = "first_loss", pure)]
    pub fn first_loss(h: &mut History) -> Dynamic {
        h.0.rows
            .first()
            .map(|r| Dynamic::from_float(r.loss))
            .unwrap_or(Dynamic::UNIT)
    }

    /// The last logged training loss (unit when none).
    /// ```rhai
    /// history.last_loss
    /// ```
    #[rhai_fn(get = "last_loss", pure)]
    pub fn last_loss(h: &mut History) -> Dynamic {
        h.0.last_loss()
            .map(Dynamic::from_float)
            .unwrap_or(Dynamic::UNIT)
    }

    /// The last completed step.
    /// ```rhai
    /// history.final_step
    /// ```
    #[rhai_fn(get = "final_step", pure)]
    pub fn final_step(h: &mut History) -> i64 {
        h.0.final_step as i64
    }

    /// True when Ctrl-C stopped the training.
    /// ```rhai
    /// history.interrupted
    /// ```
    #[rhai_fn(get = "interrupted", pure)]
    pub fn interrupted(h: &mut History) -> bool {
        h.0.interrupted
    }

    /// Writes `history.csv` and `history.json` into `dir`; returns `dir`.
    /// ```rhai
    /// history.save("out/run1");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save(h: &mut History, dir: &str) -> RhaiResult<String> {
        let p = path_arg("history folder", dir)?;
        let hist = h.0.clone();
        guard(|| hist.write(&p))?;
        Ok(dir.to_string())
    }

    /// The history as a map (`rows`, `final_step`, `interrupted`, ...).
    /// ```rhai
    /// history.to_map().rows[0].loss
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn to_map(h: &mut History) -> RhaiResult<Dynamic> {
        super::super::convert::to_dynamic(&*h.0)
    }

    /// Steps and first/last loss.
    /// ```rhai
    /// print(history);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn history_to_string(h: &mut History) -> String {
        let r = &h.0.rows;
        match (r.first(), r.last()) {
            (Some(a), Some(b)) => format!(
                "History: {} steps, loss {:.4} (step {}) -> {:.4} (step {}){}",
                h.0.final_step,
                a.loss,
                a.step,
                b.loss,
                b.step,
                if h.0.interrupted { ", interrupted" } else { "" }
            ),
            _ => format!("History: {} steps, nothing logged", h.0.final_step),
        }
    }
}

/// Registers `Trainer` and `History`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<TrainerHandle>("Trainer");
    engine.register_type_with_name::<HistoryHandle>("History");
    engine.register_global_module(exported_module!(trainer_api).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_trainer_keys_list_the_valid_ones() {
        let mut m = Map::new();
        m.insert("learning_rate".into(), Dynamic::from_float(1e-3));
        let e = super::super::error::describe(&train_config(&m).unwrap_err());
        assert!(
            e.contains("learning_rate") && e.contains("lr") && e.contains("batch_size"),
            "{e}"
        );
    }
}
