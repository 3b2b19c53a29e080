//! Train/val/test splits (metrics.md, "Data splits", after PerturBench's
//! `datasplitter`): covariate transfer, combination prediction, and a split
//! read from CSV. Splits are seeded; the RNG is ChaCha8, so a split is the
//! same on every machine, though not PerturBench's Python stream.
//!
//! Rules implemented (the tests check these, not a copy of any output):
//! * Controls: each covariate key's control cells are shuffled once and split
//!   50/25/25 into train/val/test.
//! * Covariate transfer: per covariate key (keys in sorted order, its
//!   perturbations in seeded random order), a perturbation is held out only
//!   while it stays in training in at least one other covariate key, up to
//!   `floor(holdout_fraction * n)` perturbations of that key (at most
//!   `max_holdout`). Each key's held-out units are split 50/50 into val/test
//!   (test takes the odd one).
//! * Combination prediction: combinations whose every single perturbation is
//!   present as a single-perturbation unit of the same covariate key are
//!   eligible; `round(holdout_fraction * n_eligible)` of them (at least one
//!   when any is eligible and the fraction is positive) are held out and split
//!   50/50 into val/test. All singles and the other combinations train.
//! * Unseen perturbation (not a PerturBench task; the Virtual Cell
//!   Challenge's setting): per covariate key, `floor(holdout_fraction * n)`
//!   of its single perturbations (at least one when it has two or more) are
//!   held out, val/test 50/50, with every combination of that key that
//!   contains one of them, so the held-out perturbations are never seen in
//!   training with that covariate key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::dataset::Dataset;
use crate::data::split_tasks::{
    combination, covariate_transfer, split_controls, unseen_perturbation,
};
use crate::error::{Error, Result};

/// One part of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Train,
    Val,
    Test,
}

impl Part {
    /// `train`, `val` or `test`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Val => "val",
            Part::Test => "test",
        }
    }

    /// Parses `train`, `val`/`valid`/`validation` or `test`.
    pub fn parse(s: &str) -> Result<Part> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Part::Train),
            "val" | "valid" | "validation" => Ok(Part::Val),
            "test" => Ok(Part::Test),
            other => Err(Error::unknown(
                "split part",
                other,
                &["train", "val", "test"],
            )),
        }
    }
}

/// The split tasks primeflow can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    CovariateTransfer,
    Combination,
    UnseenPerturbation,
}

impl Task {
    /// Parses `covariate-transfer` / `combination` / `unseen-perturbation`
    /// (underscores accepted).
    pub fn parse(s: &str) -> Result<Task> {
        match s.trim().replace('_', "-").as_str() {
            "covariate-transfer" | "transfer" => Ok(Task::CovariateTransfer),
            "combination" | "combinations" | "combo" => Ok(Task::Combination),
            "unseen-perturbation" | "unseen" => Ok(Task::UnseenPerturbation),
            other => Err(Error::unknown(
                "split task",
                other,
                &["covariate-transfer", "combination", "unseen-perturbation"],
            )),
        }
    }
}

/// Options of a generated split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitOptions {
    pub task: Task,
    pub seed: u64,
    /// Fraction of perturbations (transfer), eligible combinations
    /// (combination) or single perturbations (unseen) held out. Default: 0.3
    /// (transfer), 0.7 (combination, PerturBench v2's Norman19 setting), 0.2
    /// (unseen).
    pub holdout_fraction: Option<f64>,
    /// Cap on held-out perturbations per covariate key (transfer, unseen;
    /// 200).
    pub max_holdout: usize,
}

impl SplitOptions {
    /// Defaults for `task` with seed 42 (PerturBench's).
    pub fn new(task: Task) -> Self {
        SplitOptions {
            task,
            seed: 42,
            holdout_fraction: None,
            max_holdout: 200,
        }
    }
}

/// A split: the part of every cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `[n_cells]` part per cell, in the dataset's row order.
    pub parts: Vec<Part>,
}

impl Split {
    /// Generates a split of `ds` by `opts`.
    pub fn generate(ds: &Dataset, opts: &SplitOptions) -> Result<Split> {
        let frac = opts.holdout_fraction.unwrap_or(match opts.task {
            Task::CovariateTransfer => 0.3,
            Task::Combination => 0.7,
            Task::UnseenPerturbation => 0.2,
        });
        if !(0.0..=1.0).contains(&frac) {
            return Err(Error::invalid(
                "holdout_fraction",
                format!("{frac} is not in [0, 1]"),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let mut unit_part = vec![Part::Train; ds.units().len()];
        match opts.task {
            Task::CovariateTransfer => {
                covariate_transfer(ds, frac, opts.max_holdout, &mut rng, &mut unit_part)
            }
            Task::Combination => combination(ds, frac, &mut rng, &mut unit_part)?,
            Task::UnseenPerturbation => {
                unseen_perturbation(ds, frac, opts.max_holdout, &mut rng, &mut unit_part)?
            }
        }
        let mut parts = vec![Part::Train; ds.n_cells()];
        for (ui, u) in ds.units().iter().enumerate() {
            if u.is_control() {
                continue;
            }
            for &c in &u.cells {
                parts[c] = unit_part[ui];
            }
        }
        split_controls(ds, &mut rng, &mut parts);
        Ok(Split { parts })
    }

    /// Cells of `part`, ascending.
    pub fn cells(&self, part: Part) -> Vec<usize> {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == part)
            .map(|(i, _)| i)
            .collect()
    }

    /// Errors unless this split has one part per cell of `ds`.
    pub fn check(&self, ds: &Dataset) -> Result<()> {
        if self.parts.len() != ds.n_cells() {
            return Err(Error::Mismatch(format!(
                "the split covers {} cells but {} has {}",
                self.parts.len(),
                ds.source_name(),
                ds.n_cells()
            )));
        }
        Ok(())
    }

    /// Per part: units (non-control) and cells. Cells beyond the split's
    /// length (a split of another dataset; see [`check`](Self::check)) are
    /// not counted.
    pub fn summary(&self, ds: &Dataset) -> SplitSummary {
        let mut s = SplitSummary::default();
        for u in ds.units() {
            let mut seen = BTreeSet::new();
            for &c in &u.cells {
                let Some(&p) = self.parts.get(c) else {
                    continue;
                };
                let e = s.parts.entry(p.as_str().to_string()).or_default();
                if u.is_control() {
                    e.control_cells += 1;
                } else {
                    e.perturbed_cells += 1;
                    if seen.insert(p) {
                        e.units += 1;
                    }
                }
            }
        }
        for u in ds.units().iter().filter(|u| !u.is_control()) {
            let Some(&p) = u.cells.first().and_then(|&c| self.parts.get(c)) else {
                continue;
            };
            if p != Part::Train {
                s.held_out
                    .entry(p.as_str().to_string())
                    .or_default()
                    .push(u.name());
            }
        }
        s
    }

    /// Writes `cell,<perturbation column>,<covariate columns...>,split`
    /// atomically.
    pub fn write_csv(&self, path: &Path, ds: &Dataset) -> Result<()> {
        self.check(ds)?;
        let mut out = String::from("cell");
        out.push(',');
        out.push_str(&csv_field(&ds.columns.perturbation));
        for c in &ds.columns.covariates {
            out.push(',');
            out.push_str(&csv_field(c));
        }
        out.push_str(",split\n");
        for (i, p) in self.parts.iter().enumerate() {
            let u = ds.unit_of(i);
            out.push_str(&csv_field(&ds.obs.index[i]));
            out.push(',');
            out.push_str(&csv_field(&u.label));
            for v in &u.covariates {
                out.push(',');
                out.push_str(&csv_field(v));
            }
            out.push(',');
            out.push_str(p.as_str());
            out.push('\n');
        }
        crate::atomic::write_bytes(path, out.as_bytes())
    }

    /// Reads a saved split. Two layouts are understood:
    /// * cell level: a `cell` column (obs names) and a `split` column; every
    ///   cell of `ds` must be listed;
    /// * unit level: the perturbation column (by the dataset's column name or
    ///   `perturbation`/`condition`), optionally covariate columns, and
    ///   `split`. Rows without covariate columns apply to every covariate key.
    ///   Units not listed are an error; control cells not listed are split
    ///   50/25/25 with `seed`.
    pub fn read_csv(path: &Path, ds: &Dataset, seed: u64) -> Result<Split> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines
            .next()
            .ok_or_else(|| Error::format(path, "header", "the file is empty"))?;
        let header = parse_csv_line(header);
        let col = |names: &[&str]| {
            header
                .iter()
                .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
        };
        let split_col = col(&["split", "part", "set"]).ok_or_else(|| {
            Error::format(
                path,
                "header",
                format!("no 'split' column (columns: {})", header.join(", ")),
            )
        })?;
        let rows: Vec<(usize, Vec<String>)> =
            lines.map(|(i, l)| (i + 1, parse_csv_line(l))).collect();
        for (ln, r) in &rows {
            if r.len() != header.len() {
                return Err(Error::format(
                    path,
                    format!("line {ln}"),
                    format!("{} fields, the header has {}", r.len(), header.len()),
                ));
            }
        }
        if let Some(cell_col) = col(&["cell", "cell_id", "obs_names", "index", "barcode"]) {
            let index: HashMap<&str, usize> = ds
                .obs
                .index
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i))
                .collect();
            let mut parts: Vec<Option<Part>> = vec![None; ds.n_cells()];
            for (ln, r) in &rows {
                let part = Part::parse(&r[split_col]).map_err(|e| {
                    Error::format(path, format!("line {ln}, column split"), e.to_string())
                })?;
                if let Some(&i) = index.get(r[cell_col].as_str()) {
                    parts[i] = Some(part);
                }
            }
            let missing: Vec<&str> = parts
                .iter()
                .enumerate()
                .filter(|(_, p)| p.is_none())
                .map(|(i, _)| ds.obs.index[i].as_str())
                .take(5)
                .collect();
            if !missing.is_empty() {
                return Err(Error::format(
                    path,
                    "cell",
                    format!(
                        "{} cells of {} are not listed (e.g. {})",
                        parts.iter().filter(|p| p.is_none()).count(),
                        ds.source_name(),
                        missing.join(", ")
                    ),
                ));
            }
            return Ok(Split {
                parts: parts
                    .into_iter()
                    .map(|p| p.unwrap_or(Part::Train))
                    .collect(),
            });
        }
        let pert_col = col(&[
            ds.columns.perturbation.as_str(),
            "perturbation",
            "condition",
        ])
        .ok_or_else(|| {
            Error::format(
                path,
                "header",
                format!(
                    "neither a 'cell' nor a '{}' column (columns: {})",
                    ds.columns.perturbation,
                    header.join(", ")
                ),
            )
        })?;
        let cov_cols: Vec<Option<usize>> = ds
            .columns
            .covariates
            .iter()
            .map(|c| col(&[c.as_str()]))
            .collect();
        let mut by_unit: HashMap<(String, Option<String>), Part> = HashMap::new();
        for (ln, r) in &rows {
            let part = Part::parse(&r[split_col]).map_err(|e| {
                Error::format(path, format!("line {ln}, column split"), e.to_string())
            })?;
            let key = if cov_cols.iter().all(|c| c.is_some()) && !cov_cols.is_empty() {
                Some(
                    cov_cols
                        .iter()
                        .map(|c| r[c.unwrap_or(0)].clone())
                        .collect::<Vec<_>>()
                        .join("_"),
                )
            } else {
                None
            };
            by_unit.insert((r[pert_col].clone(), key), part);
        }
        let mut parts = vec![Part::Train; ds.n_cells()];
        let mut missing = Vec::new();
        let mut controls_listed = false;
        for u in ds.units() {
            let p = by_unit
                .get(&(u.label.clone(), Some(u.cov_key.clone())))
                .or_else(|| by_unit.get(&(u.label.clone(), None)));
            match p {
                Some(&p) => {
                    controls_listed |= u.is_control();
                    for &c in &u.cells {
                        parts[c] = p;
                    }
                }
                None if u.is_control() => {}
                None => missing.push(u.name()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::format(
                path,
                ds.columns.perturbation.clone(),
                format!(
                    "{} units of {} are not listed (e.g. {})",
                    missing.len(),
                    ds.source_name(),
                    missing
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !controls_listed {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            split_controls(ds, &mut rng, &mut parts);
        }
        Ok(Split { parts })
    }
}

/// Cells and units per part, and the held-out unit names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SplitSummary {
    pub parts: BTreeMap<String, PartSummary>,
    pub held_out: BTreeMap<String, Vec<String>>,
}

/// Counts of one part.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PartSummary {
    pub units: usize,
    pub perturbed_cells: usize,
    pub control_cells: usize,
}

impl std::fmt::Display for SplitSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "  {:<6} {:>6} {:>16} {:>14}",
            "part", "units", "perturbed cells", "control cells"
        )?;
        for name in ["train", "val", "test"] {
            let p = self.parts.get(name).cloned().unwrap_or_default();
            writeln!(
                f,
                "  {:<6} {:>6} {:>16} {:>14}",
                name, p.units, p.perturbed_cells, p.control_cells
            )?;
        }
        for (part, units) in &self.held_out {
            writeln!(f, "  {part}: {}", units.join(", "))?;
        }
        Ok(())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains(',') || s.contains('"') || s.contains('\n') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line, honouring double quotes.
pub(crate) fn parse_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}
