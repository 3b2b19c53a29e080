//! Reads of a range of elements of a 1-D HDF5 dataset: into a new `Vec`
//! ([`read_range`]) or straight into the caller's (uninitialised) buffer
//! ([`read_range_into`]), converted to the element type by HDF5; errors
//! name the file, the field and the range.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::path::Path;

use hdf5::{Dataset, H5Type};

use super::h5::ferr;
use crate::error::Result;

/// Elements `range` of a 1-D dataset as `T` (the caller checked rank and
/// element type).
pub(crate) fn read_range<T: H5Type>(
    ds: &Dataset,
    range: Range<usize>,
    path: &Path,
    field: &str,
) -> Result<Vec<T>> {
    if range.is_empty() {
        return Ok(Vec::new());
    }
    let a = ds.read_slice_1d::<T, _>(range.clone()).map_err(|e| {
        ferr(
            path,
            field,
            format!(
                "reading elements {}..{} failed: {e}",
                range.start, range.end
            ),
        )
    })?;
    Ok(a.into_raw_vec_and_offset().0)
}

/// Reads elements `range` of a 1-D dataset straight into `out`
/// (`range.len()` long, possibly uninitialised), converted to `T` by HDF5,
/// with no buffer of its own: X's values and indices are read into their
/// final place, so a multi-gigabyte matrix is neither zeroed first nor
/// copied through fresh temporary buffers whose pages fault in for every
/// block. On `Ok` every element of `out` is initialised. A failed read is
/// retried through [`read_range`] for its error message.
pub(crate) fn read_range_into<T: H5Type + Copy>(
    ds: &Dataset,
    range: Range<usize>,
    out: &mut [MaybeUninit<T>],
    path: &Path,
    field: &str,
) -> Result<()> {
    if out.len() != range.len() {
        return Err(ferr(
            path,
            field,
            format!(
                "elements {}..{} do not fit a buffer of {}",
                range.start,
                range.end,
                out.len()
            ),
        ));
    }
    if range.is_empty() {
        return Ok(());
    }
    let spaces = ds.space().and_then(|s| {
        let f = s.select(range.clone())?;
        let m = hdf5::Dataspace::try_new(out.len())?;
        let t = hdf5::Datatype::from_type::<T>()?;
        Ok((f, m, t))
    });
    if let Ok((fspace, mspace, mem)) = spaces {
        // SAFETY: `out` holds exactly as many `T` as the memory space
        // selects, and `mem` is `T`'s own HDF5 type, so H5Dread writes
        // only inside `out`, in `T`'s layout (MaybeUninit<T> has T's), and
        // on success it has written every element; all ids are alive for the
        // call (owned by the values above), made under the HDF5 lock.
        let status = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5d::H5Dread(
                ds.id(),
                mem.id(),
                mspace.id(),
                fspace.id(),
                hdf5_sys::h5p::H5P_DEFAULT,
                out.as_mut_ptr().cast(),
            )
        });
        if status >= 0 {
            return Ok(());
        }
        // SAFETY: clears this thread's HDF5 error stack; no pointers.
        hdf5::sync::sync(|| unsafe { hdf5_sys::h5e::H5Eclear2(hdf5_sys::h5e::H5E_DEFAULT) });
    }
    let v = read_range::<T>(ds, range.clone(), path, field)?;
    if v.len() != out.len() {
        return Err(ferr(
            path,
            field,
            format!("reading elements {}..{} failed", range.start, range.end),
        ));
    }
    for (o, x) in out.iter_mut().zip(v) {
        o.write(x);
    }
    Ok(())
}
