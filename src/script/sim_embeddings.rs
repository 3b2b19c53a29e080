//! `simulated_embeddings`: the truth-derived perturbation embeddings of a
//! simulated dataset and their shuffled copy ([`crate::sim::embeddings`]),
//! written as `.tsv` tables for `MlpVelocity(#{embeddings: ...})`.
//!
//! ```rhai
//! let data = Dataset::simulate(#{preset: "tiny", seed: 0});
//! let files = simulated_embeddings(data, "out/emb.tsv", #{dim: 16, noise: 0.1});
//! print(files.embeddings + " " + files.shuffled);   // out/emb.tsv out/emb_shuffled.tsv
//! ```

use std::path::{Path, PathBuf};

use rhai::plugin::*;
use rhai::{Dynamic, Map};

use super::convert::{path_arg, Opts};
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, RhaiResult};
use crate::sim::{write_truth_embeddings, EmbeddingOptions, Simulation};

/// `dir/stem_shuffled.ext` beside `path`.
fn shuffled_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("embeddings");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}_shuffled.{ext}"),
        None => format!("{stem}_shuffled"),
    };
    path.with_file_name(name)
}

fn write(data: &DatasetHandle, path: &str, settings: Map) -> RhaiResult<Map> {
    let cfg = data
        .0
        .provenance
        .as_ref()
        .and_then(|p| p.spec.simulate.clone())
        .ok_or_else(|| {
            invalid(
                "simulated_embeddings",
                format!(
                    "{} is not simulated data (Dataset::simulate), so it has no ground truth",
                    data.0.source_name()
                ),
            )
        })?;
    let o = Opts::new("simulated_embeddings settings", settings, &["dim", "noise"])?;
    let d = EmbeddingOptions::default();
    let opts = EmbeddingOptions {
        dim: o.count("dim")?.unwrap_or(d.dim),
        noise: o.float("noise")?.unwrap_or(d.noise),
        seed: cfg.seed,
    };
    let p = path_arg("embedding file", path)?;
    let shuffled = shuffled_path(&p);
    guard(|| {
        let truth = Simulation::new(&cfg)?.truth;
        write_truth_embeddings(&truth, &opts, &p, &shuffled)
    })?;
    let mut m = Map::new();
    m.insert("embeddings".into(), Dynamic::from(path.to_string()));
    m.insert(
        "shuffled".into(),
        Dynamic::from(shuffled.display().to_string()),
    );
    Ok(m)
}

#[export_module]
pub mod sim_embeddings_api {
    use super::*;

    /// Writes the perturbation embeddings of simulated `data`, derived from
    /// its ground-truth gene programs plus noise (16 dimensions, noise 0.1),
    /// to `path` (`.tsv`), and the copy with vectors shuffled among
    /// perturbations beside it (`<stem>_shuffled.tsv`). Returns
    /// `#{embeddings, shuffled}` (the two paths).
    /// ```rhai
    /// let files = simulated_embeddings(data, "out/emb.tsv");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn simulated_embeddings(data: DatasetHandle, path: &str) -> RhaiResult<Map> {
        write(&data, path, Map::new())
    }

    /// As `simulated_embeddings(data, path)` with settings `dim` and
    /// `noise` (relative to the vectors' root mean square).
    /// ```rhai
    /// let files = simulated_embeddings(data, "out/emb.tsv", #{dim: 8, noise: 0.5});
    /// ```
    #[rhai_fn(name = "simulated_embeddings", return_raw)]
    pub fn simulated_embeddings_with(
        data: DatasetHandle,
        path: &str,
        settings: Map,
    ) -> RhaiResult<Map> {
        write(&data, path, settings)
    }
}

/// Registers `simulated_embeddings`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_global_module(exported_module!(sim_embeddings_api).into());
}
