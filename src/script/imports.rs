//! Imports that outlive their input. Rhai forgets a module imported by
//! `import "path" as name;` when the evaluation that ran it ends, so in a
//! session (REPL lines, notebook cells) a later input could not call
//! `name::f(...)`. The session finds the input's top-level import
//! statements with [`imports`] and registers each module under its alias
//! as a static module of the engine, resolved by the engine's own module
//! resolver (the stdlib, then files beside the script or notebook).
//!
//! ```rhai
//! import "sweep" as sw;          // one cell
//! sw::grid(#{lr: [1e-3, 1e-4]})  // a later cell
//! ```

use rhai::{Engine, Position};

/// `(path, alias)` of each `import "path" as alias` in `code` (outside
/// strings and comments, on any line).
pub fn imports(code: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '`' {
            // Skip a string.
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let word_start = i == 0 || !ident(chars[i - 1]);
        if word_start && chars[i..].starts_with(&['i', 'm', 'p', 'o', 'r', 't']) {
            if let Some(found) = import_at(&chars, i + 6, skip_ws) {
                out.push(found);
            }
        }
        i += 1;
    }
    out
}

/// Parses `"path" as alias` from position `j` (just after `import`).
fn import_at(
    chars: &[char],
    j: usize,
    skip_ws: impl Fn(usize) -> usize,
) -> Option<(String, String)> {
    if chars
        .get(j)
        .is_some_and(|c| c.is_alphanumeric() || *c == '_')
    {
        return None;
    }
    let mut j = skip_ws(j);
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    let start = j;
    while j < chars.len() && chars[j] != '"' && chars[j] != '\n' {
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    let path: String = chars[start..j].iter().collect();
    j = skip_ws(j + 1);
    if !chars[j..].starts_with(&['a', 's']) {
        return None;
    }
    j += 2;
    if !chars.get(j).is_some_and(|c| c.is_whitespace()) {
        return None;
    }
    j = skip_ws(j);
    let a = j;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    let alias: String = chars[a..j].iter().collect();
    if alias.is_empty() || alias.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((path, alias))
}

/// Registers the modules `code` imports as static modules of `engine`,
/// so later inputs can use them. Paths that do not resolve are skipped
/// (the input itself already reported them).
pub fn keep(engine: &mut Engine, code: &str) {
    for (path, alias) in imports(code) {
        if let Ok(m) = engine
            .module_resolver()
            .resolve(engine, None, &path, Position::NONE)
        {
            engine.register_static_module(alias, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_import_statements_only() {
        let code = "import \"sweep\" as sw;\nlet s = \"import \\\"x\\\" as y\";\n// import \"z\" as z\nfn f() { import \"table\" as t; }\nreimport \"q\" as q;";
        assert_eq!(
            imports(code),
            vec![
                ("sweep".to_string(), "sw".to_string()),
                ("table".to_string(), "t".to_string())
            ]
        );
        assert!(imports("import \"a\";").is_empty());
        assert!(imports("import \"a\" as").is_empty());
    }
}
