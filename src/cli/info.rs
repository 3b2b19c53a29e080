//! `primeflow info FILE.h5ad [--json] [--load]`: what an `.h5ad` holds
//! (shape, X encoding and dtype, obs/var columns with kinds and levels,
//! layers, uns keys), read without loading X. `--load` also reads the whole
//! matrix as training would and reports the time and the peak resident
//! memory (the benchmark `bench/read_h5ad.sh` uses it).

use std::path::PathBuf;
use std::time::Instant;

use primeflow::anndata::{inspect_h5ad, read_h5ad, ReadOptions};
use serde::Serialize;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .h5ad file.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also load the whole matrix (as stored: CSR or dense) and report the
    /// load time and peak memory.
    #[arg(long)]
    pub load: bool,
}

/// What `--load` measured.
#[derive(Debug, Serialize)]
struct LoadReport {
    /// Wall-clock seconds of `read_h5ad` (X, obs, var, uns).
    seconds: f64,
    /// Resident memory just before loading (the binary and its libraries,
    /// libtorch included), bytes.
    baseline_rss_bytes: Option<u64>,
    /// Peak resident memory of this process (VmHWM), bytes; `None` where
    /// /proc is unavailable.
    peak_rss_bytes: Option<u64>,
    /// Size of X as a dense f32 matrix, bytes.
    dense_bytes: u64,
    /// Layout of X in memory: `csr` (the file's X is CSR) or `dense`.
    x_layout: &'static str,
    /// Size of X in memory as loaded (CSR arrays or the dense matrix), bytes.
    x_bytes: u64,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let info = inspect_h5ad(&args.file)?;
    let load = if args.load {
        let baseline_rss_bytes = proc_status_bytes("VmRSS:");
        let t = Instant::now();
        let ad = read_h5ad(&args.file, &ReadOptions::default())?;
        let seconds = t.elapsed().as_secs_f64();
        let (n, m) = ad.x.dim();
        let dense_bytes = (n * m * std::mem::size_of::<f32>()) as u64;
        Some(LoadReport {
            seconds,
            baseline_rss_bytes,
            peak_rss_bytes: proc_status_bytes("VmHWM:"),
            dense_bytes,
            x_layout: ad.x.layout(),
            x_bytes: ad.x.store_bytes() as u64,
        })
    } else {
        None
    };
    let mut out = String::new();
    if args.json {
        let mut v = serde_json::to_value(&info)?;
        if let (Some(obj), Some(l)) = (v.as_object_mut(), &load) {
            obj.insert("load".into(), serde_json::to_value(l)?);
        }
        out = serde_json::to_string_pretty(&v)? + "\n";
    } else {
        out += &info.to_string();
        if let Some(l) = load {
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            let peak = match l.peak_rss_bytes {
                Some(p) => format!(
                    "{:.2} GiB ({:.2}x X in memory)",
                    gib(p),
                    p as f64 / l.x_bytes.max(1) as f64
                ),
                None => "unknown".into(),
            };
            let base = l
                .baseline_rss_bytes
                .map_or("unknown".into(), |b| format!("{:.2} GiB", gib(b)));
            out += &format!(
                "load: {:.2} s, X in memory {:.2} GiB ({}; dense {:.2} GiB), peak memory {peak}, before loading {base}\n",
                l.seconds,
                gib(l.x_bytes),
                l.x_layout,
                gib(l.dense_bytes)
            );
        }
    }
    // A closed pipe (`primeflow info f.h5ad | head`) is not an error.
    use std::io::Write;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A `kB` line of /proc/self/status (`VmHWM:` = peak resident set size,
/// `VmRSS:` = current), in bytes.
fn proc_status_bytes(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
