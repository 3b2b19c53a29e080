//! `UNetVelocity` / `MlpVelocity`: velocity-field models as one script type,
//! `Model` (a cheap `Rc<RefCell<..>>` handle over [`crate::model::Model`]).
//!
//! A model is made from a preset name or a map of config fields and is
//! *built* (weights allocated for its genes and condition vocabulary) when
//! it first meets data: `trainer.fit(model, data)`, `model.build(data)`, or
//! the two-argument constructor.
//!
//! The map may also set the condition encoding (issue 12):
//! `condition_encoding` (`"multi-hot"`, the default; `"embedding"`;
//! `"both"`) and `embeddings` (the table's file, see
//! [`crate::data::embedding`]; alone it means `"embedding"`).
//!
//! ```rhai
//! let model = UNetVelocity("tiny");
//! let mlp = MlpVelocity(#{preset: "small", dropout: 0.0});
//! let emb = MlpVelocity(#{preset: "cpu", embeddings: "genes.tsv"});
//! Trainer(#{steps: 100}).fit(model, data);
//! print(model.n_params);
//! ```

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Array, Dynamic};
use tch::Device;

use super::condition::ConditionHandle;
use super::convert::{from_json, path_arg};
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, to_rhai, RhaiResult};
use super::model_spec::make;
use crate::data::{ConditionEncoding, Dataset, EmbeddingTable};
use crate::model::{Model, ModelConfig};

/// The state behind a model handle.
#[derive(Debug)]
pub struct ModelSlot {
    /// Which network and its hyperparameters.
    pub config: ModelConfig,
    /// The preset it came from, for display.
    pub preset: String,
    /// Where it lives / will live.
    pub device: Device,
    /// Seed of the initial weights (else the trainer's seed).
    pub seed: Option<u64>,
    /// The built model (weights, genes, vocabulary).
    pub model: Option<Model>,
    /// How its conditions are encoded once built (with the embedding
    /// table, read when the handle was made).
    pub encoding: (ConditionEncoding, Option<EmbeddingTable>),
}

/// A model handle (cheap to clone; clones share the weights).
#[derive(Debug, Clone)]
pub struct ModelHandle(pub Rc<RefCell<ModelSlot>>);

impl ModelHandle {
    /// Builds the weights for `ds` unless built; `seed` is used when the
    /// handle has none.
    pub fn ensure_built(&self, ds: &Dataset, seed: u64) -> RhaiResult<()> {
        let mut s = self.0.borrow_mut();
        if s.model.is_some() {
            return Ok(());
        }
        let (cfg, device, seed) = (s.config.clone(), s.device, s.seed.unwrap_or(seed));
        let (encoding, table) = s.encoding.clone();
        let _rng = crate::device::rng_guard(None);
        s.model = Some(guard(|| {
            let vocab = ds.vocab().with_encoding(encoding, table)?;
            Model::new(cfg, ds.genes.clone(), vocab, device, seed)
        })?);
        Ok(())
    }

    /// `UNetVelocity`, `MlpVelocity`, or `Model` for the other kinds.
    pub fn type_label(&self) -> &'static str {
        type_label(self.0.borrow().config.kind())
    }

    fn not_built(&self) -> Box<EvalAltResult> {
        invalid(
            "model",
            format!(
                "this {} is not built yet: it needs the genes and perturbations of its data; train it or call model.build(data)",
                self.type_label()
            ),
        )
    }

    /// Runs `f` on the built model.
    pub fn with_model<T>(&self, f: impl FnOnce(&Model) -> RhaiResult<T>) -> RhaiResult<T> {
        let s = self.0.borrow();
        match &s.model {
            Some(m) => f(m),
            None => {
                drop(s);
                Err(self.not_built())
            }
        }
    }
}

/// Loads a model folder; with `kind`, the folder must hold that kind.
fn load(kind: Option<&str>, dir: &str) -> RhaiResult<ModelHandle> {
    let p = path_arg("model folder", dir)?;
    let device = Device::cuda_if_available();
    let model = guard(|| Model::load(Path::new(&p), device))?;
    if let Some(kind) = kind {
        if model.config.kind() != kind {
            return Err(invalid(
                "model folder",
                format!(
                    "{dir} holds a {} model; load it with {}::load",
                    model.config.kind(),
                    type_label(model.config.kind())
                ),
            ));
        }
    }
    Ok(ModelHandle(Rc::new(RefCell::new(ModelSlot {
        config: model.config.clone(),
        preset: "loaded".into(),
        device,
        seed: None,
        encoding: (model.vocab.encoding, model.vocab.embeddings.clone()),
        model: Some(model),
    }))))
}

/// The script type name of a model kind.
pub fn type_label(kind: &str) -> &'static str {
    match kind {
        "unet" => "UNetVelocity",
        "mlp" => "MlpVelocity",
        _ => "Model",
    }
}

fn built(kind: &str, spec: Dynamic, data: &DatasetHandle) -> RhaiResult<ModelHandle> {
    let h = make(kind, spec)?;
    h.ensure_built(&data.0, 0)?;
    Ok(h)
}

#[export_module]
pub mod model_api {
    use super::*;

    /// A velocity-field model (`UNetVelocity` or `MlpVelocity`): its config,
    /// and once built its weights, genes and condition vocabulary.
    /// ```rhai
    /// let model = UNetVelocity("tiny");
    /// print(model.config);
    /// ```
    pub type Model = ModelHandle;

    /// The paper's U-Net velocity field from a preset (`tiny`, `small`,
    /// `norman19`, `srivatsan20`) or a map: `preset` (default `tiny`),
    /// `device` (`auto`, `cpu`, `cuda`), `seed` and any U-Net config field.
    /// ```rhai
    /// let model = UNetVelocity("tiny");
    /// let big = UNetVelocity(#{preset: "norman19", dropout: 0.0, device: "cuda"});
    /// ```
    #[rhai_fn(name = "UNetVelocity", return_raw)]
    pub fn unet(spec: Dynamic) -> RhaiResult<Model> {
        make("unet", spec)
    }

    /// The `tiny` U-Net preset.
    /// ```rhai
    /// let model = UNetVelocity();
    /// ```
    #[rhai_fn(name = "UNetVelocity", return_raw)]
    pub fn unet_default() -> RhaiResult<Model> {
        make("unet", Dynamic::from("tiny".to_string()))
    }

    /// A U-Net built for a dataset's genes and conditions (weights
    /// allocated, `n_params` known).
    /// ```rhai
    /// let model = UNetVelocity("tiny", data);
    /// print(model.n_params);
    /// ```
    #[rhai_fn(name = "UNetVelocity", return_raw)]
    pub fn unet_for(spec: Dynamic, data: DatasetHandle) -> RhaiResult<Model> {
        built("unet", spec, &data)
    }

    /// The PRiMeFlow MLP ablation from a preset (`tiny`, `small`,
    /// `norman19`, `srivatsan20`) or a map (as for `UNetVelocity`).
    /// ```rhai
    /// let mlp = MlpVelocity("small");
    /// ```
    #[rhai_fn(name = "MlpVelocity", return_raw)]
    pub fn mlp(spec: Dynamic) -> RhaiResult<Model> {
        make("mlp", spec)
    }

    /// The `tiny` MLP preset.
    /// ```rhai
    /// let mlp = MlpVelocity();
    /// ```
    #[rhai_fn(name = "MlpVelocity", return_raw)]
    pub fn mlp_default() -> RhaiResult<Model> {
        make("mlp", Dynamic::from("tiny".to_string()))
    }

    /// An MLP built for a dataset's genes and conditions.
    /// ```rhai
    /// let mlp = MlpVelocity("tiny", data);
    /// ```
    #[rhai_fn(name = "MlpVelocity", return_raw)]
    pub fn mlp_for(spec: Dynamic, data: DatasetHandle) -> RhaiResult<Model> {
        built("mlp", spec, &data)
    }

    /// Any model kind (`unet`, `mlp`, `pca`, `control`, `additive`; see
    /// `:help` of the CLI's `--model`) from its `tiny` preset. Baselines and
    /// floors train, sample and evaluate like the flow models.
    /// ```rhai
    /// let floor = Model("additive");
    /// ```
    #[rhai_fn(name = "Model", return_raw)]
    pub fn model_kind(kind: &str) -> RhaiResult<Model> {
        let k = crate::model::config::normalize_kind(kind).map_err(to_rhai)?;
        make(&k, Dynamic::from("tiny".to_string()))
    }

    /// Any model kind with a preset name or a map of settings (as for
    /// `UNetVelocity`); settings that the kind does not have are errors
    /// listing the valid ones.
    /// ```rhai
    /// let pca = Model("pca", #{preset: "small", n_components: 20});
    /// ```
    #[rhai_fn(name = "Model", return_raw)]
    pub fn model_kind_spec(kind: &str, spec: Dynamic) -> RhaiResult<Model> {
        let k = crate::model::config::normalize_kind(kind).map_err(to_rhai)?;
        make(&k, spec)
    }

    /// Allocates the weights for `data`'s genes and conditions (seeded by
    /// the model's `seed`, else 0). Training builds an unbuilt model itself.
    /// ```rhai
    /// model.build(data);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn build(model: &mut Model, data: DatasetHandle) -> RhaiResult<()> {
        model.ensure_built(&data.0, 0)
    }

    /// The kind: `unet`, `mlp`, `pca`, `control`, `additive`.
    /// ```rhai
    /// model.kind
    /// ```
    #[rhai_fn(get = "kind", pure)]
    pub fn kind(model: &mut Model) -> String {
        model.0.borrow().config.kind().to_string()
    }

    /// The config as a map (the fields of `model.json`).
    /// ```rhai
    /// model.config.dropout
    /// ```
    #[rhai_fn(get = "config", pure)]
    pub fn config(model: &mut Model) -> Dynamic {
        serde_json::to_value(&model.0.borrow().config)
            .map(|j| from_json(&j))
            .unwrap_or(Dynamic::UNIT)
    }

    /// True once the weights exist.
    /// ```rhai
    /// model.is_built
    /// ```
    #[rhai_fn(get = "is_built", pure)]
    pub fn is_built(model: &mut Model) -> bool {
        model.0.borrow().model.is_some()
    }

    /// Number of trainable parameters (the model must be built).
    /// ```rhai
    /// print(model.n_params);
    /// ```
    #[rhai_fn(get = "n_params", pure, return_raw)]
    pub fn n_params(model: &mut Model) -> RhaiResult<i64> {
        model.with_model(|m| Ok(m.n_params() as i64))
    }

    /// The genes the model was built for, in order.
    /// ```rhai
    /// model.genes.len()
    /// ```
    #[rhai_fn(get = "genes", pure, return_raw)]
    pub fn genes(model: &mut Model) -> RhaiResult<Array> {
        model.with_model(|m| Ok(super::super::convert::string_array(&m.genes)))
    }

    /// The perturbations the model knows (its vocabulary).
    /// ```rhai
    /// model.perturbations
    /// ```
    #[rhai_fn(get = "perturbations", pure, return_raw)]
    pub fn perturbations(model: &mut Model) -> RhaiResult<Array> {
        model.with_model(|m| Ok(super::super::convert::string_array(&m.vocab.perturbations)))
    }

    /// Forward FLOPs per generated cell (U-Net only; unit for the MLP):
    /// training costs about 3x this per cell, guided sampling 2x per ODE
    /// step.
    /// ```rhai
    /// print(model.flops_per_cell / 1e9);   // GFLOP
    /// ```
    #[rhai_fn(get = "flops_per_cell", pure, return_raw)]
    pub fn flops_per_cell(model: &mut Model) -> RhaiResult<Dynamic> {
        model.with_model(|m| {
            Ok(match &m.config {
                ModelConfig::Unet(c) => Dynamic::from_float(
                    crate::model::UNetVelocity::flops_per_cell(c, m.n_genes(), m.cond_dim()),
                ),
                _ => Dynamic::UNIT,
            })
        })
    }

    /// `cpu` or `cuda:N`.
    /// ```rhai
    /// model.device
    /// ```
    #[rhai_fn(get = "device", pure)]
    pub fn device(model: &mut Model) -> String {
        crate::device::device_name(model.0.borrow().device)
    }

    /// Writes the model folder (weights.safetensors, model.json,
    /// vocab.json, genes.json) and returns it.
    /// ```rhai
    /// model.save("out/unet");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save(model: &mut Model, dir: &str) -> RhaiResult<String> {
        let p = path_arg("model folder", dir)?;
        model.with_model(|m| guard(|| m.save(&p)))?;
        Ok(dir.to_string())
    }

    /// The condition's encoding `Enc(c)` under the model's vocabulary.
    /// ```rhai
    /// let enc = Condition("KLF1+MAP2K6 @ k562").encode(model);
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn encode(c: &mut ConditionHandle, model: Model) -> RhaiResult<Array> {
        model.with_model(|m| {
            let cond = c.resolve(&m.vocab)?;
            let enc = m.vocab.encode(&cond).map_err(to_rhai)?;
            Ok(enc
                .into_iter()
                .map(|v| Dynamic::from_float(v as f64))
                .collect())
        })
    }

    /// The kind, preset, size and device.
    /// ```rhai
    /// print(model);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(model: &mut Model) -> String {
        let label = model.type_label();
        let s = model.0.borrow();
        match &s.model {
            Some(m) => format!(
                "{label} ({}): {} parameters, {} genes, condition width {}, on {}",
                s.preset,
                m.n_params(),
                m.n_genes(),
                m.cond_dim(),
                crate::device::device_name(m.device())
            ),
            None => format!(
                "{label} ({}), not built yet (train it or call .build(data))",
                s.preset
            ),
        }
    }
}

#[export_module]
pub mod unet_static {
    /// Loads a saved U-Net model folder (or a training folder's latest
    /// checkpoint).
    /// ```rhai
    /// let model = UNetVelocity::load("out/quickstart/checkpoints");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load(dir: &str) -> Result<super::ModelHandle, Box<rhai::EvalAltResult>> {
        super::load(Some("unet"), dir)
    }
}

#[export_module]
pub mod model_static {
    /// Loads a saved model folder of any kind (or a training folder's
    /// latest checkpoint).
    /// ```rhai
    /// let model = Model::load("out/additive");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load(dir: &str) -> Result<super::ModelHandle, Box<rhai::EvalAltResult>> {
        super::load(None, dir)
    }
}

#[export_module]
pub mod mlp_static {
    /// Loads a saved MLP model folder (or a training folder's latest
    /// checkpoint).
    /// ```rhai
    /// let mlp = MlpVelocity::load("out/mlp");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load(dir: &str) -> Result<super::ModelHandle, Box<rhai::EvalAltResult>> {
        super::load(Some("mlp"), dir)
    }
}

/// Registers `Model`, `UNetVelocity(...)`, `MlpVelocity(...)` and their
/// `::load` namespaces.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<ModelHandle>("Model");
    engine.register_global_module(exported_module!(model_api).into());
    engine.register_static_module("UNetVelocity", exported_module!(unet_static).into());
    engine.register_static_module("MlpVelocity", exported_module!(mlp_static).into());
    engine.register_static_module("Model", exported_module!(model_static).into());
}
