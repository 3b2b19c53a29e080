//! `primeflow simulate`: write a synthetic Perturb-seq data set (.h5ad) with
//! known ground truth (see `primeflow::sim`).

use std::path::PathBuf;

use anyhow::Context;
use primeflow::sim::{
    embedding_paths, simulate_to_file, write_truth_embeddings, EmbeddingOptions, SimConfig,
    Simulation,
};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output file (.h5ad).
    #[arg(long)]
    pub out: PathBuf,
    /// Size preset: demo (default), tiny, norman19, srivatsan20.
    #[arg(long, default_value = "demo")]
    pub preset: String,
    /// A JSON file of SimConfig fields, applied over the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Number of cells.
    #[arg(long)]
    pub cells: Option<usize>,
    /// Number of genes.
    #[arg(long)]
    pub genes: Option<usize>,
    /// Number of cell lines (covariate `cell_type`).
    #[arg(long = "cell-lines")]
    pub cell_lines: Option<usize>,
    /// Number of single perturbations.
    #[arg(long)]
    pub perturbations: Option<usize>,
    /// Number of two-perturbation combinations.
    #[arg(long)]
    pub combinations: Option<usize>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Cells generated per chunk (memory bound; does not change the data).
    #[arg(long = "chunk-cells")]
    pub chunk_cells: Option<usize>,
    /// Worker threads (does not change the data).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write perturbation embeddings derived from the ground-truth
    /// gene programs (plus noise), `<out>.embeddings.tsv`, and a copy with
    /// the vectors shuffled among perturbations (the negative control),
    /// `<out>.embeddings_shuffled.tsv`, for `train --embeddings`.
    #[arg(long)]
    pub embeddings: bool,
    /// Width of the embeddings.
    #[arg(long, value_name = "D", default_value_t = 16)]
    pub embedding_dim: usize,
    /// Noise of the embeddings, relative to their root mean square.
    #[arg(long, value_name = "X", default_value_t = 0.1)]
    pub embedding_noise: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The config the arguments describe: preset, then `--config`, then flags.
pub fn config(args: &Args) -> anyhow::Result<SimConfig> {
    let mut cfg = SimConfig::preset(&args.preset)?;
    if let Some(path) = &args.config {
        let mut base = serde_json::to_value(&cfg)?;
        let over: serde_json::Value = primeflow::atomic::read_json(path)?;
        let serde_json::Value::Object(over) = over else {
            return Err(primeflow::Error::format(
                path,
                "config",
                "expected a JSON object of SimConfig fields",
            )
            .into());
        };
        if let serde_json::Value::Object(b) = &mut base {
            b.extend(over);
        }
        cfg = serde_json::from_value(base)
            .map_err(|e| primeflow::Error::format(path, "config", e.to_string()))?;
    }
    let set = |slot: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut cfg.n_cells, args.cells);
    set(&mut cfg.n_genes, args.genes);
    set(&mut cfg.n_cell_lines, args.cell_lines);
    set(&mut cfg.n_perturbations, args.perturbations);
    set(&mut cfg.n_combinations, args.combinations);
    set(&mut cfg.chunk_cells, args.chunk_cells);
    set(&mut cfg.threads, args.threads);
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    Ok(cfg)
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    let report = simulate_to_file(&args.out, &cfg)
        .with_context(|| format!("simulating into {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if args.embeddings {
        let (path, shuffled) = embedding_paths(&args.out);
        let opts = EmbeddingOptions {
            dim: args.embedding_dim,
            noise: args.embedding_noise,
            seed: cfg.seed,
        };
        let truth = Simulation::new(&cfg)?.truth;
        write_truth_embeddings(&truth, &opts, &path, &shuffled)?;
        if !args.json {
            println!(
                "  embeddings ({} dims): {} (shuffled: {})",
                opts.dim,
                path.display(),
                shuffled.display()
            );
        }
    }
    Ok(())
}
