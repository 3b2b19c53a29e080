//! `Trainer(#{...})` maps into a [`TrainConfig`]: the accepted keys, the
//! per-kind preset, the overrides and the checkpoint folder.

use std::path::PathBuf;

use rhai::Map;

use super::convert::path_arg;
use super::error::{to_rhai, RhaiResult};
use crate::train::TrainConfig;

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
    let mut keys = super::convert::serde_keys(&TrainConfig::default(), &[]);
    // Left out of the JSON while unset.
    if !keys.iter().any(|k| k == "stream") {
        keys.push("stream".to_string());
    }
    let preset = map.get("preset").map(|v| v.to_string());
    let out = match map.get("out") {
        Some(v) if !v.is_unit() => Some(path_arg("Trainer 'out'", &v.to_string())?),
        _ => None,
    };
    let overrides = super::convert::overrides(map, &keys, &["preset", "out"], "Trainer settings")?;
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
