//! `inspect_h5ad`: what is in an `.h5ad` file, read from its structure and
//! small arrays only (X's values are never loaded): shape, X encoding, dtype
//! and stored values, obs/var columns with their kinds (and the levels of
//! categoricals), layers and uns keys. Backs `primeflow info`.

use std::fmt;
use std::path::Path;

use hdf5::types::TypeDescriptor;
use hdf5::Group;
use serde::Serialize;

use super::frame_io::check_unique_categories;
use super::h5::{self, ferr, Node};
use super::matrix::{self, MatrixMeta};
use super::read::{check_root, layer_names};
use crate::error::Result;

/// Levels of a categorical listed in [`ColumnInfo::levels`] (the JSON); the
/// readable form shows fewer.
const MAX_LEVELS: usize = 200;
/// Levels shown per categorical by `Display`.
const SHOWN_LEVELS: usize = 8;

/// Summary of an `.h5ad` file.
#[derive(Debug, Clone, Serialize)]
pub struct H5adInfo {
    pub path: String,
    /// Cells.
    pub n_obs: usize,
    /// Genes.
    pub n_vars: usize,
    pub x: MatrixInfo,
    pub obs: FrameInfo,
    pub var: FrameInfo,
    pub layers: Vec<LayerInfo>,
    /// Top-level keys of `uns`, sorted.
    pub uns_keys: Vec<String>,
}

/// How a matrix (X or a layer) is stored.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixInfo {
    /// `dense`, `csr` or `csc`.
    pub encoding: String,
    /// numpy name of the value type (`float32`, `float64`, `int32`, ...).
    pub dtype: String,
    /// `[n_obs, n_vars]`.
    pub shape: [usize; 2],
    /// Stored values of a sparse matrix; `None` for dense.
    pub nnz: Option<usize>,
}

/// A layer: its name and storage.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub name: String,
    #[serde(flatten)]
    pub matrix: MatrixInfo,
}

/// A dataframe (`obs` or `var`).
#[derive(Debug, Clone, Serialize)]
pub struct FrameInfo {
    /// Name of the index column (`_index` attribute).
    pub index_name: String,
    pub n_rows: usize,
    pub columns: Vec<ColumnInfo>,
}

/// One column: its kind as [`Column::kind`](super::Column::kind) names it.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    /// `categorical`, `string`, `float`, `integer`, `boolean`,
    /// `nullable-integer`, `nullable-boolean`, `nullable-string`, or
    /// `unsupported (<encoding>)`.
    pub kind: String,
    /// Element type on disk (codes' type for categoricals).
    pub dtype: String,
    /// Number of categories (categoricals only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_levels: Option<usize>,
    /// The first categories (up to 200), in code order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
}

/// Reads the structure of `path` (an `.h5ad`) without loading X.
pub fn inspect_h5ad(path: &Path) -> Result<H5adInfo> {
    let file = h5::open_read(path)?;
    check_root(&file, path)?;
    let x = matrix_info(&matrix::inspect(&file, "X", path, "X")?);
    let obs = frame_info(&file, "obs", path)?;
    let var = frame_info(&file, "var", path)?;
    let [n_obs, n_vars] = x.shape;
    if obs.n_rows != n_obs {
        return Err(ferr(
            path,
            "obs",
            format!("obs has {} rows but X has {n_obs} cells", obs.n_rows),
        ));
    }
    if var.n_rows != n_vars {
        return Err(ferr(
            path,
            "var",
            format!("var has {} rows but X has {n_vars} genes", var.n_rows),
        ));
    }
    let mut layers = Vec::new();
    let names = layer_names(&file, path)?;
    if !names.is_empty() {
        let lg = h5::group(&file, "layers", path, "layers")?;
        for name in names {
            let meta = matrix::inspect(&lg, &name, path, &format!("layers/{name}"))?;
            layers.push(LayerInfo {
                name,
                matrix: matrix_info(&meta),
            });
        }
    }
    let uns_keys = match h5::node(&file, "uns", path, "uns")? {
        Some(Node::Group) => {
            let mut k = h5::group(&file, "uns", path, "uns")?
                .member_names()
                .map_err(h5::rerr(path, "uns"))?;
            k.sort();
            k
        }
        _ => Vec::new(),
    };
    Ok(H5adInfo {
        path: path.display().to_string(),
        n_obs,
        n_vars,
        x,
        obs,
        var,
        layers,
        uns_keys,
    })
}

fn matrix_info(m: &MatrixMeta) -> MatrixInfo {
    MatrixInfo {
        encoding: m.encoding.name().to_string(),
        dtype: h5::dtype_name(&m.dtype),
        shape: [m.shape.0, m.shape.1],
        nnz: m.nnz,
    }
}

fn frame_info(file: &hdf5::File, name: &str, path: &Path) -> Result<FrameInfo> {
    // Structure and lengths are checked by reading the index and column
    // order the same way read_h5ad does; column values are not loaded.
    let g = h5::group(file, name, path, name)?;
    match h5::encoding_type(&g, path, name)?.as_deref() {
        Some("dataframe") => {}
        Some(other) => {
            let msg = format!("encoding-type is '{other}', expected 'dataframe'");
            return Err(ferr(path, name, msg));
        }
        None => {
            let msg = "no encoding-type attribute; expected a 'dataframe' (AnnData >= 0.8)";
            return Err(ferr(path, name, msg));
        }
    }
    let index_name = h5::attr_string(&g, "_index", path, name)?
        .ok_or_else(|| ferr(path, &format!("{name}@_index"), "missing"))?;
    let index_field = format!("{name}/{index_name}");
    let index_ds = h5::dataset(&g, &index_name, path, &index_field)?;
    let n_rows = h5::len_1d(&index_ds, path, &index_field)?;
    let order = h5::attr_strings(&g, "column-order", path, name)?.unwrap_or_default();
    let columns = order
        .iter()
        .map(|c| column_info(&g, c, n_rows, path, &format!("{name}/{c}")))
        .collect::<Result<_>>()?;
    Ok(FrameInfo {
        index_name,
        n_rows,
        columns,
    })
}

/// Kind, type and levels of column `name`; its length must be `n_rows`.
fn column_info(
    g: &Group,
    name: &str,
    n_rows: usize,
    path: &Path,
    field: &str,
) -> Result<ColumnInfo> {
    let mut info = ColumnInfo {
        name: name.to_string(),
        kind: String::new(),
        dtype: String::new(),
        n_levels: None,
        levels: Vec::new(),
        ordered: None,
    };
    match h5::node(g, name, path, field)? {
        None => return Err(ferr(path, field, "missing (listed in column-order)")),
        Some(Node::Dataset) => {
            let ds = g.dataset(name).map_err(h5::rerr(path, field))?;
            check_len(h5::len_1d(&ds, path, field)?, n_rows, path, field)?;
            let td = h5::dtype(&ds, path, field)?;
            info.dtype = h5::dtype_name(&td);
            info.kind = match td {
                t if h5::is_string(&t) => "string",
                TypeDescriptor::Boolean => "boolean",
                TypeDescriptor::Float(_) => "float",
                t if h5::is_integer(&t) => "integer",
                _ => "unsupported",
            }
            .to_string();
        }
        Some(Node::Group) => {
            let cg = g.group(name).map_err(h5::rerr(path, field))?;
            let enc = h5::encoding_type(&cg, path, field)?.unwrap_or_default();
            // The type of a member array, after checking its length.
            let sub_dtype = |sub: &str| -> Result<String> {
                let f = format!("{field}/{sub}");
                let ds = h5::dataset(&cg, sub, path, &f)?;
                check_len(h5::len_1d(&ds, path, &f)?, n_rows, path, &f)?;
                Ok(h5::dtype_name(&h5::dtype(&ds, path, &f)?))
            };
            match enc.as_str() {
                "categorical" => {
                    let kf = format!("{field}/categories");
                    let cats = h5::dataset(&cg, "categories", path, &kf)?;
                    let n = h5::len_1d(&cats, path, &kf)?;
                    info.kind = "categorical".into();
                    info.dtype = sub_dtype("codes")?;
                    info.n_levels = Some(n);
                    info.ordered =
                        Some(h5::attr_bool(&cg, "ordered", path, field)?.unwrap_or(false));
                    let td = h5::dtype(&cats, path, &kf)?;
                    let mut levels = if h5::is_string(&td) {
                        h5::read_strings(&cats, path, &kf)?
                    } else if h5::is_numeric(&td) {
                        h5::read_numeric_1d::<f64>(&cats, path, &kf)?
                            .iter()
                            .map(|v| v.to_string())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    check_unique_categories(&levels, path, &kf)?;
                    levels.truncate(MAX_LEVELS);
                    info.levels = levels;
                }
                "nullable-integer" | "nullable-boolean" => {
                    info.kind = enc.clone();
                    info.dtype = sub_dtype("values")?;
                }
                "nullable-string-array" => {
                    info.kind = "nullable-string".into();
                    info.dtype = sub_dtype("values")?;
                }
                other => info.kind = format!("unsupported ({other})"),
            }
        }
    }
    Ok(info)
}

fn check_len(n: usize, n_rows: usize, path: &Path, field: &str) -> Result<()> {
    if n != n_rows {
        return Err(ferr(
            path,
            field,
            format!("has {n} rows but the index has {n_rows}"),
        ));
    }
    Ok(())
}

impl fmt::Display for H5adInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} cells x {} genes",
            self.path, self.n_obs, self.n_vars
        )?;
        writeln!(f, "X: {}", MatrixLine(&self.x))?;
        write_frame(f, "obs", &self.obs)?;
        write_frame(f, "var", &self.var)?;
        if self.layers.is_empty() {
            writeln!(f, "layers: none")?;
        } else {
            writeln!(f, "layers:")?;
            for l in &self.layers {
                writeln!(f, "  {:<20} {}", l.name, MatrixLine(&l.matrix))?;
            }
        }
        let keys = if self.uns_keys.is_empty() {
            "none".to_string()
        } else {
            self.uns_keys.join(", ")
        };
        writeln!(f, "uns: {keys}")
    }
}

struct MatrixLine<'a>(&'a MatrixInfo);

impl fmt::Display for MatrixLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{} {}", m.encoding, m.dtype)?;
        if let Some(nnz) = m.nnz {
            let cells = (m.shape[0] as f64) * (m.shape[1] as f64);
            let pct = if cells > 0.0 {
                100.0 * nnz as f64 / cells
            } else {
                0.0
            };
            write!(f, ", {nnz} non-zeros ({pct:.1}% of entries)")?;
        }
        Ok(())
    }
}

fn write_frame(f: &mut fmt::Formatter<'_>, what: &str, fr: &FrameInfo) -> fmt::Result {
    writeln!(
        f,
        "{what}: {} rows, index '{}', {} columns",
        fr.n_rows,
        fr.index_name,
        fr.columns.len()
    )?;
    for c in &fr.columns {
        write!(f, "  {:<20} {:<16} {:<8}", c.name, c.kind, c.dtype)?;
        if let Some(n) = c.n_levels {
            let shown: Vec<&str> = c
                .levels
                .iter()
                .take(SHOWN_LEVELS)
                .map(|s| s.as_str())
                .collect();
            let more = if n > shown.len() { ", ..." } else { "" };
            let ord = if c.ordered == Some(true) {
                ", ordered"
            } else {
                ""
            };
            write!(f, " {n} levels{ord}: {}{more}", shown.join(", "))?;
        }
        writeln!(f)?;
    }
    Ok(())
}
