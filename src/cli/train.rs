//! `primeflow train`: train a model on an `.h5ad` file — a velocity field
//! (U-Net, MLP, FM PCA) with conditional flow matching, or a floor
//! (`control`, `additive`: statistics of the training cells) — writing
//! checkpoints, the final model and the loss history into `--out`.
//!
//! Settings come from, in order: the preset (`--preset`), a JSON config file
//! (`--config`, `{"model": {...}, "train": {...}}`, unknown keys are errors),
//! then the explicit flags. `--resume` continues the run in `--out` with its
//! saved settings and data set-up (only `--steps` may change).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use primeflow::data::{ObsColumns, Task};
use primeflow::model::config::normalize_kind;
use primeflow::model::{Family, Model, ModelConfig};
use primeflow::train::data::parse_filter;
use primeflow::train::{DataSpec, Precision, SplitSpec, TrainConfig, Trainer};
use primeflow::Error;

/// Arguments of `primeflow train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The training data (.h5ad, log1p expression). With --resume it
    /// defaults to the file the run was started on.
    #[arg(long, value_name = "FILE.h5ad")]
    pub data: Option<PathBuf>,
    /// Model kind: unet (PRiMeFlow), mlp (the paper's MLP ablation), pca
    /// (FM PCA), or the floors control and additive [default: unet].
    #[arg(long, value_name = "KIND")]
    pub model: Option<String>,
    /// Preset of the chosen model kind: tiny, small (CPU sizes and
    /// settings), norman19, srivatsan20 (the paper's tables for that kind:
    /// U-Net Tables 10-11, MLP 12-13, FM PCA 14-15). The paper's effective
    /// batch (batch x accumulation x GPUs) is reached on one device by
    /// gradient accumulation: the U-Net presets accumulate 16 micro-batches
    /// (4 x 4 GPUs) [default: small].
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// JSON settings over the preset: {"model": {...}, "train": {...}}.
    #[arg(long, value_name = "CFG.json")]
    pub config: Option<PathBuf>,
    /// A split CSV (see `primeflow split`); train on its train part.
    #[arg(long, value_name = "SPLIT.csv", conflicts_with = "task")]
    pub split: Option<PathBuf>,
    /// Generate a split for this task: covariate-transfer or combination.
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Seed of the generated split (and of unlisted controls of a CSV split).
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub split_seed: u64,
    /// Optimizer steps in total.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Cells per micro-batch.
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long, value_name = "K")]
    pub grad_accum: Option<usize>,
    /// Peak learning rate.
    #[arg(long, value_name = "X")]
    pub lr: Option<f64>,
    /// Seed of the initial weights and every training draw.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// fp32, or bf16 (CUDA autocast).
    #[arg(long, value_name = "fp32|bf16")]
    pub precision: Option<String>,
    /// Validation loss every N steps (needs a split with validation cells).
    #[arg(long, value_name = "N")]
    pub val_every: Option<usize>,
    /// Checkpoint every N steps (0: only at the end).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Record the loss every N steps.
    #[arg(long, value_name = "N")]
    pub log_every: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Output folder (checkpoints, final model, history).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// obs column with the perturbation labels.
    #[arg(long, value_name = "COL")]
    pub perturbation_col: Option<String>,
    /// obs covariate column (repeatable) [default: cell_type].
    #[arg(long = "covariate-col", value_name = "COL")]
    pub covariate_cols: Vec<String>,
    /// Use no covariate columns.
    #[arg(long, conflicts_with = "covariate_cols")]
    pub no_covariates: bool,
    /// The control label [default: control].
    #[arg(long, value_name = "LABEL")]
    pub control: Option<String>,
    /// Train on layers/NAME instead of X.
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// Keep only cells with obs COL == VALUE (repeatable), e.g. dataset=norman19.
    #[arg(long = "filter", value_name = "COL=VALUE")]
    pub filters: Vec<String>,
    /// CPU threads for libtorch's operators (default: libtorch's choice,
    /// one per core). 1 is faster for small models on a busy machine.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Reads `{"model": {...}, "train": {...}}`.
fn read_config(
    path: &Path,
) -> anyhow::Result<(Option<serde_json::Value>, Option<serde_json::Value>)> {
    let v: serde_json::Value = primeflow::atomic::read_json(path)?;
    let obj = v.as_object().ok_or_else(|| {
        Error::format(
            path,
            "(top level)",
            "must be a JSON object with keys 'model' and/or 'train'",
        )
    })?;
    for k in obj.keys() {
        if k != "model" && k != "train" {
            return Err(Error::unknown(
                format!("top-level key in {}", path.display()),
                k.as_str(),
                &["model", "train"],
            )
            .into());
        }
    }
    Ok((obj.get("model").cloned(), obj.get("train").cloned()))
}

/// The model config of `kind`/`preset` with the file's overrides.
fn model_config(
    kind: &str,
    preset: &str,
    overrides: Option<&serde_json::Value>,
    source: &str,
) -> anyhow::Result<ModelConfig> {
    let base = ModelConfig::preset(kind, preset)?;
    Ok(match overrides {
        Some(o) => base.merged(o, source)?,
        None => base,
    })
}

/// Applies the explicit flags over `cfg`.
fn apply_flags(args: &Args, mut cfg: TrainConfig) -> anyhow::Result<TrainConfig> {
    if let Some(v) = args.steps {
        cfg.steps = v;
    }
    if let Some(v) = args.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = args.grad_accum {
        cfg.grad_accum = v;
    }
    if let Some(v) = args.lr {
        cfg.lr = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    if let Some(p) = &args.precision {
        cfg.precision = match p.to_ascii_lowercase().as_str() {
            "fp32" | "f32" => Precision::Fp32,
            "bf16" => Precision::Bf16,
            other => return Err(Error::unknown("precision", other, &["fp32", "bf16"]).into()),
        };
    }
    if let Some(v) = args.val_every {
        cfg.val_every = Some(v);
    }
    if let Some(v) = args.checkpoint_every {
        cfg.checkpoint_every = v;
    }
    if let Some(v) = args.log_every {
        cfg.log_every = v;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The data set-up of a fresh run from the flags.
fn data_spec(args: &Args) -> anyhow::Result<DataSpec> {
    let path = args
        .data
        .clone()
        .ok_or_else(|| Error::invalid("--data", "the training data file is required"))?;
    let defaults = ObsColumns::default();
    let columns = ObsColumns {
        perturbation: args
            .perturbation_col
            .clone()
            .unwrap_or(defaults.perturbation),
        covariates: if args.no_covariates {
            Vec::new()
        } else if args.covariate_cols.is_empty() {
            defaults.covariates
        } else {
            args.covariate_cols.clone()
        },
        control: args.control.clone().unwrap_or(defaults.control),
    };
    let split = match (&args.split, &args.task) {
        (Some(p), _) => SplitSpec::File {
            path: p.clone(),
            seed: args.split_seed,
        },
        (None, Some(t)) => SplitSpec::Task {
            task: Task::parse(t)?,
            seed: args.split_seed,
            holdout_fraction: None,
        },
        (None, None) => SplitSpec::None,
    };
    Ok(DataSpec {
        path,
        columns,
        layer: args.layer.clone(),
        filters: args
            .filters
            .iter()
            .map(|f| parse_filter(f))
            .collect::<primeflow::Result<_>>()?,
        split,
    })
}

/// On --resume only --steps (and logging/checkpoint cadence, --data to
/// point at a moved file) may be given.
fn check_resume_flags(args: &Args) -> anyhow::Result<()> {
    let fixed = [
        ("--model", args.model.is_some()),
        ("--preset", args.preset.is_some()),
        ("--config", args.config.is_some()),
        ("--split", args.split.is_some()),
        ("--task", args.task.is_some()),
        ("--batch-size", args.batch_size.is_some()),
        ("--grad-accum", args.grad_accum.is_some()),
        ("--lr", args.lr.is_some()),
        ("--seed", args.seed.is_some()),
        ("--precision", args.precision.is_some()),
        ("--perturbation-col", args.perturbation_col.is_some()),
        (
            "--covariate-col",
            !args.covariate_cols.is_empty() || args.no_covariates,
        ),
        ("--control", args.control.is_some()),
        ("--layer", args.layer.is_some()),
        ("--filter", !args.filters.is_empty()),
    ];
    let given: Vec<&str> = fixed.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect();
    if !given.is_empty() {
        return Err(Error::invalid(
            "--resume",
            format!(
                "{} cannot change when resuming (the run's settings are in {}); only --steps, --val-every, --checkpoint-every, --log-every and --data may be given",
                given.join(", "),
                args.out.display()
            ),
        )
        .into());
    }
    Ok(())
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    primeflow::progress::set_quiet(args.quiet);
    if let Some(n) = args.threads {
        if n == 0 {
            return Err(Error::invalid("--threads", "must be at least 1").into());
        }
        tch::set_num_threads(n.min(i32::MAX as usize) as i32);
    }
    let device = primeflow::device::parse_device(&args.device)?;
    let started = Instant::now();
    if args.resume {
        resume_run(&args, device, started)
    } else {
        fresh_run(&args, device, started)
    }
}

/// Continues the run in `--out` with its saved settings and data set-up.
fn resume_run(args: &Args, device: tch::Device, started: Instant) -> anyhow::Result<()> {
    check_resume_flags(args)?;
    let (mut trainer, mut model) = Trainer::resume(&args.out, device)
        .with_context(|| format!("resuming {}", args.out.display()))?;
    let mut spec = DataSpec::read(&args.out)?.ok_or_else(|| {
        Error::invalid(
            "--resume",
            format!(
                "{} has no data.json (was it written by `primeflow train`?)",
                args.out.display()
            ),
        )
    })?;
    if let Some(d) = &args.data {
        spec.path = d.clone();
    }
    let saved = trainer.config.clone();
    trainer.config = apply_flags(args, saved)?;
    println!(
        "Resuming {} at step {} of {}",
        args.out.display(),
        trainer.start_step(),
        trainer.config.steps
    );
    let ds = spec.load()?;
    let (train, val) = spec.train_val(&ds)?;
    train_and_report(
        args,
        &mut trainer,
        &mut model,
        &train,
        val.as_ref(),
        started,
    )
}

/// A fresh run: settings from preset, config file and flags; load data;
/// build the model on the training cells' vocabulary; save the data set-up;
/// train.
fn fresh_run(args: &Args, device: tch::Device, started: Instant) -> anyhow::Result<()> {
    if primeflow::train::latest_checkpoint(&args.out)?.is_some() {
        return Err(Error::invalid(
            "--out",
            format!("{} already holds a training run; pass --resume to continue it, or choose another folder", args.out.display()),
        )
        .into());
    }
    let kind = normalize_kind(args.model.as_deref().unwrap_or("unet"))?;
    let preset = args.preset.clone().unwrap_or_else(|| "small".into());
    let (model_over, train_over) = match &args.config {
        Some(p) => read_config(p)?,
        None => (None, None),
    };
    let source = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mconf = model_config(&kind, &preset, model_over.as_ref(), &source)?;
    let mut tconf = TrainConfig::preset(&kind, &preset)?;
    if let Some(o) = &train_over {
        tconf = tconf.merged(o, &source)?;
    }
    let mut trainer = Trainer::new(apply_flags(args, tconf)?)?;
    let spec = data_spec(args)?;
    let ds = spec.load()?;
    let (train, val) = spec.train_val(&ds)?;
    let mut model = Model::for_dataset(mconf, &train, device, trainer.config.seed)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    spec.save(&args.out)?;
    print!("{}", ds.summary());
    println!(
        "Model: {} '{}' ({} parameters, {:.3} GFLOP/cell forward), {} genes, condition width {}, device {}",
        model.config.kind(),
        preset,
        model.n_params(),
        model.config.flops_per_cell(model.n_genes(), model.cond_dim()) / 1e9,
        model.n_genes(),
        model.cond_dim(),
        primeflow::device::device_name(device)
    );
    let c = &trainer.config;
    if model.config.family() == Family::Floor {
        println!(
            "Fitting the {} floor's statistics on {} training cells (no weights, no steps)",
            model.config.kind(),
            train.n_cells()
        );
        return train_and_report(
            args,
            &mut trainer,
            &mut model,
            &train,
            val.as_ref(),
            started,
        );
    }
    if c.val_every.is_some() && val.is_none() {
        println!("Note: no validation cells (no split, or its val part is empty): --val-every is ignored");
    }
    println!(
        "Training on {} cells{}: {} steps x {} cells (batch {} x accumulation {}), lr {}, seed {}",
        train.n_cells(),
        val.as_ref()
            .map(|v| format!(" ({} validation cells)", v.n_cells()))
            .unwrap_or_default(),
        c.steps,
        c.batch_size * c.grad_accum,
        c.batch_size,
        c.grad_accum,
        c.lr,
        c.seed
    );
    train_and_report(
        args,
        &mut trainer,
        &mut model,
        &train,
        val.as_ref(),
        started,
    )
}

fn train_and_report(
    args: &Args,
    trainer: &mut Trainer,
    model: &mut Model,
    train: &primeflow::data::Dataset,
    val: Option<&primeflow::data::Dataset>,
    started: Instant,
) -> anyhow::Result<()> {
    let h = trainer.fit(model, train, val, Some(&args.out))?;
    let rows = &h.rows;
    let mean_rate = if rows.is_empty() {
        0.0
    } else {
        rows.iter().map(|r| r.cells_per_s).sum::<f64>() / rows.len() as f64
    };
    println!(
        "Step {}: loss {}{} | {:.0} cells/s | {:.1} s",
        h.final_step,
        h.last_loss()
            .map(|l| format!("{l:.4}"))
            .unwrap_or_else(|| "-".into()),
        h.best_val_loss
            .map(|(s, v)| format!(", best validation loss {v:.4} at step {s}"))
            .unwrap_or_default(),
        mean_rate,
        started.elapsed().as_secs_f64()
    );
    println!("Checkpoint: {} (history: history.csv)", args.out.display());
    if h.stopped_early {
        println!("Stopped early: the validation loss stopped improving");
    }
    if h.interrupted {
        println!(
            "Interrupted: continue with `primeflow train --resume --out {}`",
            args.out.display()
        );
        return Err(Error::Interrupted.into());
    }
    Ok(())
}
