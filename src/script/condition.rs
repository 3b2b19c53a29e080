//! `Condition`: a perturbation request such as `"KLF1+MAP2K6 @ k562"`.
//!
//! A condition is kept as its request text and checked against a
//! vocabulary (a dataset's or a model's) when it is used, so one condition
//! can be asked of several models. The request grammar is the core's
//! ([`crate::data::ConditionVocab::parse`]): perturbations joined with `+`
//! (`control` or `ctrl` for none), then `@` and the covariate values, in
//! column order (`k562, IFNG`) or by name (`cell_type=k562`).

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::convert::{string_array, strings};
use super::dataset::DatasetHandle;
use super::error::{invalid, to_rhai, RhaiResult};
use crate::data::{parse_perturbations, Condition, ConditionVocab};

/// A perturbation request (cheap to clone).
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionHandle {
    /// The request text, e.g. `KLF1+MAP2K6 @ k562`.
    pub request: String,
}

impl ConditionHandle {
    /// A request from text (syntax only; values are checked on use).
    pub fn parse(text: &str) -> RhaiResult<ConditionHandle> {
        let t = text.trim();
        if t.is_empty() || t.starts_with('@') {
            return Err(invalid(
                "condition",
                format!("'{text}' names no perturbation; write e.g. 'KLF1+MAP2K6 @ k562' or 'control @ k562'"),
            ));
        }
        Ok(ConditionHandle {
            request: t.to_string(),
        })
    }

    /// A request from `#{perturbations: "A+B" or ["A", "B"], covariates:
    /// "k562" or ["k562", "IFNG"] or #{cell_type: "k562"}}`.
    pub fn from_map(map: Map) -> RhaiResult<ConditionHandle> {
        for k in map.keys() {
            if !["perturbations", "perturbation", "covariates"].contains(&k.as_str()) {
                return Err(to_rhai(crate::Error::unknown(
                    "key of a Condition map",
                    k.as_str(),
                    &["perturbations", "covariates"],
                )));
            }
        }
        let p = map
            .get("perturbations")
            .or_else(|| map.get("perturbation"))
            .cloned()
            .unwrap_or(Dynamic::UNIT);
        let perts = if p.is_unit() {
            vec![]
        } else {
            strings(&p).ok_or_else(|| {
                invalid(
                    "condition 'perturbations'",
                    format!("{p} is not a string or an array of strings"),
                )
            })?
        };
        let pert = if perts.is_empty() {
            "control".to_string()
        } else {
            perts.join("+")
        };
        let c = map.get("covariates").cloned().unwrap_or(Dynamic::UNIT);
        let covs: Vec<String> = if c.is_unit() {
            vec![]
        } else if let Some(m) = c.read_lock::<Map>() {
            m.iter().map(|(k, v)| format!("{k}={v}")).collect()
        } else {
            strings(&c).ok_or_else(|| {
                invalid(
                    "condition 'covariates'",
                    format!("{c} is not a string, an array of strings or a map"),
                )
            })?
        };
        let request = if covs.is_empty() {
            pert
        } else {
            format!("{pert} @ {}", covs.join(", "))
        };
        Self::parse(&request)
    }

    /// A handle for a resolved core condition.
    pub fn from_condition(c: &Condition) -> ConditionHandle {
        let p = if c.perturbations.is_empty() {
            "control".to_string()
        } else {
            c.perturbations.join("+")
        };
        let request = if c.covariates.is_empty() {
            p
        } else {
            format!("{p} @ {}", c.covariates.join(", "))
        };
        ConditionHandle { request }
    }

    /// The condition checked against `vocab` (unknown names are errors that
    /// list the known ones).
    pub fn resolve(&self, vocab: &ConditionVocab) -> RhaiResult<Condition> {
        vocab.parse(&self.request).map_err(to_rhai)
    }

    /// The perturbations as written (control: none).
    pub fn perturbations(&self) -> Vec<String> {
        let p = self.request.split('@').next().unwrap_or("");
        parse_perturbations(p, "control")
    }

    /// The covariate values as written (`name=` prefixes removed).
    pub fn covariates(&self) -> Vec<String> {
        match self.request.split_once('@') {
            None => vec![],
            Some((_, c)) => c
                .split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.split_once('=')
                        .map(|(_, v)| v.trim())
                        .unwrap_or(s)
                        .to_string()
                })
                .collect(),
        }
    }
}

/// A condition from a script value: a string, a map or a `Condition`.
pub fn condition_arg(v: &Dynamic) -> RhaiResult<ConditionHandle> {
    if let Some(c) = v.read_lock::<ConditionHandle>() {
        return Ok(c.clone());
    }
    if v.is_string() {
        return ConditionHandle::parse(&v.to_string());
    }
    if let Some(m) = v.read_lock::<Map>() {
        return ConditionHandle::from_map(m.clone());
    }
    Err(invalid(
        "condition",
        format!(
            "{v} ({}) is not a condition; write e.g. \"KLF1+MAP2K6 @ k562\"",
            v.type_name()
        ),
    ))
}

/// Conditions from a string, a `Condition` or an array of them.
pub fn conditions_arg(v: &Dynamic) -> RhaiResult<Vec<ConditionHandle>> {
    if let Some(a) = v.read_lock::<Array>() {
        return a.iter().map(condition_arg).collect();
    }
    Ok(vec![condition_arg(v)?])
}

#[export_module]
pub mod condition_api {
    use super::*;

    /// A perturbation request: perturbations joined with `+` (`control` for
    /// none), `@`, then the covariate values (in column order or by name).
    /// ```rhai
    /// let c = Condition("KLF1+MAP2K6 @ k562");
    /// print(c.perturbations);   // ["KLF1", "MAP2K6"]
    /// ```
    pub type Condition = ConditionHandle;

    /// Parses a request such as `"KLF1+MAP2K6 @ k562"` or
    /// `"A @ cell_type=k562, treatment=IFNG"`. Names are checked when the
    /// condition is used with a dataset or a model.
    /// ```rhai
    /// let c = Condition("KLF1+MAP2K6 @ k562");
    /// ```
    #[rhai_fn(name = "Condition", return_raw)]
    pub fn new_condition(request: &str) -> RhaiResult<Condition> {
        ConditionHandle::parse(request)
    }

    /// A condition from a map: `perturbations` (a `+`-joined string or an
    /// array) and `covariates` (a value, an array in column order, or a map
    /// column -> value).
    /// ```rhai
    /// let c = Condition(#{perturbations: ["KLF1", "MAP2K6"], covariates: #{cell_type: "k562"}});
    /// ```
    #[rhai_fn(name = "Condition", return_raw)]
    pub fn condition_from_map(map: Map) -> RhaiResult<Condition> {
        ConditionHandle::from_map(map)
    }

    /// The perturbations (empty for control).
    /// ```rhai
    /// Condition("A+B @ k562").perturbations   // ["A", "B"]
    /// ```
    #[rhai_fn(get = "perturbations", pure)]
    pub fn perturbations(c: &mut Condition) -> Array {
        string_array(c.perturbations())
    }

    /// The covariate values as written.
    /// ```rhai
    /// Condition("A @ k562").covariates   // ["k562"]
    /// ```
    #[rhai_fn(get = "covariates", pure)]
    pub fn covariates(c: &mut Condition) -> Array {
        string_array(c.covariates())
    }

    /// The perturbation label: `A+B`, or `control`.
    /// ```rhai
    /// Condition("A+B @ k562").label   // "A+B"
    /// ```
    #[rhai_fn(get = "label", pure)]
    pub fn label(c: &mut Condition) -> String {
        let p = c.perturbations();
        if p.is_empty() {
            "control".into()
        } else {
            p.join("+")
        }
    }

    /// True for a control condition (no perturbation).
    /// ```rhai
    /// Condition("control @ k562").is_control   // true
    /// ```
    #[rhai_fn(get = "is_control", pure)]
    pub fn is_control(c: &mut Condition) -> bool {
        c.perturbations().is_empty()
    }

    /// The request text.
    /// ```rhai
    /// print(Condition("A @ k562"));
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(c: &mut Condition) -> String {
        c.request.clone()
    }

    /// The model input `Enc(c)` (model.md, "Condition encoding") under a
    /// dataset's vocabulary: multi-hot perturbations, then one one-hot block
    /// per covariate column; `[n_perturbations + sum n_values]` floats.
    /// ```rhai
    /// let enc = Condition("KLF1+MAP2K6 @ k562").encode(data);
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn encode(c: &mut Condition, data: DatasetHandle) -> RhaiResult<Array> {
        let vocab = data.0.vocab();
        let cond = c.resolve(&vocab)?;
        let enc = vocab.encode(&cond).map_err(to_rhai)?;
        Ok(enc
            .into_iter()
            .map(|v| Dynamic::from_float(v as f64))
            .collect())
    }

    /// Two conditions are equal when their requests are.
    /// ```rhai
    /// Condition("A @ k562") == Condition("A @ k562")   // true
    /// ```
    #[rhai_fn(name = "==", pure)]
    pub fn eq(a: &mut Condition, b: Condition) -> bool {
        a.request == b.request
    }
}

/// Registers `Condition`.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<ConditionHandle>("Condition");
    engine.register_global_module(exported_module!(condition_api).into());
}
