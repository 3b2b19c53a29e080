//! Reading option maps (`#{steps: 200, lr: 1e-3}`) into typed values, and
//! values to and from JSON. Unknown keys are errors that list the valid
//! ones; a wrong type names the key, the value and what was expected.

use rhai::{Array, Dynamic, Map};

use super::error::{invalid, to_rhai, RhaiResult};

/// The top-level field names `base` serialises to (a config's serde keys),
/// less `hidden` (e.g. an internal `kind` tag).
pub fn serde_keys<T: serde::Serialize>(base: &T, hidden: &[&str]) -> Vec<String> {
    serde_json::to_value(base)
        .ok()
        .and_then(|v| {
            v.as_object().map(|o| {
                o.keys()
                    .filter(|k| !hidden.contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The overrides of a script settings map, as the JSON object the core's
/// `preset + overrides -> config` functions take (`crate::overlay`): every
/// key of `map` but the `handled` ones (read by the caller, e.g. `preset`,
/// `device`) must be one of `known` (the config's serde field names);
/// otherwise the error names the key, the nearest valid one and all of them
/// (`what` names the map). One loop for every settings map of the
/// scripting layer.
pub fn overrides(
    map: &Map,
    known: &[String],
    handled: &[&str],
    what: &str,
) -> RhaiResult<serde_json::Map<String, serde_json::Value>> {
    let mut over = serde_json::Map::new();
    for (k, v) in map {
        let k = k.as_str();
        if handled.contains(&k) {
            continue;
        }
        if !known.iter().any(|x| x == k) {
            let mut all: Vec<String> = known.to_vec();
            all.extend(handled.iter().map(|h| h.to_string()));
            return Err(unknown_key(what, k, &all));
        }
        over.insert(k.to_string(), to_json(v)?);
    }
    Ok(over)
}

/// An option map checked against its known keys.
#[derive(Debug, Clone)]
pub struct Opts {
    what: String,
    map: Map,
}

impl Opts {
    /// Checks `map`'s keys against `known` (`what` names the map in
    /// messages, e.g. `Dataset::load options`).
    pub fn new(what: &str, map: Map, known: &[&str]) -> RhaiResult<Opts> {
        for k in map.keys() {
            if !known.contains(&k.as_str()) {
                return Err(unknown_key(what, k.as_str(), known));
            }
        }
        Ok(Opts {
            what: what.to_string(),
            map,
        })
    }

    /// Like [`new`](Self::new) without a key check.
    pub fn any(what: &str, map: Map) -> Opts {
        Opts {
            what: what.to_string(),
            map,
        }
    }

    /// The raw value of `key` (unit counts as absent).
    pub fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    /// The keys present.
    pub fn keys(&self) -> Vec<String> {
        self.map.keys().map(|k| k.to_string()).collect()
    }

    fn bad(&self, key: &str, v: &Dynamic, want: &str) -> Box<rhai::EvalAltResult> {
        invalid(
            &format!("{} '{key}'", self.what),
            format!("{v} ({}) is not {want}", v.type_name()),
        )
    }

    /// An integer.
    pub fn int(&self, key: &str) -> RhaiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .map(Some)
                .map_err(|_| self.bad(key, v, "an integer")),
        }
    }

    /// A non-negative integer.
    pub fn count(&self, key: &str) -> RhaiResult<Option<usize>> {
        match self.int(key)? {
            None => Ok(None),
            Some(i) if i >= 0 => Ok(Some(i as usize)),
            Some(i) => Err(invalid(
                &format!("{} '{key}'", self.what),
                format!("{i} is negative"),
            )),
        }
    }

    /// A seed (non-negative integer).
    pub fn seed(&self, key: &str) -> RhaiResult<Option<u64>> {
        Ok(self.count(key)?.map(|v| v as u64))
    }

    /// A number (integers accepted).
    pub fn float(&self, key: &str) -> RhaiResult<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => number(v)
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "a number")),
        }
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> RhaiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .map_err(|_| self.bad(key, v, "true or false")),
        }
    }

    /// A string.
    pub fn string(&self, key: &str) -> RhaiResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.to_string())),
            Some(v) => Err(self.bad(key, v, "a string")),
        }
    }

    /// A string or an array of strings.
    pub fn strings(&self, key: &str) -> RhaiResult<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => strings(v)
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "a string or an array of strings")),
        }
    }
}

/// An `unknown` error for key `key` of `what` that lists every valid key
/// and suggests the closest one.
pub fn unknown_key<S: AsRef<str>>(what: &str, key: &str, known: &[S]) -> Box<rhai::EvalAltResult> {
    let mut names: Vec<&str> = known.iter().map(|s| s.as_ref()).collect();
    names.sort_unstable();
    let near = names
        .iter()
        .map(|n| {
            (
                super::help::edit_distance(&key.to_ascii_lowercase(), &n.to_ascii_lowercase()),
                *n,
            )
        })
        .filter(|(d, n)| *d <= 2.max(n.len() / 3))
        .min();
    let hint = match near {
        Some((_, n)) => format!("; did you mean '{n}'? valid keys: {}", names.join(", ")),
        None => format!("; valid keys: {}", names.join(", ")),
    };
    to_rhai(crate::Error::Unknown {
        what: format!("key of {what}"),
        value: key.to_string(),
        hint,
    })
}

/// A number from an int or a float.
pub fn number(v: &Dynamic) -> Option<f64> {
    v.as_float()
        .ok()
        .or_else(|| v.as_int().ok().map(|i| i as f64))
}

/// A string, or an array of strings, as a list.
pub fn strings(v: &Dynamic) -> Option<Vec<String>> {
    if v.is_string() {
        return Some(vec![v.to_string()]);
    }
    let a = v.read_lock::<Array>()?;
    a.iter()
        .map(|x| {
            if x.is_string() {
                Some(x.to_string())
            } else {
                None
            }
        })
        .collect()
}

/// A list of strings as a Rhai array.
pub fn string_array<S: ToString>(v: impl IntoIterator<Item = S>) -> Array {
    v.into_iter()
        .map(|s| Dynamic::from(s.to_string()))
        .collect()
}

/// A list of numbers as a Rhai array of floats.
pub fn float_array(v: impl IntoIterator<Item = f64>) -> Array {
    v.into_iter().map(Dynamic::from_float).collect()
}

/// A Rhai value as JSON (maps, arrays, numbers, strings, bools, unit).
pub fn to_json(v: &Dynamic) -> RhaiResult<serde_json::Value> {
    rhai::serde::from_dynamic::<serde_json::Value>(v)
        .map_err(|e| invalid("value", format!("cannot be read as JSON: {e}")))
}

/// JSON as a Rhai value.
pub fn from_json(v: &serde_json::Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

/// Any serialisable value as a Rhai value (maps for structs).
pub fn to_dynamic<T: serde::Serialize>(v: &T) -> RhaiResult<Dynamic> {
    let j = serde_json::to_value(v).map_err(|e| invalid("value", e.to_string()))?;
    Ok(from_json(&j))
}

/// A path argument: non-empty.
pub fn path_arg(what: &str, p: &str) -> RhaiResult<std::path::PathBuf> {
    if p.trim().is_empty() {
        return Err(invalid(what, "the path is empty"));
    }
    Ok(std::path::PathBuf::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulator settings: known keys pass through as JSON, handled keys are
    /// skipped, an unknown key names itself, the nearest valid key and the
    /// handled ones.
    #[test]
    fn overrides_keep_known_keys_and_name_unknown_ones() {
        let keys = serde_keys(&crate::sim::SimConfig::default(), &[]);
        assert!(keys.iter().any(|k| k == "n_genes"), "{keys:?}");
        let mut m = Map::new();
        m.insert("preset".into(), Dynamic::from("tiny".to_string()));
        m.insert("n_genes".into(), Dynamic::from_int(40));
        let o = overrides(&m, &keys, &["preset"], "settings").unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o["n_genes"], serde_json::json!(40));
        m.insert("n_gene".into(), Dynamic::from_int(40));
        let e = super::super::error::describe(
            &overrides(&m, &keys, &["preset"], "settings").unwrap_err(),
        );
        assert!(
            e.contains("'n_gene'") && e.contains("did you mean 'n_genes'") && e.contains("preset"),
            "{e}"
        );
    }
}
