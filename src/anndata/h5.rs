//! HDF5 helpers for `.h5ad`: opening a file with a clear error, typed reads
//! that check dtype and rank *before* touching the data (so a malformed file
//! gives a [`Error::Format`] naming the field, never a panic or an HDF5 error
//! stack on stderr), string attributes and arrays in every HDF5 string flavour
//! (variable-length UTF-8/ASCII, fixed-length). Writers live in `h5_write`.

use std::io::Read;
use std::path::Path;

use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Container, Dataset, File, Group, H5Type, Location, LocationType};

use super::h5_guard::{attr_exists, check_count};
pub(crate) use super::h5_range::{read_range, read_range_into};
use crate::error::{Error, Result};

/// Bytes per element reserved for a variable-length string (a pointer in
/// memory plus HDF5's conversion buffer).
const VLEN_BYTES: usize = 16;

/// A format error in `path` at `field`.
pub(crate) fn ferr(path: &Path, field: &str, msg: impl Into<String>) -> Error {
    Error::format(path, field, msg)
}

/// Maps an HDF5 read error at `field` to a format error.
pub(crate) fn rerr<'a>(path: &'a Path, field: &'a str) -> impl Fn(hdf5::Error) -> Error + 'a {
    move |e| Error::format(path, field, format!("HDF5 read failed: {e}"))
}

/// Most names a string-array attribute (`column-order`) may hold.
const MAX_NAMES: usize = 1 << 20;
/// Most integers an integer attribute (`shape`) may hold.
const MAX_INTS: usize = 64;

/// HDF5's file signature; it sits at offset 0 or after a user block of
/// 512 * 2^k bytes.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Opens `path` read-only. An absent, empty, non-HDF5 or truncated file is a
/// clear error naming the file (field `file`).
pub(crate) fn open_read(path: &Path) -> Result<File> {
    hdf5::silence_errors(true);
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(ferr(path, "file", "is a directory, not an .h5ad file"));
    }
    if meta.len() == 0 {
        return Err(ferr(
            path,
            "file",
            "the file is empty (0 bytes), not an .h5ad file",
        ));
    }
    if !has_signature(path, meta.len())? {
        return Err(ferr(
            path,
            "file",
            format!(
                "not an HDF5 file (no HDF5 signature in its {} bytes); .h5ad files are HDF5",
                meta.len()
            ),
        ));
    }
    File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
        .map_err(|e| {
            let msg = e.to_string();
            let hint = if msg.contains("truncated") || msg.contains("eof") {
                "the file is truncated (an interrupted copy or write?)"
            } else {
                "the HDF5 file cannot be opened (corrupt?)"
            };
            ferr(path, "file", format!("{hint}: {msg}"))
        })
}

fn has_signature(path: &Path, len: u64) -> Result<bool> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut offset = 0u64;
    let mut buf = [0u8; 8];
    while offset + 8 <= len {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(offset))
            .map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        if &buf == SIGNATURE {
            return Ok(true);
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    Ok(false)
}

/// What a link in a group points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Group,
    Dataset,
}

/// The kind of `name` inside `group`, `None` when absent. `field` is the full
/// HDF5 path of `name`, for messages.
pub(crate) fn node(group: &Group, name: &str, path: &Path, field: &str) -> Result<Option<Node>> {
    if !group.link_exists(name) {
        return Ok(None);
    }
    match group.loc_type_by_name(name).map_err(rerr(path, field))? {
        LocationType::Group => Ok(Some(Node::Group)),
        LocationType::Dataset => Ok(Some(Node::Dataset)),
        other => Err(ferr(
            path,
            field,
            format!("expected a group or dataset, found {other:?}"),
        )),
    }
}

/// The group `name` (full path `field`), or a format error when it is absent
/// or a dataset.
pub(crate) fn group(parent: &Group, name: &str, path: &Path, field: &str) -> Result<Group> {
    match node(parent, name, path, field)? {
        Some(Node::Group) => parent.group(name).map_err(rerr(path, field)),
        Some(Node::Dataset) => Err(ferr(path, field, "expected a group, found a dataset")),
        None => Err(ferr(path, field, "missing")),
    }
}

/// The dataset `name` (full path `field`), or a format error when it is
/// absent or a group.
pub(crate) fn dataset(parent: &Group, name: &str, path: &Path, field: &str) -> Result<Dataset> {
    match node(parent, name, path, field)? {
        Some(Node::Dataset) => parent.dataset(name).map_err(rerr(path, field)),
        Some(Node::Group) => Err(ferr(path, field, "expected a dataset, found a group")),
        None => Err(ferr(path, field, "missing")),
    }
}

/// The element type of a dataset or attribute.
pub(crate) fn dtype(c: &Container, path: &Path, field: &str) -> Result<TypeDescriptor> {
    c.dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| ferr(path, field, format!("unsupported element type: {e}")))
}

/// numpy-style name of an element type (`float32`, `int8`, `bool`, `string`).
pub(crate) fn dtype_name(td: &TypeDescriptor) -> String {
    match td {
        TypeDescriptor::Integer(s) => format!("int{}", *s as usize * 8),
        TypeDescriptor::Unsigned(s) => format!("uint{}", *s as usize * 8),
        TypeDescriptor::Float(s) => format!("float{}", *s as usize * 8),
        TypeDescriptor::Boolean => "bool".into(),
        TypeDescriptor::Enum(_) => "enum".into(),
        TypeDescriptor::Compound(_) => "compound".into(),
        TypeDescriptor::VarLenAscii
        | TypeDescriptor::VarLenUnicode
        | TypeDescriptor::FixedAscii(_)
        | TypeDescriptor::FixedUnicode(_) => "string".into(),
        other => format!("{other}"),
    }
}

/// True for integer and float element types.
pub(crate) fn is_numeric(td: &TypeDescriptor) -> bool {
    matches!(
        td,
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_)
    )
}

/// True for integer element types (signed or not).
pub(crate) fn is_integer(td: &TypeDescriptor) -> bool {
    matches!(td, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_))
}

/// True for string element types.
pub(crate) fn is_string(td: &TypeDescriptor) -> bool {
    matches!(
        td,
        TypeDescriptor::VarLenAscii
            | TypeDescriptor::VarLenUnicode
            | TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_)
    )
}

/// The shape of a dataset or attribute.
pub(crate) fn shape(c: &Container, path: &Path, field: &str) -> Result<Vec<usize>> {
    c.get_shape().map_err(rerr(path, field))
}

/// The length of a 1-D dataset; other ranks are a format error.
pub(crate) fn len_1d(c: &Container, path: &Path, field: &str) -> Result<usize> {
    let s = shape(c, path, field)?;
    match s.as_slice() {
        [n] => Ok(*n),
        _ => Err(ferr(
            path,
            field,
            format!("expected a 1-D array, found shape {s:?}"),
        )),
    }
}

// ---------------------------------------------------------------- attributes

/// The attribute `name` of `loc`, `None` when absent (looked up by name:
/// listing attributes is unsafe on corrupted files, see `h5_guard`).
fn attr(loc: &Location, name: &str, path: &Path, field: &str) -> Result<Option<hdf5::Attribute>> {
    if !attr_exists(loc, name, path, field)? {
        return Ok(None);
    }
    loc.attr(name)
        .map(Some)
        .map_err(rerr(path, &format!("{field}@{name}")))
}

/// A string attribute (scalar or one-element array), `None` when absent.
pub(crate) fn attr_string(
    loc: &Location,
    name: &str,
    path: &Path,
    field: &str,
) -> Result<Option<String>> {
    let Some(a) = attr(loc, name, path, field)? else {
        return Ok(None);
    };
    let at = format!("{field}@{name}");
    check_count(&a, VLEN_BYTES, Some(1), path, &at)?;
    let mut v = read_strings(&a, path, &at)?;
    if v.len() != 1 {
        return Err(ferr(
            path,
            &at,
            format!("expected one string, found {} values", v.len()),
        ));
    }
    Ok(v.pop())
}

/// A string-array attribute (`column-order`); an empty array of any type
/// (anndata writes an empty float64 array) is an empty list.
pub(crate) fn attr_strings(
    loc: &Location,
    name: &str,
    path: &Path,
    field: &str,
) -> Result<Option<Vec<String>>> {
    let Some(a) = attr(loc, name, path, field)? else {
        return Ok(None);
    };
    let at = format!("{field}@{name}");
    if check_count(&a, VLEN_BYTES, Some(MAX_NAMES), path, &at)? == 0 {
        return Ok(Some(Vec::new()));
    }
    read_strings(&a, path, &at).map(Some)
}

/// An integer-array attribute (`shape`), `None` when absent.
pub(crate) fn attr_ints(
    loc: &Location,
    name: &str,
    path: &Path,
    field: &str,
) -> Result<Option<Vec<i64>>> {
    let Some(a) = attr(loc, name, path, field)? else {
        return Ok(None);
    };
    let at = format!("{field}@{name}");
    check_count(&a, 8, Some(MAX_INTS), path, &at)?;
    let td = dtype(&a, path, &at)?;
    if !is_integer(&td) {
        return Err(ferr(
            path,
            &at,
            format!("expected integers, found {}", dtype_name(&td)),
        ));
    }
    a.read_raw::<i64>().map(Some).map_err(rerr(path, &at))
}

/// A boolean attribute (`ordered`): HDF5 bool, integer or the strings
/// `True`/`False`; `None` when absent.
pub(crate) fn attr_bool(
    loc: &Location,
    name: &str,
    path: &Path,
    field: &str,
) -> Result<Option<bool>> {
    let Some(a) = attr(loc, name, path, field)? else {
        return Ok(None);
    };
    let at = format!("{field}@{name}");
    check_count(&a, VLEN_BYTES, Some(1), path, &at)?;
    let td = dtype(&a, path, &at)?;
    let v: Vec<bool> = match td {
        TypeDescriptor::Boolean => a.read_raw::<bool>().map_err(rerr(path, &at))?,
        t if is_integer(&t) => a
            .read_raw::<i64>()
            .map_err(rerr(path, &at))?
            .into_iter()
            .map(|x| x != 0)
            .collect(),
        t if is_string(&t) => read_strings(&a, path, &at)?
            .into_iter()
            .map(|s| s.eq_ignore_ascii_case("true"))
            .collect(),
        t => {
            return Err(ferr(
                path,
                &at,
                format!("expected a boolean, found {}", dtype_name(&t)),
            ))
        }
    };
    match v.as_slice() {
        [b] => Ok(Some(*b)),
        _ => Err(ferr(
            path,
            &at,
            format!("expected one boolean, found {} values", v.len()),
        )),
    }
}

/// The `encoding-type` attribute of `loc`, `None` when absent.
pub(crate) fn encoding_type(loc: &Location, path: &Path, field: &str) -> Result<Option<String>> {
    attr_string(loc, "encoding-type", path, field)
}

// ---------------------------------------------------------------- datasets

/// All strings of a string dataset or attribute, in memory order; any HDF5
/// string flavour. Invalid UTF-8 is replaced (never a panic).
pub(crate) fn read_strings(c: &Container, path: &Path, field: &str) -> Result<Vec<String>> {
    let td = dtype(c, path, field)?;
    let width = match td {
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => n.max(VLEN_BYTES),
        _ => VLEN_BYTES,
    };
    check_count(c, width, None, path, field)?;
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let e = rerr(path, field);
    match td {
        TypeDescriptor::VarLenUnicode => Ok(c
            .read_raw::<VarLenUnicode>()
            .map_err(e)?
            .iter()
            .map(|s| lossy(s.as_bytes()))
            .collect()),
        TypeDescriptor::VarLenAscii => Ok(c
            .read_raw::<VarLenAscii>()
            .map_err(e)?
            .iter()
            .map(|s| lossy(s.as_bytes()))
            .collect()),
        TypeDescriptor::FixedAscii(n) => read_fixed_ascii(c, n, path, field),
        TypeDescriptor::FixedUnicode(n) => read_fixed_unicode(c, n, path, field),
        other => Err(ferr(
            path,
            field,
            format!("expected strings, found {}", dtype_name(&other)),
        )),
    }
}

macro_rules! fixed_reader {
    ($fname:ident, $ty:ident) => {
        fn $fname(c: &Container, n: usize, path: &Path, field: &str) -> Result<Vec<String>> {
            fn go<const N: usize>(c: &Container, path: &Path, field: &str) -> Result<Vec<String>> {
                let v = c.read_raw::<$ty<N>>().map_err(rerr(path, field))?;
                Ok(v.iter()
                    .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                    .collect())
            }
            match n {
                0..=16 => go::<16>(c, path, field),
                17..=64 => go::<64>(c, path, field),
                65..=256 => go::<256>(c, path, field),
                257..=1024 => go::<1024>(c, path, field),
                1025..=8192 => go::<8192>(c, path, field),
                _ => Err(ferr(
                    path,
                    field,
                    format!("fixed-length strings of {n} bytes are too long (max 8192)"),
                )),
            }
        }
    };
}
fixed_reader!(read_fixed_ascii, FixedAscii);
fixed_reader!(read_fixed_unicode, FixedUnicode);

/// A whole 1-D numeric dataset as `T` (HDF5 converts the element type);
/// errors unless the dataset is 1-D and integer or float.
pub(crate) fn read_numeric_1d<T: H5Type>(ds: &Dataset, path: &Path, field: &str) -> Result<Vec<T>> {
    len_1d(ds, path, field)?;
    check_count(ds, std::mem::size_of::<T>(), None, path, field)?;
    let td = dtype(ds, path, field)?;
    if !is_numeric(&td) {
        return Err(ferr(
            path,
            field,
            format!("expected numbers, found {}", dtype_name(&td)),
        ));
    }
    ds.read_raw::<T>().map_err(rerr(path, field))
}

/// A whole 1-D integer dataset as i64 (any width, signed or not).
pub(crate) fn read_ints_1d(ds: &Dataset, path: &Path, field: &str) -> Result<Vec<i64>> {
    let td = dtype(ds, path, field)?;
    if !is_integer(&td) {
        return Err(ferr(
            path,
            field,
            format!("expected integers, found {}", dtype_name(&td)),
        ));
    }
    read_numeric_1d::<i64>(ds, path, field)
}

/// A whole 1-D boolean dataset (HDF5/h5py bool, or integers read as != 0).
pub(crate) fn read_bools_1d(ds: &Dataset, path: &Path, field: &str) -> Result<Vec<bool>> {
    len_1d(ds, path, field)?;
    match dtype(ds, path, field)? {
        TypeDescriptor::Boolean => {
            check_count(ds, 1, None, path, field)?;
            ds.read_raw::<bool>().map_err(rerr(path, field))
        }
        t if is_integer(&t) => Ok(read_ints_1d(ds, path, field)?
            .into_iter()
            .map(|x| x != 0)
            .collect()),
        t => Err(ferr(
            path,
            field,
            format!("expected booleans, found {}", dtype_name(&t)),
        )),
    }
}
