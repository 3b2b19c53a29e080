//! A training run's folder as both front-ends (the CLI and scripts) share
//! it: besides the checkpoints (see [`super::checkpoint`]) it holds
//!
//! ```text
//! OUT/data.json    the data set-up of the training cells (DataSpec): file
//!                  or simulator settings, columns, filters, split
//! OUT/run.json     how the run started (RunRecord): model kind, preset
//! ```
//!
//! so `primeflow train --resume` and `primeflow sample` rebuild the run's
//! cells and held-out units, and a script reopens them, whichever front-end
//! made the run. Both files are optional: a run trained on cells with no
//! recorded set-up (a subset by row indices, generated cells) has no
//! `data.json`, and its data must be given again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{DataSpec, Dataset};
use crate::error::{Error, Result};

/// The data set-up file of a run folder.
pub const DATA_FILE: &str = "data.json";
/// The run record file of a run folder.
pub const RUN_FILE: &str = "run.json";

/// The record of how a run was started (`run.json` in its folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Model kind (`unet`, `mlp`, ...).
    pub kind: String,
    /// The preset name the run started from.
    pub preset: String,
}

impl RunRecord {
    /// Writes `run.json` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::atomic::write_json(&dir.join(RUN_FILE), self)
    }

    /// Reads `dir/run.json` when present.
    pub fn read(dir: &Path) -> Result<Option<RunRecord>> {
        read_optional(&dir.join(RUN_FILE))
    }
}

fn read_optional<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>> {
    if p.is_file() {
        Ok(Some(crate::atomic::read_json(p)?))
    } else {
        Ok(None)
    }
}

/// Writes `spec` as `dir/data.json` (atomically).
pub fn write_data_spec(dir: &Path, spec: &DataSpec) -> Result<()> {
    crate::atomic::write_json(&dir.join(DATA_FILE), spec)
}

/// Reads `dir/data.json` when present.
pub fn read_data_spec(dir: &Path) -> Result<Option<DataSpec>> {
    read_optional(&dir.join(DATA_FILE))
}

/// The data set-up of the run that produced `checkpoint`: a run folder, or
/// one of its step folders (the set-up is in the parent).
pub fn saved_data_spec(checkpoint: &Path) -> Result<Option<DataSpec>> {
    if let Some(s) = read_data_spec(checkpoint)? {
        return Ok(Some(s));
    }
    match checkpoint.parent() {
        Some(p) => read_data_spec(p),
        None => Ok(None),
    }
}

/// What the CLI says to do about a run with no recorded data set.
pub const PASS_DATA: &str =
    "pass --data FILE.h5ad (with the --split/--task, --filter and column flags of its training cells)";

/// The error for a run folder with no `data.json`: `what` names what needs
/// the data (e.g. `--resume`), `remedy` says what to do instead (e.g.
/// [`PASS_DATA`]).
pub fn no_data_error(what: &str, dir: &Path, remedy: &str) -> Error {
    Error::invalid(
        what,
        format!(
            "the run in {} was made without a recorded data set (it has no {DATA_FILE}: its training cells were not a file, a simulation, or a filter or split of one); {remedy}",
            dir.display()
        ),
    )
}

/// The data set-up of `dir` (see [`saved_data_spec`]), or
/// [`no_data_error`].
pub fn require_data_spec(what: &str, dir: &Path, remedy: &str) -> Result<DataSpec> {
    saved_data_spec(dir)?.ok_or_else(|| no_data_error(what, dir, remedy))
}

/// The data set-up a run training on `train` records: its provenance's
/// (every cell, or the train part of a split); `None` when the cells have
/// no recorded set-up.
pub fn training_spec(train: &Dataset) -> Option<&DataSpec> {
    train.provenance.as_ref().and_then(|p| p.training_spec())
}

/// Records a fresh run in `out` before it trains: the set-up of `train`
/// as `data.json` and `record` as `run.json`. A file it has nothing for is
/// removed, so a folder reused for a new run holds no stale set-up.
/// Returns whether `data.json` was written.
pub fn record_fresh_run(out: &Path, train: &Dataset, record: Option<&RunRecord>) -> Result<bool> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let wrote = match training_spec(train) {
        Some(spec) => {
            write_data_spec(out, spec)?;
            true
        }
        None => {
            remove_if_present(&out.join(DATA_FILE))?;
            false
        }
    };
    match record {
        Some(r) => r.save(out)?,
        None => remove_if_present(&out.join(RUN_FILE))?,
    }
    Ok(wrote)
}

/// Records the set-up of `train` after a resumed run trained on it (the
/// checkpoint's data fingerprint has then confirmed the cells are the
/// run's). Cells with no set-up leave `data.json` as it is: it still
/// describes the same cells. Returns whether `data.json` was written.
pub fn record_resumed_run(out: &Path, train: &Dataset) -> Result<bool> {
    match training_spec(train) {
        Some(spec) => {
            write_data_spec(out, spec)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn remove_if_present(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// An absolute form of `p` (relative paths joined to the working folder),
/// so a recorded set-up does not depend on where the next command runs.
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
