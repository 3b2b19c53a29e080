//! Atomic file output: write to a temporary file beside the target, then
//! rename it into place, so a crash or Ctrl-C never leaves a half-written
//! checkpoint, prediction or report under the final name.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The temporary sibling used while writing `path` (same folder, so the final
/// rename is atomic on POSIX file systems).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = format!(".{name}.tmp-{}", std::process::id());
    match dir {
        Some(d) => d.join(tmp),
        None => PathBuf::from(tmp),
    }
}

/// True when `path` exists and is neither a regular file nor a folder: a
/// device (`/dev/stdout`, `/dev/null`, `/dev/full`), a FIFO or a socket.
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Runs `write` on a temporary path and renames the result to `path`.
/// On error the temporary file is removed and `path` is left untouched.
/// A special file (see [`is_special`]) is written directly: renaming onto it
/// would replace the device node itself, and nothing can be half-written
/// there anyway.
pub fn write_atomic<T>(path: &Path, write: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    if is_special(path) {
        return write(path);
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
    }
    let tmp = temp_path(path);
    match write(&tmp) {
        Ok(v) => {
            std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io(path, e)
            })?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid("JSON output", e.to_string()))?;
    write_bytes(path, s.as_bytes())
}

/// Reads and parses a JSON file, naming the file on error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| Error::format(path, "json", e.to_string()))
}
