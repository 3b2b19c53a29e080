//! The sparse half of matrix reading: an open CSR/CSC group with a checked
//! `indptr` (starts at 0, never decreases, ends at `nnz`), the indices of one
//! run kept in their stored width and range-checked as they are scattered
//! into the output, and [`read_csr`]: a CSR element read as CSR (rows chosen
//! by index, in bounded runs, nothing densified).

use std::mem::MaybeUninit;
use std::ops::Range;
use std::path::Path;

use hdf5::types::{IntSize, TypeDescriptor};
use hdf5::{Dataset, Group};

use super::buffers::XBuffers;
use super::csr::Csr;
use super::h5::{self, ferr};
use super::matrix::{index_dtype, plan_runs};
use super::prefault::with_prefault;
use crate::error::{Error, Result};

/// Column (CSR) or row (CSC) indices of one run, in their stored width.
pub(super) enum Indices {
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
}

impl Indices {
    /// Calls `put(index, value)` for stored entries `range` of the run;
    /// `Err((k, index))` for the first index outside `0..bound`.
    pub(super) fn scatter(
        &self,
        range: Range<usize>,
        data: &[f32],
        bound: usize,
        mut put: impl FnMut(usize, f32),
    ) -> std::result::Result<(), (usize, i64)> {
        macro_rules! go {
            ($v:expr) => {{
                for k in range {
                    let (Some(&j), Some(&x)) = ($v.get(k), data.get(k)) else {
                        return Err((k, -1));
                    };
                    match usize::try_from(j) {
                        Ok(j) if j < bound => put(j, x),
                        _ => return Err((k, j as i64)),
                    }
                }
                Ok(())
            }};
        }
        match self {
            Indices::I32(v) => go!(v),
            Indices::U32(v) => go!(v),
            Indices::I64(v) => go!(v),
        }
    }
}

/// An open CSR/CSC group with a validated `indptr`.
pub(super) struct Sparse {
    data: Dataset,
    indices: Dataset,
    index_type: TypeDescriptor,
    indptr: Vec<i64>,
    data_field: String,
    indices_field: String,
}

impl Sparse {
    pub(super) fn open(g: &Group, path: &Path, field: &str, nnz: usize) -> Result<Sparse> {
        let (df, xf, pf) = (
            format!("{field}/data"),
            format!("{field}/indices"),
            format!("{field}/indptr"),
        );
        let data = h5::dataset(g, "data", path, &df)?;
        let indices = h5::dataset(g, "indices", path, &xf)?;
        let index_type = index_dtype(&indices, path, &xf)?;
        let ptr_ds = h5::dataset(g, "indptr", path, &pf)?;
        let indptr = h5::read_ints_1d(&ptr_ds, path, &pf)?;
        check_indptr(&indptr, nnz, path, &pf)?;
        Ok(Sparse {
            data,
            indices,
            index_type,
            indptr,
            data_field: df,
            indices_field: xf,
        })
    }

    /// Stored entries of majors `a..b` (rows for CSR, columns for CSC);
    /// `a <= b <= n_major` is the caller's contract (checked by `inspect`).
    pub(super) fn span(&self, a: usize, b: usize) -> Range<usize> {
        let at = |i: usize| self.indptr.get(i).map_or(0, |&p| p as usize);
        at(a)..at(b).max(at(a))
    }

    /// Values of stored entries `range`, converted to f32.
    pub(super) fn read_values(&self, range: Range<usize>, path: &Path) -> Result<Vec<f32>> {
        h5::read_range::<f32>(&self.data, range, path, &self.data_field)
    }

    pub(super) fn read_indices(&self, range: Range<usize>, path: &Path) -> Result<Indices> {
        let f = self.indices_field.as_str();
        Ok(match self.index_type {
            TypeDescriptor::Integer(IntSize::U4) => {
                Indices::I32(h5::read_range(&self.indices, range, path, f)?)
            }
            TypeDescriptor::Unsigned(IntSize::U4) => {
                Indices::U32(h5::read_range(&self.indices, range, path, f)?)
            }
            _ => Indices::I64(h5::read_range(&self.indices, range, path, f)?),
        })
    }

    /// Reads every stored value and index straight into `data` and
    /// `indices` (both `nnz` long, the whole matrix in order, possibly
    /// uninitialised) in blocks of rows, checking each index against
    /// `bound`. Only for 4-byte indices (anndata writes int32); returns
    /// false, reading nothing, for others. On `Ok(true)` both are
    /// initialised.
    pub(super) fn read_all_into(
        &self,
        indices: &mut [MaybeUninit<u32>],
        data: &mut [MaybeUninit<f32>],
        bound: usize,
        path: &Path,
    ) -> Result<bool> {
        let signed = match self.index_type {
            TypeDescriptor::Integer(IntSize::U4) => true,
            TypeDescriptor::Unsigned(IntSize::U4) => false,
            _ => return Ok(false),
        };
        let n = self.indptr.len().saturating_sub(1);
        let mut done = 0;
        for run in plan_runs(None, n, |a, b| self.span(a, b).len()) {
            let span = self.span(run.start, run.end);
            let (Some(idx), Some(val)) =
                (indices.get_mut(span.clone()), data.get_mut(span.clone()))
            else {
                return Err(ferr(
                    path,
                    &self.data_field,
                    format!("holds fewer than {} values", span.end),
                ));
            };
            h5::read_range_into(&self.data, span.clone(), val, path, &self.data_field)?;
            if signed {
                // SAFETY: i32 and u32 have the same size and alignment and
                // every bit pattern is valid for both; the view lives only
                // for this read.
                let as_i32 = unsafe {
                    std::slice::from_raw_parts_mut(
                        idx.as_mut_ptr().cast::<MaybeUninit<i32>>(),
                        idx.len(),
                    )
                };
                h5::read_range_into(
                    &self.indices,
                    span.clone(),
                    as_i32,
                    path,
                    &self.indices_field,
                )?;
            } else {
                h5::read_range_into(&self.indices, span.clone(), idx, path, &self.indices_field)?;
            }
            // SAFETY: the read above succeeded, so it initialised every
            // element of `idx`; MaybeUninit<u32> has u32's layout.
            let idx: &[u32] =
                unsafe { std::slice::from_raw_parts(idx.as_ptr().cast::<u32>(), idx.len()) };
            // A negative int32 reads as a u32 of at least 2^31, so one
            // comparison catches both; the bound is at most u32::MAX + 1.
            if let Some(k) = idx.iter().position(|&j| j as usize >= bound) {
                let bad = if signed {
                    idx[k] as i32 as i64
                } else {
                    idx[k] as i64
                };
                let pos = span.start + k;
                let row = self
                    .indptr
                    .partition_point(|&p| p as usize <= pos)
                    .saturating_sub(1);
                return Err(self.bad_index(row, pos, bad, bound, path));
            }
            done = span.end;
        }
        if done != indices.len() || done != data.len() {
            // indptr ends at nnz (checked on open), so the runs cover it.
            return Err(ferr(
                path,
                &self.data_field,
                format!("{done} of {} values read", data.len()),
            ));
        }
        Ok(true)
    }

    pub(super) fn bad_index(
        &self,
        major: usize,
        k: usize,
        bad: i64,
        bound: usize,
        path: &Path,
    ) -> Error {
        ferr(
            path,
            &self.indices_field,
            format!("index {bad} at position {k} (row/column {major}) is out of range 0..{bound}"),
        )
    }
}

/// Reads the CSR matrix of group `g` (`field` its HDF5 path, `shape`
/// `(n, m)`, `nnz` stored values) keeping the rows `rows` in that order (all
/// when `None`; the caller checked they are `< n`) as a [`Csr`]
/// `[rows.len(), m]`, in `reuse`'s memory as far as it holds it. Memory:
/// the result plus one bounded run.
pub(super) fn read_csr(
    g: &Group,
    path: &Path,
    field: &str,
    shape: (usize, usize),
    nnz: usize,
    rows: Option<&[usize]>,
    reuse: XBuffers,
) -> Result<Csr> {
    let m = shape.1;
    if u32::try_from(m).is_err() {
        return Err(ferr(
            path,
            field,
            format!("{m} columns; CSR in memory holds at most 2^32 - 1"),
        ));
    }
    let sp = Sparse::open(g, path, field, nnz)?;
    read_csr_rows(&sp, path, field, shape, rows, reuse)
}

/// The rows `rows` (all when `None`; the caller checked they are `< n`)
/// of the open CSR matrix `sp` (`shape` `(n, m)`, `m < 2^32`) as a [`Csr`]
/// `[rows.len(), m]`, in `reuse`'s memory as far as it holds it. Memory:
/// the result plus one bounded run.
pub(super) fn read_csr_rows(
    sp: &Sparse,
    path: &Path,
    field: &str,
    shape: (usize, usize),
    rows: Option<&[usize]>,
    reuse: XBuffers,
) -> Result<Csr> {
    let (n, m) = shape;
    let n_out = rows.map_or(n, |r| r.len());
    let src = |k: usize| rows.map_or(k, |r| r[k]);
    let mut indptr = Vec::with_capacity(n_out + 1);
    indptr.push(0u64);
    let mut total = 0u64;
    for k in 0..n_out {
        let s = src(k);
        total += sp.span(s, s + 1).len() as u64;
        indptr.push(total);
    }
    let total = total as usize;
    let too_big = || {
        ferr(
            path,
            field,
            format!("{total} stored values do not fit in memory"),
        )
    };
    let XBuffers {
        values: mut data,
        mut indices,
    } = reuse;
    indices.clear();
    data.clear();
    indices.try_reserve_exact(total).map_err(|_| too_big())?;
    data.try_reserve_exact(total).map_err(|_| too_big())?;
    if rows.is_none() {
        let (Some(idx), Some(val)) = (
            indices.spare_capacity_mut().get_mut(..total),
            data.spare_capacity_mut().get_mut(..total),
        ) else {
            return Err(too_big());
        };
        let regions = [
            (idx.as_ptr() as usize, std::mem::size_of_val(idx)),
            (val.as_ptr() as usize, std::mem::size_of_val(val)),
        ];
        if with_prefault(&regions, || sp.read_all_into(idx, val, m, path))? {
            // SAFETY: both have capacity for `total` (reserved above) and
            // `read_all_into` returned true, so it initialised all `total`
            // elements of each.
            unsafe {
                indices.set_len(total);
                data.set_len(total);
            }
            return Ok(Csr {
                indptr,
                indices,
                data,
                n_cols: m,
            });
        }
    }
    indices.resize(total, 0);
    data.resize(total, 0.0);
    for run in plan_runs(rows, n, |a, b| sp.span(a, b).len()) {
        let span = sp.span(run.start, run.end);
        let lo = span.start;
        let vals = sp.read_values(span.clone(), path)?;
        let idx = sp.read_indices(span, path)?;
        for &(row, pos) in &run.targets {
            let entries = sp.span(row, row + 1);
            let mut o = indptr[pos] as usize;
            idx.scatter(entries.start - lo..entries.end - lo, &vals, m, |j, v| {
                indices[o] = j as u32;
                data[o] = v;
                o += 1;
            })
            .map_err(|(k, bad)| sp.bad_index(row, lo + k, bad, m, path))?;
        }
    }
    Ok(Csr {
        indptr,
        indices,
        data,
        n_cols: m,
    })
}

/// `indptr` must start at 0, never decrease and end at `nnz`.
fn check_indptr(indptr: &[i64], nnz: usize, path: &Path, field: &str) -> Result<()> {
    match indptr.first() {
        None => return Err(ferr(path, field, "is empty; it needs n + 1 elements")),
        Some(&f) if f != 0 => return Err(ferr(path, field, format!("starts at {f}, expected 0"))),
        _ => {}
    }
    if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(ferr(
            path,
            field,
            format!(
                "is not monotone: element {} is {} but element {} is {}",
                i,
                indptr[i],
                i + 1,
                indptr[i + 1]
            ),
        ));
    }
    let last = indptr.last().copied().unwrap_or(0);
    if last != nnz as i64 {
        return Err(ferr(
            path,
            field,
            format!("ends at {last} but the matrix stores {nnz} values (length of data)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indptr_checks() {
        let p = Path::new("f.h5ad");
        assert!(check_indptr(&[0, 2, 3], 3, p, "X/indptr").is_ok());
        let e = check_indptr(&[0, 2, 1, 3], 3, p, "X/indptr")
            .unwrap_err()
            .to_string();
        assert!(e.contains("X/indptr") && e.contains("not monotone"), "{e}");
        let e = check_indptr(&[0, 2, 4], 3, p, "X/indptr")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ends at 4"), "{e}");
    }
}
