//! Perturbation embedding tables: one vector per gene (or compound) name,
//! read from a user file, from which the `embedding` condition encoding
//! (see [`crate::data::condition`]) builds a perturbation's input — the prior
//! that lets a model encode a perturbation it never saw in training (GEARS,
//! CellFlow, State and PRESAGE condition on such gene embeddings).
//!
//! Formats, chosen by the file's extension (values become f32):
//! * `.tsv` / `.csv` / `.txt`: one row per name: the name in the first
//!   column, then `d` numbers (tab- or comma-separated). A first line whose
//!   second field is not a number is a header and skipped.
//! * `.npy`: a `[n, d]` f32 or f64 array, with the names one per line in a
//!   file beside it named `<file>.names.txt` (e.g. `genes.npy` +
//!   `genes.npy.names.txt`); else `<stem>.names.txt` (`genes.names.txt`).
//! * `.h5ad`: the vectors are the rows of X `[n, d]` and the names its
//!   obs_names (`AnnData(X=emb, obs=pd.DataFrame(index=genes))`).
//! * `FILE.h5ad:varm/KEY`: the rows of `adata.varm[KEY]` `[n_vars, d]`,
//!   named by the var index (gene embeddings stored with the expression
//!   data they annotate); `FILE.h5ad:obsm/KEY` likewise with the obs index.
//!
//! Names must be unique; every value must be finite. The table is kept
//! whole (`[n, d]`), so a model saved with it can encode any of its names.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A table of named vectors `[n, d]`. Serialised as its source, names and
/// width (in `vocab.json`); the values travel separately (a model folder's
/// `embeddings.safetensors`) and are checked against `checksum`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingTable {
    /// The file the table was read from (for messages).
    pub source: String,
    /// `[n]` names, in row order.
    pub names: Vec<String>,
    /// Width `d` of each vector.
    pub dim: usize,
    /// FNV-1a hash of the names and values' bits (see [`checksum`](Self::checksum)).
    pub checksum: String,
    /// `[n * d]` row-major values (not in the JSON).
    #[serde(skip)]
    values: Vec<f32>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl EmbeddingTable {
    /// A table from names and row-major `[names.len(), dim]` values; checks
    /// sizes, unique names and finite values (errors name `source`).
    pub fn new(source: &str, names: Vec<String>, dim: usize, values: Vec<f32>) -> Result<Self> {
        let bad = |m: String| Error::format(source, "embeddings", m);
        if names.is_empty() || dim == 0 {
            return Err(bad(format!(
                "the table is empty ({} names x {dim} values)",
                names.len()
            )));
        }
        if values.len() != names.len() * dim {
            return Err(bad(format!(
                "{} values for {} names x {dim} dimensions",
                values.len(),
                names.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "the value of '{}' at dimension {} is {} (not finite)",
                names[i / dim],
                i % dim,
                values[i]
            )));
        }
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i).is_some() {
                return Err(bad(format!("the name '{n}' appears more than once")));
            }
        }
        let mut t = EmbeddingTable {
            source: source.to_string(),
            checksum: String::new(),
            names,
            dim,
            values,
            index,
        };
        t.checksum = t.checksum();
        Ok(t)
    }

    /// Reads `path` (format by extension, or `FILE.h5ad:varm/KEY` /
    /// `FILE.h5ad:obsm/KEY`; see the module docs).
    pub fn read(path: &Path) -> Result<Self> {
        if let Some((file, axis, key)) = axis_entry(path)? {
            let (names, m) = crate::anndata::read_axis_matrix(&file, axis, &key)?;
            let dim = m.ncols();
            let values = m.into_raw_vec_and_offset().0;
            return Self::new(&path.display().to_string(), names, dim, values);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let source = path.display().to_string();
        let (names, dim, values) = match ext.as_str() {
            "tsv" | "csv" | "txt" => read_text(path)?,
            "npy" => read_npy(path)?,
            "h5ad" => read_h5ad(path)?,
            other => {
                return Err(Error::format(
                    path,
                    "extension",
                    format!(
                        "'{other}' is not an embedding format; use .tsv, .csv, .npy (+ names file) or .h5ad"
                    ),
                ))
            }
        };
        Self::new(&source, names, dim, values)
    }

    /// Number of names `n`.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the table has no rows (never, for a checked table).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The vector `[d]` of `name`, if the table has it.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.index
            .get(name)
            .map(|&i| &self.values[i * self.dim..(i + 1) * self.dim])
    }

    /// The vector `[d]` of `name`; a missing name is an error naming it and
    /// the file.
    pub fn vector(&self, name: &str) -> Result<&[f32]> {
        self.get(name).ok_or_else(|| {
            Error::invalid(
                "perturbation embedding",
                format!(
                    "perturbation '{name}' has no row in the embedding table {} ({} names, e.g. {})",
                    self.source,
                    self.len(),
                    self.names
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// The row-major values `[n * d]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Installs values read back from a model folder (`what` names that
    /// file), checking their size and checksum against the recorded ones.
    pub fn restore_values(&mut self, values: Vec<f32>, what: &Path) -> Result<()> {
        let table = Self::new(&self.source, self.names.clone(), self.dim, values)
            .map_err(|e| Error::format(what, "embeddings", e.to_string()))?;
        if table.checksum != self.checksum {
            return Err(Error::format(
                what,
                "embeddings",
                format!(
                    "checksum {} does not match {} recorded in vocab.json (the files belong to different models)",
                    table.checksum, self.checksum
                ),
            ));
        }
        *self = table;
        Ok(())
    }

    /// 64-bit FNV-1a over the names (NUL-terminated) and the values' bits,
    /// as 16 hex digits.
    pub fn checksum(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        for n in &self.names {
            n.bytes().for_each(&mut eat);
            eat(0);
        }
        for v in &self.values {
            v.to_bits().to_le_bytes().into_iter().for_each(&mut eat);
        }
        format!("{h:016x}")
    }

    /// Writes the table as `.tsv` (name, then `d` values; no header).
    pub fn write_tsv(&self, path: &Path) -> Result<()> {
        let mut s = String::new();
        for (i, n) in self.names.iter().enumerate() {
            s.push_str(n);
            for v in &self.values[i * self.dim..(i + 1) * self.dim] {
                s.push('\t');
                s.push_str(&format!("{v}"));
            }
            s.push('\n');
        }
        crate::atomic::write_atomic(path, |tmp| {
            std::fs::write(tmp, s.as_bytes()).map_err(|e| Error::io(tmp, e))
        })
    }
}

type Raw = (Vec<String>, usize, Vec<f32>);

fn read_text(path: &Path) -> Result<Raw> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let (mut names, mut values, mut dim) = (Vec::new(), Vec::new(), None);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let sep = if line.contains('\t') { '\t' } else { ',' };
        let mut fields = line.split(sep).map(|f| f.trim().trim_matches('"'));
        let name = fields.next().unwrap_or("").to_string();
        let rest: Vec<&str> = fields.collect();
        let parsed: std::result::Result<Vec<f32>, _> =
            rest.iter().map(|f| f.parse::<f32>()).collect();
        let row = match parsed {
            Ok(r) => r,
            Err(_) if names.is_empty() && dim.is_none() => continue, // a header
            Err(e) => {
                return Err(Error::format(
                    path,
                    format!("line {}", i + 1),
                    format!("'{name}': a value is not a number ({e})"),
                ))
            }
        };
        let d = *dim.get_or_insert(row.len());
        if row.len() != d || name.is_empty() {
            return Err(Error::format(
                path,
                format!("line {}", i + 1),
                format!(
                    "'{name}' has {} values, the first row has {d} (each line: a name, then the values)",
                    row.len()
                ),
            ));
        }
        names.push(name);
        values.extend(row);
    }
    Ok((names, dim.unwrap_or(0), values))
}

fn read_npy(path: &Path) -> Result<Raw> {
    let arr: ndarray::Array2<f32> = match ndarray_npy::read_npy::<_, ndarray::Array2<f32>>(path) {
        Ok(a) => a,
        Err(_) => ndarray_npy::read_npy::<_, ndarray::Array2<f64>>(path)
            .map_err(|e| Error::format(path, "npy", format!("not a 2-D f32 or f64 array ({e})")))?
            .mapv(|v| v as f32),
    };
    let beside = path.with_file_name(format!(
        "{}.names.txt",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("")
    ));
    let stem = path.with_extension("names.txt");
    let names_path = if beside.is_file() { beside } else { stem };
    let text = std::fs::read_to_string(&names_path).map_err(|e| Error::io(&names_path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let (n, d) = arr.dim();
    if names.len() != n {
        return Err(Error::format(
            &names_path,
            "names",
            format!(
                "{} names for the {n} rows of {}",
                names.len(),
                path.display()
            ),
        ));
    }
    Ok((names, d, arr.iter().copied().collect()))
}

/// `FILE.h5ad:varm/KEY` or `FILE.h5ad:obsm/KEY` split into its parts;
/// `None` for a plain file path. An `.h5ad:` suffix naming another slot is
/// an error.
fn axis_entry(path: &Path) -> Result<Option<(std::path::PathBuf, crate::anndata::Axis, String)>> {
    let s = path.to_string_lossy();
    let Some(at) = s.rfind(".h5ad:") else {
        return Ok(None);
    };
    let (file, entry) = (&s[..at + 5], &s[at + 6..]);
    let parsed = entry
        .split_once('/')
        .and_then(|(slot, key)| Some((crate::anndata::Axis::parse(slot)?, key)))
        .filter(|(_, key)| !key.is_empty());
    match parsed {
        Some((axis, key)) => Ok(Some((file.into(), axis, key.to_string()))),
        None => Err(Error::format(
            file,
            "embeddings",
            format!("'{entry}' is not an annotation entry; write FILE.h5ad:varm/KEY or FILE.h5ad:obsm/KEY"),
        )),
    }
}

fn read_h5ad(path: &Path) -> Result<Raw> {
    let ad = crate::anndata::read_h5ad(path, &Default::default())?;
    let (n, d) = ad.x.dim();
    let values = ad.x.rows_vec(&(0..n).collect::<Vec<_>>(), None)?;
    Ok((ad.obs.index.clone(), d, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_names_and_values() {
        let t = EmbeddingTable::new("t", vec!["A".into(), "B".into()], 2, vec![1., 2., 3., 4.])
            .unwrap();
        assert_eq!(t.get("B"), Some(&[3.0f32, 4.0][..]));
        let e = t.vector("Z").unwrap_err().to_string();
        assert!(e.contains("'Z'") && e.contains(" t "), "{e}");
        let e = EmbeddingTable::new("t", vec!["A".into(), "A".into()], 1, vec![1., 2.])
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than once"), "{e}");
        let e = EmbeddingTable::new("t", vec!["A".into()], 1, vec![f32::NAN])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not finite"), "{e}");
    }
}
