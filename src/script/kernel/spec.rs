//! `primeflow kernel install`: the kernelspec Jupyter finds the kernel by,
//! `<data dir>/kernels/<name>/kernel.json`:
//!
//! ```json
//! {"argv": ["/abs/path/primeflow", "kernel", "--connection-file", "{connection_file}"],
//!  "display_name": "Rhai (primeflow)", "language": "rhai", "interrupt_mode": "message",
//!  "metadata": {"debugger": false}}
//! ```
//!
//! `--user` writes to Jupyter's user data folder (`$JUPYTER_DATA_DIR`, else
//! `$XDG_DATA_HOME/jupyter` or `~/.local/share/jupyter`; `~/Library/Jupyter`
//! on macOS); `--prefix DIR` to `DIR/share/jupyter` (e.g. a virtual
//! environment, where that environment's Jupyter looks).
//!
//! Interrupts are messages on the control channel (`interrupt_mode`), so
//! they work wherever the client is; SIGINT works as well.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The kernel's name (a notebook's `metadata.kernelspec.name`).
pub const DEFAULT_NAME: &str = "primeflow";

/// The name shown in Jupyter's kernel picker.
pub const DEFAULT_DISPLAY_NAME: &str = "Rhai (primeflow)";

/// Where to install.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// Jupyter's user data folder.
    User,
    /// `PREFIX/share/jupyter`.
    Prefix(PathBuf),
}

/// Jupyter's user data folder (see the module docs).
pub fn user_data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("JUPYTER_DATA_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join("Library/Jupyter"));
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".local/share")))
        .map(|d| d.join("jupyter"))
}

/// The data folder of `location`.
pub fn data_dir(location: &Location) -> Result<PathBuf> {
    match location {
        Location::User => user_data_dir().ok_or_else(|| {
            Error::invalid(
                "kernel install",
                "no user data folder: set HOME or JUPYTER_DATA_DIR, or use --prefix",
            )
        }),
        Location::Prefix(p) => Ok(p.join("share").join("jupyter")),
    }
}

/// The kernel.json content for the binary at `exe`.
pub fn kernel_json(exe: &Path, display_name: &str) -> Value {
    json!({
        "argv": [exe.display().to_string(), "kernel", "--connection-file", "{connection_file}"],
        "display_name": display_name,
        "language": "rhai",
        "interrupt_mode": "message",
        "metadata": {"debugger": false},
    })
}

/// Checks a kernel name as Jupyter does (letters, digits, `-`, `.`, `_`).
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "kernel name",
            format!("'{name}': use letters, digits, '-', '.' and '_'"),
        ))
    }
}

/// Writes the kernelspec of the binary at `exe` (made absolute) and
/// returns its folder. Replaces an earlier install of the same name.
pub fn install(location: &Location, name: &str, display_name: &str, exe: &Path) -> Result<PathBuf> {
    check_name(name)?;
    let exe = std::fs::canonicalize(exe).map_err(|e| Error::io(exe, e))?;
    let dir = data_dir(location)?.join("kernels").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    crate::atomic::write_json(&dir.join("kernel.json"), &kernel_json(&exe, display_name))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_json_runs_this_binary_with_the_connection_file() {
        let j = kernel_json(Path::new("/opt/bin/primeflow"), DEFAULT_DISPLAY_NAME);
        assert_eq!(j["argv"][0], "/opt/bin/primeflow");
        assert_eq!(j["argv"][3], "{connection_file}");
        assert_eq!(j["language"], "rhai");
        assert_eq!(j["interrupt_mode"], "message");
    }

    #[test]
    fn names_and_prefixes() {
        assert!(check_name("primeflow-rhai_1.0").is_ok());
        assert!(check_name("a b").is_err() && check_name("").is_err());
        assert_eq!(
            data_dir(&Location::Prefix("/venv".into())).unwrap(),
            PathBuf::from("/venv/share/jupyter")
        );
    }
}
