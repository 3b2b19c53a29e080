//! The training history: one row per logged step, kept in memory and written
//! as `history.csv` and `history.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One logged step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// Optimizer step (1-based).
    pub step: usize,
    /// Mean training loss over the steps since the previous row.
    pub loss: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Validation loss, when evaluated at this step.
    pub val_loss: Option<f64>,
    /// Training throughput since the previous row (cells per second).
    pub cells_per_s: f64,
}

/// What happened during training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Logged rows, by step.
    pub rows: Vec<HistoryRow>,
    /// The last completed step.
    pub final_step: usize,
    /// Training stopped on Ctrl-C (a checkpoint of `final_step` was written
    /// when an output folder was given).
    pub interrupted: bool,
    /// Training stopped because the validation loss stopped improving.
    pub stopped_early: bool,
    /// Lowest validation loss seen, and its step.
    pub best_val_loss: Option<(usize, f64)>,
}

impl History {
    /// Adds a row, replacing a previous row of the same step (a step logged
    /// for both its loss and its validation loss).
    pub fn push(&mut self, row: HistoryRow) {
        if let Some(last) = self.rows.last_mut() {
            if last.step == row.step {
                *last = row;
                return;
            }
        }
        self.rows.push(row);
    }

    /// The last logged training loss.
    pub fn last_loss(&self) -> Option<f64> {
        self.rows.last().map(|r| r.loss)
    }

    /// Rows as CSV: `step,loss,lr,val_loss,cells_per_s` (empty val_loss when
    /// not evaluated).
    pub fn to_csv(&self) -> String {
        let mut s = String::from("step,loss,lr,val_loss,cells_per_s\n");
        for r in &self.rows {
            let val = r.val_loss.map(|v| format!("{v}")).unwrap_or_default();
            s.push_str(&format!(
                "{},{},{},{},{:.1}\n",
                r.step, r.loss, r.lr, val, r.cells_per_s
            ));
        }
        s
    }

    /// Writes `history.csv` and `history.json` into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::atomic::write_bytes(&dir.join("history.csv"), self.to_csv().as_bytes())?;
        crate::atomic::write_json(&dir.join("history.json"), self)
    }
}
