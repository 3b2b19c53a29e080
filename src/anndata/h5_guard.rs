//! Checks made before HDF5 calls that a corrupted file could turn into a
//! crash or a hang, found by the mutation-fuzz test (tests/suite/fuzz.rs)
//! against the bundled HDF5 2.2:
//!
//! * Listing attributes (`H5Aiterate`) hands each attribute's name charset,
//!   a byte read from the file, to hdf5-metno as a Rust enum; an invalid
//!   value is undefined behaviour (seen: an abort on a 7.5e18-byte
//!   allocation). [`attr_exists`] asks `H5Aexists` by name instead.
//! * An element count read from a corrupted dataspace can be astronomical:
//!   reading it whole makes hdf5-metno allocate it (an abort when the
//!   allocation fails) or HDF5 fill it (a hang while it touches memory).
//!   [`check_count`] refuses counts the machine's memory cannot hold, and
//!   attributes longer than their role allows, before any read.

use std::ffi::CString;
use std::path::Path;

use hdf5::{Container, Location};

use super::h5::ferr;
use crate::error::Result;

/// True when `loc` has an attribute `name` (`field` is `loc`'s path).
pub(crate) fn attr_exists(loc: &Location, name: &str, path: &Path, field: &str) -> Result<bool> {
    let c = CString::new(name)
        .map_err(|_| ferr(path, field, format!("attribute name '{name}' contains NUL")))?;
    // SAFETY: a valid object id and a NUL-terminated name; the hdf5 crate's
    // lock serialises HDF5 calls as its own wrappers do.
    let r = hdf5::sync::sync(|| unsafe { hdf5_sys::h5a::H5Aexists(loc.id(), c.as_ptr()) });
    if r < 0 {
        // SAFETY: clears this thread's default error stack.
        hdf5::sync::sync(|| unsafe { hdf5_sys::h5e::H5Eclear2(hdf5_sys::h5e::H5E_DEFAULT) });
        return Err(ferr(
            path,
            &format!("{field}@{name}"),
            "HDF5 cannot look the attribute up (corrupt object header?)",
        ));
    }
    Ok(r > 0)
}

/// The element count of `c`, refused when above `max` or when `count *
/// elem_bytes` exceeds the machine's physical memory (then the file is
/// corrupt, or too large for this machine either way).
pub(crate) fn check_count(
    c: &Container,
    elem_bytes: usize,
    max: Option<usize>,
    path: &Path,
    field: &str,
) -> Result<usize> {
    let shape = c
        .get_shape()
        .map_err(|e| ferr(path, field, format!("HDF5 read failed: {e}")))?;
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| ferr(path, field, format!("shape {shape:?} overflows")))?;
    if let Some(max) = max.filter(|&m| n > m) {
        return Err(ferr(
            path,
            field,
            format!("has {n} elements (shape {shape:?}); at most {max} expected"),
        ));
    }
    let bytes = n.saturating_mul(elem_bytes.max(1));
    let ram = physical_memory();
    if bytes as u64 > ram {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(ferr(
            path,
            field,
            format!(
                "shape {shape:?} needs {:.1} GiB in memory, more than this machine has ({:.1} GiB): the file is corrupt or too large",
                gib(bytes as u64),
                gib(ram)
            ),
        ));
    }
    Ok(n)
}

/// Bytes of physical memory (`u64::MAX` when unknown).
fn physical_memory() -> u64 {
    // SAFETY: sysinfo fills the struct it is given.
    unsafe {
        let mut si: libc::sysinfo = std::mem::zeroed();
        if libc::sysinfo(&mut si) == 0 {
            (si.totalram as u64).saturating_mul(si.mem_unit.max(1) as u64)
        } else {
            u64::MAX
        }
    }
}
