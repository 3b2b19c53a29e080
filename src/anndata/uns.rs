//! `uns` (unstructured metadata) as JSON.
//!
//! Writing (AnnData's encodings): numbers and booleans become
//! `numeric-scalar` datasets (int64, float64, bool), strings `string`
//! datasets, arrays of numbers or booleans `array` datasets (rectangular
//! nested arrays become N-D arrays; integers stay int64 unless a float or
//! `null` appears, then float64 with `null` as NaN), arrays of strings
//! `string-array`, objects `dict` groups. Other shapes (mixed arrays, arrays
//! of objects, `null` alone) are an error naming the key.
//!
//! Reading turns the same encodings back into JSON (NaN/Inf become `null`);
//! elements of other encodings (dataframes, sparse matrices, ...) are skipped,
//! since `uns` is free-form and primeflow never needs them.

use std::path::Path;

use hdf5::types::TypeDescriptor;
use hdf5::Group;
use serde_json::{Map, Number, Value};

use super::h5::{self, ferr, Node};
use super::h5_write as h5w;
use crate::error::{Error, Result};

/// Writes `map` into `group` (full path `field`, e.g. `uns`).
pub(crate) fn write_dict(
    group: &Group,
    map: &Map<String, Value>,
    path: &Path,
    field: &str,
) -> Result<()> {
    for (key, value) in map {
        let f = format!("{field}/{key}");
        h5w::check_name(key, &format!("{field} key"))?;
        write_value(group, key, value, path, &f)?;
    }
    Ok(())
}

fn write_value(g: &Group, key: &str, value: &Value, path: &Path, field: &str) -> Result<()> {
    match value {
        Value::Null => Err(Error::invalid(field, "null cannot be stored in an .h5ad uns (remove the key or use NaN inside a numeric array)")),
        Value::Bool(b) => h5w::write_scalar(g, key, b, "numeric-scalar", path, field),
        Value::Number(n) => match n.as_i64() {
            Some(i) => h5w::write_scalar(g, key, &i, "numeric-scalar", path, field),
            None => h5w::write_scalar(g, key, &n.as_f64().unwrap_or(f64::NAN), "numeric-scalar", path, field),
        },
        Value::String(s) => h5w::write_scalar_str(g, key, s, path, field),
        Value::Object(m) => {
            let sub = h5w::create_group(g, key, "dict", "0.1.0", path, field)?;
            write_dict(&sub, m, path, field)
        }
        Value::Array(items) => write_array(g, key, items, path, field),
    }
}

/// Leaves of a rectangular nested array, in row-major order, and its shape.
fn flatten<'a>(items: &'a [Value], field: &str) -> Result<(Vec<usize>, Vec<&'a Value>)> {
    let mut shape = vec![items.len()];
    let mut level: Vec<&Value> = items.iter().collect();
    while let Some(Value::Array(first)) = level.first() {
        let n = first.len();
        let mut next = Vec::with_capacity(level.len() * n);
        for v in &level {
            match v {
                Value::Array(a) if a.len() == n => next.extend(a.iter()),
                _ => return Err(Error::invalid(field, "nested arrays must be rectangular (all rows the same length) to be stored in uns")),
            }
        }
        shape.push(n);
        level = next;
    }
    Ok((shape, level))
}

fn write_array(g: &Group, key: &str, items: &[Value], path: &Path, field: &str) -> Result<()> {
    let (shape, leaves) = flatten(items, field)?;
    let kind = |v: &Value| match v {
        Value::String(_) => 's',
        Value::Bool(_) => 'b',
        Value::Number(n) if n.is_i64() => 'i',
        Value::Number(_) | Value::Null => 'f',
        Value::Array(_) => 'a',
        Value::Object(_) => 'o',
    };
    let kinds: std::collections::BTreeSet<char> = leaves.iter().map(|v| kind(v)).collect();
    let kinds: String = kinds.into_iter().collect();
    let write_nd = |ds_writer: &dyn Fn() -> hdf5::Result<hdf5::Dataset>| -> Result<()> {
        let ds = ds_writer().map_err(h5w::werr(path, field))?;
        h5w::set_encoding(&ds, "array", "0.2.0", path, field)
    };
    match kinds.as_str() {
        "s" if shape.len() == 1 => {
            let v: Vec<String> = leaves.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect();
            h5w::write_strings(g, key, &v, None, path, field).map(drop)
        }
        "" | "f" | "fi" | "i" => {
            if kinds == "i" {
                let v: Vec<i64> = leaves.iter().map(|v| v.as_i64().unwrap_or(0)).collect();
                let a = ndarray_h5::ArrayD::from_shape_vec(ndarray_h5::IxDyn(&shape), v).map_err(|e| Error::invalid(field, e.to_string()))?;
                write_nd(&|| g.new_dataset_builder().with_data(&a).create(key))
            } else {
                let v: Vec<f64> = leaves.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
                let a = ndarray_h5::ArrayD::from_shape_vec(ndarray_h5::IxDyn(&shape), v).map_err(|e| Error::invalid(field, e.to_string()))?;
                write_nd(&|| g.new_dataset_builder().with_data(&a).create(key))
            }
        }
        "b" => {
            let v: Vec<bool> = leaves.iter().map(|v| v.as_bool().unwrap_or(false)).collect();
            let a = ndarray_h5::ArrayD::from_shape_vec(ndarray_h5::IxDyn(&shape), v).map_err(|e| Error::invalid(field, e.to_string()))?;
            write_nd(&|| g.new_dataset_builder().with_data(&a).create(key))
        }
        _ => Err(Error::invalid(
            field,
            "uns arrays must hold only numbers, only booleans or only strings (1-D); store objects as a map keyed by name",
        )),
    }
}

/// Reads the `dict` group `group` (full path `field`) as JSON.
pub(crate) fn read_dict(group: &Group, path: &Path, field: &str) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut names = group.member_names().map_err(h5::rerr(path, field))?;
    names.sort();
    for name in names {
        let f = format!("{field}/{name}");
        if let Some(v) = read_value(group, &name, path, &f)? {
            out.insert(name, v);
        }
    }
    Ok(out)
}

fn num(x: f64) -> Value {
    Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn read_value(g: &Group, name: &str, path: &Path, field: &str) -> Result<Option<Value>> {
    match h5::node(g, name, path, field)? {
        None => Ok(None),
        Some(Node::Group) => {
            let sub = g.group(name).map_err(h5::rerr(path, field))?;
            match h5::encoding_type(&sub, path, field)?.as_deref() {
                Some("dict") | None => Ok(Some(Value::Object(read_dict(&sub, path, field)?))),
                Some(_) => Ok(None),
            }
        }
        Some(Node::Dataset) => {
            let ds = g.dataset(name).map_err(h5::rerr(path, field))?;
            let enc = h5::encoding_type(&ds, path, field)?;
            if !matches!(
                enc.as_deref(),
                None | Some("numeric-scalar" | "string" | "array" | "string-array")
            ) {
                return Ok(None);
            }
            let shape = h5::shape(&ds, path, field)?;
            super::h5_guard::check_count(&ds, 16, None, path, field)?;
            let td = h5::dtype(&ds, path, field)?;
            let leaves: Vec<Value> = match &td {
                t if h5::is_string(t) => h5::read_strings(&ds, path, field)?
                    .into_iter()
                    .map(Value::String)
                    .collect(),
                TypeDescriptor::Boolean => ds
                    .read_raw::<bool>()
                    .map_err(h5::rerr(path, field))?
                    .into_iter()
                    .map(Value::Bool)
                    .collect(),
                t if h5::is_integer(t) => ds
                    .read_raw::<i64>()
                    .map_err(h5::rerr(path, field))?
                    .into_iter()
                    .map(Value::from)
                    .collect(),
                TypeDescriptor::Float(_) => ds
                    .read_raw::<f64>()
                    .map_err(h5::rerr(path, field))?
                    .into_iter()
                    .map(num)
                    .collect(),
                _ => return Ok(None),
            };
            if shape.is_empty() {
                return leaves
                    .into_iter()
                    .next()
                    .map(Some)
                    .ok_or_else(|| ferr(path, field, "empty scalar"));
            }
            Ok(Some(nest(&shape, leaves)))
        }
    }
}

/// Row-major `leaves` as nested JSON arrays of `shape`.
fn nest(shape: &[usize], leaves: Vec<Value>) -> Value {
    match shape {
        [] | [_] => Value::Array(leaves),
        [_, rest @ ..] => {
            let inner: usize = rest.iter().product();
            if inner == 0 {
                return Value::Array(Vec::new());
            }
            let mut it = leaves.into_iter();
            let mut rows = Vec::new();
            loop {
                let chunk: Vec<Value> = it.by_ref().take(inner).collect();
                if chunk.is_empty() {
                    break;
                }
                rows.push(nest(rest, chunk));
            }
            Value::Array(rows)
        }
    }
}
