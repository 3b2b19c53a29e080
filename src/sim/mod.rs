//! The seeded Perturb-seq simulator: primeflow's embedded default data set.
//!
//! It writes what a real experiment looks like after PerturBench's
//! preprocessing, with the ground truth kept, so demos, tests and benchmarks
//! need no download and model quality can be checked against a known answer.
//!
//! Generative model (details in [`truth`] and [`counts`]):
//! 1. Cell lines have distinct baselines `log_baseline[l, g]` (shared gene
//!    abundance + per-line deviation).
//! 2. Perturbations act on gene programs (and their target gene) with a
//!    cell-line multiplier; combinations add their members' effects plus an
//!    interaction term.
//! 3. Heterogeneous response: each perturbation has a responder fraction; a
//!    non-responding cell looks like a control (obs `responder`).
//! 4. Counts are negative binomial (gamma-Poisson) with a gamma size factor
//!    per cell (library-size variation).
//! 5. Preprocessing ([`preprocess`]): normalise each cell to `target_sum`
//!    counts, log1p; `X` is that (f32), `layers/counts` the raw counts.
//!
//! Output: obs `condition` (`control`, `P003`, `P003+P017`), `cell_type`,
//! `responder`, `n_counts`; var index `G0000`... with column `program` (the
//! first program of the gene, -1 for none); `uns["simulation"]` holds
//! `config` ([`SimConfig`]) and `truth` ([`SimTruth`]).
//!
//! Determinism: the truth and the layout come from streams `u64::MAX` and
//! `u64::MAX - 1` of a ChaCha8 key derived from the seed, cell `i` from
//! stream `i`; chunk size and thread count do not change any number.

pub mod config;
pub mod counts;
pub mod embeddings;
pub mod layout;
pub mod preprocess;
pub mod truth;
mod truth_check;

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::anndata::{AnnData, Categorical, Column, DataFrame};
use crate::error::{Error, Result};

pub use config::{SimConfig, PRESETS};
pub use counts::{CellDraw, CellSampler};
pub use embeddings::{embedding_paths, truth_embeddings, write_truth_embeddings, EmbeddingOptions};
pub use layout::{Layout, SimUnit};
pub use truth::{SimCondition, SimTruth};

/// The key of the simulator's group in `uns`.
pub const UNS_KEY: &str = "simulation";

/// A simulation before its cells are sampled: config, truth and layout.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub config: SimConfig,
    pub truth: SimTruth,
    pub layout: Layout,
}

impl Simulation {
    /// Validates `cfg` and draws the truth and the cell layout.
    pub fn new(cfg: &SimConfig) -> Result<Simulation> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(u64::MAX);
        let truth = SimTruth::draw(cfg, &mut rng);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(u64::MAX - 1);
        let layout = Layout::draw(cfg, &truth, &mut rng);
        Ok(Simulation {
            config: cfg.clone(),
            truth,
            layout,
        })
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.layout.n_cells()
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.truth.genes.len()
    }

    /// Samples all cells chunk by chunk (`config.chunk_cells` rows, split
    /// over `config.threads` threads) and hands each chunk to `sink` as
    /// `(first_row, X [rows, G], counts [rows, G])`. Returns the per-cell
    /// draws `[n_cells]`. `check` runs before every chunk (e.g. Ctrl-C).
    pub fn generate(
        &self,
        mut sink: impl FnMut(usize, ArrayView2<f32>, ArrayView2<f32>) -> Result<()>,
        check: impl Fn() -> Result<()>,
    ) -> Result<Vec<CellDraw>> {
        let sampler = CellSampler::new(&self.config, &self.truth, &self.layout)?;
        let (n, g) = (self.n_cells(), self.n_genes());
        let chunk = self.config.chunk_cells.max(1).min(n.max(1));
        let mut counts = Array2::<f32>::zeros((chunk, g));
        let mut x = Array2::<f32>::zeros((chunk, g));
        let mut draws = vec![CellDraw::default(); n];
        let mut start = 0;
        while start < n {
            check()?;
            let rows = chunk.min(n - start);
            let c = counts.slice_mut(s![..rows, ..]);
            let xv = x.slice_mut(s![..rows, ..]);
            fill_rows(
                &sampler,
                &self.config,
                start,
                c,
                xv,
                &mut draws[start..start + rows],
            );
            sink(start, x.slice(s![..rows, ..]), counts.slice(s![..rows, ..]))?;
            start += rows;
        }
        Ok(draws)
    }

    /// obs: `condition`, `cell_type` (categoricals, categories sorted),
    /// `responder`, `n_counts`; index `cell_<i>`.
    pub fn obs(&self, draws: &[CellDraw]) -> Result<DataFrame> {
        let n = self.n_cells();
        if draws.len() != n {
            return Err(Error::Mismatch(format!(
                "{} cell draws for {n} cells",
                draws.len()
            )));
        }
        let mut obs = DataFrame::with_index((0..n).map(|i| format!("cell_{i}")).collect());
        let unit = |i: usize| &self.layout.units[self.layout.cell_unit[i] as usize];
        let cond: Vec<&str> = (0..n)
            .map(|i| self.truth.label(unit(i).condition))
            .collect();
        let line: Vec<&str> = (0..n)
            .map(|i| self.truth.cell_lines[unit(i).line].as_str())
            .collect();
        obs.insert(
            "condition",
            Column::Categorical(Categorical::from_labels(&cond, true)),
        )?;
        obs.insert(
            "cell_type",
            Column::Categorical(Categorical::from_labels(&line, true)),
        )?;
        obs.insert(
            "responder",
            Column::Bool(draws.iter().map(|d| d.responder).collect()),
        )?;
        obs.insert(
            "n_counts",
            Column::Float(draws.iter().map(|d| d.n_counts).collect()),
        )?;
        Ok(obs)
    }

    /// var: index = gene names, column `program` (first program, -1 none).
    pub fn var(&self) -> Result<DataFrame> {
        let mut program = vec![-1i64; self.n_genes()];
        for (k, genes) in self.truth.program_genes.iter().enumerate().rev() {
            for &gi in genes {
                if let Some(p) = program.get_mut(gi as usize) {
                    *p = k as i64;
                }
            }
        }
        let mut var = DataFrame::with_index(self.truth.genes.clone());
        var.insert("program", Column::Int(program))?;
        Ok(var)
    }

    /// `uns`: `{"simulation": {"config": .., "truth": .., "generator": ..}}`.
    pub fn uns(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let config = serde_json::to_value(&self.config)
            .map_err(|e| Error::invalid("simulation config", e.to_string()))?;
        let mut sim = serde_json::Map::new();
        sim.insert(
            "generator".into(),
            format!("primeflow {}", env!("CARGO_PKG_VERSION")).into(),
        );
        sim.insert("config".into(), config);
        sim.insert("truth".into(), self.truth.to_json()?);
        let mut uns = serde_json::Map::new();
        uns.insert(UNS_KEY.into(), serde_json::Value::Object(sim));
        Ok(uns)
    }
}

/// Samples rows `start..start + rows` into `counts`/`x` `[rows, G]`, split
/// over `cfg.threads` scoped threads (each cell has its own RNG stream).
fn fill_rows(
    sampler: &CellSampler,
    cfg: &SimConfig,
    start: usize,
    mut counts: ArrayViewMut2<f32>,
    mut x: ArrayViewMut2<f32>,
    draws: &mut [CellDraw],
) {
    let rows = counts.nrows();
    let per = rows.div_ceil(cfg.threads.max(1)).max(1);
    let work = |offset: usize,
                mut c: ArrayViewMut2<f32>,
                mut xv: ArrayViewMut2<f32>,
                d: &mut [CellDraw]| {
        for (r, ((mut crow, mut xrow), draw)) in c
            .axis_iter_mut(Axis(0))
            .zip(xv.axis_iter_mut(Axis(0)))
            .zip(d.iter_mut())
            .enumerate()
        {
            if let (Some(cs), Some(xs)) = (crow.as_slice_mut(), xrow.as_slice_mut()) {
                *draw = sampler.sample(start + offset + r, cs);
                preprocess::normalize_log1p_row(cs, draw.n_counts, cfg.target_sum, xs);
            }
        }
    };
    if cfg.threads <= 1 || rows < 64 {
        work(0, counts.view_mut(), x.view_mut(), draws);
        return;
    }
    std::thread::scope(|scope| {
        let parts = counts
            .axis_chunks_iter_mut(Axis(0), per)
            .zip(x.axis_chunks_iter_mut(Axis(0), per))
            .zip(draws.chunks_mut(per));
        for (k, ((c, xv), d)) in parts.enumerate() {
            let work = &work;
            scope.spawn(move || work(k * per, c, xv, d));
        }
    });
}

/// Simulates in memory: X (log1p-normalised f32) `[n_cells, n_genes]`,
/// `layers["counts"]`, obs, var and uns as described in the module docs.
pub fn simulate(cfg: &SimConfig) -> Result<AnnData> {
    let sim = Simulation::new(cfg)?;
    let (n, g) = (sim.n_cells(), sim.n_genes());
    let mut x = Array2::<f32>::zeros((n, g));
    let mut counts = Array2::<f32>::zeros((n, g));
    let draws = sim.generate(
        |start, xc, cc| {
            let rows = xc.nrows();
            x.slice_mut(s![start..start + rows, ..]).assign(&xc);
            counts.slice_mut(s![start..start + rows, ..]).assign(&cc);
            Ok(())
        },
        || Ok(()),
    )?;
    let mut layers = std::collections::BTreeMap::new();
    layers.insert("counts".to_string(), counts);
    Ok(AnnData {
        x: x.into(),
        obs: sim.obs(&draws)?,
        var: sim.var()?,
        layers,
        uns: sim.uns()?,
    })
}

/// What [`simulate_to_file`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub path: String,
    pub n_cells: usize,
    pub n_genes: usize,
    pub n_cell_lines: usize,
    pub n_perturbations: usize,
    pub n_combinations: usize,
    /// Non-control (cell line, condition) units.
    pub n_units: usize,
    pub n_control_cells: usize,
    pub n_responders: usize,
    pub seed: u64,
    pub seconds: f64,
    pub file_bytes: u64,
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} ({:.1} MB) in {:.1} s",
            self.path,
            self.file_bytes as f64 / 1e6,
            self.seconds
        )?;
        writeln!(
            f,
            "  {} cells x {} genes, seed {}; X = log1p(normalised counts), layers/counts = counts",
            self.n_cells, self.n_genes, self.seed
        )?;
        writeln!(
            f,
            "  {} cell lines, {} perturbations, {} combinations: {} perturbed units, {} control cells, {} responders",
            self.n_cell_lines, self.n_perturbations, self.n_combinations, self.n_units, self.n_control_cells, self.n_responders
        )?;
        write!(f, "  ground truth in uns/{UNS_KEY}")
    }
}

/// Simulates `cfg` into the `.h5ad` file `path` and reports what it wrote.
///
/// Cells are generated `cfg.chunk_cells` rows at a time and appended to an
/// [`H5adStreamWriter`](crate::anndata::H5adStreamWriter) (X and
/// `layers/counts` as CSR f32), so memory is O(chunk) plus the truth and the
/// obs columns. The file appears under its name only when complete; Ctrl-C
/// stops between chunks with [`Error::Interrupted`] and leaves nothing.
pub fn simulate_to_file(path: &std::path::Path, cfg: &SimConfig) -> Result<SimReport> {
    use crate::anndata::{H5adStreamWriter, WriteOptions};
    let t0 = std::time::Instant::now();
    let sim = Simulation::new(cfg)?;
    let mut writer =
        H5adStreamWriter::create(path, &sim.var()?, &["counts"], &WriteOptions::default())?;
    let bar = crate::progress::bar(sim.n_cells() as u64, "simulate");
    let draws = sim.generate(
        |_, x, counts| {
            writer.append_rows(x, &[counts])?;
            bar.inc(x.nrows() as u64);
            Ok(())
        },
        || {
            if crate::progress::interrupted() {
                Err(Error::Interrupted)
            } else {
                Ok(())
            }
        },
    )?;
    bar.finish_and_clear();
    writer.finish(&sim.obs(&draws)?, &sim.uns()?)?;
    Ok(sim.report(path, &draws, t0.elapsed().as_secs_f64()))
}

impl Simulation {
    /// The report of a finished simulation written to `path`.
    fn report(&self, path: &std::path::Path, draws: &[CellDraw], seconds: f64) -> SimReport {
        let units = &self.layout.units;
        SimReport {
            path: path.display().to_string(),
            n_cells: self.n_cells(),
            n_genes: self.n_genes(),
            n_cell_lines: self.truth.cell_lines.len(),
            n_perturbations: self.truth.perturbations.len(),
            n_combinations: self.truth.combinations.len(),
            n_units: units
                .iter()
                .filter(|u| u.condition != SimCondition::Control)
                .count(),
            n_control_cells: units
                .iter()
                .filter(|u| u.condition == SimCondition::Control)
                .map(|u| u.n_cells)
                .sum(),
            n_responders: draws.iter().filter(|d| d.responder).count(),
            seed: self.config.seed,
            seconds,
            file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }
}
