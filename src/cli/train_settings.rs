//! The settings of a `primeflow train` run from its flags (preset, config
//! file, explicit flags, data set-up), and the check that a repeated
//! command with `--resume` appended changes nothing it may not: every flag given again must equal
//! the run's value, and each that differs is named.

use std::path::Path;

use primeflow::data::{ConditionEncoding, EmbeddingTable, ObsColumns, SplitSpec};
use primeflow::model::config::normalize_kind;
use primeflow::model::ModelConfig;
use primeflow::train::{DataSpec, Precision, RunRecord, TrainConfig};
use primeflow::Error;

use super::train::Args;

/// Everything a fresh run is made of.
#[derive(Debug)]
pub struct Settings {
    pub kind: String,
    pub preset: String,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub data: DataSpec,
}

impl Settings {
    /// The settings of a fresh run: preset, then the config file, then the
    /// flags.
    pub fn from_args(args: &Args) -> anyhow::Result<Settings> {
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
        let model = model_config(&kind, &preset, model_over.as_ref(), &source)?;
        let mut train = TrainConfig::preset(&kind, &preset)?;
        if let Some(o) = &train_over {
            train = train.merged(o, &source)?;
        }
        Ok(Settings {
            train: apply_flags(args, train)?,
            data: data_spec(args)?,
            kind,
            preset,
            model,
        })
    }
}

/// On `--resume`, every flag given again must equal the run's value
/// (`--steps`, `--val-every`, `--checkpoint-every`, `--log-every` and `--data`
/// may change). The error names each flag that differs with both values.
pub fn check_resume(
    args: &Args,
    model: &ModelConfig,
    train: &TrainConfig,
    spec: &DataSpec,
) -> anyhow::Result<()> {
    let mut diffs: Vec<String> = Vec::new();
    fn differ(diffs: &mut Vec<String>, flag: &str, run: String, given: String) {
        if run != given {
            diffs.push(format!(
                "{flag}: the run has {run}, the command gives {given}"
            ));
        }
    }
    let record = RunRecord::read(&args.out)?;
    if let Some(k) = &args.model {
        differ(
            &mut diffs,
            "--model",
            model.kind().to_string(),
            normalize_kind(k)?,
        );
    }
    if let Some(p) = &args.preset {
        match &record {
            Some(r) => differ(
                &mut diffs,
                "--preset",
                r.preset.clone(),
                p.trim().to_ascii_lowercase(),
            ),
            None => diffs.push(format!(
                "--preset: the run in {} has no run.json recording its preset; leave --preset out",
                args.out.display()
            )),
        }
    }
    if let Some(path) = &args.config {
        let (m, t) = read_config(path)?;
        let saved_m = serde_json::to_value(model)?;
        let saved_t = serde_json::to_value(train)?;
        for (what, over, saved) in [("model", m, saved_m), ("train", t, saved_t)] {
            let Some(over) = over else { continue };
            let merged = {
                let mut v = saved.clone();
                primeflow::overlay::merge_into(&mut v, &over);
                v
            };
            if let (Some(a), Some(b)) = (saved.as_object(), merged.as_object()) {
                for (k, v) in b {
                    if what == "train"
                        && ["steps", "val_every", "checkpoint_every", "log_every"]
                            .contains(&k.as_str())
                    {
                        continue;
                    }
                    if a.get(k) != Some(v) {
                        differ(
                            &mut diffs,
                            &format!("--config {} ({what}.{k})", path.display()),
                            a.get(k)
                                .map(|x| x.to_string())
                                .unwrap_or_else(|| "nothing".into()),
                            v.to_string(),
                        );
                    }
                }
            }
        }
    }
    let num = |x: f64| format!("{x}");
    if let Some(v) = args.batch_size {
        differ(
            &mut diffs,
            "--batch-size",
            train.batch_size.to_string(),
            v.to_string(),
        );
    }
    if let Some(v) = args.grad_accum {
        differ(
            &mut diffs,
            "--grad-accum",
            train.grad_accum.to_string(),
            v.to_string(),
        );
    }
    if let Some(v) = args.lr {
        differ(&mut diffs, "--lr", num(train.lr), num(v));
    }
    if let Some(v) = args.seed {
        differ(&mut diffs, "--seed", train.seed.to_string(), v.to_string());
    }
    if let Some(p) = &args.precision {
        differ(
            &mut diffs,
            "--precision",
            format!("{:?}", train.precision).to_ascii_lowercase(),
            p.to_ascii_lowercase(),
        );
    }
    if args.stream {
        let mut given = train.stream.clone().unwrap_or_default();
        given.chunk_rows = args.stream_chunk.unwrap_or(given.chunk_rows);
        given.buffer_chunks = args.stream_buffer.unwrap_or(given.buffer_chunks);
        differ(
            &mut diffs,
            "--stream/--stream-chunk/--stream-buffer",
            format!("{:?}", train.stream),
            format!("{:?}", Some(given)),
        );
    }
    // The data set-up: compare the parts the flags give.
    let given = DataSpec {
        path: args.data.clone().unwrap_or_else(|| spec.path.clone()),
        ..data_spec_parts(args, spec)?
    };
    if args.columns.given() {
        differ(
            &mut diffs,
            "--perturbation-col/--covariate-col/--control",
            format!("{:?}", spec.columns),
            format!("{:?}", given.columns),
        );
    }
    if args.layer.is_some() {
        differ(
            &mut diffs,
            "--layer",
            format!("{:?}", spec.layer),
            format!("{:?}", given.layer),
        );
    }
    if !args.which_cells.filters.is_empty() {
        differ(
            &mut diffs,
            "--filter",
            format!("{:?}", spec.filters),
            format!("{:?}", given.filters),
        );
    }
    if args.which_cells.split_given() {
        differ(
            &mut diffs,
            "--split/--task/--split-seed",
            format!("{:?}", spec.split),
            format!("{:?}", given.split),
        );
    }
    if !diffs.is_empty() {
        return Err(Error::invalid(
            "--resume",
            format!(
                "these settings differ from the run in {} (only --steps, --val-every, --checkpoint-every, --log-every and --data may change):\n  {}",
                args.out.display(),
                diffs.join("\n  ")
            ),
        )
        .into());
    }
    Ok(())
}

/// The data set-up the flags describe, with `saved`'s values where a flag
/// is absent (for comparison on resume).
fn data_spec_parts(args: &Args, saved: &DataSpec) -> anyhow::Result<DataSpec> {
    let mut a = args.clone();
    if a.data.is_none() {
        a.data = Some(saved.path.clone());
    }
    let mut spec = data_spec(&a)?;
    if !args.columns.given() {
        spec.columns = saved.columns.clone();
    }
    if !args.which_cells.split_given() {
        spec.split = saved.split.clone();
    }
    Ok(spec)
}

/// Reads `{"model": {...}, "train": {...}}`.
pub(super) fn read_config(
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
pub(super) fn model_config(
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
pub(super) fn apply_flags(args: &Args, mut cfg: TrainConfig) -> anyhow::Result<TrainConfig> {
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
    if args.stream {
        let mut sc = cfg.stream.clone().unwrap_or_default();
        if let Some(v) = args.stream_chunk {
            sc.chunk_rows = v;
        }
        if let Some(v) = args.stream_buffer {
            sc.buffer_chunks = v;
        }
        cfg.stream = Some(sc);
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The data set-up of a fresh run from the flags.
pub(super) fn data_spec(args: &Args) -> anyhow::Result<DataSpec> {
    let path = args
        .data
        .clone()
        .ok_or_else(|| Error::invalid("--data", "the training data file is required"))?;
    let columns = args.columns.resolve(ObsColumns::default());
    Ok(DataSpec {
        path,
        simulate: None,
        allow_negative: false,
        columns,
        layer: args.layer.clone(),
        filters: args.which_cells.parsed_filters()?,
        split: args.which_cells.spec()?.unwrap_or(SplitSpec::None),
    })
}

/// The condition encoding of `--condition-encoding` and `--embeddings`:
/// the mode (default multi-hot, or embedding when a table is given) and the
/// table read from the file. A table without a mode that uses it, or a mode
/// without a table, is an error.
pub fn condition_encoding(
    args: &Args,
) -> anyhow::Result<(ConditionEncoding, Option<EmbeddingTable>)> {
    let mode = match (&args.condition_encoding, &args.embeddings) {
        (Some(m), _) => ConditionEncoding::parse(m)?,
        (None, Some(_)) => ConditionEncoding::Embedding,
        (None, None) => ConditionEncoding::MultiHot,
    };
    let table = match &args.embeddings {
        Some(p) => Some(EmbeddingTable::read(p)?),
        None => None,
    };
    if mode == ConditionEncoding::MultiHot && table.is_some() {
        return Err(Error::invalid(
            "--embeddings",
            "the multi-hot encoding uses no embeddings; pass --condition-encoding embedding or both",
        )
        .into());
    }
    if mode != ConditionEncoding::MultiHot && table.is_none() {
        return Err(Error::invalid(
            "--condition-encoding",
            format!("'{}' needs --embeddings FILE", mode.name()),
        )
        .into());
    }
    Ok((mode, table))
}
