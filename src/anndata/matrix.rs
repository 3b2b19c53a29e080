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

use hdf5::types::TypeDescriptor;
use hdf5::{Dataset, Group};
use ndarray::Array2;

use super::buffers::XBuffers;
use super::expr::Expr;
use super::h5::{self, ferr, Node};
use super::sparse::Sparse;
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
                check_version(&ds, &enc, path, field)?;
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
            check_version(&g, &enc, path, field)?;
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

/// The `encoding-version` of each matrix encoding this reader knows (what
/// anndata >= 0.8 writes and reads).
const KNOWN_VERSIONS: [(&str, &str); 3] = [
    ("array", "0.2.0"),
    ("csr_matrix", "0.1.0"),
    ("csc_matrix", "0.1.0"),
];

/// An `encoding-version` other than the known one for `enc` is an error (as
/// in anndata: a newer layout could mean something else); an absent one is
/// accepted (older writers).
fn check_version(loc: &hdf5::Location, enc: &str, path: &Path, field: &str) -> Result<()> {
    let Some(version) = h5::attr_string(loc, "encoding-version", path, field)? else {
        return Ok(());
    };
    match KNOWN_VERSIONS.iter().find(|(e, _)| *e == enc) {
        Some((_, known)) if *known == version => Ok(()),
        Some((_, known)) => Err(ferr(
            path,
            &format!("{field}@encoding-version"),
            format!(
                "unknown encoding-version '{version}' for {enc}; this reader knows {enc} {known} (AnnData >= 0.8)"
            ),
        )),
        None => Ok(()),
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

pub(super) fn index_dtype(ds: &Dataset, path: &Path, field: &str) -> Result<TypeDescriptor> {
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

/// Reads the rows `rows` (all when `None`; the caller checked they are in
/// range) of the dense `[n, m]` dataset `ds` into the rows of `out`
/// (`[rows.len(), m]`), in bounded runs of nearby rows.
pub(super) fn read_dense_rows(
    ds: &hdf5::Dataset,
    rows: Option<&[usize]>,
    out: &mut Array2<f32>,
    path: &Path,
    field: &str,
) -> Result<()> {
    let n = ds.shape().first().copied().unwrap_or(0);
    let m = out.ncols();
    for run in plan_runs(rows, n, |a, b| (b - a).saturating_mul(m.max(1))) {
        let block = ds
            .read_slice_2d::<f32, _>(ndarray_h5::s![run.start..run.end, ..])
            .map_err(|e| {
                ferr(
                    path,
                    field,
                    format!("reading rows {}..{} failed: {e}", run.start, run.end),
                )
            })?;
        for &(row, pos) in &run.targets {
            // Element-wise: `block` is HDF5's ndarray version.
            let src = block.row(row - run.start);
            for (o, v) in out.row_mut(pos).iter_mut().zip(src.iter()) {
                *o = *v;
            }
        }
    }
    Ok(())
}

/// Reads matrix `name` of `parent` (full path `field`) in its own layout:
/// CSR stays CSR (in `reuse`'s memory as far as it holds it), dense and
/// CSC become dense; `[rows.len(), n_cols]` (all rows when `rows` is
/// `None`).
pub(crate) fn read_expr(
    parent: &Group,
    name: &str,
    path: &Path,
    field: &str,
    rows: Option<&[usize]>,
    reuse: XBuffers,
) -> Result<Expr> {
    let meta = inspect(parent, name, path, field)?;
    if meta.encoding != Encoding::Csr {
        return Ok(read_matrix(parent, name, path, field, rows)?.into());
    }
    check_rows(rows, meta.shape.0, path)?;
    let g = parent.group(name).map_err(h5::rerr(path, field))?;
    let csr = super::sparse::read_csr(
        &g,
        path,
        field,
        meta.shape,
        meta.nnz.unwrap_or(0),
        rows,
        reuse,
    )?;
    Ok(csr.into())
}

/// Every requested row must be `< n`.
fn check_rows(rows: Option<&[usize]>, n: usize, path: &Path) -> Result<()> {
    if let Some((k, &r)) = rows
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .find(|(_, &r)| r >= n)
    {
        return Err(Error::invalid(
            "rows",
            format!(
                "row {r} (position {k}) is out of range: {} has {n} cells",
                path.display()
            ),
        ));
    }
    Ok(())
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
    check_rows(rows, n, path)?;
    let n_out = rows.map_or(n, |r| r.len());
    let mut out = alloc_dense(n_out, m, path, field)?;
    match meta.encoding {
        Encoding::Dense => {
            let ds = parent.dataset(name).map_err(h5::rerr(path, field))?;
            read_dense_rows(&ds, rows, &mut out, path, field)?;
        }
        Encoding::Csr => {
            let g = parent.group(name).map_err(h5::rerr(path, field))?;
            let sp = Sparse::open(&g, path, field, meta.nnz.unwrap_or(0))?;
            let runs = plan_runs(rows, n, |a, b| sp.span(a, b).len());
            for run in runs {
                let span = sp.span(run.start, run.end);
                let lo = span.start;
                let data = sp.read_values(span.clone(), path)?;
                let idx = sp.read_indices(span, path)?;
                for &(row, pos) in &run.targets {
                    let entries = sp.span(row, row + 1);
                    let mut out_row = out.row_mut(pos);
                    let out_row = out_row
                        .as_slice_mut()
                        .ok_or_else(|| ferr(path, field, "internal: non-contiguous row"))?;
                    // Write before the scatter reads: one page fault per
                    // fresh page instead of a zero-page read fault plus a
                    // copy-on-write fault.
                    out_row.fill(0.0);
                    idx.scatter(entries.start - lo..entries.end - lo, &data, m, |j, v| {
                        out_row[j] += v
                    })
                    .map_err(|(k, bad)| sp.bad_index(row, lo + k, bad, m, path))?;
                }
            }
        }
        Encoding::Csc => {
            let g = parent.group(name).map_err(h5::rerr(path, field))?;
            let sp = Sparse::open(&g, path, field, meta.nnz.unwrap_or(0))?;
            // Column runs hit every row: touch (write) the output once first
            // so the scatter's reads do not fault on zero pages.
            out.fill(0.0);
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
            let runs = plan_runs(None, m, |a, b| sp.span(a, b).len());
            for run in runs {
                let span = sp.span(run.start, run.end);
                let lo = span.start;
                let data = sp.read_values(span.clone(), path)?;
                let idx = sp.read_indices(span, path)?;
                for col in run.start..run.end {
                    let entries = sp.span(col, col + 1);
                    idx.scatter(entries.start - lo..entries.end - lo, &data, n, |i, v| {
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
pub(super) struct Run {
    pub start: usize,
    pub end: usize,
    pub targets: Vec<(usize, usize)>,
}

/// Groups the requested rows (all `n` when `None`) into runs of at most
/// [`RUN_ROWS`] rows and about [`RUN_NNZ`] stored values (`cost(a, b)` is the
/// number of values in rows `a..b`); requested rows at most [`MAX_GAP`] apart
/// share a run.
pub(super) fn plan_runs(
    rows: Option<&[usize]>,
    n: usize,
    cost: impl Fn(usize, usize) -> usize,
) -> Vec<Run> {
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
}
