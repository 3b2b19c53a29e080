//! Training checkpoints.
//!
//! Layout of a training output folder `OUT`:
//!
//! ```text
//! OUT/latest                  the name of the newest complete checkpoint
//! OUT/step-00000500/          one checkpoint:
//!     weights.safetensors     model parameters (PyTorch state-dict names)
//!     model.json vocab.json genes.json    (see model::Model)
//!     train.json              the TrainConfig
//!     stats.json stats.safetensors        (the model's DataStats)
//!     optimizer.safetensors   AdamW moments (exp_avg.<p>, exp_avg_sq.<p>)
//!     ema.safetensors         averaged weights (runs with ema_decay)
//!     state.json              step, optimizer step, early-stopping state,
//!                             training-data fingerprint
//!     history.json            the history up to this step
//! OUT/history.csv, OUT/history.json   the history (updated with checkpoints)
//! ```
//!
//! A checkpoint is written into a temporary folder that is renamed into place
//! once complete; `latest` is then replaced atomically, so a crash (even
//! SIGKILL) at any moment leaves `latest` naming a complete checkpoint. The
//! RNG state is `(seed, step)`: every random draw of step `s` is derived
//! from it (see `train::batches`), so nothing else needs saving; a streamed
//! run also records its loader position (`train::stream`), a function of
//! the same, checked on resume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::model::{read_tensors, write_tensors, LATEST_FILE};
use crate::model::Model;
use crate::train::config::TrainConfig;
use crate::train::history::History;
use crate::train::optimizer::AdamW;

/// The training config file in a checkpoint.
pub const TRAIN_FILE: &str = "train.json";
/// The optimizer state file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The progress file.
pub const STATE_FILE: &str = "state.json";
/// The history file.
pub const HISTORY_FILE: &str = "history.json";
/// The averaged weights (runs with `ema_decay`); the same file a model
/// folder uses for them.
pub const EMA_STATE_FILE: &str = crate::model::model::EMA_FILE;

/// Progress of a run, saved in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed optimizer steps.
    pub step: usize,
    /// AdamW's update counter (equals `step` unless a step had no gradient).
    pub optimizer_steps: u64,
    /// Best validation loss and its step (early stopping).
    pub best_val: Option<(usize, f64)>,
    /// Validation evaluations since the best one (early stopping).
    pub evals_since_best: usize,
    /// Fingerprint of the training cells and genes; a resumed run must see
    /// the same training data.
    pub data_fingerprint: String,
    /// Number of training cells.
    pub n_train_cells: usize,
    /// The primeflow version that wrote the checkpoint.
    pub version: String,
    /// Where the training stream stands (streamed runs): the next cell's
    /// epoch, buffer and place in it. Resuming restarts the stream there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<crate::train::stream::LoaderPosition>,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The checkpoint folder (`OUT/step-...`).
    pub dir: PathBuf,
    pub model: Model,
    pub train: TrainConfig,
    pub state: TrainState,
    /// Optimizer tensors by name (CPU).
    pub optimizer: BTreeMap<String, Tensor>,
    /// The averaged weights by name (CPU), when the run keeps an EMA.
    pub ema: Option<BTreeMap<String, Tensor>>,
    pub history: History,
}

/// The folder name of the checkpoint of `step`.
pub fn step_dir_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// The newest complete checkpoint of `out` (what `latest` names), if any.
pub fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    let latest = out.join(LATEST_FILE);
    if !latest.is_file() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&latest).map_err(|e| Error::io(&latest, e))?;
    let dir = out.join(name.trim());
    if !dir.is_dir() {
        return Err(Error::format(
            &latest,
            "latest",
            format!("names '{}', which does not exist", name.trim()),
        ));
    }
    Ok(Some(dir))
}

/// Writes the checkpoint of `state.step` into `out` (see the module docs)
/// and keeps only the newest `cfg.keep_checkpoints` step folders. Returns the
/// checkpoint folder.
pub fn save_checkpoint(
    out: &Path,
    model: &Model,
    cfg: &TrainConfig,
    state: &TrainState,
    opt: &AdamW,
    ema: Option<&crate::train::ema::Ema>,
    history: &History,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let name = step_dir_name(state.step);
    let tmp = out.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    let write = || -> Result<()> {
        model.save(&tmp)?;
        crate::atomic::write_json(&tmp.join(TRAIN_FILE), cfg)?;
        write_tensors(&tmp.join(OPTIMIZER_FILE), &opt.state_tensors())?;
        if let Some(e) = ema {
            write_tensors(&tmp.join(EMA_STATE_FILE), e.tensors())?;
        }
        crate::atomic::write_json(&tmp.join(STATE_FILE), state)?;
        crate::atomic::write_json(&tmp.join(HISTORY_FILE), history)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let dir = out.join(&name);
    if dir.exists() {
        // A stale folder of the same step (a run killed after renaming but
        // before updating `latest`): `latest` does not name it.
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
    crate::atomic::write_bytes(&out.join(LATEST_FILE), name.as_bytes())?;
    history.write(out)?;
    prune(out, cfg.keep_checkpoints.max(1), &name)?;
    Ok(dir)
}

/// Removes all but the newest `keep` step folders (never `current`).
fn prune(out: &Path, keep: usize, current: &str) -> Result<()> {
    let mut steps: Vec<(usize, PathBuf)> = Vec::new();
    let rd = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
        {
            if name != current && entry.path().is_dir() {
                steps.push((n, entry.path()));
            }
        }
    }
    steps.sort();
    let remove = steps.len().saturating_sub(keep - 1);
    for (_, p) in steps.into_iter().take(remove) {
        std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Loads the newest checkpoint of the training output folder `out` (or a
/// checkpoint folder itself) onto `device`.
pub fn load_checkpoint(out: &Path, device: Device) -> Result<Checkpoint> {
    let dir = if out.join(STATE_FILE).is_file() {
        out.to_path_buf()
    } else {
        latest_checkpoint(out)?.ok_or_else(|| {
            Error::invalid("resume", format!("{} holds no checkpoint (no '{LATEST_FILE}' file); train without --resume first", out.display()))
        })?
    };
    let model = Model::load_with(&dir, device, false)?;
    let train_path = dir.join(TRAIN_FILE);
    let raw: serde_json::Value = crate::atomic::read_json(&train_path)?;
    let train = TrainConfig::default().merged(&raw, &train_path.display().to_string())?;
    let state: TrainState = crate::atomic::read_json(&dir.join(STATE_FILE))?;
    let optimizer = read_tensors(&dir.join(OPTIMIZER_FILE))?;
    let ema_path = dir.join(EMA_STATE_FILE);
    let ema = if ema_path.is_file() {
        Some(read_tensors(&ema_path)?)
    } else {
        None
    };
    let history: History = crate::atomic::read_json(&dir.join(HISTORY_FILE))?;
    Ok(Checkpoint {
        dir,
        model,
        train,
        state,
        optimizer,
        ema,
        history,
    })
}
