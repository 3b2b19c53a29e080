//! Helpers shared by the test modules.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data/devel.h5ad` (PerturBench's devel file; never copied).
pub fn devel() -> PathBuf {
    root().join("../shared/data/devel.h5ad")
}

/// A fresh, empty temporary folder for one test, under target/test-tmp.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = root().join("target/test-tmp").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create test dir");
    d
}

/// The project venv's Python (set up by ./setup.sh --python).
pub fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

/// True when the venv's Python can import `module`.
pub fn python_has(module: &str) -> bool {
    std::process::Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs the venv's Python on `code`, panicking with its stderr on failure.
pub fn run_python(code: &str) -> String {
    let out = std::process::Command::new(python())
        .args(["-c", code])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The built `primeflow` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_primeflow"))
}

/// Runs `primeflow args...` and returns (exit code, stdout, stderr).
pub fn primeflow(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .expect("run primeflow");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `primeflow args...`, asserts that it succeeded and returns its
/// stdout.
pub fn run_ok(args: &[&str]) -> String {
    let (code, out, err) = primeflow(args);
    assert_eq!(code, 0, "primeflow {args:?} failed:\n{out}\n{err}");
    out
}

/// `primeflow simulate --preset tiny --seed <seed>` (and `extra`) into
/// `dir/sim.h5ad`; returns that path.
pub fn simulate_tiny(dir: &Path, seed: &str, extra: &[&str]) -> String {
    let sim = dir.join("sim.h5ad").display().to_string();
    let mut args = vec!["simulate", "--preset", "tiny", "--seed", seed];
    args.extend(extra);
    args.extend(["--out", &sim]);
    run_ok(&args);
    sim
}

/// `primeflow split <data> --task <task> --out <out>` (and `extra`).
pub fn split(data: &str, task: &str, out: &str, extra: &[&str]) -> String {
    let mut args = vec!["split", data, "--task", task, "--out", out];
    args.extend(extra);
    run_ok(&args)
}

/// `primeflow sample --checkpoint <checkpoint> --which test --out <out>
/// --quiet` (and `extra`): the test part's units.
pub fn sample_test(checkpoint: &str, out: &str, extra: &[&str]) -> String {
    let mut args = vec!["sample", "--checkpoint", checkpoint, "--which", "test"];
    args.extend(extra);
    args.extend(["--out", out, "--quiet"]);
    run_ok(&args)
}

/// `primeflow evaluate --pred <pred> --ref <reference> --split <split>
/// --which test --json <json> --quiet` (and `extra`): its stdout and the
/// JSON report it wrote.
pub fn evaluate_test(
    pred: &str,
    reference: &str,
    split: &str,
    json: &str,
    extra: &[&str],
) -> (String, serde_json::Value) {
    let mut args = vec![
        "evaluate", "--pred", pred, "--ref", reference, "--split", split, "--which", "test",
    ];
    args.extend(extra);
    args.extend(["--json", json, "--quiet"]);
    let out = run_ok(&args);
    (out, read_json(Path::new(json)))
}

/// The JSON file at `path`, parsed (panics naming the file).
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts `path` exists.
pub fn assert_exists(path: &Path) {
    assert!(path.exists(), "{} does not exist", path.display());
}

/// How X is held in memory: the two layouts every data, training, resume
/// and metrics path must treat alike (issue 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Dense,
    Csr,
}

/// Both layouts, dense first.
pub const LAYOUTS: [Layout; 2] = [Layout::Dense, Layout::Csr];

/// `ds` written through the library's writer with X in `layout` (in a
/// fresh folder `layout_<name>_<layout>`) and loaded back: X is then CSR in
/// memory exactly when `layout` is CSR.
pub fn relayout(
    ds: &primeflow::data::Dataset,
    layout: Layout,
    name: &str,
) -> primeflow::data::Dataset {
    let dir = tmpdir(&format!("layout_{name}_{layout:?}"));
    let path = dir.join("x.h5ad");
    write_layout(&path, &ds.to_anndata(), layout);
    let back = primeflow::data::Dataset::load(
        &path,
        &primeflow::data::LoadOptions {
            columns: ds.columns.clone(),
            allow_negative: true,
            ..Default::default()
        },
    )
    .expect("read the layout copy");
    assert_eq!(back.x.is_csr(), layout == Layout::Csr, "{name}: layout");
    assert_eq!(back.x, ds.x, "{name}: values survive the {layout:?} copy");
    back
}

/// Writes `ad` to `path` through the library's writer with X in `layout`.
pub fn write_layout(path: &Path, ad: &primeflow::anndata::AnnData, layout: Layout) {
    use primeflow::anndata::{write_h5ad, WriteOptions, XFormat};
    let x_format = match layout {
        Layout::Dense => XFormat::Dense,
        Layout::Csr => XFormat::Csr,
    };
    let opts = WriteOptions {
        x_format,
        ..Default::default()
    };
    write_h5ad(path, ad, &opts).expect("write the h5ad file");
}
