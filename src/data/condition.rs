//! Conditions and their encoding (model.md, "Condition encoding"):
//!
//! `Enc(c) = [ sum_k OneHot(p_k) || OneHot(cov_1) || ... || OneHot(cov_J) ]`
//!
//! a multi-hot block over the perturbation vocabulary (a combination `A+B` sets
//! both bits; a control sets none), followed by one one-hot block per covariate
//! column. The null condition used for classifier-free guidance is the zero
//! vector. The vocabulary is saved with every model so a checkpoint can encode
//! new requests, including unseen combinations of seen perturbations.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Labels that mean "no perturbation" besides the dataset's own control label
/// (GEARS/CPA write `ctrl`, and `A+ctrl` for a single perturbation).
pub const CONTROL_ALIASES: [&str; 2] = ["ctrl", "control"];

/// Splits a perturbation label into its perturbations: `"A+B"` -> `[A, B]`,
/// `"A+ctrl"` -> `[A]`, `control` / `ctrl` -> `[]`. Tokens are trimmed;
/// duplicates are kept once, in first-seen order.
pub fn parse_perturbations(label: &str, control: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tok in label.split('+') {
        let tok = tok.trim();
        if tok.is_empty() || tok == control || CONTROL_ALIASES.contains(&tok) {
            continue;
        }
        if !out.iter().any(|p| p == tok) {
            out.push(tok.to_string());
        }
    }
    out
}

/// A perturbation set plus one value per covariate column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Condition {
    /// Perturbations applied together (empty for control).
    pub perturbations: Vec<String>,
    /// Covariate values, in the vocabulary's covariate-column order.
    pub covariates: Vec<String>,
}

impl Condition {
    /// True for a control condition (no perturbation).
    pub fn is_control(&self) -> bool {
        self.perturbations.is_empty()
    }

    /// The perturbation label, `A+B`, or `control` for none.
    pub fn label(&self, control: &str) -> String {
        if self.perturbations.is_empty() {
            control.to_string()
        } else {
            self.perturbations.join("+")
        }
    }

    /// The covariate key: covariate values joined with `_` (metrics.md).
    pub fn cov_key(&self) -> String {
        self.covariates.join("_")
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = if self.perturbations.is_empty() {
            "control".to_string()
        } else {
            self.perturbations.join("+")
        };
        write!(f, "{p} @ {}", self.covariates.join(", "))
    }
}

/// The vocabularies behind the encoding: which columns, which values, in
/// which order. Serialised beside model weights (`vocab.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionVocab {
    /// obs column holding the perturbation label.
    pub perturbation_column: String,
    /// obs columns holding covariates, in encoding order.
    pub covariate_columns: Vec<String>,
    /// The control label of the training data.
    pub control: String,
    /// Known single perturbations, sorted (multi-hot block order).
    pub perturbations: Vec<String>,
    /// Known values per covariate column, sorted (one-hot block order).
    pub covariates: Vec<Vec<String>>,
}

impl ConditionVocab {
    /// Width of the encoding: `n_perturbations + sum_j n_values(cov_j)`.
    pub fn width(&self) -> usize {
        self.perturbations.len() + self.covariates.iter().map(|c| c.len()).sum::<usize>()
    }

    fn pert_index(&self, p: &str) -> Result<usize> {
        self.perturbations
            .binary_search_by(|x| x.as_str().cmp(p))
            .map_err(|_| Error::unknown("perturbation", p, &self.perturbations))
    }

    /// Writes `Enc(c)` into `out` (length [`width`](Self::width)), which must
    /// be zeroed. Unknown perturbations or covariate values are errors.
    pub fn encode_into(&self, c: &Condition, out: &mut [f32]) -> Result<()> {
        if out.len() != self.width() {
            return Err(Error::Mismatch(format!(
                "encoding buffer has {} slots, the vocabulary needs {}",
                out.len(),
                self.width()
            )));
        }
        if c.covariates.len() != self.covariate_columns.len() {
            return Err(Error::invalid(
                "condition",
                format!(
                    "'{c}' has {} covariate values but the model expects {} ({})",
                    c.covariates.len(),
                    self.covariate_columns.len(),
                    self.covariate_columns.join(", ")
                ),
            ));
        }
        for p in &c.perturbations {
            out[self.pert_index(p)?] = 1.0;
        }
        let mut offset = self.perturbations.len();
        for ((col, values), v) in self
            .covariate_columns
            .iter()
            .zip(&self.covariates)
            .zip(&c.covariates)
        {
            let i = values
                .binary_search_by(|x| x.as_str().cmp(v))
                .map_err(|_| {
                    Error::unknown(format!("value of covariate '{col}'"), v.as_str(), values)
                })?;
            out[offset + i] = 1.0;
            offset += values.len();
        }
        Ok(())
    }

    /// `Enc(c)` as a vector of length [`width`](Self::width).
    pub fn encode(&self, c: &Condition) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.width()];
        self.encode_into(c, &mut out)?;
        Ok(out)
    }

    /// Encodes many conditions into a row-major `[n, width]` buffer.
    pub fn encode_many(&self, cs: &[Condition]) -> Result<Vec<f32>> {
        let w = self.width();
        let mut out = vec![0.0; w * cs.len()];
        for (i, c) in cs.iter().enumerate() {
            self.encode_into(c, &mut out[i * w..(i + 1) * w])?;
        }
        Ok(out)
    }

    /// Parses a request such as `"KLF1+MAP2K6 @ k562"`, `"control @ k562"`,
    /// `"A @ k562, IFNG"` (positional covariate values) or
    /// `"A @ cell_type=k562, treatment=IFNG"`. With a single covariate value
    /// known to the vocabulary the `@ ...` part may be omitted. The result is
    /// validated against the vocabulary.
    pub fn parse(&self, request: &str) -> Result<Condition> {
        let (pert, covs) = match request.split_once('@') {
            Some((p, c)) => (p.trim(), Some(c.trim())),
            None => (request.trim(), None),
        };
        let perturbations = parse_perturbations(pert, &self.control);
        let covariates = match covs {
            None => {
                if self.covariates.iter().all(|v| v.len() == 1) {
                    self.covariates.iter().map(|v| v[0].clone()).collect()
                } else {
                    return Err(Error::invalid(
                        "condition",
                        format!(
                            "'{request}' names no covariate values; write e.g. '{pert} @ {}'",
                            self.covariates
                                .iter()
                                .map(|v| v.first().cloned().unwrap_or_default())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            Some(c) => self.parse_covariates(request, c)?,
        };
        let cond = Condition {
            perturbations,
            covariates,
        };
        self.encode(&cond)?;
        Ok(cond)
    }

    fn parse_covariates(&self, request: &str, text: &str) -> Result<Vec<String>> {
        let parts: Vec<&str> = text
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        let n = self.covariate_columns.len();
        if parts.iter().all(|p| p.contains('=')) && !parts.is_empty() {
            let mut out: Vec<Option<String>> = vec![None; n];
            for p in parts {
                let (k, v) = p
                    .split_once('=')
                    .map(|(k, v)| (k.trim(), v.trim()))
                    .unwrap_or((p, ""));
                let j = self
                    .covariate_columns
                    .iter()
                    .position(|c| c == k)
                    .ok_or_else(|| {
                        Error::unknown("covariate column", k, &self.covariate_columns)
                    })?;
                out[j] = Some(v.to_string());
            }
            out.into_iter()
                .enumerate()
                .map(|(j, v)| {
                    v.ok_or_else(|| {
                        Error::invalid(
                            "condition",
                            format!(
                                "'{request}' gives no value for covariate '{}'",
                                self.covariate_columns[j]
                            ),
                        )
                    })
                })
                .collect()
        } else if parts.len() == n {
            Ok(parts.into_iter().map(|s| s.to_string()).collect())
        } else {
            Err(Error::invalid(
                "condition",
                format!(
                    "'{request}' gives {} covariate values; the model expects {} ({})",
                    parts.len(),
                    n,
                    self.covariate_columns.join(", ")
                ),
            ))
        }
    }

    /// Checks that `other` (e.g. the vocabulary of a data set being sampled)
    /// uses the same columns; values may differ.
    pub fn check_columns(&self, other_pert: &str, other_covs: &[String]) -> Result<()> {
        if self.perturbation_column != other_pert || self.covariate_columns != other_covs {
            return Err(Error::Mismatch(format!(
                "the model was trained with perturbation column '{}' and covariates [{}], the data uses '{}' and [{}]",
                self.perturbation_column,
                self.covariate_columns.join(", "),
                other_pert,
                other_covs.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> ConditionVocab {
        ConditionVocab {
            perturbation_column: "condition".into(),
            covariate_columns: vec!["cell_type".into()],
            control: "control".into(),
            perturbations: vec!["A".into(), "B".into(), "C".into()],
            covariates: vec![vec!["k562".into(), "rpe1".into()]],
        }
    }

    #[test]
    fn parses_gears_style_labels() {
        assert_eq!(parse_perturbations("A+ctrl", "control"), vec!["A"]);
        assert_eq!(parse_perturbations("ctrl", "control"), Vec::<String>::new());
        assert_eq!(
            parse_perturbations("control", "control"),
            Vec::<String>::new()
        );
        assert_eq!(parse_perturbations("A+B", "control"), vec!["A", "B"]);
        assert_eq!(parse_perturbations("NT", "NT"), Vec::<String>::new());
    }

    #[test]
    fn encodes_multi_hot_then_one_hot() {
        let v = vocab();
        let c = v.parse("C+A @ rpe1").unwrap();
        assert_eq!(v.encode(&c).unwrap(), vec![1.0, 0.0, 1.0, 0.0, 1.0]);
        let ctrl = v.parse("control @ k562").unwrap();
        assert_eq!(v.encode(&ctrl).unwrap(), vec![0.0, 0.0, 0.0, 1.0, 0.0]);
        let kv = v.parse("B @ cell_type=k562").unwrap();
        assert_eq!(v.encode(&kv).unwrap(), vec![0.0, 1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn unknown_names_are_errors_that_list_known_ones() {
        let v = vocab();
        let e = v.parse("Z @ k562").unwrap_err().to_string();
        assert!(
            e.contains("unknown perturbation 'Z'") && e.contains("known: A, B, C"),
            "{e}"
        );
        let e = v.parse("A @ hela").unwrap_err().to_string();
        assert!(e.contains("'hela'") && e.contains("cell_type"), "{e}");
        let e = v.parse("A").unwrap_err().to_string();
        assert!(e.contains("names no covariate"), "{e}");
    }
}
