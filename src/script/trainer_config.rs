//! `Trainer(#{...})` maps into a [`TrainConfig`]: the accepted keys, the
//! per-kind preset, the overrides and the checkpoint folder.

use std::path::PathBuf;

use rhai::Map;

use super::convert::{path_arg, to_json};
use super::error::{to_rhai, RhaiResult};
use crate::train::TrainConfig;

/// The keys a `Trainer(#{...})` map accepts.
pub fn trainer_keys() -> Vec<String> {
    let mut keys: Vec<String> = serde_json::to_value(TrainConfig::default())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    // Keys left out of the JSON while unset.
    if !keys.iter().any(|k| k == "stream") {
        keys.push("stream".to_string());
    }
    keys.extend(["preset".to_string(), "out".to_string()]);
    keys
}

/// A `TrainConfig` from a script map: `preset` (`tiny`, `small`,
/// `norman19`, `srivatsan20`; default: the library defaults) then the keys.
/// Presets are resolved for the U-Net; see [`TrainerSlot::spec`].
pub fn train_config(map: &Map) -> RhaiResult<(TrainConfig, Option<PathBuf>)> {
    let (cfg, out, _) = train_spec(map, "unet")?;
    Ok((cfg, out))
}

/// A Trainer map resolved: the config, the checkpoint folder, and the
/// preset name with the overrides applied to it (when it names a preset).
pub type TrainSpec = (
    TrainConfig,
    Option<PathBuf>,
    Option<(String, serde_json::Value)>,
);

/// A `TrainConfig` for model kind `kind` from a script map, with the
/// preset and overrides it came from (when it names a preset).
pub fn train_spec(map: &Map, kind: &str) -> RhaiResult<TrainSpec> {
    let keys = trainer_keys();
    let mut overrides = serde_json::Map::new();
    let mut preset = None;
    let mut out = None;
    for (k, v) in map {
        match k.as_str() {
            "preset" => preset = Some(v.to_string()),
            "out" if !v.is_unit() => out = Some(path_arg("Trainer 'out'", &v.to_string())?),
            "out" => {}
            other if keys.iter().any(|x| x == other) => {
                overrides.insert(other.to_string(), to_json(v)?);
            }
            other => {
                return Err(super::convert::unknown_key(
                    "Trainer settings",
                    other,
                    &keys,
                ))
            }
        }
    }
    let base = match &preset {
        Some(p) => TrainConfig::preset(kind, p).map_err(to_rhai)?,
        None => TrainConfig::default(),
    };
    let overrides = serde_json::Value::Object(overrides);
    let cfg = base
        .merged(&overrides, "Trainer settings")
        .map_err(to_rhai)?;
    Ok((cfg, out, preset.map(|p| (p, overrides))))
}
