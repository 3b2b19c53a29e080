//! A model folder on disk: the file names, [`Model::save`] /
//! [`Model::load`], and safetensors reading and writing (see the module
//! docs of [`crate::model::model`] for the layout).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

use crate::data::ConditionVocab;
use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::stats::DataStats;
use crate::model::Model;

/// File name of the weights in a model folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// File name of the averaged (EMA) weights, when training kept them.
pub const EMA_FILE: &str = "ema.safetensors";
/// File name of the model config.
pub const CONFIG_FILE: &str = "model.json";
/// File name of the condition vocabulary.
pub const VOCAB_FILE: &str = "vocab.json";
/// File name of the embedding table's values (embedding-encoded models).
pub const EMBEDDINGS_FILE: &str = "embeddings.safetensors";
/// File name of the gene list.
pub const GENES_FILE: &str = "genes.json";
/// In a training output folder: the file naming the latest checkpoint folder.
pub const LATEST_FILE: &str = "latest";

impl Model {
    /// Writes the model folder `dir` (created if needed): weights, config,
    /// vocabulary and genes, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.save_weights(&dir.join(WEIGHTS_FILE))?;
        crate::atomic::write_json(&dir.join(CONFIG_FILE), &self.config)?;
        crate::atomic::write_json(&dir.join(VOCAB_FILE), &self.vocab)?;
        if let Some(t) = &self.vocab.embeddings {
            let values =
                Tensor::f_from_slice(t.values())?.f_reshape([t.len() as i64, t.dim as i64])?; // [n, d]
            write_tensors(
                &dir.join(EMBEDDINGS_FILE),
                &[("embeddings".to_string(), values)],
            )?;
        }
        crate::atomic::write_json(&dir.join(GENES_FILE), &self.genes)?;
        if self.has_stats() {
            self.stats()?.save(dir)?;
        }
        Ok(())
    }

    /// Writes the parameters to `path` (safetensors, f32, CPU copies).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        write_tensors(path, &self.named_parameters())
    }

    /// Loads a model folder, or a training output folder whose `latest`
    /// file names its newest checkpoint, for use: with the averaged (EMA)
    /// weights when the folder has them.
    pub fn load(dir: &Path, device: Device) -> Result<Model> {
        Self::load_with(dir, device, true)
    }

    /// Loads a model folder (see [`load`](Self::load)); `prefer_ema` picks
    /// the averaged weights over the trained ones when both exist (resuming
    /// training needs the trained ones).
    pub fn load_with(dir: &Path, device: Device, prefer_ema: bool) -> Result<Model> {
        let dir = resolve_model_dir(dir)?;
        let raw: serde_json::Value = crate::atomic::read_json(&dir.join(CONFIG_FILE))?;
        let config = ModelConfig::from_json(raw, &dir.join(CONFIG_FILE).display().to_string())?;
        let mut vocab: ConditionVocab = crate::atomic::read_json(&dir.join(VOCAB_FILE))?;
        if let Some(t) = vocab.embeddings.as_mut() {
            let path = dir.join(EMBEDDINGS_FILE);
            let stored = read_tensors(&path)?;
            let v = stored
                .get("embeddings")
                .ok_or_else(|| Error::format(&path, "embeddings", "the tensor is missing"))?;
            let flat: Vec<f32> = Vec::try_from(v.f_to_kind(tch::Kind::Float)?.f_flatten(0, -1)?)
                .map_err(|e: tch::TchError| Error::format(&path, "embeddings", e.to_string()))?;
            t.restore_values(flat, &path)?;
        }
        let genes: Vec<String> = crate::atomic::read_json(&dir.join(GENES_FILE))?;
        let mut model = Model::new(config, genes, vocab, device, 0)?;
        let ema = dir.join(EMA_FILE);
        if prefer_ema && ema.is_file() {
            model.load_weights(&ema)?;
        } else if model.config.has_weights() {
            model.load_weights(&dir.join(WEIGHTS_FILE))?;
        }
        if let Some(stats) = DataStats::load(&dir, model.n_genes())? {
            model.set_stats(stats)?;
        }
        model.source = Some(dir);
        Ok(model)
    }

    /// Copies the weights in `path` into this model; every parameter must be
    /// present with the same shape (the error names the tensor and both
    /// shapes).
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let stored = read_tensors(path)?;
        let _guard = tch::no_grad_guard();
        for (name, mut var) in self.named_parameters() {
            let src = stored.get(&name).ok_or_else(|| {
                Error::format(
                    path,
                    &name,
                    "this parameter is missing (the file belongs to a different model)",
                )
            })?;
            if src.size() != var.size() {
                return Err(Error::format(
                    path,
                    &name,
                    format!(
                        "shape {:?} in the file, the model expects {:?}",
                        src.size(),
                        var.size()
                    ),
                ));
            }
            var.f_copy_(&src.f_to_kind(var.kind())?.f_to_device(var.device())?)?;
        }
        Ok(())
    }
}

/// `dir` itself when it holds `model.json`; else the folder named by its
/// `latest` file.
pub fn resolve_model_dir(dir: &Path) -> Result<PathBuf> {
    if dir.join(CONFIG_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let latest = dir.join(LATEST_FILE);
    if latest.is_file() {
        let name = std::fs::read_to_string(&latest).map_err(|e| Error::io(&latest, e))?;
        let target = dir.join(name.trim());
        if target.join(CONFIG_FILE).is_file() {
            return Ok(target);
        }
        return Err(Error::format(
            &latest,
            "latest",
            format!("names '{}', which holds no {CONFIG_FILE}", name.trim()),
        ));
    }
    Err(Error::invalid(
        "checkpoint",
        format!("{} holds neither {CONFIG_FILE} (a model folder) nor '{LATEST_FILE}' (a training output folder)", dir.display()),
    ))
}

/// Writes named tensors to a safetensors file atomically (contiguous CPU
/// copies, dtype kept).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| {
            Ok((
                n.clone(),
                t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?,
            ))
        })
        .collect::<Result<_>>()?;
    crate::atomic::write_atomic(path, |tmp| Ok(Tensor::write_safetensors(&cpu, tmp)?))
}

/// Reads every tensor of a safetensors file (on the CPU), naming the file on
/// error.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            message: "no such file".into(),
            os: None,
        });
    }
    let v = Tensor::read_safetensors(path)
        .map_err(|e| Error::format(path, "safetensors", Error::from(e).to_string()))?;
    Ok(v.into_iter().collect())
}
