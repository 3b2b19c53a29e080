//! `primeflow sample`: generate cells from a trained checkpoint, either for
//! every perturbed unit of one part of a split (`--which test`) or for a
//! list of requested conditions (`--conditions "A+B @ k562;C @ k562"`), and
//! write them as an `.h5ad` with the perturbation and covariate obs columns
//! and the training genes as var names.
//!
//! Without `--split`/`--task`/`--filter`, the data set-up saved with the
//! run (`data.json` in the training output folder, written by `primeflow
//! train` or a script's trainer; see `train::run_dir`) is reused, so the
//! held-out units are the ones the model never saw.

use std::path::PathBuf;
use std::time::Instant;

use primeflow::anndata::{write_h5ad, WriteOptions, XFormat};
use primeflow::data::{Condition, ObsColumns, Part};
use primeflow::model::Model;
use primeflow::sample::{SampleConfig, Sampler, Solver};
use primeflow::train::{run_dir, DataSpec, SplitSpec};
use primeflow::Error;

use super::args::{RuntimeArgs, SplitArgs};

/// Arguments of `primeflow sample`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A training output folder (its latest checkpoint) or a model folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The data whose units are sampled (genes must match the checkpoint);
    /// defaults to the training run's file. Not needed with --conditions.
    #[arg(long, value_name = "FILE.h5ad")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub which_cells: SplitArgs,
    /// Which part of the split to sample: train, val or test.
    #[arg(long, default_value = "test")]
    pub which: String,
    /// Conditions to sample instead of a split, separated by ';'.
    #[arg(long, value_name = "\"A+B @ k562;C @ k562\"", conflicts_with_all = ["split", "task"])]
    pub conditions: Option<String>,
    /// Cells generated per unit / condition.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub cells_per_unit: usize,
    /// Classifier-free guidance weight w (1: purely conditional).
    #[arg(long, value_name = "W", default_value_t = 1.0)]
    pub guidance: f64,
    /// ODE steps.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub steps: usize,
    /// euler (the paper), midpoint, heun, or dopri5 (adaptive; --rtol/--atol).
    #[arg(long, default_value = "euler")]
    pub solver: String,
    /// Relative tolerance of dopri5.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
    /// Absolute tolerance of dopri5.
    #[arg(long, default_value_t = 1e-3)]
    pub atol: f64,
    /// Activation memory one forward pass may use (e.g. 4G, 512M); the
    /// batch is sized from it [default: a quarter of the available memory,
    /// at most 8G; 4G on CUDA].
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Seed of the source noise.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// At most this many rows per forward pass (a cap below --memory).
    #[arg(long, value_name = "N")]
    pub max_batch: Option<usize>,
    /// Clamp generated values at 0 (by default they are written as
    /// generated; clamping biases the means of sparse genes upwards).
    #[arg(long = "clip-negative", alias = "clip")]
    pub clip: bool,
    /// The output .h5ad.
    #[arg(long, value_name = "PRED.h5ad")]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The data set-up for sampling a split.
fn data_spec(args: &Args, model: &Model) -> anyhow::Result<DataSpec> {
    let saved = run_dir::saved_data_spec(&args.checkpoint)?;
    // The run's file or simulation, unless --data names another file.
    let (path, simulate) = match (&args.data, &saved) {
        (Some(p), _) => (p.clone(), None),
        (None, Some(s)) => (s.path.clone(), s.simulate.clone()),
        (None, None) => {
            return Err(
                run_dir::no_data_error("--data", &args.checkpoint, run_dir::PASS_DATA).into(),
            )
        }
    };
    let filters = if args.which_cells.filters.is_empty() {
        saved
            .as_ref()
            .map(|s| s.filters.clone())
            .unwrap_or_default()
    } else {
        args.which_cells.parsed_filters()?
    };
    let split = match (args.which_cells.spec()?, &saved) {
        (Some(given), _) => given,
        (None, Some(s)) if s.split != SplitSpec::None => s.split.clone(),
        _ => {
            return Err(Error::invalid("split", "say which units to sample: --split SPLIT.csv, --task TASK, or --conditions \"A+B @ k562\"").into());
        }
    };
    Ok(DataSpec {
        path,
        simulate,
        allow_negative: saved.as_ref().is_some_and(|s| s.allow_negative),
        columns: ObsColumns {
            perturbation: model.vocab.perturbation_column.clone(),
            covariates: model.vocab.covariate_columns.clone(),
            control: model.vocab.control.clone(),
        },
        layer: saved.as_ref().and_then(|s| s.layer.clone()),
        filters,
        split,
    })
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = args.runtime.apply()?;
    primeflow::progress::clear_interrupt();
    let started = Instant::now();
    let model = Model::load(&args.checkpoint, device)?;
    let sampler = Sampler::new(SampleConfig {
        steps: args.steps,
        solver: Solver::parse(&args.solver)?,
        guidance: args.guidance,
        cells_per_unit: args.cells_per_unit,
        max_batch: args.max_batch,
        memory: args
            .memory
            .as_deref()
            .map(primeflow::sample::sampler::parse_bytes)
            .transpose()?,
        rtol: args.rtol,
        atol: args.atol,
        seed: args.seed,
        clip_negative: args.clip,
    })?;
    let (ad, what) = if let Some(list) = &args.conditions {
        let conds: Vec<Condition> = list
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| model.vocab.parse(s))
            .collect::<primeflow::Result<_>>()?;
        if conds.is_empty() {
            return Err(Error::invalid("--conditions", "no condition given").into());
        }
        let n = conds.len();
        (
            sampler.sample_conditions(&model, &conds, args.cells_per_unit)?,
            format!("{n} requested conditions"),
        )
    } else {
        let part = Part::parse(&args.which)?;
        let spec = data_spec(&args, &model)?;
        // Sampling needs the units (obs) and genes, never X (the source cells
        // are the model's stored controls): X stays in the file, so a data
        // file larger than memory is sampled at the cost of its obs.
        let ds = if spec.simulate.is_some() {
            spec.load()?
        } else {
            spec.open_for_streaming()?
        };
        model.check_data(&ds)?;
        let split = spec
            .split(&ds)?
            .ok_or_else(|| Error::invalid("split", "no split to take units from"))?;
        let conds = Sampler::split_conditions(&ds, &split, part)?;
        let n = conds.len();
        (
            sampler.sample_split(&model, &ds, &split, part, args.cells_per_unit)?,
            format!("{n} {} units of {}", part.as_str(), ds.source_name()),
        )
    };
    write_h5ad(
        &args.out,
        &ad,
        &WriteOptions {
            x_format: XFormat::Dense,
            ..WriteOptions::default()
        },
    )?;
    println!(
        "Sampled {} cells x {} genes for {} ({} per unit; guidance w = {}, {}, {:.0} velocity evaluations per batch, {} cells per batch, seed {}) in {:.1} s -> {}",
        ad.n_obs(),
        ad.n_vars(),
        what,
        args.cells_per_unit,
        args.guidance,
        args.solver,
        sampler.mean_nfe(),
        sampler.config.chunk_cells(&model),
        args.seed,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
