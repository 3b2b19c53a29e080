//! Writers for the AnnData encoding on top of the hdf5 crate: files created
//! without HDF5 locks, `encoding-type`/`encoding-version` attributes, string
//! and numeric attributes, string arrays (variable-length UTF-8, as h5py
//! writes them), 1-D arrays chunked when large, uns scalars, and checks on
//! names that become HDF5 links. Write failures are [`Error::Io`] naming the
//! file and the field.

use std::path::Path;
use std::str::FromStr;

use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, File, Group, H5Type, Location};

use crate::error::{Error, Result};

/// Elements per chunk of large 1-D datasets (256 KiB of f32).
pub(crate) const CHUNK_LEN: usize = 1 << 16;

/// Arrays longer than this are written chunked (always when compressed).
const CONTIGUOUS_MAX: usize = 1 << 16;

/// Maps an HDF5 write error at `field` to an I/O error on `path`. When the
/// HDF5 error stack carries the operating system's `errno` (a full disk, an
/// I/O error), it is kept, and said, so the error is classified as the
/// machine's (see [`Error::is_system_io`]).
pub(crate) fn werr<'a>(path: &'a Path, field: &'a str) -> impl Fn(hdf5::Error) -> Error + 'a {
    move |e| {
        let os = os_error(&e);
        let message = match &os {
            Some(o) => format!("writing '{field}' failed: {e} ({o})"),
            None => format!("writing '{field}' failed: {e}"),
        };
        Error::Io {
            path: path.to_path_buf(),
            message,
            os,
        }
    }
}

/// The `errno` in an HDF5 error stack: its POSIX file driver reports
/// failed system calls as "... errno = 28, error message = ...".
fn os_error(e: &hdf5::Error) -> Option<std::io::Error> {
    let hdf5::Error::HDF5(stack) = e else {
        return None;
    };
    let frames = stack.clone().expand().ok()?;
    frames.iter().find_map(|f| {
        let rest = &f.desc()[f.desc().find("errno = ")? + "errno = ".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits
            .parse::<i32>()
            .ok()
            .map(std::io::Error::from_raw_os_error)
    })
}

/// Creates (truncates) `path` for writing. HDF5 file locking is off for
/// primeflow's own files: the lock (an `flock` on the descriptor) is
/// inherited by any child process spawned meanwhile and would make the
/// finished file unreadable until that child exits; our writers already make
/// outputs atomic (temporary sibling + rename), which locking cannot add to.
pub(crate) fn create_file(path: &Path) -> Result<File> {
    hdf5::silence_errors(true);
    File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .create(path)
        .map_err(werr(path, "file"))
}

/// Sets `encoding-type` and `encoding-version` on `loc`.
pub(crate) fn set_encoding(
    loc: &Location,
    kind: &str,
    version: &str,
    path: &Path,
    field: &str,
) -> Result<()> {
    write_attr_str(loc, "encoding-type", kind, path, field)?;
    write_attr_str(loc, "encoding-version", version, path, field)
}

fn vlu(s: &str, path: &Path, field: &str) -> Result<VarLenUnicode> {
    VarLenUnicode::from_str(s).map_err(|_| {
        Error::invalid(
            format!("string in '{field}' of {}", path.display()),
            format!("'{}' contains a NUL character", s.escape_debug()),
        )
    })
}

/// Writes a scalar variable-length UTF-8 string attribute (as h5py does).
pub(crate) fn write_attr_str(
    loc: &Location,
    name: &str,
    value: &str,
    path: &Path,
    field: &str,
) -> Result<()> {
    let v = vlu(value, path, field)?;
    let a = loc
        .new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)
        .map_err(werr(path, field))?;
    a.write_scalar(&v).map_err(werr(path, field))
}

/// Writes a string-array attribute; an empty list is written as an empty
/// float64 array, as anndata does for `column-order`.
pub(crate) fn write_attr_strs(
    loc: &Location,
    name: &str,
    values: &[String],
    path: &Path,
    field: &str,
) -> Result<()> {
    if values.is_empty() {
        let empty: [f64; 0] = [];
        loc.new_attr_builder()
            .with_data(&empty[..])
            .create(name)
            .map_err(werr(path, field))?;
        return Ok(());
    }
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| vlu(s, path, field))
        .collect::<Result<_>>()?;
    loc.new_attr_builder()
        .with_data(&v[..])
        .create(name)
        .map_err(werr(path, field))?;
    Ok(())
}

/// Writes an int64-array attribute (`shape`).
pub(crate) fn write_attr_ints(
    loc: &Location,
    name: &str,
    values: &[i64],
    path: &Path,
    field: &str,
) -> Result<()> {
    loc.new_attr_builder()
        .with_data(values)
        .create(name)
        .map_err(werr(path, field))?;
    Ok(())
}

/// Writes a scalar boolean attribute (`ordered`).
pub(crate) fn write_attr_bool(
    loc: &Location,
    name: &str,
    value: bool,
    path: &Path,
    field: &str,
) -> Result<()> {
    let a = loc
        .new_attr::<bool>()
        .shape(())
        .create(name)
        .map_err(werr(path, field))?;
    a.write_scalar(&value).map_err(werr(path, field))
}

/// Writes a 1-D dataset `name` in `group` (chunked when large or compressed,
/// gzip level `compression`) with `encoding-type` `array` 0.2.0.
pub(crate) fn write_array<T: H5Type>(
    group: &Group,
    name: &str,
    data: &[T],
    compression: Option<u8>,
    path: &Path,
    field: &str,
) -> Result<Dataset> {
    let ds = write_plain(group, name, data, compression, path, field)?;
    set_encoding(&ds, "array", "0.2.0", path, field)?;
    Ok(ds)
}

/// Writes a 1-D dataset without encoding attributes.
pub(crate) fn write_plain<T: H5Type>(
    group: &Group,
    name: &str,
    data: &[T],
    compression: Option<u8>,
    path: &Path,
    field: &str,
) -> Result<Dataset> {
    let mut b = group.new_dataset_builder();
    if !data.is_empty() && (data.len() > CONTIGUOUS_MAX || compression.is_some()) {
        b = b.chunk(data.len().min(CHUNK_LEN));
        if let Some(level) = compression {
            b = b.deflate(level);
        }
    }
    b.with_data(data).create(name).map_err(werr(path, field))
}

/// Writes a `string-array` dataset (variable-length UTF-8).
pub(crate) fn write_strings(
    group: &Group,
    name: &str,
    values: &[String],
    compression: Option<u8>,
    path: &Path,
    field: &str,
) -> Result<Dataset> {
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| vlu(s, path, field))
        .collect::<Result<_>>()?;
    let ds = write_plain(group, name, &v, compression, path, field)?;
    set_encoding(&ds, "string-array", "0.2.0", path, field)?;
    Ok(ds)
}

/// Writes a scalar dataset with `encoding-type` `kind` (uns values).
pub(crate) fn write_scalar<T: H5Type>(
    group: &Group,
    name: &str,
    value: &T,
    kind: &str,
    path: &Path,
    field: &str,
) -> Result<()> {
    let ds = group
        .new_dataset::<T>()
        .shape(())
        .create(name)
        .map_err(werr(path, field))?;
    ds.write_scalar(value).map_err(werr(path, field))?;
    set_encoding(&ds, kind, "0.2.0", path, field)
}

/// Writes a scalar string dataset (`encoding-type` `string`).
pub(crate) fn write_scalar_str(
    group: &Group,
    name: &str,
    value: &str,
    path: &Path,
    field: &str,
) -> Result<()> {
    let v = vlu(value, path, field)?;
    write_scalar(group, name, &v, "string", path, field)
}

/// Creates a subgroup with `encoding-type` `kind`.
pub(crate) fn create_group(
    parent: &Group,
    name: &str,
    kind: &str,
    version: &str,
    path: &Path,
    field: &str,
) -> Result<Group> {
    let g = parent.create_group(name).map_err(werr(path, field))?;
    set_encoding(&g, kind, version, path, field)?;
    Ok(g)
}

/// A name that is valid as one HDF5 link (no `/`, not empty, not `.`).
pub(crate) fn check_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name.contains('\0') {
        return Err(Error::invalid(
            what,
            format!(
                "'{}' cannot be stored in an .h5ad file (empty, '.', or contains '/' or NUL)",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}
