//! Tests: data (`Dataset`, `Condition` labels, units, splits per metrics.md).
//!
//! The split tests check the rules of metrics.md ("Data splits") on
//! simulated data and on `../shared/data/devel.h5ad`, not a copy of anyone's
//! output.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ndarray::Array2;
use primeflow::anndata::{AnnData, Categorical, Column, DataFrame};
use primeflow::data::{
    parse_perturbations, Dataset, LoadOptions, ObsColumns, Part, Split, SplitOptions, Task,
};
use primeflow::sim::{simulate, SimConfig};

use crate::common;

fn sim_dataset(cfg: SimConfig) -> Dataset {
    Dataset::from_anndata(simulate(&cfg).unwrap(), ObsColumns::default(), None, false).unwrap()
}

/// The demo layout at a small size: 3 lines, 24 singles (a few absent from
/// some lines), 8 combinations.
fn demo_small() -> Dataset {
    sim_dataset(SimConfig {
        n_cells: 3000,
        n_genes: 30,
        n_programs: 3,
        program_size: 6,
        ..SimConfig::default()
    })
}

/// An AnnData with the given (condition, cell_type) per cell and 3 genes.
fn hand_made(cells: &[(&str, &str)]) -> AnnData {
    let n = cells.len();
    let mut obs = DataFrame::with_index((0..n).map(|i| format!("c{i}")).collect());
    let cond: Vec<&str> = cells.iter().map(|c| c.0).collect();
    let line: Vec<&str> = cells.iter().map(|c| c.1).collect();
    obs.insert(
        "condition",
        Column::Categorical(Categorical::from_labels(&cond, false)),
    )
    .unwrap();
    obs.insert(
        "cell_type",
        Column::Str(line.iter().map(|s| s.to_string()).collect()),
    )
    .unwrap();
    AnnData {
        x: Array2::from_shape_fn((n, 3), |(i, j)| (i * 3 + j) as f32 * 0.1).into(),
        obs,
        var: DataFrame::with_index(vec!["g0".into(), "g1".into(), "g2".into()]),
        ..AnnData::default()
    }
}

#[test]
fn units_cov_keys_controls_and_vocab_from_simulated_data() {
    let ad = simulate(&SimConfig::preset("tiny").unwrap()).unwrap();
    let cond = ad.obs.labels("obs", "condition").unwrap();
    let line = ad.obs.labels("obs", "cell_type").unwrap();
    let ds = Dataset::from_anndata(ad, ObsColumns::default(), None, false).unwrap();
    assert_eq!(ds.cov_keys(), vec!["A549", "K562", "MCF7"]);
    // Units: sorted by (key, label), cells ascending, every cell in its unit.
    let names: Vec<(String, String)> = ds
        .units()
        .iter()
        .map(|u| (u.cov_key.clone(), u.label.clone()))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let mut seen = 0;
    for (ui, u) in ds.units().iter().enumerate() {
        assert!(u.cells.windows(2).all(|w| w[0] < w[1]));
        for &c in &u.cells {
            assert_eq!(
                (cond[c].as_str(), line[c].as_str()),
                (u.label.as_str(), u.cov_key.as_str())
            );
            assert_eq!(ds.cell_units()[c], ui);
        }
        seen += u.cells.len();
        assert_eq!(u.is_control(), u.label == "control");
        assert_eq!(
            u.perturbations.len(),
            if u.label == "control" {
                0
            } else {
                u.label.split('+').count()
            }
        );
    }
    assert_eq!(seen, ds.n_cells());
    for key in ds.cov_keys() {
        let expected: Vec<usize> = (0..ds.n_cells())
            .filter(|&i| cond[i] == "control" && line[i] == key)
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(ds.control_cells(&key), expected);
    }
    assert!(ds.control_cells("HeLa").is_empty());
    let v = ds.vocab();
    assert_eq!(
        v.perturbations,
        (0..8).map(|p| format!("P{p:03}")).collect::<Vec<_>>()
    );
    assert_eq!(
        v.covariates,
        vec![vec!["A549".to_string(), "K562".into(), "MCF7".into()]]
    );
    assert_eq!(v.width(), 8 + 3);
    // An unseen combination of seen perturbations encodes; an unknown one
    // is an error naming it.
    let c = v.parse("P000+P007 @ MCF7").unwrap();
    let e = v.encode(&c).unwrap();
    assert_eq!(e.iter().filter(|&&x| x == 1.0).count(), 3);
    assert!(v
        .parse("P099 @ MCF7")
        .unwrap_err()
        .to_string()
        .contains("P099"));
    let s = ds.summary();
    assert_eq!(s.n_cells, 900);
    assert_eq!(s.covariates.len(), 3);
    assert_eq!(
        s.covariates
            .values()
            .map(|c| c.control_cells + c.perturbed_cells)
            .sum::<usize>(),
        900
    );
    assert!(s.covariates.values().all(|c| c.combinations == 3));
}

#[test]
fn gears_style_labels_and_two_covariates() {
    assert_eq!(parse_perturbations("A+ctrl", "control"), vec!["A"]);
    assert_eq!(parse_perturbations("ctrl+A", "control"), vec!["A"]);
    assert!(parse_perturbations("ctrl", "control").is_empty());
    assert_eq!(parse_perturbations(" B + A ", "control"), vec!["B", "A"]);
    let ad = hand_made(&[
        ("ctrl", "k562"),
        ("A+ctrl", "k562"),
        ("A+B", "k562"),
        ("ctrl", "rpe1"),
        ("A+ctrl", "rpe1"),
        ("B+ctrl", "rpe1"),
    ]);
    let ds = Dataset::from_anndata(ad.clone(), ObsColumns::default(), None, false).unwrap();
    assert_eq!(ds.control_cells("k562"), vec![0]);
    assert_eq!(ds.control_cells("rpe1"), vec![3]);
    assert_eq!(ds.unit_of(1).perturbations, vec!["A"]);
    assert_eq!(ds.unit_of(2).perturbations, vec!["A", "B"]);
    assert_eq!(ds.vocab().perturbations, vec!["A", "B"]);
    // Two covariate columns: the key joins them with `_`.
    let mut ad2 = ad;
    ad2.obs
        .insert("treatment", Column::Str(vec!["IFNG".into(); 6]))
        .unwrap();
    let cols = ObsColumns {
        covariates: vec!["cell_type".into(), "treatment".into()],
        control: "ctrl".into(),
        ..ObsColumns::default()
    };
    let ds2 = Dataset::from_anndata(ad2, cols, None, false).unwrap();
    assert_eq!(ds2.cov_keys(), vec!["k562_IFNG", "rpe1_IFNG"]);
    assert_eq!(ds2.unit_of(5).covariates, vec!["rpe1", "IFNG"]);
    assert_eq!(ds2.vocab().covariates.len(), 2);
}

#[test]
fn bad_obs_is_an_error_naming_the_column() {
    let mut ad = hand_made(&[("control", "k562"), ("A", "k562")]);
    let e = Dataset::from_anndata(
        ad.clone(),
        ObsColumns {
            perturbation: "perturbation".into(),
            ..ObsColumns::default()
        },
        None,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("perturbation") && e.contains("condition"), "{e}");
    if let Some((_, Column::Categorical(c))) =
        ad.obs.columns.iter_mut().find(|(n, _)| n == "condition")
    {
        c.codes[1] = -1;
    }
    let e = Dataset::from_anndata(ad.clone(), ObsColumns::default(), None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("condition") && e.contains("missing"), "{e}");
    for layout in common::LAYOUTS {
        // The bad value in the layout's in-memory form.
        let in_layout = |mut ad: AnnData| {
            if layout == common::Layout::Csr {
                ad.x = primeflow::anndata::Csr::from_dense(&ad.x.to_dense()).into();
            }
            ad
        };
        let mut ad = hand_made(&[("control", "k562"), ("A", "k562")]);
        ad.x.dense_mut().unwrap()[[1, 2]] = -1.0;
        let ad = in_layout(ad);
        let e = Dataset::from_anndata(ad.clone(), ObsColumns::default(), None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("negative") && e.contains("g2") && e.contains("cell 1"),
            "{e}"
        );
        assert!(Dataset::from_anndata(ad.clone(), ObsColumns::default(), None, true).is_ok());
        let mut ad = ad;
        ad.x.dense_mut().unwrap()[[0, 0]] = f32::NAN;
        let ad = in_layout(ad);
        let e = Dataset::from_anndata(ad, ObsColumns::default(), None, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite"), "{e}");
    }
}

#[test]
fn subset_keeps_rows_and_regroups_units() {
    let small = demo_small();
    for layout in common::LAYOUTS {
        let ds = common::relayout(&small, layout, "subset");
        subset_keeps_rows_in(&ds);
        // Units and their cells do not depend on the layout.
        assert_eq!(ds.units(), small.units());
    }
}

fn subset_keeps_rows_in(ds: &Dataset) {
    let rows: Vec<usize> = (0..ds.n_cells()).filter(|i| i % 3 == 0).collect();
    let sub = ds.subset(&rows).unwrap();
    assert_eq!(sub.n_cells(), rows.len());
    for (k, &r) in rows.iter().enumerate() {
        assert_eq!(sub.x.row_vec(k), ds.x.row_vec(r));
        assert_eq!(sub.obs.index[k], ds.obs.index[r]);
        assert_eq!(sub.unit_of(k).name(), ds.unit_of(r).name());
    }
    let e = ds.subset(&[0, ds.n_cells()]).unwrap_err().to_string();
    assert!(e.contains(&ds.n_cells().to_string()), "{e}");
    // A subset of a subset shares X and picks the right rows.
    let sub2 = sub.subset(&[2, 0]).unwrap();
    assert_eq!(sub2.x.is_csr(), ds.x.is_csr());
    assert_eq!(sub2.x.store_bytes(), ds.x.store_bytes(), "X is shared");
    assert_eq!(sub2.x.row_vec(0), ds.x.row_vec(rows[2]));
    assert_eq!(sub2.x.row_vec(1), ds.x.row_vec(rows[0]));
}

/// Per-unit part (all cells of a unit must share it, controls excepted).
fn unit_parts(ds: &Dataset, split: &Split) -> Vec<Part> {
    ds.units()
        .iter()
        .map(|u| {
            let p = split.parts[u.cells[0]];
            if !u.is_control() {
                assert!(
                    u.cells.iter().all(|&c| split.parts[c] == p),
                    "unit {} is split across parts",
                    u.name()
                );
            }
            p
        })
        .collect()
}

/// Controls of each key: 50/25/25 (floor for train, then half the rest).
fn check_controls(ds: &Dataset, split: &Split) {
    for key in ds.cov_keys() {
        let cells = ds.control_cells(&key);
        let n = cells.len();
        let count = |p: Part| cells.iter().filter(|&&c| split.parts[c] == p).count();
        assert_eq!(count(Part::Train), n / 2, "{key}: {n} controls");
        assert_eq!(count(Part::Val), (n - n / 2) / 2, "{key}: {n} controls");
        assert_eq!(count(Part::Test), n - n / 2 - (n - n / 2) / 2, "{key}");
    }
}

/// metrics.md covariate transfer: per key at most floor(frac * n) (and
/// `cap`) perturbations held out, each still trained in another key; val
/// and test balanced per key. Returns the number held out.
fn check_transfer(ds: &Dataset, split: &Split, frac: f64, cap: usize) -> usize {
    let parts = unit_parts(ds, split);
    let mut trained: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut per_key: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (u, &p) in ds.units().iter().zip(&parts) {
        if u.is_control() {
            continue;
        }
        if p == Part::Train {
            trained
                .entry(u.label.as_str())
                .or_default()
                .insert(u.cov_key.as_str());
        }
        let e = per_key.entry(u.cov_key.as_str()).or_default();
        e.0 += 1;
        match p {
            Part::Val => e.1 += 1,
            Part::Test => e.2 += 1,
            Part::Train => {}
        }
    }
    let mut held = 0;
    for (u, &p) in ds.units().iter().zip(&parts) {
        if !u.is_control() && p != Part::Train {
            let keys = trained.get(u.label.as_str()).cloned().unwrap_or_default();
            assert!(
                keys.iter().any(|k| *k != u.cov_key),
                "{} is held out but trains in no other key",
                u.name()
            );
            held += 1;
        }
    }
    for (key, (n, val, test)) in per_key {
        assert!(
            val + test <= ((frac * n as f64).floor() as usize).min(cap),
            "{key}: {val}+{test} of {n} held out"
        );
        assert!(
            test == val || test == val + 1,
            "{key}: val {val}, test {test}"
        );
    }
    check_controls(ds, split);
    held
}

/// metrics.md combination prediction: held-out units are combinations whose
/// singles are present (and train) in the same key; all singles train;
/// round(frac * eligible) held out, val/test 50/50.
fn check_combination(ds: &Dataset, split: &Split, frac: f64) -> usize {
    let parts = unit_parts(ds, split);
    let singles: HashMap<(&str, &str), Part> = ds
        .units()
        .iter()
        .zip(&parts)
        .filter(|(u, _)| u.perturbations.len() == 1)
        .map(|(u, &p)| ((u.cov_key.as_str(), u.perturbations[0].as_str()), p))
        .collect();
    assert!(
        singles.values().all(|&p| p == Part::Train),
        "a single perturbation is held out"
    );
    let (mut eligible, mut val, mut test) = (0, 0, 0);
    for (u, &p) in ds.units().iter().zip(&parts) {
        if u.perturbations.len() < 2 {
            continue;
        }
        let ok = u
            .perturbations
            .iter()
            .all(|s| singles.get(&(u.cov_key.as_str(), s.as_str())) == Some(&Part::Train));
        eligible += usize::from(ok);
        if p != Part::Train {
            assert!(
                ok,
                "{} is held out but its singles do not all train",
                u.name()
            );
        }
        val += usize::from(p == Part::Val);
        test += usize::from(p == Part::Test);
    }
    assert_eq!(
        val + test,
        ((frac * eligible as f64).round() as usize).max(1)
    );
    assert!(test == val || test == val + 1, "val {val}, test {test}");
    check_controls(ds, split);
    val + test
}

#[test]
fn covariate_transfer_follows_the_rules_on_simulated_data() {
    let ds = demo_small();
    let split = Split::generate(&ds, &SplitOptions::new(Task::CovariateTransfer)).unwrap();
    let held = check_transfer(&ds, &split, 0.3, 200);
    assert!(held >= 10, "only {held} units held out");
    // The cap and the fraction both bind.
    let opts = SplitOptions {
        max_holdout: 2,
        ..SplitOptions::new(Task::CovariateTransfer)
    };
    let capped = Split::generate(&ds, &opts).unwrap();
    assert_eq!(
        check_transfer(&ds, &capped, 0.3, 2),
        2 * ds.cov_keys().len()
    );
    let opts = SplitOptions {
        holdout_fraction: Some(0.1),
        ..SplitOptions::new(Task::CovariateTransfer)
    };
    check_transfer(&ds, &Split::generate(&ds, &opts).unwrap(), 0.1, 200);
    // Seeded: same seed same split, another seed another split.
    assert_eq!(
        split,
        Split::generate(&ds, &SplitOptions::new(Task::CovariateTransfer)).unwrap()
    );
    let other = SplitOptions {
        seed: 7,
        ..SplitOptions::new(Task::CovariateTransfer)
    };
    assert_ne!(split, Split::generate(&ds, &other).unwrap());
    // The summary counts what the split says.
    let s = split.summary(&ds);
    assert_eq!(
        s.parts
            .values()
            .map(|p| p.perturbed_cells + p.control_cells)
            .sum::<usize>(),
        ds.n_cells()
    );
    assert_eq!(s.held_out.values().map(|v| v.len()).sum::<usize>(), held);
    assert_eq!(s.parts["val"].units + s.parts["test"].units, held);
}

/// The unseen-perturbation task: per covariate key, floor(0.2 n) of its
/// singles (at least one) leave training, split val/test; no held-out
/// perturbation appears in any training unit of that key (combinations
/// included); the split is seeded, and a seed changes it; the task name
/// parses with its alias and unknown names list it.
#[test]
fn unseen_perturbation_split_keeps_held_out_perturbations_out_of_training() {
    let ds = demo_small();
    let opts = SplitOptions::new(Task::UnseenPerturbation);
    let split = Split::generate(&ds, &opts).unwrap();
    let part_of = |ui: usize| split.parts[ds.units()[ui].cells[0]];
    let mut n_singles: BTreeMap<&str, usize> = BTreeMap::new();
    let mut held: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut parts_held = Vec::new();
    for (ui, u) in ds.units().iter().enumerate() {
        if u.perturbations.len() == 1 {
            *n_singles.entry(u.cov_key.as_str()).or_default() += 1;
            if part_of(ui) != Part::Train {
                held.entry(u.cov_key.as_str())
                    .or_default()
                    .insert(u.perturbations[0].as_str());
                parts_held.push(part_of(ui));
            }
        }
    }
    for (key, n) in &n_singles {
        let want = ((0.2 * *n as f64).floor() as usize).max(1);
        assert_eq!(
            held.get(key).map(|h| h.len()).unwrap_or(0),
            want,
            "key {key}"
        );
    }
    assert!(parts_held.contains(&Part::Val) && parts_held.contains(&Part::Test));
    for (ui, u) in ds.units().iter().enumerate() {
        if u.is_control() || part_of(ui) != Part::Train {
            continue;
        }
        if let Some(h) = held.get(u.cov_key.as_str()) {
            for p in &u.perturbations {
                assert!(
                    !h.contains(p.as_str()),
                    "{} trains with held-out {p}",
                    u.name()
                );
            }
        }
    }
    assert_eq!(Split::generate(&ds, &opts).unwrap(), split);
    let other = SplitOptions {
        seed: 7,
        ..SplitOptions::new(Task::UnseenPerturbation)
    };
    assert_ne!(Split::generate(&ds, &other).unwrap(), split);
    assert_eq!(Task::parse("unseen").unwrap(), Task::UnseenPerturbation);
    let e = Task::parse("nope").unwrap_err().to_string();
    assert!(e.contains("unseen-perturbation"), "{e}");
}

#[test]
fn combination_split_follows_the_rules_on_simulated_data() {
    let ds = demo_small();
    let split = Split::generate(&ds, &SplitOptions::new(Task::Combination)).unwrap();
    // 8 combinations in each of 3 lines, all eligible: round(0.7 * 24) = 17.
    assert_eq!(check_combination(&ds, &split, 0.7), 17);
    let opts = SplitOptions {
        holdout_fraction: Some(0.3),
        seed: 3,
        ..SplitOptions::new(Task::Combination)
    };
    assert_eq!(
        check_combination(&ds, &Split::generate(&ds, &opts).unwrap(), 0.3),
        7
    );
    // No combinations: a clear error.
    let none = sim_dataset(SimConfig {
        n_combinations: 0,
        ..SimConfig::preset("tiny").unwrap()
    });
    let e = Split::generate(&none, &SplitOptions::new(Task::Combination))
        .unwrap_err()
        .to_string();
    assert!(e.contains("combination"), "{e}");
    let e = Split::generate(
        &ds,
        &SplitOptions {
            holdout_fraction: Some(1.5),
            ..SplitOptions::new(Task::Combination)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("1.5"), "{e}");
}

#[test]
fn split_csv_round_trips_at_cell_and_unit_level() {
    let dir = common::tmpdir("data_split_csv");
    let ds = demo_small();
    let split = Split::generate(&ds, &SplitOptions::new(Task::CovariateTransfer)).unwrap();
    let path = dir.join("split.csv");
    split.write_csv(&path, &ds).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("cell,condition,cell_type,split\n"),
        "{}",
        &text[..60]
    );
    assert_eq!(text.lines().count(), ds.n_cells() + 1);
    assert_eq!(Split::read_csv(&path, &ds, 0).unwrap(), split);

    // Unit level: one row per (condition, cell_type), controls omitted (they
    // are split 50/25/25 with the given seed).
    let mut unit_csv = String::from("condition,cell_type,split\n");
    for u in ds.units().iter().filter(|u| !u.is_control()) {
        unit_csv.push_str(&format!(
            "{},{},{}\n",
            u.label,
            u.cov_key,
            split.parts[u.cells[0]].as_str()
        ));
    }
    let upath = dir.join("units.csv");
    std::fs::write(&upath, &unit_csv).unwrap();
    let back = Split::read_csv(&upath, &ds, 42).unwrap();
    for u in ds.units().iter().filter(|u| !u.is_control()) {
        assert!(
            u.cells.iter().all(|&c| back.parts[c] == split.parts[c]),
            "{}",
            u.name()
        );
    }
    check_controls(&ds, &back);
    // Without a covariate column a row applies to every key.
    let label = ds
        .units()
        .iter()
        .find(|u| !u.is_control())
        .unwrap()
        .label
        .clone();
    let mut all_train = String::from("perturbation,split\n");
    for l in ds.conditions().iter().filter(|l| *l != "control") {
        all_train.push_str(&format!(
            "{l},{}\n",
            if *l == label { "test" } else { "train" }
        ));
    }
    std::fs::write(&upath, &all_train).unwrap();
    let back = Split::read_csv(&upath, &ds, 1).unwrap();
    for u in ds.units().iter().filter(|u| !u.is_control()) {
        let want = if u.label == label {
            Part::Test
        } else {
            Part::Train
        };
        assert!(
            u.cells.iter().all(|&c| back.parts[c] == want),
            "{}",
            u.name()
        );
    }
    // Missing units and bad parts are errors naming the file and field.
    std::fs::write(&upath, "condition,cell_type,split\nP000,K562,train\n").unwrap();
    let e = Split::read_csv(&upath, &ds, 1).unwrap_err().to_string();
    assert!(e.contains("units.csv") && e.contains("not listed"), "{e}");
    std::fs::write(&upath, "condition,split\nP000,holdout\n").unwrap();
    let e = Split::read_csv(&upath, &ds, 1).unwrap_err().to_string();
    assert!(e.contains("holdout") && e.contains("line 2"), "{e}");
    std::fs::write(&upath, "").unwrap();
    assert!(Split::read_csv(&upath, &ds, 1)
        .unwrap_err()
        .to_string()
        .contains("empty"));
}

/// devel.h5ad (PerturBench's devel file): 4 cell types, norman19 K562 with
/// 5 eligible combinations (../shared/data/README.md).
fn devel() -> Option<Dataset> {
    let path = common::devel();
    if !path.exists() {
        println!("skipped: {} not found", path.display());
        return None;
    }
    Some(Dataset::load(&path, &LoadOptions::default()).unwrap())
}

#[test]
fn devel_units_and_splits_follow_the_rules() {
    let Some(ds) = devel() else { return };
    assert_eq!((ds.n_cells(), ds.n_genes()), (5961, 500));
    assert_eq!(ds.cov_keys(), vec!["A172", "T98G", "U87MG", "k562"]);
    assert_eq!(ds.units().iter().filter(|u| !u.is_control()).count(), 60);
    assert!(ds
        .cov_keys()
        .iter()
        .all(|k| ds.control_cells(k).len() == 100));
    let split = Split::generate(&ds, &SplitOptions::new(Task::CovariateTransfer)).unwrap();
    check_transfer(&ds, &split, 0.3, 200);
    // Only the 9 kinase genes present in all four cell types can be held out.
    // Each glioblastoma line holds floor(0.3 * 9) = 2 of them; k562's quota
    // is floor(0.3 * 33) = 9, less the genes already held out in all three
    // other lines (at most 2 of them, since those hold 6 in all).
    let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for u in ds
        .units()
        .iter()
        .filter(|u| !u.is_control() && split.parts[u.cells[0]] != Part::Train)
    {
        held.entry(u.cov_key.clone())
            .or_default()
            .insert(u.label.clone());
    }
    for key in ["A172", "T98G", "U87MG"] {
        assert_eq!(held.get(key).map_or(0, |h| h.len()), 2, "{key}: {held:?}");
    }
    let k562 = held.get("k562").cloned().unwrap_or_default();
    assert!((7..=9).contains(&k562.len()), "k562 held out {k562:?}");
    let shared: BTreeSet<String> = ds
        .units()
        .iter()
        .filter(|u| u.cov_key == "A172" && !u.is_control())
        .map(|u| u.label.clone())
        .collect();
    assert!(k562.is_subset(&shared), "{k562:?}");
    let split = Split::generate(&ds, &SplitOptions::new(Task::Combination)).unwrap();
    // 5 eligible combinations: round(0.7 * 5) = 4 held out.
    assert_eq!(check_combination(&ds, &split, 0.7), 4);
}

#[test]
fn split_command_writes_a_csv_that_reads_back() {
    let dir = common::tmpdir("data_split_cli");
    let data = dir.join("demo.h5ad");
    let cfg = SimConfig {
        n_cells: 3000,
        n_genes: 30,
        n_programs: 3,
        program_size: 6,
        ..SimConfig::default()
    };
    primeflow::sim::simulate_to_file(&data, &cfg).unwrap();
    let (d, out) = (data.to_str().unwrap(), dir.join("split.csv"));
    let o = out.to_str().unwrap();
    let (code, stdout, stderr) = common::primeflow(&[
        "split",
        d,
        "--task",
        "covariate-transfer",
        "--seed",
        "5",
        "--out",
        o,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("train") && stdout.contains("test"),
        "{stdout}"
    );
    let ds = Dataset::load(&data, &LoadOptions::default()).unwrap();
    let want = Split::generate(
        &ds,
        &SplitOptions {
            seed: 5,
            ..SplitOptions::new(Task::CovariateTransfer)
        },
    )
    .unwrap();
    assert_eq!(Split::read_csv(&out, &ds, 0).unwrap(), want);
    let (code, stdout, stderr) = common::primeflow(&[
        "split",
        d,
        "--task",
        "combination",
        "--holdout-fraction",
        "0.5",
        "--json",
        "--out",
        o,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // round(0.5 * 24) = 12 combinations held out.
    assert_eq!(
        summary["parts"]["val"]["units"].as_u64().unwrap()
            + summary["parts"]["test"]["units"].as_u64().unwrap(),
        12,
        "{stdout}"
    );
    // Bad input: exit 2, the message names the value.
    let (code, _, stderr) = common::primeflow(&["split", d, "--task", "dose", "--out", o]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'dose'") && stderr.contains("combination"),
        "{stderr}"
    );
    let (code, _, stderr) = common::primeflow(&[
        "split",
        d,
        "--task",
        "combination",
        "--covariate-col",
        "donor",
        "--out",
        o,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("donor") && stderr.contains("cell_type"),
        "{stderr}"
    );
    let (code, _, stderr) =
        common::primeflow(&["split", "no/such.h5ad", "--task", "combination", "--out", o]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no/such.h5ad"), "{stderr}");
}
