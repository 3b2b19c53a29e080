//! `primeflow train`: train a model on an `.h5ad` file — a velocity field
//! (U-Net, MLP, FM PCA) with conditional flow matching, or a floor
//! (`control`, `additive`: statistics of the training cells) — writing
//! checkpoints, the final model and the loss history into `--out`.
//!
//! Settings come from, in order: the preset (`--preset`), a JSON config file
//! (`--config`, `{"model": {...}, "train": {...}}`, unknown keys are errors),
//! then the explicit flags. `--resume` continues the run in `--out` with its
//! saved settings and data set-up (only `--steps` may change). `--stream`
//! leaves X in the file and streams the training cells from it
//! (`train::stream`): files larger than memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use primeflow::model::{Family, Model};
use primeflow::train::{run_dir, RunRecord, Trainer};
use primeflow::Error;

use super::args::{ColumnArgs, RuntimeArgs, SplitArgs};

/// Arguments of `primeflow train`.
#[derive(Debug, Clone, clap::Args)]
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
    #[command(flatten)]
    pub which_cells: SplitArgs,
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
    /// Output folder (checkpoints, final model, history).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Train on layers/NAME instead of X.
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// How a condition's perturbations are encoded: multi-hot (the
    /// paper's: one bit per training perturbation), embedding (the sum of
    /// their rows of --embeddings, so perturbations never seen in training
    /// can be sampled) or both (concatenated) [default: multi-hot, or
    /// embedding when --embeddings is given].
    #[arg(long, value_name = "MODE")]
    pub condition_encoding: Option<String>,
    /// Perturbation embedding table keyed by gene (or compound) name: .tsv
    /// or .csv (name, then the values), .npy with FILE.names.txt beside it,
    /// .h5ad (obs_names, rows of X), or FILE.h5ad:varm/KEY (rows named by
    /// the var index; obsm/KEY: by the obs index). Saved with the model.
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Stream the training cells from the file instead of loading X
    /// (files larger than memory): chunks of consecutive cells read by a
    /// background thread, shuffled within a buffer of random chunks
    /// (flow models in gene space).
    #[arg(long)]
    pub stream: bool,
    /// Cells per streamed chunk [default: 1024].
    #[arg(long, value_name = "N", requires = "stream")]
    pub stream_chunk: Option<usize>,
    /// Chunks shuffled together in the streaming buffer [default: 64].
    #[arg(long, value_name = "K", requires = "stream")]
    pub stream_buffer: Option<usize>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = args.runtime.apply()?;
    let started = Instant::now();
    if args.resume {
        resume_run(&args, device, started)
    } else {
        fresh_run(&args, device, started)
    }
}

/// Continues the run in `--out` with its saved settings and data set-up
/// (`data.json`, written by `primeflow train` or by a script's trainer). A
/// run made without a recorded data set needs `--data` (and the split and
/// column flags of its training cells); their set-up is then recorded once
/// the checkpoint's data fingerprint has accepted the cells.
fn resume_run(args: &Args, device: tch::Device, started: Instant) -> anyhow::Result<()> {
    let (mut trainer, mut model) = Trainer::resume(&args.out, device)
        .with_context(|| format!("resuming {}", args.out.display()))?;
    let (mut spec, recorded) = match run_dir::read_data_spec(&args.out)? {
        Some(spec) => (spec, true),
        None if args.data.is_some() => (super::train_settings::data_spec(args)?, false),
        None => {
            return Err(run_dir::no_data_error("--resume", &args.out, run_dir::PASS_DATA).into())
        }
    };
    super::train_settings::check_resume(args, &model.config, &trainer.config, &spec)?;
    if args.condition_encoding.is_some() || args.embeddings.is_some() {
        let given = super::train_settings::condition_encoding(args)?.0;
        if given != model.vocab.encoding {
            return Err(Error::invalid(
                "--resume",
                format!(
                    "--condition-encoding: the run has {}, the command gives {}",
                    model.vocab.encoding.name(),
                    given.name()
                ),
            )
            .into());
        }
    }
    if let Some(d) = &args.data {
        if *d != spec.path || spec.simulate.is_some() {
            spec.path = d.clone();
            spec.simulate = None;
        }
    }
    let saved = trainer.config.clone();
    trainer.config = super::train_settings::apply_flags(args, saved)?;
    println!(
        "Resuming {} at step {} of {}",
        args.out.display(),
        trainer.start_step(),
        trainer.config.steps
    );
    let ds = if trainer.config.stream.is_some() {
        spec.open_for_streaming()?
    } else {
        spec.load()?
    };
    let (train, val) = spec.train_val(&ds)?;
    // The parts share X; the whole file's obs is no longer needed.
    drop(ds);
    let record = (!recorded).then_some(&train);
    train_and_report(
        args,
        &mut trainer,
        &mut model,
        &train,
        val.as_ref(),
        record,
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
    let settings = super::train_settings::Settings::from_args(args)?;
    let (mconf, preset) = (settings.model, settings.preset);
    let mut trainer = Trainer::new(settings.train)?;
    let spec = settings.data;
    let ds = if trainer.config.stream.is_some() {
        spec.open_for_streaming()?
    } else {
        spec.load()?
    };
    let (train, val) = spec.train_val(&ds)?;
    let summary = ds.summary();
    // The parts share X; the whole file's obs is no longer needed.
    drop(ds);
    let (encoding, table) = super::train_settings::condition_encoding(args)?;
    let vocab = train.vocab().with_encoding(encoding, table)?;
    let mut model = Model::new(
        mconf,
        train.genes.clone(),
        vocab,
        device,
        trainer.config.seed,
    )?;
    run_dir::record_fresh_run(
        &args.out,
        &train,
        Some(&RunRecord {
            kind: settings.kind.clone(),
            preset: preset.clone(),
        }),
    )?;
    print!("{summary}");
    println!(
        "Model: {} '{}' ({} parameters, {:.3} GFLOP/cell forward), {} genes, condition width {} ({}), device {}",
        model.config.kind(),
        preset,
        model.n_params(),
        model.config.flops_per_cell(model.n_genes(), model.cond_dim()) / 1e9,
        model.n_genes(),
        model.cond_dim(),
        model.vocab.encoding.name(),
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
            None,
            started,
        );
    }
    if c.val_every.is_some() && val.is_none() {
        println!("Note: no validation cells (no split, or its val part is empty): --val-every is ignored");
    }
    if let Some(sc) = &c.stream {
        println!(
            "Streaming X from {} in chunks of {} cells, shuffled within buffers of {} chunks",
            spec.path.display(),
            sc.chunk_rows,
            sc.buffer_chunks
        );
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
        None,
        started,
    )
}

/// Trains, then (with `record`) records the set-up of those training cells
/// in `--out`, and prints the outcome.
fn train_and_report(
    args: &Args,
    trainer: &mut Trainer,
    model: &mut Model,
    train: &primeflow::data::Dataset,
    val: Option<&primeflow::data::Dataset>,
    record: Option<&primeflow::data::Dataset>,
    started: Instant,
) -> anyhow::Result<()> {
    let h = trainer.fit(model, train, val, Some(&args.out))?;
    if let Some(cells) = record {
        if run_dir::record_resumed_run(&args.out, cells)? {
            println!(
                "Recorded the data set-up in {}",
                args.out.join(run_dir::DATA_FILE).display()
            );
        }
    }
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
