//! Link-time fixes for libtorch from PyPI (see ../shared/docs/toolchain.md):
//! 1. embed a RUNPATH to the torch lib folder, so binaries and test runners
//!    find libtorch_cpu.so without LD_LIBRARY_PATH;
//! 2. link libtorch (and through it libtorch_cuda) with --no-as-needed, so
//!    the CUDA backend is registered and `Cuda::is_available()` can be true.
fn main() {
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
