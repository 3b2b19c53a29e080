//! The crate's error type.
//!
//! Every variant names what failed in the user's words: the file, the field
//! (an HDF5 path such as `obs/condition/codes`, a config key, a column) and the
//! offending value. Library code returns [`Result`]; nothing a user's input,
//! file or script can reach panics.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {message}")]
    Io {
        path: PathBuf,
        message: String,
        #[source]
        source: Option<std::io::Error>,
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
            source: Some(source),
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
