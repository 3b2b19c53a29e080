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
    use primeflow::anndata::{write_h5ad, WriteOptions, XFormat};
    let dir = tmpdir(&format!("layout_{name}_{layout:?}"));
    let path = dir.join("x.h5ad");
    let x_format = match layout {
        Layout::Dense => XFormat::Dense,
        Layout::Csr => XFormat::Csr,
    };
    let opts = WriteOptions {
        x_format,
        ..Default::default()
    };
    write_h5ad(&path, &ds.to_anndata(), &opts).expect("write the layout copy");
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
