//! Reading an AnnData matrix element (`X` or `layers/<name>`) into a dense
//! `[n_rows, n_vars]` f32 array.
//!
//! Encodings: a 2-D dataset (`array`), or a group `csr_matrix` / `csc_matrix`
//! holding `data` (any integer or float type), `indices` and `indptr` (any
//! integer type) plus a `shape` attribute. The structure is checked before any
//! value is read (shape vs `indptr` length, `indptr` monotone and ending at
//! `nnz`, `data`/`indices` lengths); each index is range-checked as it is
//! scattered. Duplicate column indices within a row add up (as in scipy).
//!
//! Memory: the output is allocated once and filled in row runs (CSR, dense)
//! or column runs (CSC) of bounded size, so a load holds the dense result
//! plus one run, never two copies of the matrix. A row subset reads only the
//! runs of `indptr`-ranges that contain requested rows.

use std::path::Path;

use hdf5::types::{IntSize, TypeDescriptor};
use hdf5::{Dataset, Group};
use ndarray::{s, Array2};

use super::h5::{self, ferr, Node};
use crate::error::{Error, Result};

/// Rows per run when reading CSR or dense data.
const RUN_ROWS: usize = 4096;
/// Stored values per run (bounds the temporary buffers, ~32 MiB).
const RUN_NNZ: usize = 4 << 20;
/// Requested rows this close together are read in one run.
const MAX_GAP: usize = 8;

/// How a matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Dense,
    Csr,
    Csc,
}

impl Encoding {
    /// `dense`, `csr` or `csc`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Csr => "csr",
            Encoding::Csc => "csc",
        }
    }
}

/// The structure of a matrix element, read without its values.
#[derive(Debug, Clone)]
pub(crate) struct MatrixMeta {
    pub encoding: Encoding,
    /// `(n_rows, n_cols)`.
    pub shape: (usize, usize),
    /// Element type of the values.
    pub dtype: TypeDescriptor,
    /// Stored values of a sparse matrix (`None` for dense).
    pub nnz: Option<usize>,
}

/// Reads the structure of the matrix `name` in `parent`; `field` is its full
/// HDF5 path (`X`, `layers/counts`).
pub(crate) fn inspect(parent: &Group, name: &str, path: &Path, field: &str) -> Result<MatrixMeta> {
    match h5::node(parent, name, path, field)? {
        None => Err(ferr(path, field, "missing")),
        Some(Node::Dataset) => {
            let ds = parent.dataset(name).map_err(h5::rerr(path, field))?;
            if let Some(enc) = h5::encoding_type(&ds, path, field)? {
                if enc != "array" {
                    return Err(ferr(path, field, format!("a dataset with encoding-type '{enc}'; expected 'array' (dense), or a csr_matrix/csc_matrix group")));
                }
            }
            let shape = h5::shape(&ds, path, field)?;
            let &[n, m] = shape.as_slice() else {
                return Err(ferr(
                    path,
                    field,
                    format!("expected a 2-D matrix, found shape {shape:?}"),
                ));
            };
            let dtype = value_dtype(&ds, path, field)?;
            Ok(MatrixMeta {
                encoding: Encoding::Dense,
                shape: (n, m),
                dtype,
                nnz: None,
            })
        }
        Some(Node::Group) => {
            let g = parent.group(name).map_err(h5::rerr(path, field))?;
            let enc = h5::encoding_type(&g, path, field)?.ok_or_else(|| {
                ferr(
                    path,
                    field,
                    "a group without 'encoding-type'; expected csr_matrix or csc_matrix",
                )
            })?;
            let encoding = match enc.as_str() {
                "csr_matrix" => Encoding::Csr,
                "csc_matrix" => Encoding::Csc,
                other => {
                    return Err(ferr(path, field, format!("unknown encoding-type '{other}'; expected csr_matrix, csc_matrix or a dense array")))
                }
            };
            let sf = format!("{field}@shape");
            let shape = h5::attr_ints(&g, "shape", path, field)?
                .ok_or_else(|| ferr(path, &sf, "missing"))?;
            let (n, m) = match shape.as_slice() {
                &[n, m] if n >= 0 && m >= 0 => (n as usize, m as usize),
                _ => {
                    return Err(ferr(
                        path,
                        &sf,
                        format!("expected two non-negative integers, found {shape:?}"),
                    ))
                }
            };
            let (df, xf, pf) = (
                format!("{field}/data"),
                format!("{field}/indices"),
                format!("{field}/indptr"),
            );
            let data = h5::dataset(&g, "data", path, &df)?;
            let indices = h5::dataset(&g, "indices", path, &xf)?;
            let indptr = h5::dataset(&g, "indptr", path, &pf)?;
            let nnz = h5::len_1d(&data, path, &df)?;
            let dtype = value_dtype(&data, path, &df)?;
            let n_idx = h5::len_1d(&indices, path, &xf)?;
            if n_idx != nnz {
                return Err(ferr(
                    path,
                    &xf,
                    format!("has {n_idx} elements but {df} has {nnz}"),
                ));
            }
            index_dtype(&indices, path, &xf)?;
            index_dtype(&indptr, path, &pf)?;
            let n_ptr = h5::len_1d(&indptr, path, &pf)?;
            let major = if encoding == Encoding::Csr { n } else { m };
            if n_ptr != major + 1 {
                return Err(ferr(
                    path,
                    &pf,
                    format!(
                        "has {n_ptr} elements but the shape attribute [{n}, {m}] needs {} ({} + 1)",
                        major + 1,
                        major
                    ),
                ));
            }
            Ok(MatrixMeta {
                encoding,
                shape: (n, m),
                dtype,
                nnz: Some(nnz),
            })
        }
    }
}

fn value_dtype(ds: &Dataset, path: &Path, field: &str) -> Result<TypeDescriptor> {
    let td = h5::dtype(ds, path, field)?;
    if !h5::is_numeric(&td) {
        return Err(ferr(
            path,
            field,
            format!(
                "expected integer or float values, found {}",
                h5::dtype_name(&td)
            ),
        ));
    }
    Ok(td)
}

fn index_dtype(ds: &Dataset, path: &Path, field: &str) -> Result<TypeDescriptor> {
    let td = h5::dtype(ds, path, field)?;
    if !h5::is_integer(&td) {
        return Err(ferr(
            path,
            field,
            format!("expected integers, found {}", h5::dtype_name(&td)),
        ));
    }
    Ok(td)
}

/// A zero `[n, m]` f32 array, or an error when it cannot be allocated
/// (never an abort on an absurd shape attribute).
pub(crate) fn alloc_dense(n: usize, m: usize, path: &Path, field: &str) -> Result<Array2<f32>> {
    let too_big = || {
        ferr(
            path,
            field,
            format!("a dense [{n}, {m}] f32 matrix does not fit in memory"),
        )
    };
    let len = n
        .checked_mul(m)
        .filter(|&l| l <= isize::MAX as usize / 4)
        .ok_or_else(too_big)?;
    // Probe first, then allocate with vec! (calloc: zero pages on demand,
    // nothing touched twice).
    let mut probe = Vec::<f32>::new();
    probe.try_reserve_exact(len).map_err(|_| too_big())?;
    drop(probe);
    Array2::from_shape_vec((n, m), vec![0f32; len]).map_err(|e| ferr(path, field, e.to_string()))
}

/// Reads matrix `name` of `parent` (full path `field`) into a dense
/// `[rows.len(), n_cols]` array (all rows when `rows` is `None`).
pub(crate) fn read_matrix(
    parent: &Group,
    name: &str,
    path: &Path,
    field: &str,
    rows: Option<&[usize]>,
) -> Result<Array2<f32>> {
    let meta = inspect(parent, name, path, field)?;
    let (n, m) = meta.shape;
    if let Some(rows) = rows {
        if let Some((k, &r)) = rows.iter().enumerate().find(|(_, &r)| r >= n) {
            return Err(Error::invalid(
                "rows",
                format!(
                    "row {r} (position {k}) is out of range: {} has {n} cells",
                    path.display()
                ),
            ));
        }
    }
    let n_out = rows.map_or(n, |r| r.len());
    let mut out = alloc_dense(n_out, m, path, field)?;
    match meta.encoding {
        Encoding::Dense => {
            let ds = parent.dataset(name).map_err(h5::rerr(path, field))?;
            let runs = plan_runs(rows, n, |a, b| (b - a).saturating_mul(m.max(1)));
            for run in runs {
                let block = ds
                    .read_slice_2d::<f32, _>(s![run.start..run.end, ..])
                    .map_err(|e| {
                        ferr(
                            path,
                            field,
                            format!("reading rows {}..{} failed: {e}", run.start, run.end),
                        )
                    })?;
                for &(row, pos) in &run.targets {
                    out.row_mut(pos).assign(&block.row(row - run.start));
                }
            }
        }
        Encoding::Csr => {
            let g = parent.group(name).map_err(h5::rerr(path, field))?;
            let sp = Sparse::open(&g, path, field, meta.nnz.unwrap_or(0))?;
            let runs = plan_runs(rows, n, |a, b| (sp.indptr[b] - sp.indptr[a]) as usize);
            for run in runs {
                let (lo, hi) = (sp.indptr[run.start] as usize, sp.indptr[run.end] as usize);
                let data = h5::read_range::<f32>(&sp.data, lo..hi, path, &sp.data_field)?;
                let idx = sp.read_indices(lo..hi, path)?;
                for &(row, pos) in &run.targets {
                    let (a, b) = (
                        sp.indptr[row] as usize - lo,
                        sp.indptr[row + 1] as usize - lo,
                    );
                    let mut out_row = out.row_mut(pos);
                    let out_row = out_row
                        .as_slice_mut()
                        .ok_or_else(|| ferr(path, field, "internal: non-contiguous row"))?;
                    idx.scatter(a..b, &data, m, |j, v| out_row[j] += v)
                        .map_err(|(k, bad)| sp.bad_index(row, lo + k, bad, m, path))?;
                }
            }
        }
        Encoding::Csc => {
            let g = parent.group(name).map_err(h5::rerr(path, field))?;
            let sp = Sparse::open(&g, path, field, meta.nnz.unwrap_or(0))?;
            // Output position of each source row (first occurrence), and the
            // later duplicates to copy afterwards.
            let mut pos = vec![usize::MAX; n];
            let mut dups = Vec::new();
            match rows {
                None => pos.iter_mut().enumerate().for_each(|(i, p)| *p = i),
                Some(rows) => {
                    for (k, &r) in rows.iter().enumerate() {
                        if pos[r] == usize::MAX {
                            pos[r] = k;
                        } else {
                            dups.push((pos[r], k));
                        }
                    }
                }
            }
            let runs = plan_runs(None, m, |a, b| (sp.indptr[b] - sp.indptr[a]) as usize);
            for run in runs {
                let (lo, hi) = (sp.indptr[run.start] as usize, sp.indptr[run.end] as usize);
                let data = h5::read_range::<f32>(&sp.data, lo..hi, path, &sp.data_field)?;
                let idx = sp.read_indices(lo..hi, path)?;
                for col in run.start..run.end {
                    let (a, b) = (
                        sp.indptr[col] as usize - lo,
                        sp.indptr[col + 1] as usize - lo,
                    );
                    idx.scatter(a..b, &data, n, |i, v| {
                        if let Some(p) = pos.get(i).copied().filter(|&p| p != usize::MAX) {
                            out[[p, col]] += v;
                        }
                    })
                    .map_err(|(k, bad)| sp.bad_index(col, lo + k, bad, n, path))?;
                }
            }
            for (from, to) in dups {
                let src = out.row(from).to_owned();
                out.row_mut(to).assign(&src);
            }
        }
    }
    Ok(out)
}

/// A contiguous range of major indices read at once, with the requested
/// `(major index, output position)` pairs inside it.
struct Run {
    start: usize,
    end: usize,
    targets: Vec<(usize, usize)>,
}

/// Groups the requested rows (all `n` when `None`) into runs of at most
/// [`RUN_ROWS`] rows and about [`RUN_NNZ`] stored values (`cost(a, b)` is the
/// number of values in rows `a..b`); requested rows at most [`MAX_GAP`] apart
/// share a run.
fn plan_runs(rows: Option<&[usize]>, n: usize, cost: impl Fn(usize, usize) -> usize) -> Vec<Run> {
    let mut order: Vec<(usize, usize)> = match rows {
        None => (0..n).map(|i| (i, i)).collect(),
        Some(r) => r.iter().enumerate().map(|(k, &r)| (r, k)).collect(),
    };
    order.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    for (row, pos) in order {
        if let Some(last) = runs.last_mut() {
            let joins = row < last.end + MAX_GAP
                && row + 1 - last.start <= RUN_ROWS
                && (row < last.end || cost(last.start, row + 1) <= RUN_NNZ);
            if joins {
                last.end = last.end.max(row + 1);
                last.targets.push((row, pos));
                continue;
            }
        }
        runs.push(Run {
            start: row,
            end: row + 1,
            targets: vec![(row, pos)],
        });
    }
    runs
}

/// Column (CSR) or row (CSC) indices of one run, in their stored width.
enum Indices {
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
}

impl Indices {
    /// Calls `put(index, value)` for stored entries `range` of the run;
    /// `Err((k, index))` for the first index outside `0..bound`.
    fn scatter(
        &self,
        range: std::ops::Range<usize>,
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
struct Sparse {
    data: Dataset,
    indices: Dataset,
    index_type: TypeDescriptor,
    indptr: Vec<i64>,
    data_field: String,
    indices_field: String,
}

impl Sparse {
    fn open(g: &Group, path: &Path, field: &str, nnz: usize) -> Result<Sparse> {
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

    fn read_indices(&self, range: std::ops::Range<usize>, path: &Path) -> Result<Indices> {
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

    fn bad_index(&self, major: usize, k: usize, bad: i64, bound: usize, path: &Path) -> Error {
        ferr(
            path,
            &self.indices_field,
            format!("index {bad} at position {k} (row/column {major}) is out of range 0..{bound}"),
        )
    }
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
    fn runs_cover_requested_rows_once() {
        let rows = [7usize, 3, 4, 100, 5, 3];
        let runs = plan_runs(Some(&rows), 200, |a, b| b - a);
        let mut seen: Vec<(usize, usize)> = runs.iter().flat_map(|r| r.targets.clone()).collect();
        seen.sort_unstable_by_key(|&(_, p)| p);
        assert_eq!(seen, vec![(7, 0), (3, 1), (4, 2), (100, 3), (5, 4), (3, 5)]);
        for r in &runs {
            assert!(r
                .targets
                .iter()
                .all(|&(row, _)| row >= r.start && row < r.end));
        }
        // 3,4,5,7 share one run (gap <= MAX_GAP); 100 is alone.
        assert_eq!(runs.len(), 2);
    }

    #[test]
    fn full_plan_is_bounded() {
        let runs = plan_runs(None, 10_000, |a, b| (b - a) * 2000);
        assert!(runs
            .iter()
            .all(|r| r.end - r.start <= RUN_ROWS && (r.end - r.start) * 2000 <= RUN_NNZ.max(2000)));
        assert_eq!(runs.iter().map(|r| r.targets.len()).sum::<usize>(), 10_000);
    }

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
