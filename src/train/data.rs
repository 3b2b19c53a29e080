//! The data set-up of a run, kept here for existing paths: it lives in
//! [`crate::data::spec`]; its file in a run folder in [`super::run_dir`].

pub use crate::data::spec::{apply_filters, parse_filter, DataSpec, SplitSpec};
