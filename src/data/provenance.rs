//! Where a dataset's cells came from: a [`DataSpec`] (file or simulator
//! settings, columns, filters, split) and, for a part of its split, which
//! part. The code paths that make a dataset reproducibly (loading a file,
//! simulating, filtering, splitting) set it; anything else (a subset by
//! row indices, generated cells) leaves it unset. A training run records
//! the set-up of its training cells in its folder (`train::run_dir`), so
//! either front-end can resume or sample the run without restating it.

use crate::data::{DataSpec, Part, SplitSpec};

/// How to rebuild a dataset's cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// The data set-up (its split is `SplitSpec::None` when `part` is
    /// `None`).
    pub spec: DataSpec,
    /// The part of `spec.split` the cells are; `None`: every cell of the
    /// (filtered) data.
    pub part: Option<Part>,
}

impl Provenance {
    /// Every cell of the (filtered) data of `spec` (its split is dropped).
    pub fn whole(spec: DataSpec) -> Provenance {
        Provenance {
            spec: DataSpec {
                split: SplitSpec::None,
                ..spec
            },
            part: None,
        }
    }

    /// Part `part` of the split of `spec`.
    pub fn part(spec: DataSpec, part: Part) -> Provenance {
        Provenance {
            spec,
            part: Some(part),
        }
    }

    /// Part `part` of `split` applied to these cells; `None` when these
    /// cells are already a part of a split (a split of a part has no
    /// data set-up).
    pub fn split_part(&self, split: &SplitSpec, part: Part) -> Option<Provenance> {
        if self.part.is_some() || *split == SplitSpec::None {
            return None;
        }
        Some(Provenance::part(
            DataSpec {
                split: split.clone(),
                ..self.spec.clone()
            },
            part,
        ))
    }

    /// These cells with more `(obs column, value)` filters; `None` for a
    /// part of a split (the set-up filters before it splits).
    pub fn filtered(&self, filters: &[(String, String)]) -> Option<Provenance> {
        if self.part.is_some() {
            return None;
        }
        let mut spec = self.spec.clone();
        spec.filters.extend(filters.iter().cloned());
        Some(Provenance::whole(spec))
    }

    /// The set-up a run training on these cells records: the spec of every
    /// cell or of a training part; `None` for validation or test cells
    /// (a set-up trains on its train part).
    pub fn training_spec(&self) -> Option<&DataSpec> {
        match self.part {
            None | Some(Part::Train) => Some(&self.spec),
            Some(_) => None,
        }
    }
}
