//! Tests: fuzz — mutation fuzzing of every command that reads an `.h5ad`.
//!
//! Copies of devel.h5ad with 1-64 bytes changed (seeded, so a failure
//! reproduces from its seed and file number) are run through `primeflow
//! info --json`, `primeflow split` and, for every [`EVAL_EVERY`]th file,
//! `primeflow evaluate --pred F --ref F` with one metric. `train`, `sample
//! --data` and `export-vcc` read through the same `Dataset::load` /
//! `read_h5ad` as `split` and `evaluate` and are too slow to run hundreds of
//! times. Each command is its own process (forked by the hidden `primeflow
//! batch`, which reports exit codes and signals) with a timeout; a signal
//! death (segfault, abort, OOM kill), a timeout or a panic fails the test,
//! naming the seed, the file number and the command.
//!
//! Half of each file's changes hit HDF5 metadata (everything outside the
//! datasets' chunks: superblock, object headers, B-trees, heaps), where a
//! bad byte reaches the library's parsers; the other half fall anywhere,
//! mostly in compressed chunks, which exercises the filters and the reader's
//! value checks.
//!
//! CI runs [`CI_FILES`] files; `bench/fuzz_h5ad.sh` runs the ignored
//! [`mutated_devel_long`] for 10 minutes and writes its numbers to
//! docs/results/fuzz_h5ad.md.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common;

/// Seed of the CI corpus.
const SEED: u64 = 20_261_130;
/// Files of the CI corpus.
const CI_FILES: usize = 300;
/// One file in this many also goes through `evaluate`.
const EVAL_EVERY: usize = 5;
/// Seconds one command may run before it counts as a hang.
const TIMEOUT_S: f64 = 30.0;

/// Byte ranges of devel.h5ad that hold dataset values (chunks or contiguous
/// storage), sorted; every other byte is HDF5 metadata.
fn value_ranges(path: &Path) -> Vec<Range<u64>> {
    fn walk(g: &hdf5::Group, out: &mut Vec<Range<u64>>) {
        for ds in g.datasets().unwrap() {
            if let Some(n) = ds.num_chunks() {
                for i in 0..n {
                    let c = ds.chunk_info(i).unwrap();
                    out.push(c.addr..c.addr + c.size);
                }
            } else if let Some(off) = ds.offset() {
                out.push(off..off + ds.storage_size());
            }
        }
        for sub in g.groups().unwrap() {
            walk(&sub, out);
        }
    }
    let f = hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
        .unwrap();
    let mut v = Vec::new();
    walk(&f, &mut v);
    v.sort_by_key(|r| r.start);
    v
}

/// The metadata bytes: the complement of `values` in `0..len`.
fn metadata_ranges(values: &[Range<u64>], len: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = 0;
    for r in values {
        if r.start > at {
            out.push(at..r.start);
        }
        at = at.max(r.end);
    }
    if at < len {
        out.push(at..len);
    }
    out
}

/// File `index` of the corpus of `seed`: `original` with 1-64 bytes
/// changed, each in a metadata byte or anywhere with equal odds. Returns the
/// bytes and the changed offsets.
fn mutate(original: &[u8], meta: &[Range<u64>], seed: u64, index: u64) -> (Vec<u8>, Vec<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let meta_len: u64 = meta.iter().map(|r| r.end - r.start).sum();
    let mut bytes = original.to_vec();
    let n = rng.gen_range(1..=64);
    let mut at = Vec::with_capacity(n);
    for _ in 0..n {
        let pos = if meta_len > 0 && rng.gen_bool(0.5) {
            let mut k = rng.gen_range(0..meta_len);
            let r = meta
                .iter()
                .find(|r| {
                    let l = r.end - r.start;
                    if k < l {
                        true
                    } else {
                        k -= l;
                        false
                    }
                })
                .unwrap();
            r.start + k
        } else {
            rng.gen_range(0..bytes.len() as u64)
        };
        bytes[pos as usize] ^= rng.gen_range(1..=255u8);
        at.push(pos);
    }
    (bytes, at)
}

/// How one command ended (a line of `primeflow batch`).
#[derive(Debug, Clone, serde::Deserialize)]
struct Outcome {
    args: Vec<String>,
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    seconds: f64,
    stderr: String,
}

impl Outcome {
    /// A crash, an abort, a hang or a panic (an error exit is fine).
    fn failed(&self) -> bool {
        self.signal.is_some()
            || self.timed_out
            || self.code == Some(101)
            || self.stderr.contains("panicked")
            || self.stderr.contains("HDF5-DIAG")
    }
}

/// What a campaign found.
#[derive(Debug, Default)]
struct Report {
    files: usize,
    runs: usize,
    /// Per command: exit code or signal -> count.
    by_command: BTreeMap<String, BTreeMap<String, usize>>,
    /// (file number, changed offsets, outcome) of each failure.
    failures: Vec<(u64, Vec<u64>, Outcome)>,
    /// First stderr lines of failed commands (file path and numbers
    /// elided) -> count: what users see.
    messages: BTreeMap<String, usize>,
    seconds: f64,
}

impl Report {
    fn add(&mut self, index: u64, offsets: &[u64], o: Outcome) {
        self.runs += 1;
        let how = match (o.signal, o.timed_out, o.code) {
            (_, true, _) => "timeout".to_string(),
            (Some(s), _, _) => format!("signal {s}"),
            (_, _, Some(c)) => format!("exit {c}"),
            _ => "unknown".to_string(),
        };
        *self
            .by_command
            .entry(o.args[0].clone())
            .or_default()
            .entry(how)
            .or_default() += 1;
        if let Some(line) = o.stderr.lines().next() {
            let mut key = line.to_string();
            if let Some(f) = o.args.iter().find(|a| a.ends_with(".h5ad")) {
                key = key.replace(f.as_str(), "F");
            }
            let key: String = key
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect();
            *self.messages.entry(key).or_default() += 1;
        }
        if o.failed() {
            self.failures.push((index, offsets.to_vec(), o));
        }
    }

    /// A readable summary (also what the benchmark writes).
    fn summary(&self, seed: u64) -> String {
        let mut s = format!(
            "seed {seed}: {} files, {} runs in {:.0} s, {} crashes/aborts/hangs/panics\n",
            self.files,
            self.runs,
            self.seconds,
            self.failures.len()
        );
        for (cmd, outcomes) in &self.by_command {
            let parts: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            s += &format!("  {cmd:<9} {}\n", parts.join(", "));
        }
        let mut common: Vec<(&String, &usize)> = self.messages.iter().collect();
        common.sort_by(|a, b| b.1.cmp(a.1));
        s += "  most common errors (F = the file, # = a digit):\n";
        for (m, n) in common.iter().take(12) {
            let short: String = m.chars().take(200).collect();
            s += &format!("    {n:>5}  {short}\n");
        }
        for (i, offsets, o) in self.failures.iter().take(20) {
            s += &format!(
                "  FAILED: seed {seed} file {i} ({} bytes changed, first at {:?}): {:?} -> code {:?} signal {:?} timed out {} after {:.1} s; stderr: {}\n",
                offsets.len(), offsets.first(), o.args, o.code, o.signal, o.timed_out, o.seconds, o.stderr.trim()
            );
        }
        s
    }
}

/// The commands run on mutated file `f` (number `i`), outputs under `dir`.
fn commands(f: &Path, i: u64, dir: &Path) -> Vec<Vec<String>> {
    let f = f.to_str().unwrap().to_string();
    let csv = dir
        .join(format!("split-{i}.csv"))
        .to_str()
        .unwrap()
        .to_string();
    let mut v = vec![
        vec!["info".into(), "--json".into(), f.clone()],
        vec![
            "split".into(),
            f.clone(),
            "--task".into(),
            "combination".into(),
            "--out".into(),
            csv,
        ],
    ];
    if (i as usize).is_multiple_of(EVAL_EVERY) {
        v.push(
            [
                "evaluate",
                "--pred",
                &f,
                "--ref",
                &f,
                "--metrics",
                "rmse_average",
                "--quiet",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        );
    }
    v
}

/// Runs files `first..first + n` of the corpus of `seed` (written to `dir`)
/// through one `primeflow batch` and adds them to `report`. Passing files
/// and outputs are deleted; failing files are kept.
fn run_round(seed: u64, first: u64, n: u64, dir: &Path, report: &mut Report) {
    let original = std::fs::read(common::devel()).unwrap();
    let meta = metadata_ranges(&value_ranges(&common::devel()), original.len() as u64);
    let mut files: BTreeMap<u64, (PathBuf, Vec<u64>)> = BTreeMap::new();
    let mut lines = String::new();
    let mut owner: Vec<u64> = Vec::new();
    for i in first..first + n {
        let (bytes, offsets) = mutate(&original, &meta, seed, i);
        let p = dir.join(format!("mut-{seed}-{i}.h5ad"));
        std::fs::write(&p, bytes).unwrap();
        for c in commands(&p, i, dir) {
            lines += &serde_json::to_string(&c).unwrap();
            lines.push('\n');
            owner.push(i);
        }
        files.insert(i, (p, offsets));
    }
    let mut child = Command::new(common::bin())
        .args(["batch", "--timeout", &TIMEOUT_S.to_string()])
        // One OpenMP thread: evaluate's libtorch otherwise spins threads
        // that crawl on a shared 2-core machine.
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(lines.as_bytes()).unwrap();
    });
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut failed_files = std::collections::BTreeSet::new();
    let mut seen = 0;
    for (k, line) in out.lines().enumerate() {
        let o: Outcome = serde_json::from_str(&line.unwrap()).unwrap();
        let i = owner[k];
        if o.failed() {
            failed_files.insert(i);
        }
        report.add(i, &files[&i].1, o);
        seen += 1;
    }
    writer.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "primeflow batch itself failed: {status}");
    assert_eq!(seen, owner.len(), "primeflow batch answered fewer lines");
    report.files += n as usize;
    for (i, (p, _)) in &files {
        if !failed_files.contains(i) {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_file(dir.join(format!("split-{i}.csv")));
    }
}

/// The CI corpus: no mutated file crashes, aborts or hangs any command.
#[test]
fn mutated_devel_files_never_crash() {
    let dir = common::tmpdir("fuzz_ci");
    let t0 = Instant::now();
    let mut report = Report::default();
    run_round(SEED, 0, CI_FILES as u64, &dir, &mut report);
    report.seconds = t0.elapsed().as_secs_f64();
    let s = report.summary(SEED);
    println!("{s}");
    assert!(report.failures.is_empty(), "{s}");
    // The corpus reaches the reader's checks, not only the file opening:
    // some files still read (changes in unused bytes) and some fail later.
    let info = &report.by_command["info"];
    assert!(info.get("exit 0").copied().unwrap_or(0) > 0, "{s}");
    assert!(info.get("exit 2").copied().unwrap_or(0) > 0, "{s}");
}

/// The long campaign of `bench/fuzz_h5ad.sh`: rounds of 200 files with
/// seed `PRIMEFLOW_FUZZ_SEED` (default 1) for `PRIMEFLOW_FUZZ_SECONDS`
/// (default 600); the summary goes to `PRIMEFLOW_FUZZ_REPORT` when set.
#[test]
#[ignore = "10 minutes; run by bench/fuzz_h5ad.sh"]
fn mutated_devel_long() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let seed = env("PRIMEFLOW_FUZZ_SEED", 1);
    let budget = Duration::from_secs(env("PRIMEFLOW_FUZZ_SECONDS", 600));
    let dir = common::tmpdir("fuzz_long");
    let t0 = Instant::now();
    let mut report = Report::default();
    let mut first = 0;
    while t0.elapsed() < budget {
        run_round(seed, first, 200, &dir, &mut report);
        first += 200;
    }
    report.seconds = t0.elapsed().as_secs_f64();
    let s = report.summary(seed);
    println!("{s}");
    if let Ok(p) = std::env::var("PRIMEFLOW_FUZZ_REPORT") {
        std::fs::write(p, &s).unwrap();
    }
    assert!(report.failures.is_empty(), "{s}");
}
