//! The crate's error type.
//!
//! Every variant names what failed in the user's words: the file, the field
//! (an HDF5 path such as `obs/condition/codes`, a config key, a column) and the
//! offending value. Library code returns [`Result`]; nothing a user's input,
//! file or script can reach panics.

use std::path::{Path, PathBuf};

/// Exit status for an error not caused by the input.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for bad input: a malformed file, an invalid value, an
/// unknown name, a missing file.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit status when the machine failed: disk full, I/O error, read-only
/// file system (74 is `EX_IOERR` of BSD's sysexits.h).
pub const EXIT_SYSTEM_IO: i32 = 74;
/// Exit status after Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// `errno` values that are failures of the machine, not of the input.
const SYSTEM_ERRNOS: [i32; 4] = [libc::ENOSPC, libc::EDQUOT, libc::EIO, libc::EROFS];

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    ///
    /// `os` is the operating system's error when known. It is not a
    /// `#[source]`: `message` already says it, and a chained cause would be
    /// printed a second time.
    #[error("{path}: {message}")]
    Io {
        path: PathBuf,
        message: String,
        os: Option<std::io::Error>,
    },

    /// A file was read but its content is not what the format requires.
    /// `field` is the location inside the file (e.g. `X/indptr`).
    #[error("{path}: field '{field}': {message}")]
    Format {
        path: PathBuf,
        field: String,
        message: String,
    },

    /// A value given by the user (option, column name, label, config key) is
    /// invalid. `what` names the option or field.
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },

    /// A requested perturbation, covariate value or gene is not known.
    #[error("unknown {what} '{value}'{hint}")]
    Unknown {
        what: String,
        value: String,
        /// Either empty or a sentence starting with "; ", e.g. "; known: A, B".
        hint: String,
    },

    /// Shapes or vocabularies of two things that must agree do not.
    #[error("mismatch: {0}")]
    Mismatch(String),

    /// An error reported by libtorch (never a C++ stack trace).
    #[error("libtorch: {0}")]
    Torch(String),

    /// The user interrupted a long call (Ctrl-C); state is intact.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            message: source.to_string(),
            os: Some(source),
        }
    }

    /// A format problem in `path` at `field`.
    pub fn format(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// An invalid user-provided value.
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }

    /// An unknown name, listing (up to 20 of) the known ones.
    pub fn unknown<S: AsRef<str>>(
        what: impl Into<String>,
        value: impl Into<String>,
        known: &[S],
    ) -> Self {
        let hint = if known.is_empty() {
            String::new()
        } else {
            let shown: Vec<&str> = known.iter().take(20).map(|s| s.as_ref()).collect();
            let more = if known.len() > 20 {
                format!(" (and {} more)", known.len() - 20)
            } else {
                String::new()
            };
            format!("; known: {}{}", shown.join(", "), more)
        };
        Error::Unknown {
            what: what.into(),
            value: value.into(),
            hint,
        }
    }

    /// True for a failure of the machine rather than of the input: a full
    /// disk or quota (ENOSPC, EDQUOT), a device error (EIO), a read-only file
    /// system (EROFS). A missing file or a refused permission is not: the
    /// user named the wrong path.
    pub fn is_system_io(&self) -> bool {
        match self {
            Error::Io { os: Some(e), .. } => {
                e.raw_os_error().is_some_and(|c| SYSTEM_ERRNOS.contains(&c))
            }
            _ => false,
        }
    }

    /// The exit status of the `primeflow` command for this error:
    /// [`EXIT_INTERRUPTED`] after Ctrl-C, [`EXIT_SYSTEM_IO`] when the machine
    /// failed ([`is_system_io`](Self::is_system_io)), [`EXIT_FAILURE`] for a
    /// libtorch failure, else [`EXIT_BAD_INPUT`] (a file, a value, a name).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted => EXIT_INTERRUPTED,
            Error::Torch(_) => EXIT_FAILURE,
            e if e.is_system_io() => EXIT_SYSTEM_IO,
            _ => EXIT_BAD_INPUT,
        }
    }

    /// Short machine-readable kind, used by the scripting layer.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Format { .. } => "format",
            Error::Invalid { .. } => "invalid",
            Error::Unknown { .. } => "unknown",
            Error::Mismatch(_) => "mismatch",
            Error::Torch(_) => "torch",
            Error::Interrupted => "interrupted",
        }
    }
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        // libtorch messages carry a C++ backtrace after the first lines; keep
        // only the message itself.
        let s = e.to_string();
        let first: Vec<&str> = s
            .lines()
            .take_while(|l| !l.starts_with("Exception raised from") && !l.contains("frame #"))
            .collect();
        Error::Torch(first.join(" ").trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: i32) -> Error {
        Error::io("out.csv", std::io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn exit_codes() {
        assert_eq!(io(libc::ENOSPC).exit_code(), EXIT_SYSTEM_IO);
        assert_eq!(io(libc::EIO).exit_code(), EXIT_SYSTEM_IO);
        assert_eq!(io(libc::EDQUOT).exit_code(), EXIT_SYSTEM_IO);
        assert_eq!(io(libc::EROFS).exit_code(), EXIT_SYSTEM_IO);
        assert_eq!(io(libc::ENOENT).exit_code(), EXIT_BAD_INPUT);
        assert_eq!(io(libc::EACCES).exit_code(), EXIT_BAD_INPUT);
        assert_eq!(
            Error::format("f.h5ad", "X", "bad").exit_code(),
            EXIT_BAD_INPUT
        );
        assert_eq!(Error::Interrupted.exit_code(), EXIT_INTERRUPTED);
        assert_eq!(Error::Torch("x".into()).exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn io_message_is_not_repeated_as_a_cause() {
        use std::error::Error as _;
        let e = io(libc::ENOSPC);
        let s = e.to_string();
        assert!(
            s.starts_with("out.csv: ") && s.contains("No space left"),
            "{s}"
        );
        assert!(e.source().is_none());
    }
}
