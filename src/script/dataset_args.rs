//! Rhai maps into dataset settings: `Dataset::load` options (columns,
//! layer, `filter`), `subset` filters, and `Dataset::simulate` settings.

use rhai::{Dynamic, Map};

use super::condition::ConditionHandle;
use super::convert::Opts;
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, to_rhai, RhaiResult};
use crate::data::{parse_perturbations, DataSpec, Dataset, LoadOptions, ObsColumns};

const LOAD_KEYS: [&str; 6] = [
    "filter",
    "perturbation",
    "covariates",
    "control",
    "layer",
    "allow_negative",
];

/// Load options from a script map.
pub fn load_options(map: Map) -> RhaiResult<LoadOptions> {
    let o = Opts::new("Dataset::load options", map, &LOAD_KEYS)?;
    let mut cols = ObsColumns::default();
    if let Some(p) = o.string("perturbation")? {
        cols.perturbation = p;
    }
    if let Some(c) = o.strings("covariates")? {
        cols.covariates = c;
    }
    if let Some(c) = o.string("control")? {
        cols.control = c;
    }
    Ok(LoadOptions {
        columns: cols,
        layer: o.string("layer")?,
        allow_negative: o.bool("allow_negative")?.unwrap_or(false),
    })
}

/// The `filter` load option, `#{COL: "VALUE", ...}` (obs column equals
/// value; all must hold), as the CLI's `--filter COL=VALUE` pairs.
pub(super) fn load_filters(v: &Dynamic) -> RhaiResult<Vec<(String, String)>> {
    let Some(m) = v.read_lock::<Map>() else {
        return Err(invalid(
            "Dataset::load option 'filter'",
            format!("{v} is not a map of obs column -> value (e.g. #{{dataset: \"norman19\"}})"),
        ));
    };
    Ok(m.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Rows of `ds` selected by a subset filter (see `subset`).
pub(super) fn filter_rows(ds: &Dataset, map: Map) -> RhaiResult<Vec<usize>> {
    let mut known: Vec<&str> = vec!["condition", ds.columns.perturbation.as_str()];
    known.extend(ds.columns.covariates.iter().map(|s| s.as_str()));
    let o = Opts::new("subset filter", map, &known)?;
    let conds = match (
        o.strings("condition")?,
        o.strings(&ds.columns.perturbation)?,
    ) {
        (Some(mut a), Some(b)) => {
            a.extend(b);
            Some(a)
        }
        (a, b) => a.or(b),
    };
    let vocab = ds.vocab();
    // Each wanted condition: (sorted perturbation set, Some(covariates) when
    // the request names them).
    let mut wanted: Vec<(Vec<String>, Option<Vec<String>>)> = Vec::new();
    for c in conds.iter().flatten() {
        if c.contains('@') {
            let cond = ConditionHandle::parse(c)?.resolve(&vocab)?;
            let mut p = cond.perturbations.clone();
            p.sort();
            wanted.push((p, Some(cond.covariates)));
        } else {
            let mut p = parse_perturbations(c, &ds.columns.control);
            p.sort();
            if !p.is_empty()
                && !ds
                    .units()
                    .iter()
                    .any(|u| u.label == *c || sorted(&u.perturbations) == p)
            {
                return Err(to_rhai(crate::Error::unknown(
                    "perturbation label",
                    c.as_str(),
                    &ds.conditions(),
                )));
            }
            wanted.push((p, None));
        }
    }
    let mut cov_filters: Vec<(usize, Vec<String>)> = Vec::new();
    for (j, col) in ds.columns.covariates.iter().enumerate() {
        if let Some(vals) = o.strings(col)? {
            for v in &vals {
                if !vocab
                    .covariates
                    .get(j)
                    .is_some_and(|known| known.contains(v))
                {
                    return Err(to_rhai(crate::Error::unknown(
                        format!("value of covariate '{col}'"),
                        v.as_str(),
                        vocab.covariates.get(j).map(|v| v.as_slice()).unwrap_or(&[]),
                    )));
                }
            }
            cov_filters.push((j, vals));
        }
    }
    let mut rows = Vec::new();
    for u in ds.units() {
        let p = sorted(&u.perturbations);
        let cond_ok = conds.is_none()
            || wanted.iter().any(|(wp, wc)| {
                *wp == p && wc.as_ref().map(|c| *c == u.covariates).unwrap_or(true)
            });
        let cov_ok = cov_filters
            .iter()
            .all(|(j, vals)| u.covariates.get(*j).is_some_and(|v| vals.contains(v)));
        if cond_ok && cov_ok {
            rows.extend(u.cells.iter().copied());
        }
    }
    rows.sort_unstable();
    Ok(rows)
}

/// A subset filter as data set-up filters (`(column, value)`, all must
/// hold): only when it names covariate columns, one value each, which is
/// what `DataSpec` filters express; `None` otherwise.
pub(super) fn covariate_filters(ds: &Dataset, map: &Map) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in map {
        if !ds.columns.covariates.iter().any(|c| c == k.as_str()) {
            return None;
        }
        let vals = super::convert::strings(v)?;
        match vals.as_slice() {
            [one] => out.push((k.to_string(), one.clone())),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

pub(super) fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// A simulated dataset from `preset` (default `demo`) and `SimConfig`
/// fields; unknown keys are errors listing the valid ones.
pub fn simulate_map(settings: Map) -> RhaiResult<DatasetHandle> {
    const WHAT: &str = "Dataset::simulate settings";
    let preset = match settings.get("preset") {
        Some(p) if !p.is_unit() => p.to_string(),
        _ => "demo".to_string(),
    };
    let base = crate::sim::SimConfig::preset(&preset).map_err(to_rhai)?;
    let keys = super::convert::serde_keys(&base, &[]);
    let over = super::convert::overrides(&settings, &keys, &["preset"], WHAT)?;
    let cfg =
        crate::overlay::overlay(&base, &serde_json::Value::Object(over), WHAT).map_err(to_rhai)?;
    let name = format!("simulated ({preset}, seed {})", cfg.seed);
    let spec = DataSpec::simulated(cfg, name);
    let ds = guard(|| spec.load())?;
    Ok(DatasetHandle::new(ds))
}
