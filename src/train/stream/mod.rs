//! Streaming training data from an `.h5ad` file larger than memory
//! (`train --stream`, `Trainer(#{stream: true})`).
//!
//! The training cells (positions `0..n`, in file order, as the filters and
//! the split chose them from obs) are cut into *chunks* of `chunk_rows`
//! consecutive cells. Each epoch visits every cell once:
//!
//! ```text
//! epoch e:  chunks in a random order           perm_e = shuffle(0..n_chunks; seed, e)
//!           cut into buffers of K chunks       buffer g = perm_e[g K .. (g + 1) K]
//!           each buffer's cells shuffled        shuffle(cells of buffer g; seed, e, g)
//!           and emitted buffer after buffer
//! ```
//!
//! Micro-batch `i` is stream positions `[i B, (i + 1) B)` (it may straddle
//! two buffers or two epochs), so any batch is a pure function of
//! `(seed, i)`, as with the in-memory sampler (`train::batches`): a resumed
//! run restarts the stream at `step * grad_accum * B` and draws the same
//! batches bit for bit. The checkpoint records that [`LoaderPosition`] and
//! resuming checks it.
//!
//! The shuffle is *local*: a batch holds cells of at most two buffers, i.e.
//! of `K` (or `2K`) random chunks of consecutive file rows. Files written
//! sorted by condition therefore give batches richer in a few conditions
//! than a full shuffle would; a buffer of the whole file (`K >= n_chunks`)
//! is a full shuffle. The effect on the loss is measured in
//! docs/results/scale.md ("Streaming").
//!
//! A background thread reads the next buffer (HDF5 hyperslabs through
//! [`RowReader`](crate::anndata::RowReader)) while the trainer works on the
//! current one, over a channel that holds one buffer: memory is about three
//! buffers (the one in use, the one waiting, the one being read), never the
//! file. Values are checked as they arrive (finite; non-negative unless
//! allowed); any read or check error stops training with a message naming
//! the file and the rows, and the last checkpoint stays valid.
//!
//! * [`StreamConfig`] (here): the settings;
//! * `plan`: the visiting order ([`StreamPlan`]) and [`LoaderPosition`];
//! * `source`: the file and the rows it reads ([`StreamSource`]);
//! * `loader`: the read-ahead thread and the batches ([`StreamLoader`]).

mod loader;
mod plan;
mod source;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

pub use loader::StreamLoader;
pub use plan::{LoaderPosition, StreamPlan};
pub use source::StreamSource;

/// Streaming settings (`TrainConfig::stream`). In JSON and Rhai, `true`
/// means the defaults, `false`/`null` no streaming, a map sets the keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Consecutive training cells read as one chunk (one hyperslab run).
    pub chunk_rows: usize,
    /// Chunks shuffled together in one buffer (`K`); the buffer's cells
    /// are what the memory holds (about three buffers at a time).
    pub buffer_chunks: usize,
}

impl Default for StreamConfig {
    /// 1,024-cell chunks, 64 per buffer: 65,536 cells (about 100 MB at
    /// 2,000 genes and 10% density in CSR, 512 MB dense).
    fn default() -> Self {
        StreamConfig {
            chunk_rows: 1024,
            buffer_chunks: 64,
        }
    }
}

impl StreamConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<()> {
        for (k, v) in [
            ("chunk_rows", self.chunk_rows),
            ("buffer_chunks", self.buffer_chunks),
        ] {
            if v == 0 {
                return Err(Error::invalid(
                    format!("train config 'stream.{k}'"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

/// `stream` as JSON: `true`, `false`, `null` or a [`StreamConfig`] map.
pub fn deserialize_stream<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<StreamConfig>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Config(StreamConfig),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None | Some(Raw::Flag(false)) => None,
        Some(Raw::Flag(true)) => Some(StreamConfig::default()),
        Some(Raw::Config(c)) => Some(c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_setting_parses_bool_or_map() {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "deserialize_stream", default)]
            s: Option<StreamConfig>,
        }
        let w: W = serde_json::from_str(r#"{"s": true}"#).unwrap();
        assert_eq!(w.s, Some(StreamConfig::default()));
        let w: W = serde_json::from_str(r#"{"s": false}"#).unwrap();
        assert_eq!(w.s, None);
        let w: W = serde_json::from_str(r#"{"s": {"chunk_rows": 8}}"#).unwrap();
        assert_eq!(w.s.map(|c| (c.chunk_rows, c.buffer_chunks)), Some((8, 64)));
        assert!(serde_json::from_str::<W>(r#"{"s": {"chunk": 8}}"#).is_err());
    }
}
