//! Link-time fixes for libtorch from PyPI (see ../shared/docs/toolchain.md):
//! 1. embed a RUNPATH to the torch lib folder, so binaries and test runners
//!    find libtorch_cpu.so without LD_LIBRARY_PATH;
//! 2. link libtorch (and through it libtorch_cuda) with --no-as-needed, so
//!    the CUDA backend is registered and `Cuda::is_available()` can be true.
//!
//! It also records the Rhai version Cargo.lock pins as
//! `PRIMEFLOW_RHAI_VERSION` (the Jupyter kernel reports it as the language
//! version); "1" when no lock file is at hand (primeflow as a dependency).
fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let rhai = std::fs::read_to_string("Cargo.lock")
        .ok()
        .and_then(|lock| locked_version(&lock, "rhai"))
        .unwrap_or_else(|| "1".to_string());
    println!("cargo:rustc-env=PRIMEFLOW_RHAI_VERSION={rhai}");

    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-ltorch_cuda");
        }
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// The version of package `name` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            let v = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(v.trim_end_matches('"').to_string());
        }
    }
    None
}
