//! The generators behind [`Split::generate`](super::split::Split): which
//! units PerturBench's covariate-transfer and combination tasks and the
//! unseen-perturbation task hold out, and how control cells are spread over
//! the parts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::dataset::Dataset;
use crate::data::split::Part;
use crate::error::{Error, Result};

pub(super) fn covariate_transfer(
    ds: &Dataset,
    frac: f64,
    cap: usize,
    rng: &mut ChaCha8Rng,
    unit_part: &mut [Part],
) {
    // How many covariate keys still train each perturbation label.
    let mut training_keys: HashMap<&str, usize> = HashMap::new();
    let mut by_cov: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, u) in ds.units().iter().enumerate() {
        if u.is_control() {
            continue;
        }
        *training_keys.entry(u.label.as_str()).or_default() += 1;
        by_cov.entry(u.cov_key.as_str()).or_default().push(i);
    }
    for (_, mut units) in by_cov {
        let quota = ((frac * units.len() as f64).floor() as usize).min(cap);
        units.shuffle(rng);
        let mut held = Vec::new();
        for &ui in &units {
            if held.len() >= quota {
                break;
            }
            let label = ds.units()[ui].label.as_str();
            let n = training_keys.get(label).copied().unwrap_or(0);
            if n >= 2 {
                training_keys.insert(label, n - 1);
                held.push(ui);
            }
        }
        assign_val_test(&held, unit_part);
    }
}

pub(super) fn combination(
    ds: &Dataset,
    frac: f64,
    rng: &mut ChaCha8Rng,
    unit_part: &mut [Part],
) -> Result<()> {
    let singles: BTreeSet<(&str, &str)> = ds
        .units()
        .iter()
        .filter(|u| u.perturbations.len() == 1)
        .map(|u| (u.cov_key.as_str(), u.perturbations[0].as_str()))
        .collect();
    let mut eligible: Vec<usize> = ds
        .units()
        .iter()
        .enumerate()
        .filter(|(_, u)| {
            u.perturbations.len() > 1
                && u.perturbations
                    .iter()
                    .all(|p| singles.contains(&(u.cov_key.as_str(), p.as_str())))
        })
        .map(|(i, _)| i)
        .collect();
    if eligible.is_empty() {
        return Err(Error::invalid(
            "split task 'combination'",
            format!(
                "{} has no combination whose single perturbations are all present",
                ds.source_name()
            ),
        ));
    }
    eligible.shuffle(rng);
    let mut n = (frac * eligible.len() as f64).round() as usize;
    if n == 0 && frac > 0.0 {
        n = 1;
    }
    eligible.truncate(n);
    assign_val_test(&eligible, unit_part);
    Ok(())
}

/// Unseen perturbations: per covariate key (sorted), `floor(frac * n)` of
/// its `n` single-perturbation units (at most `cap`, at least one when
/// `frac > 0` and the key has two or more), in seeded random order, are held
/// out and split 50/50 into val/test; every combination of that key that
/// contains a held-out perturbation leaves training too, into the part of
/// its first held-out perturbation, so no held-out perturbation is seen in
/// training with that covariate key.
pub(super) fn unseen_perturbation(
    ds: &Dataset,
    frac: f64,
    cap: usize,
    rng: &mut ChaCha8Rng,
    unit_part: &mut [Part],
) -> Result<()> {
    let mut singles: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, u) in ds.units().iter().enumerate() {
        if u.perturbations.len() == 1 {
            singles.entry(u.cov_key.as_str()).or_default().push(i);
        }
    }
    if singles.is_empty() {
        return Err(Error::invalid(
            "split task 'unseen-perturbation'",
            format!("{} has no single-perturbation unit", ds.source_name()),
        ));
    }
    // (covariate key, perturbation) -> its part.
    let mut held_out: HashMap<(&str, &str), Part> = HashMap::new();
    for (key, mut units) in singles {
        let mut quota = ((frac * units.len() as f64).floor() as usize).min(cap);
        if quota == 0 && frac > 0.0 && units.len() >= 2 {
            quota = 1;
        }
        units.shuffle(rng);
        units.truncate(quota);
        assign_val_test(&units, unit_part);
        for &ui in &units {
            let p = ds.units()[ui].perturbations[0].as_str();
            held_out.insert((key, p), unit_part[ui]);
        }
    }
    for (i, u) in ds.units().iter().enumerate() {
        if u.perturbations.len() < 2 {
            continue;
        }
        if let Some(part) = u
            .perturbations
            .iter()
            .find_map(|p| held_out.get(&(u.cov_key.as_str(), p.as_str())))
        {
            unit_part[i] = *part;
        }
    }
    Ok(())
}

/// First half val, the rest test (test takes the odd one).
pub(super) fn assign_val_test(held: &[usize], unit_part: &mut [Part]) {
    let n_val = held.len() / 2;
    for (k, &ui) in held.iter().enumerate() {
        unit_part[ui] = if k < n_val { Part::Val } else { Part::Test };
    }
}

/// Controls of each covariate key: shuffled, 50/25/25.
pub(super) fn split_controls(ds: &Dataset, rng: &mut ChaCha8Rng, parts: &mut [Part]) {
    for key in ds.cov_keys() {
        let mut cells = ds.control_cells(&key);
        cells.shuffle(rng);
        let n = cells.len();
        let n_train = n / 2;
        let n_val = (n - n_train) / 2;
        for (k, &c) in cells.iter().enumerate() {
            parts[c] = if k < n_train {
                Part::Train
            } else if k < n_train + n_val {
                Part::Val
            } else {
                Part::Test
            };
        }
    }
}
