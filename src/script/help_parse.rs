//! Reading Rhai's function metadata (JSON) into [`FnDoc`]s: doc comments
//! without their markers, script type names, first sentences.

use std::collections::BTreeSet;

use serde_json::Value;

use super::help::FnDoc;

/// Strips `///`, `//!`, `/** */` markers from Rhai metadata doc comments.
pub(super) fn clean_doc(lines: &[Value]) -> String {
    let mut out = Vec::new();
    for l in lines.iter().filter_map(|v| v.as_str()) {
        for line in l.lines() {
            let t = line.trim_start();
            let t = t
                .strip_prefix("///")
                .or_else(|| t.strip_prefix("//!"))
                .or_else(|| t.strip_prefix("/**"))
                .or_else(|| t.strip_prefix("*/"))
                .or_else(|| t.strip_prefix('*'))
                .unwrap_or(t);
            let t = t.strip_suffix("*/").unwrap_or(t);
            out.push(t.strip_prefix(' ').unwrap_or(t).trim_end().to_string());
        }
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// Rust types that may appear in signatures -> the script names
/// (`RhaiResult<Array>` -> `Array`, `DatasetHandle` -> `Dataset`).
pub(super) fn script_type(t: &str) -> String {
    let t = t
        .trim()
        .trim_start_matches("&mut ")
        .trim_start_matches('&')
        .trim();
    for wrapper in ["RhaiResult<", "Result<"] {
        if let Some(inner) = t.strip_prefix(wrapper).and_then(|r| r.strip_suffix('>')) {
            let first = inner.split(',').next().unwrap_or(inner);
            return script_type(first);
        }
    }
    let last = t.rsplit("::").next().unwrap_or(t);
    match last {
        "ImmutableString" | "String" | "str" => "String".into(),
        "INT" | "i64" => "int".into(),
        "FLOAT" | "f64" => "float".into(),
        "Dynamic" => "?".into(),
        "Array" | "Vec<Dynamic>" => "Array".into(),
        other => other.trim_end_matches("Handle").to_string(),
    }
}

/// The first sentence of a doc (its first paragraph, up to ". ").
pub(super) fn first_sentence(doc: &str) -> String {
    let para: Vec<&str> = doc
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("```"))
        .collect();
    let text = para.join(" ");
    match text.find(". ") {
        Some(i) => text[..=i].to_string(),
        None => text,
    }
}

pub(super) fn parse_fn(
    f: &Value,
    module: Option<&str>,
    custom: &BTreeSet<String>,
) -> Option<FnDoc> {
    let raw = f.get("name")?.as_str()?;
    if raw.starts_with("anon$") || f.get("access").and_then(|a| a.as_str()) == Some("private") {
        return None;
    }
    let params: Vec<(String, String)> = f
        .get("params")
        .and_then(|p| p.as_array())
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let name = p
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("_")
                        .to_string();
                    let ty = p
                        .get("type")
                        .and_then(|n| n.as_str())
                        .map(script_type)
                        .unwrap_or_else(|| "?".into());
                    (name, ty)
                })
                .collect()
        })
        .unwrap_or_default();
    let ret = f
        .get("returnType")
        .and_then(|r| r.as_str())
        .map(script_type)
        .unwrap_or_default();
    let doc = f
        .get("docComments")
        .and_then(|d| d.as_array())
        .map(|d| clean_doc(d))
        .unwrap_or_default();
    let (name, is_property) = match raw.strip_prefix("get$") {
        Some(p) => (p.to_string(), true),
        None if raw.starts_with("set$") || raw.starts_with("index$") => return None,
        None => (raw.to_string(), false),
    };
    let name = match module {
        Some(m) => format!("{m}::{name}"),
        None => name,
    };
    let first_ty = params
        .first()
        .map(|(_, t)| t.clone())
        .filter(|t| custom.contains(t));
    let this_type = if module.is_none() { first_ty } else { None };
    let ret_s = if ret.is_empty() || ret == "()" {
        String::new()
    } else {
        format!(" -> {ret}")
    };
    let signature = if is_property {
        format!(
            "{}.{}{}",
            this_type.clone().unwrap_or_else(|| "?".into()),
            name,
            ret_s
        )
    } else if let (Some(t), false) = (&this_type, params.is_empty()) {
        let rest: Vec<String> = params
            .iter()
            .skip(1)
            .map(|(n, ty)| {
                if ty == "?" {
                    n.clone()
                } else {
                    format!("{n}: {ty}")
                }
            })
            .collect();
        format!("{t}.{name}({}){ret_s}", rest.join(", "))
    } else {
        let all: Vec<String> = params
            .iter()
            .map(|(n, ty)| {
                if ty == "?" {
                    n.clone()
                } else {
                    format!("{n}: {ty}")
                }
            })
            .collect();
        format!("{name}({}){ret_s}", all.join(", "))
    };
    Some(FnDoc {
        name,
        this_type,
        is_property,
        signature,
        doc,
        returns: ret,
    })
}
