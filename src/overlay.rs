//! One way to build a config from a base and overrides: `base + map ->
//! config`. The base is serialised to JSON, the override object is merged
//! into it key by key (nested objects recursively, everything else
//! replaced), and the result is deserialised again, so unknown keys are
//! rejected by the config's own `deny_unknown_fields` with a message that
//! lists the valid ones. Callers validate values afterwards.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// `base` with `overrides` (a JSON object) applied; `what` names the config
/// in errors (e.g. "train config (cfg.json)").
pub fn overlay<T: Serialize + DeserializeOwned>(
    base: &T,
    overrides: &Value,
    what: &str,
) -> Result<T> {
    let mut merged = serde_json::to_value(base).map_err(|e| Error::invalid(what, e.to_string()))?;
    if !overrides.is_object() {
        return Err(Error::invalid(what, "must be a JSON object of settings"));
    }
    merge_into(&mut merged, overrides);
    serde_json::from_value(merged).map_err(|e| Error::invalid(what, e.to_string()))
}

/// Merges `over` into `base`: objects key by key (recursively), any other
/// value replaces.
pub fn merge_into(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge_into(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u32,
        b: u32,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        x: f64,
        inner: Inner,
    }

    #[test]
    fn nested_keys_merge_and_unknown_keys_are_listed() {
        let base = Outer {
            x: 1.0,
            inner: Inner { a: 1, b: 2 },
        };
        let got: Outer = overlay(&base, &serde_json::json!({"inner": {"b": 5}}), "t").unwrap();
        assert_eq!(got.inner, Inner { a: 1, b: 5 });
        assert_eq!(got.x, 1.0);
        let e = overlay::<Outer>(&base, &serde_json::json!({"inner": {"c": 5}}), "cfg")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`c`") && e.contains("`a`") && e.contains("cfg"),
            "{e}"
        );
        let e = overlay::<Outer>(&base, &serde_json::json!([1]), "cfg")
            .unwrap_err()
            .to_string();
        assert!(e.contains("JSON object"), "{e}");
    }
}
