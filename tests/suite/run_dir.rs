//! Tests: one run folder for both front-ends. A run a script trains into a
//! checkpoint folder is resumed and sampled by the CLI without restating
//! its data, and a CLI run is reopened, resumed and sampled by a script;
//! each step is a separate `primeflow` process, with only the files between
//! them (data.json, run.json, checkpoints).

use std::path::Path;

use crate::common::{self, read_json, run_ok, sample_test, simulate_tiny, tmpdir};

/// Writes `src` to `dir/name` and runs it with `primeflow run`.
fn run_script(dir: &Path, name: &str, src: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, src).unwrap();
    run_ok(&["run", path.to_str().unwrap()])
}

/// `primeflow sample --checkpoint RUN --which test` with no data flags.
fn sample_test_units(run_dir: &str, pred: &str) -> String {
    sample_test(
        run_dir,
        pred,
        &["--cells-per-unit", "10", "--steps", "3", "--seed", "1"],
    )
}

#[test]
fn a_run_trained_in_a_script_is_resumed_and_sampled_by_the_cli() {
    let dir = tmpdir("run_dir_script_to_cli");
    let sim = simulate_tiny(&dir, "5", &[]);
    let p = |name: &str| dir.join(name).display().to_string();
    // A file, split in the script; a simulation, split in the script; and
    // every row of the file by index (a subset with no recorded set-up).
    let out = run_script(
        &dir,
        "train.rhai",
        &format!(
            r#"
let data = Dataset::load("{sim}");
let split = data.split("combination", 7);
let trainer = Trainer(#{{preset: "tiny", steps: 4, batch_size: 16, seed: 1}});
trainer.checkpoint("{file_run}");
let h = trainer.fit(MlpVelocity("tiny"), split.train);
print(`file run: step ${{h.final_step}}`);

let simulated = Dataset::simulate(#{{preset: "tiny", seed: 2}});
let s2 = simulated.split(#{{task: "covariate-transfer", seed: 3, holdout_fraction: 0.5}});
let t2 = Trainer(#{{preset: "tiny", steps: 3, batch_size: 16, seed: 1, out: "{sim_run}"}});
t2.fit(MlpVelocity("tiny"), s2.train);

let filter = #{{}};
filter[data.covariate_columns[0]] = data.units()[0].covariates[0];
let t4 = Trainer(#{{preset: "tiny", steps: 2, batch_size: 16, seed: 1, out: "{cov_run}"}});
t4.fit(MlpVelocity("tiny"), data.subset(filter));
print(`filter: ${{filter}}`);

let rows = [];
for i in 0..data.n_cells {{ rows.push(i); }}
let t3 = Trainer(#{{preset: "tiny", steps: 2, batch_size: 16, seed: 1, out: "{rows_run}"}});
t3.fit(MlpVelocity("tiny"), data.subset(rows));
"#,
            file_run = p("file_run"),
            sim_run = p("sim_run"),
            rows_run = p("rows_run"),
            cov_run = p("cov_run"),
        ),
    );
    assert!(out.contains("file run: step 4"), "{out}");

    // The script recorded the run as `primeflow train` does.
    let spec = read_json(&dir.join("file_run/data.json"));
    assert_eq!(
        Path::new(spec["path"].as_str().unwrap()),
        Path::new(&sim).canonicalize().unwrap(),
        "{spec}"
    );
    assert_eq!(spec["split"]["kind"], "task", "{spec}");
    assert_eq!(spec["split"]["task"], "combination", "{spec}");
    assert_eq!(spec["split"]["seed"], 7, "{spec}");
    let record = read_json(&dir.join("file_run/run.json"));
    assert_eq!(record["kind"], "mlp");
    assert_eq!(record["preset"], "tiny");

    // The CLI continues it (the model flags agree with run.json) and samples
    // its held-out units with no data flags.
    let out = run_ok(&[
        "train",
        "--out",
        &p("file_run"),
        "--resume",
        "--model",
        "mlp",
        "--preset",
        "tiny",
        "--steps",
        "7",
        "--quiet",
    ]);
    assert!(
        out.contains("at step 4 of 7") && out.contains("Step 7"),
        "{out}"
    );
    let out = sample_test_units(&p("file_run"), &p("pred_file.h5ad"));
    assert!(out.contains("test units of"), "{out}");
    common::assert_exists(&dir.join("pred_file.h5ad"));

    // The simulated run: data.json holds the simulator's settings, so the
    // CLI rebuilds the same cells (the resume's fingerprint check passes).
    let spec = read_json(&dir.join("sim_run/data.json"));
    assert_eq!(spec["simulate"]["seed"], 2, "{spec}");
    assert_eq!(spec["split"]["holdout_fraction"], 0.5, "{spec}");
    let out = run_ok(&[
        "train",
        "--out",
        &p("sim_run"),
        "--resume",
        "--steps",
        "5",
        "--quiet",
    ]);
    assert!(out.contains("Step 5"), "{out}");
    sample_test_units(&p("sim_run"), &p("pred_sim.h5ad"));

    // A subset by one covariate value is recorded as a filter.
    let spec = read_json(&dir.join("cov_run/data.json"));
    assert_eq!(
        spec["filters"].as_array().map(|f| f.len()),
        Some(1),
        "{spec}"
    );
    assert_eq!(spec["filters"][0][0], "cell_type", "{spec}");
    let out = run_ok(&[
        "train",
        "--out",
        &p("cov_run"),
        "--resume",
        "--steps",
        "3",
        "--quiet",
    ]);
    assert!(out.contains("Step 3"), "{out}");

    // Cells with no recorded set-up: no data.json, and the CLI says so and
    // what to pass; with --data the same cells resume, and are recorded.
    assert!(!dir.join("rows_run/data.json").exists());
    assert!(dir.join("rows_run/run.json").exists());
    let (code, _, err) = common::primeflow(&[
        "train",
        "--out",
        &p("rows_run"),
        "--resume",
        "--steps",
        "3",
        "--quiet",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("without a recorded data set") && err.contains("--data"),
        "{err}"
    );
    let (code, _, err) = common::primeflow(&[
        "sample",
        "--checkpoint",
        &p("rows_run"),
        "--task",
        "combination",
        "--out",
        &p("pred_rows.h5ad"),
        "--quiet",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("without a recorded data set") && err.contains("--data"),
        "{err}"
    );
    let out = run_ok(&[
        "train",
        "--out",
        &p("rows_run"),
        "--resume",
        "--data",
        &sim,
        "--steps",
        "3",
        "--quiet",
    ]);
    assert!(out.contains("Step 3"), "{out}");
    assert_eq!(
        read_json(&dir.join("rows_run/data.json"))["split"]["kind"],
        "none"
    );
}

#[test]
fn a_cli_run_is_reopened_resumed_and_sampled_by_a_script() {
    let dir = tmpdir("run_dir_cli_to_script");
    let sim = simulate_tiny(&dir, "6", &[]);
    let p = |name: &str| dir.join(name).display().to_string();
    run_ok(&[
        "train",
        "--data",
        &sim,
        "--model",
        "mlp",
        "--preset",
        "tiny",
        "--task",
        "combination",
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--seed",
        "1",
        "--out",
        &p("run"),
        "--quiet",
    ]);
    // The script takes the run's split from its folder, resumes the run on
    // its training cells (the fingerprint check accepts them) and samples
    // its held-out units.
    let out = run_script(
        &dir,
        "resume.rhai",
        &format!(
            r#"
let split = Split::from_run("{run}");
print(`task: ${{split.task}}`);
let data = Dataset::from_run("{run}");
print(`cells: ${{data.n_cells}}`);
let trainer = Trainer();
let model = trainer.resume("{run}", #{{steps: 8}});
let h = trainer.fit(model, split.train);
print(`resumed to step ${{h.final_step}}`);
let pred = Sampler(#{{steps: 3, cells_per_unit: 10, seed: 0}}).sample(model, split.test);
print(`sampled: ${{pred.n_cells}}`);
let loaded = Model::load("{run}");
print(`loaded: ${{loaded.kind}}`);
"#,
            run = p("run"),
        ),
    );
    assert!(out.contains("task: combination"), "{out}");
    assert!(out.contains("cells: 900"), "{out}");
    assert!(out.contains("resumed to step 8"), "{out}");
    assert!(out.contains("loaded: mlp"), "{out}");
    let sampled: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("sampled: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(sampled > 0 && sampled.is_multiple_of(10), "{out}");
    // The run's record is the CLI's still: the script resumed it and kept
    // its data set-up and preset.
    assert_eq!(read_json(&dir.join("run/run.json"))["preset"], "tiny");
    assert_eq!(
        read_json(&dir.join("run/data.json"))["path"].as_str(),
        Some(sim.as_str())
    );
    // And the CLI picks the run up where the script left it.
    let out = run_ok(&[
        "train",
        "--out",
        &p("run"),
        "--resume",
        "--steps",
        "10",
        "--quiet",
    ]);
    assert!(out.contains("at step 8 of 10"), "{out}");
    sample_test_units(&p("run"), &p("pred.h5ad"));

    // A folder with no run is a clear error naming it.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(
        dir.join("bad.rhai"),
        format!("Split::from_run(\"{}\");", p("empty")),
    )
    .unwrap();
    let (code, _, err) = common::primeflow(&["run", &p("bad.rhai")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("without a recorded data set") && err.contains("Dataset::load"),
        "{err}"
    );
}
