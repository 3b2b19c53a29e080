//! Rhai model settings into a model handle: a preset name or a map
//! (`preset`, `device`, `seed`, `condition_encoding`, `embeddings` and the
//! kind's config fields) for `UNetVelocity(...)`, `MlpVelocity(...)` and
//! `Model(kind, ...)`.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use rhai::{Dynamic, Map};

use super::convert::{path_arg, Opts};
use super::error::{invalid, to_rhai, RhaiResult};
use super::model::{ModelHandle, ModelSlot};
use crate::data::{ConditionEncoding, EmbeddingTable};
use crate::model::ModelConfig;

/// The config of `kind` from a preset name or a map (`preset` (default
/// `tiny`), `device` (default `auto`), `seed`, and config fields).
pub fn make(kind: &str, spec: Dynamic) -> RhaiResult<ModelHandle> {
    let (preset, fields, device, seed, encoding) = if spec.is_string() {
        let multi_hot = (ConditionEncoding::MultiHot, None);
        (
            spec.to_string(),
            Map::new(),
            "auto".to_string(),
            None,
            multi_hot,
        )
    } else if let Some(m) = spec.read_lock::<Map>() {
        let mut fields = m.clone();
        let o = Opts::any("model", m.clone());
        let preset = o.string("preset")?.unwrap_or_else(|| "tiny".into());
        let device = o.string("device")?.unwrap_or_else(|| "auto".into());
        let seed = o.seed("seed")?;
        let encoding = encoding_arg(&o)?;
        for k in [
            "preset",
            "device",
            "seed",
            "condition_encoding",
            "embeddings",
        ] {
            fields.remove(k);
        }
        (preset, fields, device, seed, encoding)
    } else {
        return Err(invalid(
            "model",
            format!("{spec} is neither a preset name nor a map of settings"),
        ));
    };
    let base = ModelConfig::preset(kind, &preset).map_err(to_rhai)?;
    let config = if fields.is_empty() {
        base
    } else {
        let known = super::convert::serde_keys(&base, &["kind"]);
        let handled = [
            "preset",
            "device",
            "seed",
            "condition_encoding",
            "embeddings",
        ];
        let over =
            super::convert::overrides(&fields, &known, &handled, &format!("{kind} settings"))?;
        base.merged(
            &serde_json::Value::Object(over),
            &format!("{kind} settings"),
        )
        .map_err(to_rhai)?
    };
    let device = crate::device::parse_device(&device).map_err(to_rhai)?;
    Ok(ModelHandle(Rc::new(RefCell::new(ModelSlot {
        config,
        preset,
        device,
        seed,
        model: None,
        encoding,
    }))))
}

/// The `condition_encoding` and `embeddings` keys of a model map: the mode
/// (default multi-hot, or embedding when a table is named) and the table.
fn encoding_arg(o: &Opts) -> RhaiResult<(ConditionEncoding, Option<EmbeddingTable>)> {
    let path = o.string("embeddings")?;
    let mode = match (o.string("condition_encoding")?, &path) {
        (Some(m), _) => ConditionEncoding::parse(&m).map_err(to_rhai)?,
        (None, Some(_)) => ConditionEncoding::Embedding,
        (None, None) => ConditionEncoding::MultiHot,
    };
    let table = match path {
        Some(p) => {
            let p = path_arg("embeddings", &p)?;
            Some(EmbeddingTable::read(Path::new(&p)).map_err(to_rhai)?)
        }
        None => None,
    };
    match (mode, &table) {
        (ConditionEncoding::MultiHot, Some(_)) => Err(invalid(
            "model",
            "'embeddings' is given but condition_encoding is \"multi-hot\"; use \"embedding\" or \"both\"",
        )),
        (m, None) if m != ConditionEncoding::MultiHot => Err(invalid(
            "model",
            format!("condition_encoding \"{}\" needs 'embeddings': the table's file", m.name()),
        )),
        _ => Ok((mode, table)),
    }
}
