//! `Model`: a perturbation-response model together with everything needed
//! to use it on data — its weights (one `VarStore`; none for the floors), its
//! config, the training genes (in order), the condition vocabulary and the
//! statistics of its training cells ([`DataStats`]: the flow space's
//! standardisation or PCA, control cells per covariate, mean shifts).
//!
//! On disk a model folder holds
//! * `weights.safetensors`: the parameters, named like a PyTorch state dict
//!   (`x_encoder.layers.0.weight`, ...);
//! * `ema.safetensors` (training with `ema_decay` only): the averaged
//!   weights, which [`Model::load`] uses for sampling;
//! * `model.json`: the [`ModelConfig`] (`{"kind": "mlp", ...}`);
//! * `vocab.json`: the [`ConditionVocab`];
//! * `embeddings.safetensors` (embedding-encoded conditions only): the
//!   embedding table's values `[n, d]` (names and checksum in `vocab.json`),
//!   so the folder encodes any perturbation of the table on its own;
//! * `genes.json`: the gene names, in model order;
//! * `stats.json` + `stats.safetensors`: the [`DataStats`].
//!
//! Every file is written atomically (temp file + rename).

use std::collections::BTreeMap;
use std::path::PathBuf;

use tch::{nn, Device, Tensor};

use crate::data::{Condition, ConditionVocab, Dataset};
use crate::error::{Error, Result};
use crate::model::baselines::{DecoderOnly, LatentAdditive, LinearAdditive, ResponseModel};
use crate::model::config::{Family, ModelConfig, SpaceKind};
use crate::model::mlp::MlpVelocity;
use crate::model::space::{DataSpace, FlowSpace};
use crate::model::stats::{DataStats, StatsOptions};
use crate::model::unet::UNetVelocity;
use crate::model::VelocityField;

pub use crate::model::persist::{
    read_tensors, resolve_model_dir, write_tensors, CONFIG_FILE, EMA_FILE, EMBEDDINGS_FILE,
    GENES_FILE, LATEST_FILE, VOCAB_FILE, WEIGHTS_FILE,
};

/// The network of a model.
enum Net {
    /// A velocity field over the flow space.
    Flow(Box<dyn VelocityField>),
    /// A control-to-perturbed network (PerturBench's baselines).
    Response(Box<dyn ResponseModel>),
    /// No network (the floors).
    Floor,
}

/// A model with its weights, genes, condition vocabulary and training-data
/// statistics.
pub struct Model {
    /// Owns every parameter.
    pub vs: nn::VarStore,
    /// Which network, with which hyperparameters.
    pub config: ModelConfig,
    /// The training genes, in model order (`m`).
    pub genes: Vec<String>,
    /// The condition vocabulary (encoding width `n_c`).
    pub vocab: ConditionVocab,
    /// The folder this model was loaded from, if any (for messages).
    pub source: Option<PathBuf>,
    /// Statistics of the training cells (fitted by the trainer before the
    /// first step; loaded with the model).
    stats: Option<DataStats>,
    /// The flow space on the model's device (flow models, once the stats
    /// it needs are known).
    space: Option<FlowSpace>,
    net: Net,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("n_genes", &self.genes.len())
            .field("cond_dim", &self.vocab.width())
            .field("n_params", &self.n_params())
            .field("device", &self.device())
            .finish()
    }
}

impl Model {
    /// A freshly initialised model on `device`; initialisation is seeded
    /// with `seed`. Holds [`rng_guard`](crate::device::rng_guard) while it
    /// draws, so the weights depend only on `seed` even when other threads
    /// use libtorch's generators through the library.
    pub fn new(
        config: ModelConfig,
        genes: Vec<String>,
        vocab: ConditionVocab,
        device: Device,
        seed: u64,
    ) -> Result<Model> {
        config.validate()?;
        if genes.is_empty() {
            return Err(Error::invalid("genes", "a model needs at least one gene"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = genes.iter().find(|g| !seen.insert(g.as_str())) {
            return Err(Error::invalid(
                "genes",
                format!("gene '{dup}' appears more than once"),
            ));
        }
        if vocab.width() == 0 {
            return Err(Error::invalid(
                "condition vocabulary",
                "it is empty (no perturbations and no covariate values)",
            ));
        }
        let _rng = crate::device::rng_guard(Some(seed));
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (m, n_c) = (genes.len(), vocab.width());
        let net = match &config {
            ModelConfig::Unet(c) => Net::Flow(Box::new(UNetVelocity::new(&root, c, m, n_c)?)),
            ModelConfig::Mlp(c) => Net::Flow(Box::new(MlpVelocity::new(&root, c, m, n_c)?)),
            ModelConfig::PcaOt(c) => {
                if c.n_components > m {
                    return Err(Error::invalid(
                        "FM PCA OT config 'n_components'",
                        format!(
                            "{} components, but the data has only {m} genes",
                            c.n_components
                        ),
                    ));
                }
                Net::Flow(Box::new(MlpVelocity::new(
                    &root,
                    &c.velocity,
                    c.n_components,
                    n_c,
                )?))
            }
            ModelConfig::Pca(c) => {
                if c.n_components > m {
                    return Err(Error::invalid(
                        "FM PCA config 'n_components'",
                        format!(
                            "{} components, but the data has only {m} genes",
                            c.n_components
                        ),
                    ));
                }
                Net::Flow(Box::new(MlpVelocity::new(
                    &root,
                    &c.velocity,
                    c.n_components,
                    n_c,
                )?))
            }
            ModelConfig::Linear(c) => {
                let (p, k) = vocab_split(&vocab);
                Net::Response(Box::new(LinearAdditive::new(&root, c, m, p, k)?))
            }
            ModelConfig::Latent(c) => {
                let (p, k) = vocab_split(&vocab);
                Net::Response(Box::new(LatentAdditive::new(&root, c, m, p, k)?))
            }
            ModelConfig::Decoder(c) => {
                let (p, k) = vocab_split(&vocab);
                Net::Response(Box::new(DecoderOnly::new(&root, c, m, p, k)?))
            }
            ModelConfig::Control(_) | ModelConfig::Additive(_) | ModelConfig::Mean(_) => Net::Floor,
        };
        let space = match config.space() {
            Some(SpaceKind::Genes(DataSpace::Log1p)) => Some(FlowSpace::Genes),
            _ => None,
        };
        Ok(Model {
            vs,
            config,
            genes,
            vocab,
            source: None,
            stats: None,
            space,
            net,
        })
    }

    /// Fits the statistics of the training cells `ds` this model needs
    /// (see [`DataStats`]), keeping at most `control_cells` control cells per
    /// covariate (chosen with `seed`).
    pub fn fit_stats(&mut self, ds: &Dataset, control_cells: usize, seed: u64) -> Result<()> {
        self.check_data(ds)?;
        let stats = DataStats::fit(
            ds,
            &StatsOptions {
                control_cells,
                pca_components: self.config.pca_components(),
                seed,
            },
        )?;
        self.set_stats(stats)
    }

    /// Installs `stats` (checked against the model's genes) and builds the
    /// flow space from them.
    pub fn set_stats(&mut self, stats: DataStats) -> Result<()> {
        if stats.n_genes() != self.n_genes() {
            return Err(Error::Mismatch(format!(
                "the statistics cover {} genes, the model has {}",
                stats.n_genes(),
                self.n_genes()
            )));
        }
        let device = self.device();
        self.space = match self.config.space() {
            Some(SpaceKind::Genes(DataSpace::Log1p)) => Some(FlowSpace::Genes),
            Some(SpaceKind::Genes(DataSpace::Standardized)) => {
                Some(FlowSpace::standardized(&stats, device)?)
            }
            Some(SpaceKind::Genes(DataSpace::Response)) => {
                Some(FlowSpace::response(&stats, device)?)
            }
            Some(SpaceKind::Pca(_)) => Some(FlowSpace::pca(&stats, device)?),
            None => None,
        };
        self.stats = Some(stats);
        Ok(())
    }

    /// The statistics of the training cells, or an error saying they were
    /// never fitted.
    pub fn stats(&self) -> Result<&DataStats> {
        self.stats.as_ref().ok_or_else(|| {
            Error::invalid(
                "model",
                format!(
                    "this {} has no statistics of its training data yet: train it first",
                    self.config.display_name()
                ),
            )
        })
    }

    /// True once the training-data statistics are known.
    pub fn has_stats(&self) -> bool {
        self.stats.is_some()
    }

    /// The flow space (flow models), or an error when the statistics it
    /// needs are missing or the model has no flow.
    pub fn flow_space(&self) -> Result<&FlowSpace> {
        match (&self.space, self.config.family()) {
            (Some(s), _) => Ok(s),
            (None, Family::Flow) => Err(Error::invalid(
                "model",
                format!(
                    "this {} flows in a space fitted on its training data, which it has not seen yet: train it first",
                    self.config.display_name()
                ),
            )),
            (None, _) => Err(Error::invalid(
                "model",
                format!("{} is not a flow model", self.config.display_name()),
            )),
        }
    }

    /// Estimated peak activation bytes of one row of a no-grad forward (for
    /// sizing batches by memory; see
    /// [`UNetVelocity::activation_bytes_per_row`]).
    pub fn activation_bytes_per_row(&self) -> f64 {
        let m = self.n_genes() as f64;
        let wide = |h: usize| 4.0 * (3.0 * m + 8.0 * h as f64);
        match &self.config {
            ModelConfig::Unet(c) => UNetVelocity::activation_bytes_per_row(c, self.n_genes()),
            ModelConfig::Mlp(c) => wide(c.hidden_dim),
            ModelConfig::Pca(c) => wide(c.velocity.hidden_dim),
            ModelConfig::PcaOt(c) => wide(c.velocity.hidden_dim),
            ModelConfig::Latent(c) => wide(c.encoder_width),
            ModelConfig::Decoder(c) => wide(c.encoder_width),
            ModelConfig::Linear(_)
            | ModelConfig::Control(_)
            | ModelConfig::Additive(_)
            | ModelConfig::Mean(_) => wide(0),
        }
    }

    /// Width `d` of the flow space: `m` in gene space, `k` in PCA space
    /// (0 for models without a flow).
    pub fn flow_dim(&self) -> usize {
        match self.config.space() {
            Some(SpaceKind::Genes(_)) => self.n_genes(),
            Some(SpaceKind::Pca(k)) => k,
            None => 0,
        }
    }

    /// A new model for the genes and vocabulary of `ds`.
    pub fn for_dataset(
        config: ModelConfig,
        ds: &Dataset,
        device: Device,
        seed: u64,
    ) -> Result<Model> {
        Model::new(config, ds.genes.clone(), ds.vocab(), device, seed)
    }

    /// A response baseline's prediction `[B, m]` for control cells
    /// `control` `[B, m]` under condition encodings `cond` `[B, n_c]` (split
    /// into the perturbation multi-hot and the covariate one-hots).
    pub fn predict_response(&self, control: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor> {
        let Net::Response(net) = &self.net else {
            return Err(Error::invalid(
                "model",
                format!("{} does not map control cells", self.config.display_name()),
            ));
        };
        let (p, k) = vocab_split(&self.vocab);
        let perts = cond.f_narrow(1, 0, p as i64)?; // [B, n_p]
        let covs = cond.f_narrow(1, p as i64, k as i64)?; // [B, n_cov]
        net.predict(control, &perts, &covs, train)
    }

    /// The velocity `[B, d]` at `x_t` `[B, d]` (flow space), `t` `[B]` under
    /// condition encodings `cond` `[B, n_c]`; `train` switches dropout on.
    pub fn velocity(&self, x_t: &Tensor, t: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor> {
        match &self.net {
            Net::Flow(net) => net.velocity(x_t, t, cond, train),
            Net::Floor | Net::Response(_) => Err(Error::invalid(
                "model",
                format!("{} has no velocity field", self.config.display_name()),
            )),
        }
    }

    /// Number of genes `m`.
    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }

    /// Width `n_c` of the condition encoding.
    pub fn cond_dim(&self) -> usize {
        self.vocab.width()
    }

    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum()
    }

    /// Where the parameters live.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Trainable parameters sorted by name (a stable order for optimizers
    /// and checkpoints).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let sorted: BTreeMap<String, Tensor> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        sorted.into_iter().collect()
    }

    /// Encodes `conds` as `[n, n_c]` f32 on the model's device; unknown
    /// perturbations or covariate values are errors that list known ones.
    pub fn encode(&self, conds: &[Condition]) -> Result<Tensor> {
        let flat = self.vocab.encode_many(conds)?;
        let t =
            Tensor::f_from_slice(&flat)?.f_reshape([conds.len() as i64, self.cond_dim() as i64])?; // [n, n_c]
        Ok(t.f_to_device(self.device())?)
    }

    /// Checks that `ds` can be used with this model: the same genes in the
    /// same order, and the same perturbation/covariate columns.
    pub fn check_data(&self, ds: &Dataset) -> Result<()> {
        let ckpt = self
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the model".into());
        if ds.genes != self.genes {
            let first = self
                .genes
                .iter()
                .zip(&ds.genes)
                .position(|(a, b)| a != b)
                .unwrap_or(self.genes.len().min(ds.genes.len()));
            let name = |v: &[String]| {
                v.get(first)
                    .map(|g| format!("'{g}'"))
                    .unwrap_or_else(|| "(none)".into())
            };
            return Err(Error::Mismatch(format!(
                "the genes of {} do not match {}: the data has {} genes, the checkpoint {}; first difference at position {}: data {}, checkpoint {}",
                ds.source_name(),
                ckpt,
                ds.genes.len(),
                self.genes.len(),
                first,
                name(&ds.genes),
                name(&self.genes),
            )));
        }
        self.vocab
            .check_columns(&ds.columns.perturbation, &ds.columns.covariates)
            .map_err(|e| {
                Error::Mismatch(format!(
                    "{} vs {}: {}",
                    ds.source_name(),
                    ckpt,
                    e.to_string().trim_start_matches("mismatch: ")
                ))
            })
    }
}

impl VelocityField for Model {
    fn velocity(&self, x_t: &Tensor, t: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor> {
        Model::velocity(self, x_t, t, cond, train)
    }
}

/// Widths of the perturbation block (multi-hot and/or embedding sum) and
/// of the covariate one-hots in the condition encoding.
fn vocab_split(vocab: &ConditionVocab) -> (usize, usize) {
    let p = vocab.perturbation_width();
    (p, vocab.width() - p)
}
