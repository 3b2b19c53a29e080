//! Tests: hdf5_lib — the HDF5 library linked in is the bundled current one
//! (hdf5-metno's `static` feature), not a system 1.10, whose parsers crash
//! on corrupted files (see `fuzz`).

use crate::common;

/// The bundled HDF5 (hdf5-metno-src 0.10.4 ships 2.2.0) in the library and
/// in the binary.
#[test]
fn linked_hdf5_is_the_bundled_one() {
    let (major, minor, release) = primeflow::anndata::hdf5_version();
    assert!(
        (major, minor) >= (1, 14),
        "HDF5 {major}.{minor}.{release} is linked; expected the bundled >= 1.14 (hdf5-metno 'static')"
    );
    let (code, out, err) = common::primeflow(&["--version"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("HDF5 {major}.{minor}.{release}")),
        "{out}"
    );
    // Static: the binary needs no shared libhdf5.
    if let Ok(o) = std::process::Command::new("ldd")
        .arg(common::bin())
        .output()
    {
        let deps = String::from_utf8_lossy(&o.stdout);
        assert!(!deps.contains("libhdf5"), "{deps}");
    }
}
