//! `Dataset`: cells x genes with perturbation and covariate columns, as a
//! cheap handle (`Rc`) over [`crate::data::Dataset`]. Datasets are immutable
//! in scripts: `subset`, `split` and the sampler return new ones.
//!
//! A dataset loaded from a file or simulated knows its data set-up (its
//! `Provenance`), and so do its splits' parts and its subsets by covariate
//! value: a trainer with a checkpoint folder records it there, so the CLI
//! resumes and samples the run without restating its data.
//!
//! ```rhai
//! let data = Dataset::load("../shared/data/devel.h5ad", #{perturbation: "condition", covariates: ["cell_type"]});
//! print(data.info());
//! let k562 = data.subset(#{cell_type: "k562"});
//! ```

use std::rc::Rc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::condition::{condition_arg, ConditionHandle};
use super::convert::{float_array, path_arg, string_array, to_dynamic, Opts};
use super::dataset_args::{covariate_filters, filter_rows, load_filters};
pub use super::dataset_args::{load_options, simulate_map};
use super::error::{guard, invalid, to_rhai, RhaiResult};
use super::split::SplitHandle;
use super::split::FROM_FILE;
use crate::anndata::{write_h5ad, WriteOptions};
use crate::data::{DataSpec, Dataset, Split, SplitOptions, SplitSpec, Task};
use crate::train::run_dir;

/// A dataset handle (cheap to clone; the data is shared).
#[derive(Debug, Clone)]
pub struct DatasetHandle(pub Rc<Dataset>);

impl DatasetHandle {
    /// Wraps a core dataset.
    pub fn new(ds: Dataset) -> DatasetHandle {
        DatasetHandle(Rc::new(ds))
    }

    /// One line: size, labels, covariates, source.
    pub fn headline(&self) -> String {
        let d = &self.0;
        let v = d.vocab();
        let covs: Vec<String> = v
            .covariate_columns
            .iter()
            .zip(&v.covariates)
            .map(|(c, vals)| format!("{c} ({} values)", vals.len()))
            .collect();
        format!(
            "Dataset: {} cells x {} genes, {} perturbation labels, covariates [{}], from {}",
            d.n_cells(),
            d.n_genes(),
            d.conditions().len(),
            covs.join(", "),
            d.source_name()
        )
    }
}

#[export_module]
pub mod dataset_api {
    use super::*;

    /// Cells x genes expression (log1p) with perturbation and covariate
    /// columns. Create one with `Dataset::load(path)`, `Dataset::simulate(...)`,
    /// a split, a subset or a sampler.
    /// ```rhai
    /// let data = Dataset::load("../shared/data/devel.h5ad");
    /// print(data);
    /// ```
    pub type Dataset = DatasetHandle;

    /// Number of cells.
    /// ```rhai
    /// data.n_cells
    /// ```
    #[rhai_fn(get = "n_cells", pure)]
    pub fn n_cells(ds: &mut Dataset) -> i64 {
        ds.0.n_cells() as i64
    }

    /// Number of genes.
    /// ```rhai
    /// data.n_genes
    /// ```
    #[rhai_fn(get = "n_genes", pure)]
    pub fn n_genes(ds: &mut Dataset) -> i64 {
        ds.0.n_genes() as i64
    }

    /// Where the data came from (a file, or `<memory>`).
    /// ```rhai
    /// data.source
    /// ```
    #[rhai_fn(get = "source", pure)]
    pub fn source(ds: &mut Dataset) -> String {
        ds.0.source_name()
    }

    /// The obs column holding the perturbation label.
    /// ```rhai
    /// data.perturbation_column   // "condition"
    /// ```
    #[rhai_fn(get = "perturbation_column", pure)]
    pub fn perturbation_column(ds: &mut Dataset) -> String {
        ds.0.columns.perturbation.clone()
    }

    /// The covariate columns.
    /// ```rhai
    /// data.covariate_columns   // ["cell_type"]
    /// ```
    #[rhai_fn(get = "covariate_columns", pure)]
    pub fn covariate_columns(ds: &mut Dataset) -> Array {
        string_array(&ds.0.columns.covariates)
    }

    /// The control label.
    /// ```rhai
    /// data.control   // "control"
    /// ```
    #[rhai_fn(get = "control", pure)]
    pub fn control(ds: &mut Dataset) -> String {
        ds.0.columns.control.clone()
    }

    /// A readable summary: size, columns, and per covariate value the
    /// control cells, perturbations and combinations.
    /// ```rhai
    /// print(data.info());
    /// ```
    #[rhai_fn(pure)]
    pub fn info(ds: &mut Dataset) -> String {
        ds.0.summary().to_string().trim_end().to_string()
    }

    /// The summary as a map (`n_cells`, `n_genes`, `n_units`,
    /// `n_perturbations`, `covariates`, ...).
    /// ```rhai
    /// data.summary().n_units
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn summary(ds: &mut Dataset) -> RhaiResult<Dynamic> {
        to_dynamic(&ds.0.summary())
    }

    /// Gene names, in column order.
    /// ```rhai
    /// data.genes()[0]
    /// ```
    #[rhai_fn(pure)]
    pub fn genes(ds: &mut Dataset) -> Array {
        string_array(&ds.0.genes)
    }

    /// Distinct perturbation labels (control included), sorted.
    /// ```rhai
    /// data.conditions()
    /// ```
    #[rhai_fn(pure)]
    pub fn conditions(ds: &mut Dataset) -> Array {
        string_array(ds.0.conditions())
    }

    /// Every unit (covariate values x perturbation) as a map:
    /// `condition` (a request string), `label`, `covariates`, `n_cells`,
    /// `is_control`.
    /// ```rhai
    /// for u in data.units() { print(`${u.condition}: ${u.n_cells} cells`) }
    /// ```
    #[rhai_fn(pure)]
    pub fn units(ds: &mut Dataset) -> Array {
        ds.0.units()
            .iter()
            .map(|u| {
                let mut m = Map::new();
                m.insert(
                    "condition".into(),
                    ConditionHandle::from_condition(&u.condition())
                        .request
                        .into(),
                );
                m.insert("label".into(), u.label.clone().into());
                m.insert("covariates".into(), string_array(&u.covariates).into());
                m.insert("n_cells".into(), (u.cells.len() as i64).into());
                m.insert("is_control".into(), u.is_control().into());
                Dynamic::from_map(m)
            })
            .collect()
    }

    /// A condition checked against this data's perturbations and covariate
    /// values (unknown names are errors listing the known ones).
    /// ```rhai
    /// let c = data.condition("KLF1+MAP2K6 @ k562");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn condition(ds: &mut Dataset, request: Dynamic) -> RhaiResult<ConditionHandle> {
        let c = condition_arg(&request)?.resolve(&ds.0.vocab())?;
        Ok(ConditionHandle::from_condition(&c))
    }

    /// Mean expression of one condition's cells, `[n_genes]`.
    /// ```rhai
    /// let mu = data.mean("KLF1+MAP2K6 @ k562");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn mean(ds: &mut Dataset, condition: Dynamic) -> RhaiResult<Array> {
        let c = condition_arg(&condition)?.resolve(&ds.0.vocab())?;
        let rows = crate::plot::pca_view::cells_of(&ds.0, &c);
        if rows.is_empty() {
            return Err(invalid(
                "condition",
                format!("{} has no cells of '{c}'", ds.0.source_name()),
            ));
        }
        Ok(float_array(
            ds.0.mean_of(&rows).into_iter().map(|v| v as f64),
        ))
    }

    /// A seeded split for a task (`"combination"` or
    /// `"covariate-transfer"`), with PerturBench's default hold-out
    /// fractions. Returns a `Split` with `.train`, `.val`, `.test`.
    /// ```rhai
    /// let split = data.split("combination", 42);
    /// let train = split.train;
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn split(ds: &mut Dataset, task: &str, seed: i64) -> RhaiResult<SplitHandle> {
        let mut m = Map::new();
        m.insert("task".into(), task.into());
        m.insert("seed".into(), seed.into());
        split_with(ds, m)
    }

    /// A split from options: `task`, `seed` (42), `holdout_fraction`
    /// (0.3 transfer, 0.7 combination), `max_holdout` (200).
    /// ```rhai
    /// let split = data.split(#{task: "combination", seed: 1, holdout_fraction: 0.5});
    /// ```
    #[rhai_fn(name = "split", pure, return_raw)]
    pub fn split_with(ds: &mut Dataset, options: Map) -> RhaiResult<SplitHandle> {
        let o = Opts::new(
            "split options",
            options,
            &["task", "seed", "holdout_fraction", "max_holdout"],
        )?;
        let task = o.string("task")?.ok_or_else(|| {
            invalid(
                "split options",
                "'task' is required (\"combination\" or \"covariate-transfer\")",
            )
        })?;
        let mut so = SplitOptions::new(Task::parse(&task).map_err(to_rhai)?);
        if let Some(s) = o.seed("seed")? {
            so.seed = s;
        }
        so.holdout_fraction = o.float("holdout_fraction")?;
        let max_holdout = o.count("max_holdout")?;
        if let Some(m) = max_holdout {
            so.max_holdout = m;
        }
        let spec = SplitSpec::Task {
            task: so.task,
            seed: so.seed,
            holdout_fraction: so.holdout_fraction,
            max_holdout,
        };
        let d = ds.0.clone();
        let split = guard(|| Split::generate(&d, &so))?;
        Ok(SplitHandle::new(d, split, task, Some(spec)))
    }

    /// A split read from a CSV file (cell-level `cell,split` or unit-level
    /// `condition[,cell_type],split`); unlisted controls are split with `seed`.
    /// ```rhai
    /// let split = data.split_from("splits/norman19.csv", 42);
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn split_from(ds: &mut Dataset, path: &str, seed: i64) -> RhaiResult<SplitHandle> {
        let p = path_arg("split file", path)?;
        let seed = seed.max(0) as u64;
        let d = ds.0.clone();
        let split = guard(|| Split::read_csv(&p, &d, seed))?;
        let spec = SplitSpec::File {
            path: run_dir::absolute(&p),
            seed,
        };
        Ok(SplitHandle::new(
            d,
            split,
            format!("file {path}"),
            Some(spec),
        ))
    }

    /// The cells matching a filter: `condition` (labels such as `"KLF1"`,
    /// `"KLF1+MAP2K6"`, `"control"`, or requests with covariates
    /// `"KLF1 @ k562"`; one or an array) and covariate columns by name
    /// (`cell_type: "k562"` or an array of values).
    /// ```rhai
    /// let sub = data.subset(#{condition: ["control", "KLF1"], cell_type: "k562"});
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn subset(ds: &mut Dataset, filter: Map) -> RhaiResult<Dataset> {
        let as_filters = covariate_filters(&ds.0, &filter);
        let rows = filter_rows(&ds.0, filter)?;
        if rows.is_empty() {
            return Err(invalid("subset filter", "no cell matches it"));
        }
        let d = ds.0.clone();
        let mut sub = guard(|| d.subset(&rows))?;
        sub.provenance = match (&d.provenance, as_filters) {
            (Some(p), Some(f)) => p.filtered(&f),
            _ => None,
        };
        Ok(DatasetHandle::new(sub))
    }

    /// The cells at the given row indices (0-based, in that order).
    /// ```rhai
    /// let first = data.subset([0, 1, 2]);
    /// ```
    #[rhai_fn(name = "subset", pure, return_raw)]
    pub fn subset_rows(ds: &mut Dataset, rows: Array) -> RhaiResult<Dataset> {
        let mut idx = Vec::with_capacity(rows.len());
        for r in &rows {
            let i = r
                .as_int()
                .map_err(|_| invalid("cell index", format!("{r} is not an integer")))?;
            if i < 0 {
                return Err(invalid("cell index", format!("{i} is negative")));
            }
            idx.push(i as usize);
        }
        let d = ds.0.clone();
        Ok(DatasetHandle::new(guard(|| d.subset(&idx))?))
    }

    /// Writes the data as .h5ad (X as CSR f32; obs and var) and returns the
    /// path.
    /// ```rhai
    /// data.save("out/subset.h5ad");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save(ds: &mut Dataset, path: &str) -> RhaiResult<String> {
        let p = path_arg("output file", path)?;
        let d = ds.0.clone();
        guard(|| write_h5ad(&p, &d.to_anndata(), &WriteOptions::default()))?;
        Ok(path.to_string())
    }

    /// One line describing the dataset.
    /// ```rhai
    /// print(data);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(ds: &mut Dataset) -> String {
        ds.headline()
    }
}

#[export_module]
pub mod dataset_static {
    use super::*;

    /// A seeded synthetic Perturb-seq dataset (negative-binomial counts,
    /// cell lines, perturbation programs, combinations, responders; X is
    /// log1p-normalised). Settings: `preset` (`demo` 8000 x 500, `tiny`
    /// 900 x 64, `norman19`, `srivatsan20`) and any simulator field
    /// (`n_cells`, `n_genes`, `n_cell_lines`, `n_perturbations`,
    /// `n_combinations`, `seed`, ...).
    /// ```rhai
    /// let data = Dataset::simulate(#{preset: "tiny", seed: 0});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn simulate(settings: Map) -> RhaiResult<DatasetHandle> {
        simulate_map(settings)
    }

    /// A simulated dataset from a preset name (seed 0).
    /// ```rhai
    /// let data = Dataset::simulate("tiny");
    /// ```
    #[rhai_fn(name = "simulate", return_raw)]
    pub fn simulate_preset(preset: &str) -> RhaiResult<DatasetHandle> {
        let mut m = Map::new();
        m.insert("preset".into(), preset.into());
        simulate_map(m)
    }

    /// Reads an .h5ad file with the default columns (`condition`,
    /// `[cell_type]`, control label `control`).
    /// ```rhai
    /// let data = Dataset::load("../shared/data/devel.h5ad");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load(path: &str) -> RhaiResult<DatasetHandle> {
        load_with(path, Map::new())
    }

    /// Reads an .h5ad file: `perturbation` (column), `covariates` (columns),
    /// `control` (label), `layer` (train on `layers/<name>`),
    /// `allow_negative`, `filter` (`#{dataset: "norman19"}`: keep the
    /// cells whose obs column equals the value, as the CLI's `--filter`),
    /// and `stream` (`true`: read obs and var only and leave X in the file,
    /// for a `Trainer(#{stream: true})` on a file larger than memory).
    /// ```rhai
    /// let data = Dataset::load("data.h5ad", #{perturbation: "condition", covariates: ["cell_type"], control: "control"});
    /// let n19 = Dataset::load("../shared/data/devel.h5ad", #{filter: #{dataset: "norman19"}});
    /// let big = Dataset::load("../shared/data/devel.h5ad", #{stream: true});
    /// ```
    #[rhai_fn(name = "load", return_raw)]
    pub fn load_with(path: &str, options: Map) -> RhaiResult<DatasetHandle> {
        let p = path_arg("data file", path)?;
        let mut options = options;
        let filters = match options.remove("filter") {
            None => Vec::new(),
            Some(f) => load_filters(&f)?,
        };
        let stream = match options.remove("stream") {
            None => false,
            Some(v) => v.as_bool().map_err(|t| {
                invalid(
                    "Dataset::load 'stream'",
                    format!("expected true or false, got {t}"),
                )
            })?,
        };
        let opts = load_options(options)?;
        let spec = DataSpec {
            allow_negative: opts.allow_negative,
            columns: opts.columns,
            layer: opts.layer,
            filters,
            ..DataSpec::new(p.clone())
        };
        let mut ds = if stream {
            guard(|| spec.open_for_streaming())?
        } else {
            guard(|| spec.load())?
        };
        // Recorded with an absolute path, so the run folder works from any
        // working folder.
        if let Some(prov) = ds.provenance.as_mut() {
            prov.spec.path = run_dir::absolute(&p);
        }
        Ok(DatasetHandle::new(ds))
    }

    /// Every cell a training run's data set-up selects (file, columns,
    /// filters; before its split), from the run folder's `data.json`
    /// (written by `primeflow train` or a trainer with a checkpoint folder).
    /// `Split::from_run(dir)` gives the run's split.
    /// ```rhai
    /// let data = Dataset::from_run("out/run1");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn from_run(dir: &str) -> RhaiResult<DatasetHandle> {
        let p = path_arg("run folder", dir)?;
        let ds = guard(|| run_dir::require_data_spec("run folder", &p, FROM_FILE)?.load())?;
        Ok(DatasetHandle::new(ds))
    }
}

/// Registers `Dataset` and the `Dataset::` namespace.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<DatasetHandle>("Dataset");
    engine.register_global_module(exported_module!(dataset_api).into());
    engine.register_static_module("Dataset", exported_module!(dataset_static).into());
}
