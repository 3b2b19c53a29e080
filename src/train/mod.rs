//! Training: the [`Trainer`] (conditional flow matching with
//! classifier-free guidance), its [`TrainConfig`], the AdamW optimizer,
//! checkpoints, the loss history and the data set-up shared with sampling.
//!
//! * [`config`]: `TrainConfig` (serde, validation, lr schedule).
//! * [`presets`]: `TrainConfig::preset(kind, name)`, the paper's tables per model.
//! * [`trainer`]: `Trainer::fit` / `Trainer::resume`; `run`: the run in progress (its named steps).
//! * [`optimizer`]: AdamW with explicit, saveable state; grad clipping.
//! * [`batches`]: the seeded shuffling sampler and per-step seeds.
//! * [`checkpoint`]: atomic checkpoints (`OUT/step-N/` + `OUT/latest`).
//! * [`history`]: the loss history (CSV/JSON).
//! * [`data`]: which cells a run uses (file, filters, split); now in `crate::data::spec`.
//! * [`stream`]: streaming the training cells from a file larger than memory.
//! * [`run_dir`]: a run folder's `data.json` and `run.json`, shared by the CLI and scripts.

pub mod batches;
pub mod cells;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod ema;
pub mod history;
pub mod objective;
pub mod optimizer;
pub mod presets;
mod run;
pub mod run_dir;
pub mod stream;
pub mod trainer;

pub use batches::{derive_seed, BatchSampler};
pub use checkpoint::{latest_checkpoint, load_checkpoint, save_checkpoint, Checkpoint, TrainState};
pub use config::{LrSchedule, Precision, TrainConfig};
pub use data::{DataSpec, SplitSpec};
pub use history::{History, HistoryRow};
pub use optimizer::AdamW;
pub use run_dir::RunRecord;
pub use stream::{LoaderPosition, StreamConfig};
pub use trainer::{data_fingerprint, Trainer};
