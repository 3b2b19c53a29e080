//! `ConditionEncoding`: how the perturbation block of a condition is
//! encoded (see [`crate::data::condition`]): the paper's multi-hot over the
//! training perturbations, the sum of the perturbations' gene-embedding
//! rows, or both side by side. Saved in `vocab.json`; absent means
//! multi-hot (models saved before issue 12).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the perturbation block of a condition is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConditionEncoding {
    /// A multi-hot over the training perturbations (the paper's).
    #[default]
    MultiHot,
    /// The sum of the perturbations' embedding vectors.
    Embedding,
    /// Multi-hot, then the embedding sum.
    Both,
}

impl ConditionEncoding {
    /// Names accepted by [`parse`](Self::parse).
    pub const NAMES: [&'static str; 3] = ["multi-hot", "embedding", "both"];

    /// `multi-hot` (also `multihot`, `onehot`), `embedding` or `both`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "multi-hot" | "multihot" | "one-hot" | "onehot" => Ok(Self::MultiHot),
            "embedding" | "embeddings" => Ok(Self::Embedding),
            "both" => Ok(Self::Both),
            other => Err(Error::unknown("condition encoding", other, &Self::NAMES)),
        }
    }

    /// The name as [`parse`](Self::parse) reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::MultiHot => "multi-hot",
            Self::Embedding => "embedding",
            Self::Both => "both",
        }
    }

    /// True when the encoding has the multi-hot block.
    pub fn multi_hot(self) -> bool {
        matches!(self, Self::MultiHot | Self::Both)
    }
}
