//! Tests: sim (the seeded Perturb-seq simulator).

use std::collections::{BTreeMap, BTreeSet};

use ndarray::{Array2, Axis};
use primeflow::anndata::{AnnData, Column};
use primeflow::sim::{simulate, SimConfig, SimTruth, Simulation, UNS_KEY};

fn tiny(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        ..SimConfig::preset("tiny").unwrap()
    }
}

fn labels(ad: &AnnData, col: &str) -> Vec<String> {
    ad.obs.labels("obs", col).unwrap()
}

fn truth_of(ad: &AnnData) -> SimTruth {
    SimTruth::from_json(&ad.uns[UNS_KEY]["truth"]).unwrap()
}

/// Cells per (cell_type, condition).
fn units(ad: &AnnData) -> BTreeMap<(String, String), Vec<usize>> {
    let (c, l) = (labels(ad, "condition"), labels(ad, "cell_type"));
    let mut m: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for i in 0..ad.n_obs() {
        m.entry((l[i].clone(), c[i].clone())).or_default().push(i);
    }
    m
}

#[test]
fn same_seed_same_data_other_seed_differs() {
    let a = simulate(&tiny(7)).unwrap();
    let b = simulate(&tiny(7)).unwrap();
    assert_eq!(a.x, b.x);
    assert_eq!(a.layers, b.layers);
    assert_eq!(a.obs, b.obs);
    assert_eq!(a.uns, b.uns);
    let c = simulate(&tiny(8)).unwrap();
    assert_ne!(a.layers["counts"], c.layers["counts"]);
    assert_ne!(a.uns, c.uns);
}

#[test]
fn chunk_size_and_threads_do_not_change_the_numbers() {
    let base = SimConfig {
        chunk_cells: 1000,
        threads: 2,
        ..tiny(3)
    };
    let a = simulate(&base).unwrap();
    for (chunk, threads) in [(7, 1), (128, 2), (300, 3)] {
        let b = simulate(&SimConfig {
            chunk_cells: chunk,
            threads,
            ..base.clone()
        })
        .unwrap();
        assert_eq!(a.x, b.x, "chunk {chunk}, threads {threads}");
        assert_eq!(
            a.layers["counts"], b.layers["counts"],
            "chunk {chunk}, threads {threads}"
        );
        assert_eq!(a.obs.get("responder"), b.obs.get("responder"));
    }
}

#[test]
fn shapes_obs_var_and_uns() {
    let cfg = tiny(1);
    let ad = simulate(&cfg).unwrap();
    assert_eq!((ad.n_obs(), ad.n_vars()), (cfg.n_cells, cfg.n_genes));
    assert_eq!(ad.layers["counts"].dim(), ad.x.dim());
    assert_eq!(ad.var_names()[0], "G0000");
    assert_eq!(ad.var_names()[63], "G0063");
    assert_eq!(
        ad.obs.names(),
        vec!["condition", "cell_type", "responder", "n_counts"]
    );
    let Some(Column::Categorical(cond)) = ad.obs.get("condition") else {
        panic!("condition is not categorical")
    };
    // control + 8 singles + 3 combinations.
    assert_eq!(cond.categories.len(), 1 + 8 + 3, "{:?}", cond.categories);
    assert!(cond.categories.iter().any(|c| c == "control"));
    assert!(
        cond.categories.iter().any(|c| c == "P000") || cond.categories.iter().any(|c| c == "P001")
    );
    let combos: Vec<&String> = cond.categories.iter().filter(|c| c.contains('+')).collect();
    assert_eq!(combos.len(), 3);
    for c in combos {
        let (a, b) = c.split_once('+').unwrap();
        assert!(a.starts_with('P') && b.starts_with('P') && a < b, "{c}");
    }
    let Some(Column::Categorical(ct)) = ad.obs.get("cell_type") else {
        panic!("cell_type is not categorical")
    };
    assert_eq!(ct.categories, vec!["A549", "K562", "MCF7"]);
    // Truth: readable back, identical to a fresh draw, shapes as documented.
    let truth = truth_of(&ad);
    assert_eq!(truth, Simulation::new(&cfg).unwrap().truth);
    assert_eq!(truth.log_baseline.len(), 3);
    assert_eq!(truth.strength.len(), 8);
    assert_eq!(truth.interaction.len(), 3);
    assert!(truth
        .responder_fraction
        .iter()
        .all(|&r| (0.4..=0.9).contains(&r)));
    let back: SimConfig = serde_json::from_value(ad.uns[UNS_KEY]["config"].clone()).unwrap();
    assert_eq!(back, cfg);
    // var `program`: the genes of program 0 say 0.
    let Some(Column::Int(program)) = ad.var.get("program") else {
        panic!("var program missing")
    };
    for &g in &truth.program_genes[0] {
        assert_eq!(program[g as usize], 0);
    }
}

#[test]
fn counts_are_integers_and_x_is_log1p_of_normalised_counts() {
    let cfg = tiny(2);
    let ad = simulate(&cfg).unwrap();
    let counts = &ad.layers["counts"];
    let Some(Column::Float(n_counts)) = ad.obs.get("n_counts") else {
        panic!("n_counts missing")
    };
    for (i, (crow, xrow)) in counts
        .axis_iter(Axis(0))
        .zip(ad.x.to_dense().axis_iter(Axis(0)))
        .enumerate()
    {
        assert!(
            crow.iter().all(|&c| c >= 0.0 && c.fract() == 0.0),
            "cell {i}"
        );
        let total: f64 = crow.iter().map(|&c| c as f64).sum();
        assert_eq!(total, n_counts[i]);
        assert!(total > 0.0);
        for (&c, &x) in crow.iter().zip(xrow) {
            // scanpy normalize_total(target_sum=1e4) then log1p, in f64.
            assert_eq!(x, (c as f64 * 1e4 / total).ln_1p() as f32);
        }
    }
    // Library sizes vary from cell to cell around the configured mean.
    let mean = n_counts.iter().sum::<f64>() / n_counts.len() as f64;
    let cv = (n_counts.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n_counts.len() as f64)
        .sqrt()
        / mean;
    assert!(
        (mean / (cfg.counts_per_gene * cfg.n_genes as f64) - 1.0).abs() < 0.25,
        "mean library {mean}"
    );
    assert!(cv > 0.2, "library size CV {cv}");
}

#[test]
fn every_line_has_controls_and_combination_singles() {
    let cfg = SimConfig::default();
    let ad = simulate(&SimConfig {
        n_cells: 4000,
        n_genes: 40,
        n_programs: 4,
        program_size: 8,
        ..cfg
    })
    .unwrap();
    let truth = truth_of(&ad);
    let u = units(&ad);
    let mut absent = 0;
    for line in &truth.cell_lines {
        assert!(
            u.get(&(line.clone(), "control".into()))
                .map_or(0, |c| c.len())
                >= 2,
            "{line} has no controls"
        );
        for combo in &truth.combinations {
            assert!(
                u.contains_key(&(line.clone(), combo.clone())),
                "{line}: {combo} missing"
            );
            for single in combo.split('+') {
                assert!(
                    u.contains_key(&(line.clone(), single.to_string())),
                    "{line}: single {single} of {combo} missing"
                );
            }
        }
        absent += truth
            .perturbations
            .iter()
            .filter(|p| !u.contains_key(&(line.clone(), p.to_string())))
            .count();
    }
    // Some (perturbation, line) pairs are absent, so covariate transfer has
    // something to predict, but every perturbation is seen somewhere.
    assert!(absent >= 1, "no absent pairs");
    for p in &truth.perturbations {
        assert!(
            truth
                .cell_lines
                .iter()
                .any(|l| u.contains_key(&(l.clone(), p.clone()))),
            "{p} absent everywhere"
        );
    }
    // Presence in the truth agrees with the obs.
    for (pi, p) in truth.perturbations.iter().enumerate() {
        for (li, l) in truth.cell_lines.iter().enumerate() {
            assert_eq!(
                truth.present[pi][li] == 1,
                u.contains_key(&(l.clone(), p.clone())),
                "{l}/{p}"
            );
        }
    }
}

/// Energy MMD of metrics.md: mean d(x, y) - (mean d(x, x') + mean d(y, y')) / 2.
fn energy_mmd(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let mean_d = |p: &Array2<f32>, q: &Array2<f32>| {
        let mut s = 0.0;
        for x in p.rows() {
            for y in q.rows() {
                let d2: f64 = x.iter().zip(y).map(|(u, v)| ((u - v) as f64).powi(2)).sum();
                s += d2.max(1e-8).sqrt();
            }
        }
        s / (p.nrows() * q.nrows()) as f64
    };
    mean_d(a, b) - 0.5 * mean_d(a, a) - 0.5 * mean_d(b, b)
}

#[test]
fn mean_only_prediction_is_worse_on_mmd_than_a_fresh_sample() {
    let cfg = SimConfig {
        n_cells: 2400,
        n_genes: 100,
        n_cell_lines: 1,
        n_perturbations: 2,
        n_combinations: 0,
        n_programs: 3,
        program_size: 20,
        responder_fraction: [0.5, 0.5],
        seed: 11,
        ..SimConfig::default()
    };
    let ad = simulate(&cfg).unwrap();
    let u = units(&ad);
    let cells = &u[&("K562".to_string(), "P000".to_string())];
    assert!(cells.len() >= 400, "{}", cells.len());
    let half = cells.len() / 2;
    let reference = ad.x.rows_dense(&cells[..half]).unwrap();
    let fresh = ad.x.rows_dense(&cells[half..2 * half]).unwrap();
    // A model that predicts only the unit mean (every cell at the mean of a
    // fresh sample).
    let mean = fresh.mean_axis(Axis(0)).unwrap();
    let mean_only = Array2::from_shape_fn(fresh.dim(), |(_, g)| mean[g]);
    let a = energy_mmd(&reference, &fresh);
    let b = energy_mmd(&reference, &mean_only);
    assert!(a < 0.25 * b, "MMD fresh sample {a} vs mean-only {b}");
    // The responder mixture is what a mean misses: responders and
    // non-responders differ, and about half of the cells respond.
    let Some(Column::Bool(resp)) = ad.obs.get("responder") else {
        panic!()
    };
    let n_resp = cells.iter().filter(|&&c| resp[c]).count() as f64 / cells.len() as f64;
    assert!((n_resp - 0.5).abs() < 0.08, "responder share {n_resp}");
}

/// Checks, per unit, that responders' count shares move from the controls'
/// by the true log fold change (and non-responders do not move). With
/// `r == 1` every cell responds to every member, so combinations are checked
/// too; otherwise only single perturbations.
fn check_effects(r: f64) {
    let cfg = SimConfig {
        n_cells: 3000,
        n_genes: 200,
        n_cell_lines: 2,
        n_perturbations: 3,
        n_combinations: 1,
        n_programs: 4,
        program_size: 20,
        responder_fraction: [r, r],
        control_fraction: 0.3,
        counts_per_gene: 20.0,
        seed: 5,
        ..SimConfig::default()
    };
    let ad = simulate(&cfg).unwrap();
    let truth = truth_of(&ad);
    let counts = &ad.layers["counts"];
    let Some(Column::Bool(resp)) = ad.obs.get("responder") else {
        panic!()
    };
    let Some(Column::Float(tot)) = ad.obs.get("n_counts") else {
        panic!()
    };
    // Mean count share per gene over `cells`.
    let share = |cells: &[usize]| -> Vec<f64> {
        let mut m = vec![0.0; cfg.n_genes];
        for &c in cells {
            for (a, &v) in m.iter_mut().zip(counts.row(c)) {
                *a += v as f64 / tot[c];
            }
        }
        m.iter().map(|v| v / cells.len() as f64).collect()
    };
    let u = units(&ad);
    let mut checked = 0;
    for (li, line) in truth.cell_lines.iter().enumerate() {
        let ctrl = share(&u[&(line.clone(), "control".to_string())]);
        let mut labels: Vec<String> = truth.perturbations.clone();
        if r == 1.0 {
            labels.extend(truth.combinations.iter().cloned());
        }
        for label in labels {
            let Some(cells) = u.get(&(line.clone(), label.clone())) else {
                continue;
            };
            let resp_cells: Vec<usize> = cells.iter().copied().filter(|&c| resp[c]).collect();
            let non: Vec<usize> = cells.iter().copied().filter(|&c| !resp[c]).collect();
            let delta = truth.responder_log_fold_change(&label, line).unwrap();
            // Expected share of a responder: p0 e^delta / sum(p0 e^delta).
            let p0: Vec<f64> = truth.log_baseline[li].iter().map(|v| v.exp()).collect();
            let z: f64 = p0.iter().zip(&delta).map(|(p, d)| p * d.exp()).sum();
            // Well-expressed genes with a real effect.
            let genes: Vec<usize> = (0..cfg.n_genes)
                .filter(|&g| {
                    delta[g].abs() > 0.5 && p0[g] * cfg.counts_per_gene * cfg.n_genes as f64 > 2.0
                })
                .collect();
            if genes.is_empty() {
                continue;
            }
            let got = share(&resp_cells);
            let mae = genes
                .iter()
                .map(|&g| ((got[g] / ctrl[g]).ln() - (delta[g] - z.ln())).abs())
                .sum::<f64>()
                / genes.len() as f64;
            assert!(
                mae < 0.25,
                "{line}/{label}: mean |observed - true| log fold change {mae} over {} genes",
                genes.len()
            );
            // Non-responders look like controls on the same genes.
            if non.len() >= 10 {
                let got = share(&non);
                let moved = genes
                    .iter()
                    .map(|&g| (got[g] / ctrl[g]).ln().abs())
                    .sum::<f64>()
                    / genes.len() as f64;
                assert!(
                    moved < 0.25,
                    "{line}/{label}: non-responders moved by {moved}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} units checked");
}

#[test]
fn responder_effects_match_the_truth() {
    check_effects(1.0);
    check_effects(0.6);
}

#[test]
fn cell_lines_differ_in_baseline_and_effect_strength() {
    let ad = simulate(&tiny(4)).unwrap();
    let truth = truth_of(&ad);
    let (a, b) = (&truth.log_baseline[0], &truth.log_baseline[1]);
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64;
    assert!(diff > 0.1, "baselines differ by {diff}");
    let m = &truth.line_multiplier;
    assert!(
        m.iter().any(|row| (row[0] - row[1]).abs() > 0.05),
        "multipliers do not vary by line"
    );
    // The interaction term makes a combination differ from the sum of its
    // singles.
    let combo = &truth.combinations[0];
    let (p, q) = combo.split_once('+').unwrap();
    let line = &truth.cell_lines[0];
    let dc = truth.responder_log_fold_change(combo, line).unwrap();
    let dp = truth.responder_log_fold_change(p, line).unwrap();
    let dq = truth.responder_log_fold_change(q, line).unwrap();
    let inter: f64 = dc
        .iter()
        .zip(&dp)
        .zip(&dq)
        .map(|((c, a), b)| (c - a - b).abs())
        .sum();
    assert!(inter > 0.1, "no interaction: {inter}");
    // Member order does not matter; unknown labels are errors.
    assert_eq!(
        truth
            .responder_log_fold_change(&format!("{q}+{p}"), line)
            .unwrap(),
        dc
    );
    let e = truth
        .responder_log_fold_change("P999", line)
        .unwrap_err()
        .to_string();
    assert!(e.contains("P999"), "{e}");
}

#[test]
fn bad_settings_are_errors_naming_the_field() {
    let e = simulate(&SimConfig {
        n_cells: 10,
        ..tiny(1)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("n_cells") && e.contains("10"), "{e}");
    let e = simulate(&SimConfig {
        responder_fraction: [0.9, 0.1],
        ..tiny(1)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("responder_fraction"), "{e}");
    let e = SimConfig::preset("nope").unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("norman19"), "{e}");
    // A truth with inconsistent shapes is refused, never indexed.
    let mut t = Simulation::new(&tiny(1)).unwrap().truth;
    t.target_gene[0] = 10_000;
    let e = SimTruth::from_json(&serde_json::to_value(&t).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
}

/// Not a timed test: prints the speed of generating the srivatsan20 preset
/// (178k x 2000) without writing. Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn bench_generate_srivatsan20() {
    let cfg = SimConfig::preset("srivatsan20").unwrap();
    let t = std::time::Instant::now();
    let sim = Simulation::new(&cfg).unwrap();
    let mut sum = 0.0f64;
    let draws = sim
        .generate(
            |_, x, _| {
                sum += x[[0, 0]] as f64;
                Ok(())
            },
            || Ok(()),
        )
        .unwrap();
    let units: BTreeSet<u32> = sim.layout.cell_unit.iter().copied().collect();
    println!(
        "generated {} cells x {} genes ({} units) in {:.2} s (checksum {sum})",
        draws.len(),
        sim.n_genes(),
        units.len(),
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn file_round_trip_matches_the_in_memory_simulation() {
    use primeflow::anndata::{read_h5ad, ReadOptions};
    let dir = crate::common::tmpdir("sim_file_round_trip");
    let path = dir.join("tiny.h5ad");
    let cfg = SimConfig {
        chunk_cells: 100,
        ..tiny(9)
    };
    let report = primeflow::sim::simulate_to_file(&path, &cfg).unwrap();
    assert_eq!(
        (report.n_cells, report.n_genes, report.n_cell_lines),
        (900, 64, 3)
    );
    assert!(report.file_bytes > 0);
    let mem = simulate(&cfg).unwrap();
    let Some(Column::Bool(resp)) = mem.obs.get("responder") else {
        panic!()
    };
    assert_eq!(report.n_responders, resp.iter().filter(|&&r| r).count());
    let back = read_h5ad(
        &path,
        &ReadOptions {
            load_layers: true,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(back.x, mem.x);
    assert_eq!(back.layers["counts"], mem.layers["counts"]);
    assert_eq!(back.var_names(), mem.var_names());
    assert_eq!(back.var.get("program"), mem.var.get("program"));
    for col in ["condition", "cell_type", "responder", "n_counts"] {
        assert_eq!(back.obs.get(col), mem.obs.get(col), "obs column {col}");
    }
    assert_eq!(back.obs.index, mem.obs.index);
    assert_eq!(truth_of(&back), truth_of(&mem));
    let cfg_back: SimConfig = serde_json::from_value(back.uns[UNS_KEY]["config"].clone()).unwrap();
    assert_eq!(cfg_back, cfg);
    // A data set with no combinations stores empty truth arrays.
    let none = SimConfig {
        n_combinations: 0,
        ..tiny(1)
    };
    let p2 = dir.join("nocombo.h5ad");
    primeflow::sim::simulate_to_file(&p2, &none).unwrap();
    let back = read_h5ad(&p2, &ReadOptions::default()).unwrap();
    assert!(truth_of(&back).combinations.is_empty());
}

#[test]
fn python_anndata_reads_the_simulated_file() {
    if !crate::common::python_has("anndata") {
        println!("skipped: python anndata not installed");
        return;
    }
    let dir = crate::common::tmpdir("sim_python");
    let path = dir.join("tiny.h5ad");
    primeflow::sim::simulate_to_file(&path, &tiny(4)).unwrap();
    let out = crate::common::run_python(&format!(
        r#"
import anndata, numpy as np
a = anndata.read_h5ad("{}")
assert a.shape == (900, 64), a.shape
c = a.layers["counts"].toarray()
x = a.X.toarray()
assert np.all(c == np.round(c)) and c.min() >= 0
# scanpy normalize_total(target_sum=1e4) + log1p, in float64.
want = np.log1p(c.astype(np.float64) * 1e4 / c.sum(1, keepdims=True)).astype(np.float32)
assert np.array_equal(x, want)
assert np.allclose(a.obs["n_counts"].to_numpy(), c.sum(1))
assert list(a.obs["cell_type"].cat.categories) == ["A549", "K562", "MCF7"]
assert "control" in a.obs["condition"].cat.categories
assert a.var_names[0] == "G0000"
t = a.uns["simulation"]["truth"]
assert t["strength"].shape == (8, 6), t["strength"].shape
assert t["combination_members"].shape == (3, 2)
print("ok", a.obs["condition"].nunique(), a.obs["responder"].dtype)
"#,
        path.display()
    ));
    assert!(out.starts_with("ok 12 bool"), "{out}");
}

#[test]
fn simulate_command_writes_and_reports() {
    let dir = crate::common::tmpdir("sim_cli");
    let out = dir.join("cli.h5ad");
    let o = out.to_str().unwrap();
    let (code, stdout, stderr) = crate::common::primeflow(&[
        "simulate", "--preset", "tiny", "--out", o, "--seed", "3", "--cells", "1000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1000 cells x 64 genes, seed 3"), "{stdout}");
    assert!(out.exists());
    // Same seed via the library: same data.
    let back = primeflow::anndata::read_h5ad(&out, &Default::default()).unwrap();
    let mem = simulate(&SimConfig {
        n_cells: 1000,
        ..tiny(3)
    })
    .unwrap();
    assert_eq!(back.x, mem.x);
    // Bad input: exit 2 with a message naming the value; no file left.
    let bad = dir.join("bad.h5ad");
    let (code, _, stderr) = crate::common::primeflow(&[
        "simulate",
        "--preset",
        "huge",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'huge'") && stderr.contains("srivatsan20"),
        "{stderr}"
    );
    let (code, _, stderr) = crate::common::primeflow(&[
        "simulate",
        "--preset",
        "tiny",
        "--cells",
        "5",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("n_cells") && stderr.contains('5'),
        "{stderr}"
    );
    assert!(!bad.exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a temporary file was left behind"
    );
    // --config: SimConfig fields over the preset; unknown fields are errors.
    let cfg_path = dir.join("cfg.json");
    std::fs::write(
        &cfg_path,
        r#"{"n_programs": 3, "responder_fraction": [1.0, 1.0]}"#,
    )
    .unwrap();
    let (c, b) = (cfg_path.to_str().unwrap(), bad.to_str().unwrap());
    let (code, _, stderr) =
        crate::common::primeflow(&["simulate", "--preset", "tiny", "--config", c, "--out", b]);
    assert_eq!(code, 0, "{stderr}");
    let back = primeflow::anndata::read_h5ad(&bad, &Default::default()).unwrap();
    assert_eq!(truth_of(&back).strength[0].len(), 3);
    std::fs::write(&cfg_path, r#"{"n_programmes": 3}"#).unwrap();
    let (code, _, stderr) = crate::common::primeflow(&["simulate", "--config", c, "--out", b]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cfg.json") && stderr.contains("n_programmes"),
        "{stderr}"
    );
}
