//! Conditions and their encoding (model.md, "Condition encoding"):
//!
//! `Enc(c) = [ sum_k OneHot(p_k) || OneHot(cov_1) || ... || OneHot(cov_J) ]`
//!
//! a multi-hot block over the perturbation vocabulary (a combination `A+B` sets
//! both bits; a control sets none), followed by one one-hot block per covariate
//! column. The null condition used for classifier-free guidance is the zero
//! vector. The vocabulary is saved with every model so a checkpoint can encode
//! new requests, including unseen combinations of seen perturbations.
//!
//! Beyond the paper (issue 12), the perturbation block can instead be the
//! sum of the perturbations' rows of a gene-embedding table `E` `[n, d]`
//! ([`ConditionEncoding::Embedding`]), or both blocks concatenated
//! ([`ConditionEncoding::Both`]):
//!
//! `Enc_emb(c) = [ sum_k E[p_k] || OneHot(cov_1) || ... ]`,
//! `Enc_both(c) = [ sum_k OneHot(p_k) || sum_k E[p_k] || OneHot(cov_1) || ... ]`
//!
//! so a perturbation absent from training but present in the table can be
//! encoded (with `both`, its multi-hot bits stay zero). Covariates stay
//! one-hot; the control's perturbation block is zero, as is the null
//! condition.

use serde::{Deserialize, Serialize};

use crate::data::embedding::EmbeddingTable;
pub use crate::data::encoding::ConditionEncoding;
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
    /// How the perturbation block is encoded (absent in models saved
    /// before issue 12: multi-hot).
    #[serde(default)]
    pub encoding: ConditionEncoding,
    /// The embedding table (`embedding` and `both` encodings); its values
    /// are saved beside the weights (`embeddings.safetensors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<EmbeddingTable>,
}

impl ConditionVocab {
    /// Width of the encoding: the perturbation block
    /// ([`perturbation_width`](Self::perturbation_width)) plus
    /// `sum_j n_values(cov_j)`.
    pub fn width(&self) -> usize {
        self.perturbation_width() + self.covariates.iter().map(|c| c.len()).sum::<usize>()
    }

    /// Width of the perturbation block: `n_perturbations` (multi-hot),
    /// `d` (embedding) or `n_perturbations + d` (both).
    pub fn perturbation_width(&self) -> usize {
        let hot = if self.encoding.multi_hot() {
            self.perturbations.len()
        } else {
            0
        };
        hot + self.embedding_dim()
    }

    fn embedding_dim(&self) -> usize {
        match (self.encoding, &self.embeddings) {
            (ConditionEncoding::MultiHot, _) | (_, None) => 0,
            (_, Some(t)) => t.dim,
        }
    }

    /// This vocabulary with the perturbation block encoded by `encoding`;
    /// `embedding` and `both` need `table`, which must hold every
    /// perturbation of the vocabulary (the error names the first missing
    /// one and the file). `multi-hot` drops any table.
    pub fn with_encoding(
        mut self,
        encoding: ConditionEncoding,
        table: Option<EmbeddingTable>,
    ) -> Result<ConditionVocab> {
        self.encoding = encoding;
        if encoding == ConditionEncoding::MultiHot {
            self.embeddings = None;
            return Ok(self);
        }
        let table = table.ok_or_else(|| {
            Error::invalid(
                "condition encoding",
                format!(
                    "'{}' needs an embedding table (--embeddings FILE)",
                    encoding.name()
                ),
            )
        })?;
        for p in &self.perturbations {
            table.vector(p)?;
        }
        self.embeddings = Some(table);
        Ok(self)
    }

    /// True when `p` can be encoded: a training perturbation, or (with
    /// embeddings) a name of the table.
    pub fn knows_perturbation(&self, p: &str) -> bool {
        match (&self.embeddings, self.encoding) {
            (Some(t), ConditionEncoding::Embedding | ConditionEncoding::Both) => t.get(p).is_some(),
            _ => self.pert_index(p).is_ok(),
        }
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
        let hot = self.perturbation_width() - self.embedding_dim();
        match (self.encoding, &self.embeddings) {
            (ConditionEncoding::MultiHot, _) => {
                for p in &c.perturbations {
                    out[self.pert_index(p)?] = 1.0;
                }
            }
            (_, None) => {
                return Err(Error::invalid(
                    "condition vocabulary",
                    format!(
                        "the '{}' encoding has no embedding table (a model folder without its embeddings.safetensors?)",
                        self.encoding.name()
                    ),
                ))
            }
            (enc, Some(table)) => {
                for p in &c.perturbations {
                    let v = table.vector(p)?;
                    if enc.multi_hot() {
                        // An unseen perturbation has no bit, only its vector.
                        if let Ok(i) = self.pert_index(p) {
                            out[i] = 1.0;
                        }
                    }
                    for (o, x) in out[hot..hot + table.dim].iter_mut().zip(v) {
                        *o += *x;
                    }
                }
            }
        }
        let mut offset = self.perturbation_width();
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
            encoding: ConditionEncoding::MultiHot,
            embeddings: None,
        }
    }

    fn table() -> EmbeddingTable {
        let names = ["A", "B", "C", "NEW"].map(String::from).to_vec();
        EmbeddingTable::new("emb.tsv", names, 2, vec![1., 0., 0., 1., 2., 2., 5., 7.]).unwrap()
    }

    #[test]
    fn embedding_encoding_sums_rows_and_encodes_unseen_perturbations() {
        let v = vocab()
            .with_encoding(ConditionEncoding::Embedding, Some(table()))
            .unwrap();
        assert_eq!(v.width(), 2 + 2);
        let c = v.parse("A+C @ rpe1").unwrap();
        assert_eq!(v.encode(&c).unwrap(), vec![3.0, 2.0, 0.0, 1.0]);
        // Not a training perturbation, but in the table.
        let new = v.parse("NEW @ k562").unwrap();
        assert_eq!(v.encode(&new).unwrap(), vec![5.0, 7.0, 1.0, 0.0]);
        let e = v.parse("Z @ k562").unwrap_err().to_string();
        assert!(e.contains("'Z'") && e.contains("emb.tsv"), "{e}");
        // Both: the multi-hot block (no bit for NEW), then the sum.
        let b = vocab()
            .with_encoding(ConditionEncoding::Both, Some(table()))
            .unwrap();
        assert_eq!(b.width(), 3 + 2 + 2);
        let c = b.parse("A+NEW @ k562").unwrap();
        assert_eq!(b.encode(&c).unwrap(), vec![1., 0., 0., 6., 7., 1., 0.]);
        // A training perturbation missing from the table is an error naming it and the file.
        let small = EmbeddingTable::new("small.tsv", vec!["A".into()], 1, vec![1.0]).unwrap();
        let e = vocab()
            .with_encoding(ConditionEncoding::Embedding, Some(small))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'B'") && e.contains("small.tsv"), "{e}");
    }

    #[test]
    fn vocab_json_without_encoding_is_multi_hot() {
        let old = r#"{"perturbation_column":"condition","covariate_columns":["cell_type"],
            "control":"control","perturbations":["A"],"covariates":[["k562"]]}"#;
        let v: ConditionVocab = serde_json::from_str(old).unwrap();
        assert_eq!(v.encoding, ConditionEncoding::MultiHot);
        assert_eq!(v.width(), 2);
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
