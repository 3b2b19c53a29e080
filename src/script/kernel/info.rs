//! What `kernel_info_request` answers: the protocol version, this kernel,
//! and the language (Rhai, its version, `.rhai` files).

use jupyter_protocol::{CodeMirrorMode, HelpLink, KernelInfoReply, LanguageInfo, ReplyStatus};

/// The messaging protocol version implemented.
pub const PROTOCOL_VERSION: &str = "5.3";

/// The Rhai version this binary embeds (from Cargo.lock at build time).
pub const RHAI_VERSION: &str = env!("PRIMEFLOW_RHAI_VERSION");

/// The language as notebooks record it (`metadata.language_info`).
pub fn language_info() -> LanguageInfo {
    LanguageInfo {
        name: "rhai".into(),
        version: RHAI_VERSION.into(),
        mimetype: Some("text/x-rhai".into()),
        file_extension: Some(".rhai".into()),
        // Rhai's syntax is Rust's in the large; neither Pygments nor
        // CodeMirror has a Rhai mode.
        pygments_lexer: Some("rust".into()),
        codemirror_mode: Some(CodeMirrorMode::Simple("rust".into())),
        nbconvert_exporter: Some("script".into()),
    }
}

/// The `kernel_info_reply` content.
pub fn kernel_info() -> KernelInfoReply {
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: PROTOCOL_VERSION.into(),
        implementation: "primeflow".into(),
        implementation_version: env!("CARGO_PKG_VERSION").into(),
        language_info: language_info(),
        banner: format!(
            "primeflow {} kernel: Rhai {RHAI_VERSION} with the REPL's engine, objects and stdlib.\n\
             help() lists the objects; :help NAME, :functions and :vars work in cells; \
             Shift-Tab shows the help of the name at the cursor.",
            env!("CARGO_PKG_VERSION")
        ),
        help_links: vec![HelpLink {
            text: "Rhai language book".into(),
            url: "https://rhai.rs/book/".into(),
        }],
        debugger: false,
        error: None,
    }
}
