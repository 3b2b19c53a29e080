//! Reading and writing `obs`/`var` dataframes in AnnData's encoding
//! (`encoding-type` `dataframe` 0.2.0): an `_index` attribute naming the index
//! dataset, a `column-order` attribute, and one element per column:
//!
//! | [`Column`]       | on disk                                                     |
//! |------------------|-------------------------------------------------------------|
//! | `Categorical`    | group `categorical`: `codes` (int8/16/32), `categories`, `ordered` |
//! | `Str`            | `string-array`                                              |
//! | `Float`/`Int`/`Bool` | `array` of float64 / int64 / bool                       |
//! | `NullableInt`    | group `nullable-integer`: `values` + `mask` (true = missing) |
//! | `NullableBool`   | group `nullable-boolean`: `values` + `mask`                 |
//!
//! Reading also accepts codes of any integer width, numeric categories (kept
//! as their decimal text), integer columns of any width, and
//! `nullable-string-array` (as `Str`, or `Categorical` with missing values).

use std::path::Path;

use hdf5::types::TypeDescriptor;
use hdf5::Group;

use super::frame::{Categorical, Column, DataFrame};
use super::h5::{self, ferr, Node};
use super::h5_write as h5w;
use crate::error::{Error, Result};

/// Reads the dataframe group `name` of `parent` (full path `field`).
pub(crate) fn read_frame(
    parent: &Group,
    name: &str,
    path: &Path,
    field: &str,
) -> Result<DataFrame> {
    let g = h5::group(parent, name, path, field)?;
    match h5::encoding_type(&g, path, field)?.as_deref() {
        Some("dataframe") => {}
        Some(other) => {
            return Err(ferr(
                path,
                field,
                format!("encoding-type is '{other}', expected 'dataframe'"),
            ))
        }
        None => {
            return Err(ferr(
                path,
                field,
                "no encoding-type attribute; expected a 'dataframe' (AnnData >= 0.8)",
            ))
        }
    }
    let index_name = h5::attr_string(&g, "_index", path, field)?.ok_or_else(|| {
        ferr(
            path,
            &format!("{field}@_index"),
            "missing (it names the index column)",
        )
    })?;
    let index_field = format!("{field}/{index_name}");
    let index_ds = h5::dataset(&g, &index_name, path, &index_field)?;
    h5::len_1d(&index_ds, path, &index_field)?;
    let index = match h5::dtype(&index_ds, path, &index_field)? {
        t if h5::is_string(&t) => h5::read_strings(&index_ds, path, &index_field)?,
        t if h5::is_integer(&t) => h5::read_ints_1d(&index_ds, path, &index_field)?
            .iter()
            .map(|v| v.to_string())
            .collect(),
        t => {
            return Err(ferr(
                path,
                &index_field,
                format!("expected strings, found {}", h5::dtype_name(&t)),
            ))
        }
    };
    let order = h5::attr_strings(&g, "column-order", path, field)?.unwrap_or_default();
    let mut columns = Vec::with_capacity(order.len());
    for col in order {
        let cf = format!("{field}/{col}");
        let c = read_column(&g, &col, path, &cf)?;
        if c.len() != index.len() {
            return Err(ferr(
                path,
                &cf,
                format!(
                    "has {} rows but the index {index_field} has {}",
                    c.len(),
                    index.len()
                ),
            ));
        }
        columns.push((col, c));
    }
    Ok(DataFrame {
        index_name,
        index,
        columns,
    })
}

/// Reads one column element.
pub(crate) fn read_column(g: &Group, name: &str, path: &Path, field: &str) -> Result<Column> {
    let kind = h5::node(g, name, path, field)?
        .ok_or_else(|| ferr(path, field, "missing (listed in column-order)"))?;
    match kind {
        Node::Dataset => {
            let ds = g.dataset(name).map_err(h5::rerr(path, field))?;
            let enc = h5::encoding_type(&ds, path, field)?;
            h5::len_1d(&ds, path, field)?;
            let td = h5::dtype(&ds, path, field)?;
            match (enc.as_deref(), &td) {
                (Some("string-array") | None, t) if h5::is_string(t) => {
                    Ok(Column::Str(h5::read_strings(&ds, path, field)?))
                }
                (Some("array") | None, TypeDescriptor::Boolean) => {
                    Ok(Column::Bool(h5::read_bools_1d(&ds, path, field)?))
                }
                (Some("array") | None, TypeDescriptor::Float(_)) => {
                    Ok(Column::Float(h5::read_numeric_1d(&ds, path, field)?))
                }
                (Some("array") | None, t) if h5::is_integer(t) => {
                    Ok(Column::Int(h5::read_ints_1d(&ds, path, field)?))
                }
                (Some(e @ ("array" | "string-array")), t) => Err(ferr(
                    path,
                    field,
                    format!(
                        "encoding-type '{e}' with element type {}",
                        h5::dtype_name(t)
                    ),
                )),
                (Some(other), _) => Err(ferr(
                    path,
                    field,
                    format!("unsupported column encoding-type '{other}'"),
                )),
                (None, t) => Err(ferr(
                    path,
                    field,
                    format!("unsupported column element type {}", h5::dtype_name(t)),
                )),
            }
        }
        Node::Group => {
            let cg = g.group(name).map_err(h5::rerr(path, field))?;
            let enc = h5::encoding_type(&cg, path, field)?.unwrap_or_default();
            match enc.as_str() {
                "categorical" => read_categorical(&cg, path, field).map(Column::Categorical),
                "nullable-integer" => {
                    let (values, mask) =
                        values_mask(&cg, path, field, |ds, f| h5::read_ints_1d(ds, path, f))?;
                    Ok(Column::NullableInt(
                        values
                            .into_iter()
                            .zip(mask)
                            .map(|(v, m)| (!m).then_some(v))
                            .collect(),
                    ))
                }
                "nullable-boolean" => {
                    let (values, mask) =
                        values_mask(&cg, path, field, |ds, f| h5::read_bools_1d(ds, path, f))?;
                    Ok(Column::NullableBool(
                        values
                            .into_iter()
                            .zip(mask)
                            .map(|(v, m)| (!m).then_some(v))
                            .collect(),
                    ))
                }
                "nullable-string-array" => {
                    let (values, mask) =
                        values_mask(&cg, path, field, |ds, f| h5::read_strings(ds, path, f))?;
                    if !mask.iter().any(|&m| m) {
                        return Ok(Column::Str(values));
                    }
                    let labels: Vec<String> = values
                        .iter()
                        .zip(&mask)
                        .filter(|(_, &m)| !m)
                        .map(|(v, _)| v.clone())
                        .collect();
                    let mut cat = Categorical::from_labels(&labels, true);
                    let mut it = cat.codes.clone().into_iter();
                    cat.codes = mask
                        .iter()
                        .map(|&m| if m { -1 } else { it.next().unwrap_or(-1) })
                        .collect();
                    Ok(Column::Categorical(cat))
                }
                "" => Err(ferr(
                    path,
                    field,
                    "a group without encoding-type; expected a categorical or nullable column",
                )),
                other => Err(ferr(
                    path,
                    field,
                    format!("unsupported column encoding-type '{other}'"),
                )),
            }
        }
    }
}

fn values_mask<T>(
    g: &Group,
    path: &Path,
    field: &str,
    read: impl Fn(&hdf5::Dataset, &str) -> Result<Vec<T>>,
) -> Result<(Vec<T>, Vec<bool>)> {
    let (vf, mf) = (format!("{field}/values"), format!("{field}/mask"));
    let values = read(&h5::dataset(g, "values", path, &vf)?, &vf)?;
    let mask = h5::read_bools_1d(&h5::dataset(g, "mask", path, &mf)?, path, &mf)?;
    if mask.len() != values.len() {
        return Err(ferr(
            path,
            &mf,
            format!("has {} elements but {vf} has {}", mask.len(), values.len()),
        ));
    }
    Ok((values, mask))
}

fn read_categorical(g: &Group, path: &Path, field: &str) -> Result<Categorical> {
    let (cf, kf) = (format!("{field}/codes"), format!("{field}/categories"));
    let codes_ds = h5::dataset(g, "codes", path, &cf)?;
    let raw = h5::read_ints_1d(&codes_ds, path, &cf)?;
    let cat_ds = h5::dataset(g, "categories", path, &kf)?;
    h5::len_1d(&cat_ds, path, &kf)?;
    let categories = match h5::dtype(&cat_ds, path, &kf)? {
        t if h5::is_string(&t) => h5::read_strings(&cat_ds, path, &kf)?,
        t if h5::is_integer(&t) => h5::read_ints_1d(&cat_ds, path, &kf)?
            .iter()
            .map(|v| v.to_string())
            .collect(),
        TypeDescriptor::Float(_) => h5::read_numeric_1d::<f64>(&cat_ds, path, &kf)?
            .iter()
            .map(|v| v.to_string())
            .collect(),
        TypeDescriptor::Boolean => h5::read_bools_1d(&cat_ds, path, &kf)?
            .iter()
            .map(|v| if *v { "True" } else { "False" }.to_string())
            .collect(),
        t => {
            return Err(ferr(
                path,
                &kf,
                format!("unsupported category type {}", h5::dtype_name(&t)),
            ))
        }
    };
    check_unique_categories(&categories, path, &kf)?;
    let n_cat = categories.len() as i64;
    if let Some((i, &c)) = raw.iter().enumerate().find(|(_, &c)| c < -1 || c >= n_cat) {
        return Err(ferr(path, &cf, format!("code {c} at row {i} is out of range: there are {n_cat} categories (valid codes -1..{})", n_cat - 1)));
    }
    let codes = raw.into_iter().map(|c| c as i32).collect();
    let ordered = h5::attr_bool(g, "ordered", path, field)?.unwrap_or(false);
    Ok(Categorical {
        codes,
        categories,
        ordered,
    })
}

/// Categories must be distinct (pandas refuses duplicates): two codes with
/// one label would silently merge their cells into one group. `field` is
/// the categories' path.
pub(crate) fn check_unique_categories(
    categories: &[String],
    path: &Path,
    field: &str,
) -> Result<()> {
    let mut first = std::collections::HashMap::with_capacity(categories.len());
    for (i, c) in categories.iter().enumerate() {
        if let Some(j) = first.insert(c.as_str(), i) {
            return Err(ferr(
                path,
                field,
                format!(
                    "category '{c}' appears twice (positions {j} and {i}); categories must be distinct, as pandas requires"
                ),
            ));
        }
    }
    Ok(())
}

/// Writes `frame` as the dataframe group `name` of `parent` (full path
/// `field`), arrays gzip-compressed at `compression` when set.
pub(crate) fn write_frame(
    parent: &Group,
    name: &str,
    frame: &DataFrame,
    compression: Option<u8>,
    path: &Path,
    field: &str,
) -> Result<()> {
    let index_name = if frame.index_name.is_empty() {
        "_index"
    } else {
        frame.index_name.as_str()
    };
    h5w::check_name(index_name, &format!("{field} index name"))?;
    let mut seen = std::collections::HashSet::new();
    for (col, c) in &frame.columns {
        h5w::check_name(col, &format!("{field} column name"))?;
        if col == index_name || !seen.insert(col.as_str()) {
            return Err(Error::invalid(
                format!("{field} column '{col}'"),
                "the name is used twice (or is the index name)",
            ));
        }
        if c.len() != frame.len() {
            return Err(Error::invalid(
                format!("{field} column '{col}'"),
                format!("has {} rows but the index has {}", c.len(), frame.len()),
            ));
        }
    }
    let g = h5w::create_group(parent, name, "dataframe", "0.2.0", path, field)?;
    h5w::write_attr_str(&g, "_index", index_name, path, field)?;
    let order: Vec<String> = frame.columns.iter().map(|(n, _)| n.clone()).collect();
    h5w::write_attr_strs(&g, "column-order", &order, path, field)?;
    h5w::write_strings(
        &g,
        index_name,
        &frame.index,
        compression,
        path,
        &format!("{field}/{index_name}"),
    )?;
    for (col, c) in &frame.columns {
        write_column(&g, col, c, compression, path, &format!("{field}/{col}"))?;
    }
    Ok(())
}

fn write_column(
    g: &Group,
    name: &str,
    col: &Column,
    z: Option<u8>,
    path: &Path,
    field: &str,
) -> Result<()> {
    match col {
        Column::Categorical(c) => write_categorical(g, name, c, z, path, field),
        Column::Str(v) => h5w::write_strings(g, name, v, z, path, field).map(drop),
        Column::Float(v) => h5w::write_array(g, name, v, z, path, field).map(drop),
        Column::Int(v) => h5w::write_array(g, name, v, z, path, field).map(drop),
        Column::Bool(v) => h5w::write_array(g, name, v, z, path, field).map(drop),
        Column::NullableInt(v) => {
            let cg = h5w::create_group(g, name, "nullable-integer", "0.1.0", path, field)?;
            let values: Vec<i64> = v.iter().map(|x| x.unwrap_or(0)).collect();
            let mask: Vec<bool> = v.iter().map(|x| x.is_none()).collect();
            h5w::write_array(&cg, "values", &values, z, path, &format!("{field}/values"))?;
            h5w::write_array(&cg, "mask", &mask, z, path, &format!("{field}/mask")).map(drop)
        }
        Column::NullableBool(v) => {
            let cg = h5w::create_group(g, name, "nullable-boolean", "0.1.0", path, field)?;
            let values: Vec<bool> = v.iter().map(|x| x.unwrap_or(false)).collect();
            let mask: Vec<bool> = v.iter().map(|x| x.is_none()).collect();
            h5w::write_array(&cg, "values", &values, z, path, &format!("{field}/values"))?;
            h5w::write_array(&cg, "mask", &mask, z, path, &format!("{field}/mask")).map(drop)
        }
    }
}

fn write_categorical(
    g: &Group,
    name: &str,
    c: &Categorical,
    z: Option<u8>,
    path: &Path,
    field: &str,
) -> Result<()> {
    let n = c.categories.len() as i64;
    if let Some((i, &bad)) = c
        .codes
        .iter()
        .enumerate()
        .find(|(_, &k)| k < -1 || k as i64 >= n)
    {
        return Err(Error::invalid(
            format!("{field} codes"),
            format!("code {bad} at row {i} is out of range ({n} categories)"),
        ));
    }
    let mut uniq = std::collections::HashSet::new();
    if let Some(d) = c.categories.iter().find(|s| !uniq.insert(s.as_str())) {
        return Err(Error::invalid(
            format!("{field} categories"),
            format!("'{d}' appears twice"),
        ));
    }
    let cg = h5w::create_group(g, name, "categorical", "0.2.0", path, field)?;
    h5w::write_attr_bool(&cg, "ordered", c.ordered, path, field)?;
    let cf = format!("{field}/codes");
    // The smallest signed type that holds every code, as pandas does.
    if n <= i8::MAX as i64 {
        let v: Vec<i8> = c.codes.iter().map(|&k| k as i8).collect();
        h5w::write_array(&cg, "codes", &v, z, path, &cf)?;
    } else if n <= i16::MAX as i64 {
        let v: Vec<i16> = c.codes.iter().map(|&k| k as i16).collect();
        h5w::write_array(&cg, "codes", &v, z, path, &cf)?;
    } else {
        h5w::write_array(&cg, "codes", &c.codes, z, path, &cf)?;
    }
    h5w::write_strings(
        &cg,
        "categories",
        &c.categories,
        z,
        path,
        &format!("{field}/categories"),
    )?;
    Ok(())
}
