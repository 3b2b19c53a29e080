//! `help()` / `:help NAME`: the doc comments of every registered function,
//! property and object type, read from the engine's own metadata (so the
//! help can never drift from what is registered), plus `:functions` and the
//! names used for tab completion.
//!
//! ```rhai
//! help()              // the objects and how to start
//! help("Dataset")     // one object: its doc and all its methods
//! help("split")       // every overload of a function, with examples
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rhai::{Engine, FuncRegistration};
use serde_json::Value;

use super::help_parse::{clean_doc, first_sentence, parse_fn, script_type};

/// One function overload (or property getter) and its documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct FnDoc {
    /// The name scripts call (`split`, `n_cells`, `sweep::grid`).
    pub name: String,
    /// `Some(type)` when the first parameter is an object (a method).
    pub this_type: Option<String>,
    /// A property getter (`ds.n_cells`).
    pub is_property: bool,
    /// The script type it returns (`Dataset`, `int`, ...; empty for none).
    pub returns: String,
    /// The signature as shown to users.
    pub signature: String,
    /// The doc comment without comment markers.
    pub doc: String,
}

/// Everything `help` knows, built from the engine's metadata.
#[derive(Debug, Clone, Default)]
pub struct HelpIndex {
    functions: BTreeMap<String, Vec<FnDoc>>,
    types: BTreeMap<String, String>,
    /// Every callable name, the standard library's included (completion).
    names: BTreeSet<String>,
}

/// The text returned by `help(...)`; prints as itself.
#[derive(Debug, Clone)]
pub struct HelpText(pub String);

impl HelpIndex {
    /// Reads the engine's metadata: registered functions, static modules
    /// (`Dataset::load`, the stdlib) and custom types.
    pub fn from_engine(engine: &Engine) -> HelpIndex {
        let mut idx = HelpIndex::default();
        let meta: Value = engine
            .gen_fn_metadata_to_json(false)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        let mut custom: BTreeSet<String> = BTreeSet::new();
        let mut collect = |v: &Value| {
            for t in v
                .get("customTypes")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(n) = t.get("displayName").and_then(|n| n.as_str()) {
                    custom.insert(script_type(n));
                }
            }
        };
        collect(&meta);
        for body in meta
            .get("modules")
            .and_then(|m| m.as_object())
            .into_iter()
            .flat_map(|m| m.values())
        {
            collect(body);
        }
        let add = |f: &Value, module: Option<&str>, idx: &mut HelpIndex| {
            if let Some(d) = parse_fn(f, module, &custom) {
                idx.names.insert(d.name.clone());
                let list = idx.functions.entry(d.name.clone()).or_default();
                if !list.contains(&d) {
                    list.push(d);
                }
            }
        };
        if let Some(fs) = meta.get("functions").and_then(|f| f.as_array()) {
            for f in fs {
                add(f, None, &mut idx);
            }
        }
        if let Some(ms) = meta.get("modules").and_then(|m| m.as_object()) {
            for (m, body) in ms {
                if let Some(fs) = body.get("functions").and_then(|f| f.as_array()) {
                    for f in fs {
                        add(f, Some(m), &mut idx);
                    }
                }
            }
        }
        let mut types = |v: &Value| {
            if let Some(ts) = v.get("customTypes").and_then(|c| c.as_array()) {
                for t in ts {
                    let name = t
                        .get("displayName")
                        .and_then(|n| n.as_str())
                        .unwrap_or("")
                        .to_string();
                    let doc = t
                        .get("docComments")
                        .and_then(|d| d.as_array())
                        .map(|d| clean_doc(d))
                        .unwrap_or_default();
                    if !name.is_empty() && !doc.is_empty() {
                        idx.types.insert(name, doc);
                    }
                }
            }
        };
        types(&meta);
        if let Some(ms) = meta.get("modules").and_then(|m| m.as_object()) {
            for body in ms.values() {
                types(body);
            }
        }
        // Standard-library names, for completion only.
        if let Some(fs) = engine
            .gen_fn_metadata_to_json(true)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.get("functions").cloned())
            .and_then(|f| f.as_array().cloned())
        {
            for f in fs {
                if let Some(n) = f.get("name").and_then(|n| n.as_str()) {
                    if !n.contains('$') {
                        idx.names.insert(n.to_string());
                    }
                }
            }
        }
        idx.names.insert("help".into());
        idx
    }

    /// All documented primeflow functions (not Rhai's standard library).
    pub fn functions(&self) -> impl Iterator<Item = &FnDoc> {
        self.functions.values().flatten()
    }

    /// Object type names with docs.
    pub fn types(&self) -> impl Iterator<Item = (&String, &String)> {
        self.types.iter()
    }

    /// Every callable name (completion).
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.names.iter()
    }

    /// Methods and properties whose receiver is `type_name` (completion
    /// after `x.`).
    pub fn members_of(&self, type_name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .functions()
            .filter(|d| d.this_type.as_deref() == Some(type_name))
            .map(|d| d.name.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The overview `help()` prints.
    pub fn overview(&self) -> String {
        let mut s = String::from("primeflow scripting (Rhai). Objects:\n");
        for (name, doc) in &self.types {
            let first = first_sentence(doc);
            s.push_str(&format!("  {name:<14} {first}\n"));
        }
        let mods: BTreeSet<&str> = self
            .functions
            .keys()
            .filter_map(|k| k.split_once("::").map(|(m, _)| m))
            .collect();
        if !mods.is_empty() {
            s.push_str(&format!(
                "Modules: {}\n",
                mods.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        s.push_str("help(\"NAME\") (or :help NAME in the REPL) shows an object, function or module with examples;\n");
        s.push_str(":functions lists every function, :vars the variables in scope.");
        s
    }

    /// Help for an object type, a function (`fit`, `Dataset.split`,
    /// `sweep::grid`) or a module (`sweep`); `None` when unknown.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let name = name.trim().trim_end_matches("()");
        if let Some(doc) = self.types.get(name) {
            let mut s = format!("{name}\n{}\n", indent(doc));
            let mut members: Vec<&FnDoc> = self
                .functions()
                .filter(|d| {
                    d.this_type.as_deref() == Some(name)
                        || d.name.starts_with(&format!("{name}::"))
                        || d.name == name
                        || (d.this_type.is_none() && d.returns == name)
                })
                .collect();
            members.sort_by(|a, b| a.signature.cmp(&b.signature));
            if !members.is_empty() {
                s.push_str("\nFunctions and properties:\n");
                for d in members {
                    let first = first_sentence(&d.doc);
                    s.push_str(&format!("  {}\n      {first}\n", d.signature));
                }
            }
            return Some(s.trim_end().to_string());
        }
        let (ty, fname) = match name.split_once('.') {
            Some((t, f)) => (Some(t), f),
            None => (None, name),
        };
        let docs: Vec<&FnDoc> = self
            .functions
            .get(fname)
            .map(|v| {
                v.iter()
                    .filter(|d| ty.is_none() || d.this_type.as_deref() == ty)
                    .collect()
            })
            .unwrap_or_default();
        if !docs.is_empty() {
            let mut s = String::new();
            let mut seen_docs: Vec<&str> = Vec::new();
            for d in &docs {
                s.push_str(&d.signature);
                s.push('\n');
                if !d.doc.is_empty() && !seen_docs.contains(&d.doc.as_str()) {
                    s.push_str(&indent(&d.doc));
                    s.push('\n');
                    seen_docs.push(&d.doc);
                }
            }
            return Some(s.trim_end().to_string());
        }
        let prefix = format!("{name}::");
        let in_module: Vec<&FnDoc> = self
            .functions()
            .filter(|d| d.name.starts_with(&prefix))
            .collect();
        if !in_module.is_empty() {
            let mut s = format!("module {name}:\n");
            for d in in_module {
                let first = first_sentence(&d.doc);
                s.push_str(&format!("  {}\n      {first}\n", d.signature));
            }
            return Some(s.trim_end().to_string());
        }
        None
    }

    /// `lookup`, or a message with the closest known names.
    pub fn help_for(&self, name: &str) -> String {
        match self.lookup(name) {
            Some(s) => s,
            None => {
                let near = self.suggest(name);
                if near.is_empty() {
                    format!("no help for '{name}'; help() lists the objects")
                } else {
                    format!("no help for '{name}'; did you mean {}?", near.join(", "))
                }
            }
        }
    }

    /// Up to three known names within a small edit distance of `name`.
    pub fn suggest(&self, name: &str) -> Vec<String> {
        let lname = name.to_ascii_lowercase();
        let mut scored: Vec<(usize, &String)> = self
            .names
            .iter()
            .chain(self.types.keys())
            .map(|n| (edit_distance(&lname, &n.to_ascii_lowercase()), n))
            .filter(|(d, n)| *d <= 2.max(n.len() / 4) && *d > 0)
            .collect();
        scored.sort();
        scored.dedup_by(|a, b| a.1 == b.1);
        scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
    }

    /// Every documented signature, one per line, for `:functions`.
    pub fn signatures(&self) -> String {
        let mut v: Vec<&str> = self.functions().map(|d| d.signature.as_str()).collect();
        v.sort();
        v.dedup();
        v.join("\n")
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Levenshtein distance (small inputs only).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Registers `help()` and `help(name)` (built from everything registered
/// before this call) and returns the index.
pub fn register(engine: &mut Engine) -> Rc<HelpIndex> {
    engine.register_type_with_name::<HelpText>("HelpText");
    engine.register_fn("to_string", |h: &mut HelpText| h.0.clone());
    engine.register_fn("to_debug", |h: &mut HelpText| h.0.clone());
    let mut idx = HelpIndex::from_engine(engine);
    let help_doc = FnDoc {
        name: "help".into(),
        this_type: None,
        is_property: false,
        returns: "HelpText".into(),
        signature: "help(name: String)".into(),
        doc: "Shows the documentation of an object, function or module (help() alone: the overview).\n```rhai\nhelp(\"Dataset\")\n```"
            .into(),
    };
    idx.functions.insert("help".into(), vec![help_doc]);
    let idx = Rc::new(idx);
    let i = idx.clone();
    FuncRegistration::new("help")
        .with_params_info(["HelpText"])
        .with_comments([
            "/// The overview of objects and modules.",
            "/// ```rhai",
            "/// help()",
            "/// ```",
        ])
        .register_into_engine(engine, move || HelpText(i.overview()));
    let i = idx.clone();
    FuncRegistration::new("help")
        .with_params_info(["name: &str", "HelpText"])
        .with_comments([
            "/// Documentation of an object, function or module.",
            "/// ```rhai",
            "/// help(\"Dataset\")",
            "/// ```",
        ])
        .register_into_engine(engine, move |name: &str| HelpText(i.help_for(name)));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("fit", "fit"), 0);
        assert_eq!(edit_distance("fitt", "fit"), 1);
        assert_eq!(edit_distance("smaple", "sample"), 2);
    }

    #[test]
    fn doc_markers_are_stripped() {
        let v = vec![
            Value::from("/// Loads a file."),
            Value::from("/// ```rhai"),
            Value::from("/// x"),
            Value::from("/// ```"),
        ];
        assert_eq!(clean_doc(&v), "Loads a file.\n```rhai\nx\n```");
    }
}
