//! Data: `Dataset` (cells x genes with perturbation/covariate columns),
//! `Condition` and its encoding, train/val/test splits, and the data set-up
//! (`DataSpec`) a dataset's cells came from (`Provenance`).

pub mod condition;
pub mod dataset;
pub mod embedding;
pub mod encoding;
pub mod provenance;
pub mod spec;
pub mod split;
mod split_tasks;
mod summary;
mod unit;

pub use condition::{parse_perturbations, Condition, ConditionEncoding, ConditionVocab};
pub use dataset::{obs_for_conditions, Dataset, DatasetSummary, LoadOptions, ObsColumns};
pub use embedding::EmbeddingTable;
pub use provenance::Provenance;
pub use spec::{apply_filters, parse_filter, DataSpec, SplitSpec};
pub use split::{Part, Split, SplitOptions, SplitSummary, Task};
pub use unit::Unit;
