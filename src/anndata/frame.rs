//! In-memory AnnData dataframes (`obs`, `var`): an index plus typed columns.
//!
//! The column kinds mirror AnnData's on-disk encodings (>= 0.8):
//! `categorical` (codes + categories, code -1 = missing), `string-array`,
//! numeric arrays, boolean arrays, `nullable-integer` and `nullable-boolean`.

use crate::error::{Error, Result};

/// A categorical column: `codes[i]` indexes `categories`, `-1` is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct Categorical {
    pub codes: Vec<i32>,
    pub categories: Vec<String>,
    pub ordered: bool,
}

impl Categorical {
    /// Builds a categorical from labels; categories in order of first
    /// appearance unless `sorted`, in which case byte order.
    pub fn from_labels<S: AsRef<str>>(labels: &[S], sorted: bool) -> Self {
        let mut categories: Vec<String> = Vec::new();
        let mut seen = std::collections::HashMap::<String, i32>::new();
        for l in labels {
            let l = l.as_ref();
            if !seen.contains_key(l) {
                seen.insert(l.to_string(), categories.len() as i32);
                categories.push(l.to_string());
            }
        }
        if sorted {
            categories.sort();
            for (i, c) in categories.iter().enumerate() {
                seen.insert(c.clone(), i as i32);
            }
        }
        let codes = labels.iter().map(|l| seen[l.as_ref()]).collect();
        Categorical {
            codes,
            categories,
            ordered: false,
        }
    }

    /// The label of row `i`, `None` when missing.
    pub fn label(&self, i: usize) -> Option<&str> {
        let c = *self.codes.get(i)?;
        if c < 0 {
            None
        } else {
            self.categories.get(c as usize).map(|s| s.as_str())
        }
    }
}

/// One dataframe column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Categorical(Categorical),
    Str(Vec<String>),
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
    NullableInt(Vec<Option<i64>>),
    NullableBool(Vec<Option<bool>>),
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Categorical(c) => c.codes.len(),
            Column::Str(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::NullableInt(v) => v.len(),
            Column::NullableBool(v) => v.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A short name of the kind, as `primeflow info` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Column::Categorical(_) => "categorical",
            Column::Str(_) => "string",
            Column::Float(_) => "float",
            Column::Int(_) => "integer",
            Column::Bool(_) => "boolean",
            Column::NullableInt(_) => "nullable-integer",
            Column::NullableBool(_) => "nullable-boolean",
        }
    }

    /// Row `i` as a label string (`None` for missing values).
    pub fn label(&self, i: usize) -> Option<String> {
        match self {
            Column::Categorical(c) => c.label(i).map(|s| s.to_string()),
            Column::Str(v) => v.get(i).cloned(),
            Column::Float(v) => v.get(i).filter(|x| !x.is_nan()).map(|x| x.to_string()),
            Column::Int(v) => v.get(i).map(|x| x.to_string()),
            Column::Bool(v) => v.get(i).map(|x| x.to_string()),
            Column::NullableInt(v) => v.get(i).copied().flatten().map(|x| x.to_string()),
            Column::NullableBool(v) => v.get(i).copied().flatten().map(|x| x.to_string()),
        }
    }

    /// The rows `rows` of this column, in that order.
    pub fn take(&self, rows: &[usize]) -> Column {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| v[r].clone()).collect()
        }
        match self {
            Column::Categorical(c) => Column::Categorical(Categorical {
                codes: pick(&c.codes, rows),
                categories: c.categories.clone(),
                ordered: c.ordered,
            }),
            Column::Str(v) => Column::Str(pick(v, rows)),
            Column::Float(v) => Column::Float(pick(v, rows)),
            Column::Int(v) => Column::Int(pick(v, rows)),
            Column::Bool(v) => Column::Bool(pick(v, rows)),
            Column::NullableInt(v) => Column::NullableInt(pick(v, rows)),
            Column::NullableBool(v) => Column::NullableBool(pick(v, rows)),
        }
    }
}

/// A dataframe: a string index and named columns in `column-order`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataFrame {
    /// Name of the index column on disk (`_index` attribute), e.g. `gene_symbol`.
    pub index_name: String,
    pub index: Vec<String>,
    pub columns: Vec<(String, Column)>,
}

impl DataFrame {
    /// An empty frame with `index` as its row names.
    pub fn with_index(index: Vec<String>) -> Self {
        DataFrame {
            index_name: "_index".to_string(),
            index,
            columns: Vec::new(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Column names in order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The column `name`, or `None`.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// The column `name`, or an error naming the frame (`what`, e.g. `obs`)
    /// and listing the columns it does have.
    pub fn column(&self, what: &str, name: &str) -> Result<&Column> {
        self.get(name)
            .ok_or_else(|| Error::unknown(format!("{what} column"), name, &self.names()))
    }

    /// Adds or replaces column `name`. Errors when its length differs.
    pub fn insert(&mut self, name: &str, col: Column) -> Result<()> {
        if col.len() != self.len() {
            return Err(Error::Mismatch(format!(
                "column '{name}' has {} rows but the frame has {}",
                col.len(),
                self.len()
            )));
        }
        if let Some(slot) = self.columns.iter_mut().find(|(n, _)| n == name) {
            slot.1 = col;
        } else {
            self.columns.push((name.to_string(), col));
        }
        Ok(())
    }

    /// Column `name` as one label per row; errors when a value is missing.
    pub fn labels(&self, what: &str, name: &str) -> Result<Vec<String>> {
        let col = self.column(what, name)?;
        (0..col.len())
            .map(|i| {
                col.label(i).ok_or_else(|| {
                    Error::invalid(
                        format!("{what} column '{name}'"),
                        format!(
                            "row {i} ('{}') has a missing value",
                            self.index.get(i).map(|s| s.as_str()).unwrap_or("?")
                        ),
                    )
                })
            })
            .collect()
    }

    /// The rows `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> DataFrame {
        DataFrame {
            index_name: self.index_name.clone(),
            index: rows.iter().map(|&r| self.index[r].clone()).collect(),
            columns: self
                .columns
                .iter()
                .map(|(n, c)| (n.clone(), c.take(rows)))
                .collect(),
        }
    }
}
