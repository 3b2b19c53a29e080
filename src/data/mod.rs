//! Data: `Dataset` (cells x genes with perturbation/covariate columns),
//! `Condition` and its encoding, and train/val/test splits.

pub mod condition;
pub mod dataset;
pub mod split;

pub use condition::{parse_perturbations, Condition, ConditionVocab};
pub use dataset::{obs_for_conditions, Dataset, DatasetSummary, LoadOptions, ObsColumns, Unit};
pub use split::{Part, Split, SplitOptions, SplitSummary, Task};
