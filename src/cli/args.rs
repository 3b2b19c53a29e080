//! Argument groups shared by several subcommands, flattened into each
//! command's `Args` (`#[command(flatten)]`), so a flag means the same thing,
//! with the same help, everywhere.

use std::path::PathBuf;

use clap::Args;
use primeflow::data::{parse_filter, ObsColumns, SplitSpec, Task};
use primeflow::Error;

/// Which obs columns hold the perturbation, the covariates and the control
/// label (`train`, `evaluate`, `split`).
#[derive(Debug, Clone, Default, Args)]
pub struct ColumnArgs {
    /// obs column with the perturbation labels [default: condition;
    /// target_gene with `evaluate --profile vcc|minimal`].
    #[arg(long = "perturbation-col", value_name = "COL")]
    pub perturbation_col: Option<String>,
    /// obs covariate column (repeat the flag or list them with commas)
    /// [default: cell_type]. Units are (covariates joined with '_',
    /// perturbation).
    #[arg(long = "covariate-col", value_name = "COL", value_delimiter = ',')]
    pub covariate_cols: Vec<String>,
    /// Use no covariate column (one covariate key for all cells).
    #[arg(long = "no-covariates", conflicts_with = "covariate_cols")]
    pub no_covariates: bool,
    /// The control label [default: control; non-targeting with
    /// `evaluate --profile vcc|minimal`].
    #[arg(long, value_name = "LABEL")]
    pub control: Option<String>,
}

impl ColumnArgs {
    /// True when any column flag was given.
    pub fn given(&self) -> bool {
        self.perturbation_col.is_some()
            || !self.covariate_cols.is_empty()
            || self.no_covariates
            || self.control.is_some()
    }

    /// The columns the flags name, `defaults` for those not given.
    pub fn resolve(&self, defaults: ObsColumns) -> ObsColumns {
        ObsColumns {
            perturbation: self
                .perturbation_col
                .clone()
                .unwrap_or(defaults.perturbation),
            covariates: if self.no_covariates {
                Vec::new()
            } else if self.covariate_cols.is_empty() {
                defaults.covariates
            } else {
                self.covariate_cols.clone()
            },
            control: self.control.clone().unwrap_or(defaults.control),
        }
    }
}

/// Where a model runs and how it reports (`train`, `sample`).
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch's operators (default: libtorch's choice,
    /// one per core). 1 is faster for small models on a busy machine.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl RuntimeArgs {
    /// Applies --quiet and --threads to the process and parses --device.
    pub fn apply(&self) -> primeflow::Result<tch::Device> {
        primeflow::progress::set_quiet(self.quiet);
        if let Some(n) = self.threads {
            if n == 0 {
                return Err(Error::invalid("--threads", "must be at least 1"));
            }
            tch::set_num_threads(n.min(i32::MAX as usize) as i32);
        }
        primeflow::device::parse_device(&self.device)
    }
}

/// Which cells: a split (a CSV or a generated task) and obs filters
/// (`train`, `sample`, `evaluate`). A split given here is the one the run's
/// data set-up records, so `sample` and `evaluate` can name the same split
/// `train` used.
#[derive(Debug, Clone, Default, Args)]
pub struct SplitArgs {
    /// A split CSV (`primeflow split`): `train` uses its train part,
    /// `sample` and `evaluate` their --which part.
    #[arg(long, value_name = "SPLIT.csv", conflicts_with = "task")]
    pub split: Option<PathBuf>,
    /// Generate the split of this task instead: covariate-transfer,
    /// combination or unseen-perturbation (PerturBench's splitter).
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Seed of the generated split (and of the control cells a CSV split
    /// does not list).
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub split_seed: u64,
    /// Keep only cells with obs COL == VALUE (repeatable), e.g.
    /// dataset=norman19; applied before the split.
    #[arg(long = "filter", value_name = "COL=VALUE")]
    pub filters: Vec<String>,
}

impl SplitArgs {
    /// True when --split or --task was given.
    pub fn split_given(&self) -> bool {
        self.split.is_some() || self.task.is_some()
    }

    /// The split the flags name: a CSV, a generated task, or `None` when
    /// neither --split nor --task was given.
    pub fn spec(&self) -> primeflow::Result<Option<SplitSpec>> {
        Ok(match (&self.split, &self.task) {
            (Some(p), _) => Some(SplitSpec::File {
                path: p.clone(),
                seed: self.split_seed,
            }),
            (None, Some(t)) => Some(SplitSpec::Task {
                task: Task::parse(t)?,
                seed: self.split_seed,
                holdout_fraction: None,
                max_holdout: None,
            }),
            (None, None) => None,
        })
    }

    /// The parsed --filter flags, `(column, value)` (empty when none).
    pub fn parsed_filters(&self) -> primeflow::Result<Vec<(String, String)>> {
        self.filters.iter().map(|f| parse_filter(f)).collect()
    }
}
