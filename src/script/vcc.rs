//! `export_vcc`: a Virtual Cell Challenge submission file from a script
//! ([`crate::export::vcc`], the `primeflow export-vcc` command).
//!
//! ```rhai
//! let pred = Sampler(#{cells: 100}).sample(model, split.test);
//! let report = export_vcc(pred, "gene_names.csv", "out/submission.h5ad", split.test);
//! print(report.n_perturbations);
//! ```

use std::path::Path;

use rhai::plugin::*;
use rhai::{Dynamic, Map};

use super::convert::{path_arg, strings};
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, RhaiResult};
use crate::export::{export_vcc_with, read_gene_list, VccReport};

/// The gene list: an array of names, or the path of a gene-list file (one
/// gene per line, as `cell-eval prep` reads it).
fn gene_list(genes: &Dynamic) -> RhaiResult<Vec<String>> {
    if genes.is_string() {
        let p = path_arg("gene list", &genes.to_string())?;
        return guard(|| read_gene_list(Path::new(&p)));
    }
    strings(genes).ok_or_else(|| {
        invalid(
            "gene list",
            format!(
                "{genes} ({}) is neither a file path nor an array of gene names",
                genes.type_name()
            ),
        )
    })
}

fn report_map(r: &VccReport, out: &str) -> Map {
    let mut m = Map::new();
    m.insert("path".into(), Dynamic::from(out.to_string()));
    m.insert("n_cells".into(), Dynamic::from(r.n_cells as i64));
    m.insert("n_genes".into(), Dynamic::from(r.n_genes as i64));
    m.insert(
        "n_perturbations".into(),
        Dynamic::from(r.n_perturbations as i64),
    );
    m.insert("n_controls".into(), Dynamic::from(r.n_controls as i64));
    m
}

fn export(
    pred: &DatasetHandle,
    genes: &Dynamic,
    out: &str,
    controls: Option<&DatasetHandle>,
) -> RhaiResult<Map> {
    let genes = gene_list(genes)?;
    let p = path_arg("submission file", out)?;
    let r = guard(|| export_vcc_with(&pred.0, controls.map(|c| c.0.as_ref()), &genes, &p))?;
    Ok(report_map(&r, out))
}

#[export_module]
pub mod vcc_api {
    use super::*;

    /// Writes a Virtual Cell Challenge submission (`.h5ad`: obs
    /// `target_gene`, controls as `non-targeting`, the gene list's genes in
    /// its order, float32 CSR X) from predicted cells that include control
    /// cells. `genes`: an array of names or a gene-list file. Returns
    /// `#{path, n_cells, n_genes, n_perturbations, n_controls}`.
    /// ```rhai
    /// export_vcc(pred, data.genes(), "out/submission.h5ad")
    /// ```
    #[rhai_fn(return_raw)]
    pub fn export_vcc(pred: DatasetHandle, genes: Dynamic, out: &str) -> RhaiResult<Map> {
        export(&pred, &genes, out, None)
    }

    /// As `export_vcc(pred, genes, out)`, appending the control cells of
    /// `controls` (e.g. the measured ones of the held-out part) as
    /// `non-targeting` cells.
    /// ```rhai
    /// export_vcc(pred, "gene_names.csv", "out/submission.h5ad", split.test)
    /// ```
    #[rhai_fn(name = "export_vcc", return_raw)]
    pub fn export_vcc_controls(
        pred: DatasetHandle,
        genes: Dynamic,
        out: &str,
        controls: DatasetHandle,
    ) -> RhaiResult<Map> {
        export(&pred, &genes, out, Some(&controls))
    }
}

/// Registers `export_vcc`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_global_module(exported_module!(vcc_api).into());
}
