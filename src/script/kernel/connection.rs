//! The connection file Jupyter hands a kernel (`{connection_file}` in the
//! kernelspec's argv): transport, IP, the five ports and the HMAC key.
//!
//! ```json
//! {"transport": "tcp", "ip": "127.0.0.1", "shell_port": 53794, "iopub_port": 53795,
//!  "stdin_port": 53796, "control_port": 53797, "hb_port": 53798,
//!  "key": "a0436f6c-...", "signature_scheme": "hmac-sha256", "kernel_name": "primeflow"}
//! ```

use std::path::Path;

pub use jupyter_protocol::{ConnectionInfo, Transport};

use crate::error::{Error, Result};

/// The one signature scheme Jupyter uses in practice (and the only one
/// this kernel accepts besides an empty key, which turns signing off).
pub const SIGNATURE_SCHEME: &str = "hmac-sha256";

/// Reads and checks a connection file: every field present, a known
/// transport, ports given for TCP, `hmac-sha256` (or no key).
pub fn read(path: &Path) -> Result<ConnectionInfo> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(&text).map_err(|m| Error::format(path, "connection file", m))
}

/// Parses the text of a connection file (see [`read`]).
pub fn parse(text: &str) -> std::result::Result<ConnectionInfo, String> {
    let info: ConnectionInfo = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !info.key.is_empty() && info.signature_scheme != SIGNATURE_SCHEME {
        return Err(format!(
            "signature_scheme '{}' is not supported (only {SIGNATURE_SCHEME})",
            info.signature_scheme
        ));
    }
    if info.transport == Transport::TCP {
        let ports = [
            ("shell_port", info.shell_port),
            ("iopub_port", info.iopub_port),
            ("stdin_port", info.stdin_port),
            ("control_port", info.control_port),
            ("hb_port", info.hb_port),
        ];
        if let Some((name, _)) = ports.iter().find(|(_, p)| *p == 0) {
            return Err(format!(
                "{name} is 0; the kernel needs the ports it is to bind"
            ));
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"transport": "tcp", "ip": "127.0.0.1", "shell_port": 5001,
        "iopub_port": 5002, "stdin_port": 5003, "control_port": 5004, "hb_port": 5005,
        "key": "k", "signature_scheme": "hmac-sha256", "kernel_name": "primeflow"}"#;

    #[test]
    fn reads_a_jupyter_connection_file() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.shell_url(), "tcp://127.0.0.1:5001");
        assert_eq!(c.key, "k");
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        assert!(parse(&GOOD.replace("hmac-sha256", "hmac-md5"))
            .unwrap_err()
            .contains("hmac-md5"));
        assert!(parse(&GOOD.replace("5003", "0"))
            .unwrap_err()
            .contains("stdin_port"));
        assert!(parse("{").is_err());
        assert!(parse(r#"{"ip": "127.0.0.1"}"#).is_err());
    }
}
