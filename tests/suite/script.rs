//! Tests: the scripting environment (engine, REPL session, runner, limits,
//! help, stdlib, objects, scripts/ and tests/scripts/).

use std::cell::RefCell;
use std::rc::Rc;

use primeflow::script::{self, EngineOptions, Limits, Outcome, Session};

use crate::common::{primeflow, root, tmpdir};

#[path = "script_repl.rs"]
mod repl;

fn session() -> Session {
    primeflow::progress::set_quiet(true);
    Session::new(&EngineOptions::default())
}

fn text(o: Outcome) -> String {
    match o {
        Outcome::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

fn error(o: Outcome) -> String {
    match o {
        Outcome::Error(t) => t,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Runs `src` with a fresh engine, capturing print output.
fn run_captured(src: &str, limits: Limits) -> (Result<(), script::ScriptFailure>, String) {
    primeflow::progress::set_quiet(true);
    let out = Rc::new(RefCell::new(String::new()));
    let r = script::run_source(
        std::path::Path::new("inline.rhai"),
        src,
        Vec::new(),
        &limits,
        Some(root()),
        Some(out.clone()),
    );
    let printed = out.borrow().clone();
    (r, printed)
}

#[test]
fn repl_scope_persists_and_errors_do_not_end_the_session() {
    let mut s = session();
    assert_eq!(s.eval_line("let x = 40;"), Outcome::Nothing);
    assert_eq!(text(s.eval_line("x + 2")), "42");
    // A typo: an error with a caret under the position and a suggestion.
    let e = error(s.eval_line("prnt(x)"));
    assert!(e.contains("prnt(x)\n^"), "{e}");
    assert!(e.contains("did you mean") && e.contains("print"), "{e}");
    // A bad argument to a primeflow function: kind and message.
    let e = error(s.eval_line("param(1, 2, 3, 4)"));
    assert!(e.contains("^"), "{e}");
    // The session goes on, with its variables and functions.
    assert_eq!(s.eval_line("fn twice(v) { v * 2 }"), Outcome::Nothing);
    assert_eq!(text(s.eval_line("twice(x)")), "80");
    assert_eq!(text(s.eval_line("let y = twice(x) + 1; y")), "81");
    let vars = text(s.eval_line(":vars"));
    assert!(
        vars.contains("x: i64 = 40") && vars.contains("y: i64 = 81"),
        "{vars}"
    );
    assert_eq!(s.eval_line(":quit"), Outcome::Quit);
}

#[test]
fn repl_multiline_input_and_completion() {
    let s = session();
    assert!(!s.is_complete("fn f(a) {"));
    assert!(!s.is_complete("let m = #{a: 1,"));
    assert!(!s.is_complete("let s = \"open"));
    assert!(s.is_complete("fn f(a) { a } // {"));
    assert!(s.is_complete("let s = \"{\";"));
    let (start, c) = s.complete("par", 3);
    assert_eq!(start, 0);
    assert!(
        c.contains(&"param".to_string()) && c.contains(&"params".to_string()),
        "{c:?}"
    );
    let (_, c) = s.complete(":he", 3);
    assert_eq!(c, vec![":help".to_string()]);
}

#[test]
fn help_shows_doc_comments_with_examples() {
    let mut s = session();
    let h = text(s.eval_line(":help param"));
    assert!(
        h.contains("param(name: String, default)") && h.contains("```rhai"),
        "{h}"
    );
    let h = text(s.eval_line("help(\"param\")"));
    assert!(h.contains("--set"), "{h}");
    let h = text(s.eval_line(":help parm"));
    assert!(h.contains("did you mean") && h.contains("param"), "{h}");
    let h = text(s.eval_line(":functions"));
    assert!(h.contains("params()"), "{h}");
    // An object's help lists its constructors (free functions returning it).
    let h = text(s.eval_line(":help Trainer"));
    assert!(
        h.contains("Trainer(settings: Map) -> Trainer") && h.contains("Trainer.fit("),
        "{h}"
    );
}

#[test]
fn every_primeflow_function_has_a_documented_example() {
    let s = session();
    let idx = script::HelpIndex::from_engine(s.engine());
    let mut missing = Vec::new();
    for d in idx.functions() {
        // Script-defined stdlib helpers and native functions alike.
        if d.name.starts_with("to_string") || d.name.starts_with("to_debug") {
            continue;
        }
        if !d.doc.contains("```") {
            missing.push(d.signature.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "functions without a doc example: {missing:#?}"
    );
}

#[test]
fn core_errors_are_catchable_with_kind_and_message() {
    let (r, out) = run_captured(
        r#"
        try { param("nope") } catch (err) { print(err.kind); print(err.message); }
        "#,
        Limits::default(),
    );
    assert!(r.is_ok(), "{r:?}");
    assert!(out.starts_with("invalid\n"), "{out}");
    assert!(out.contains("'nope' was not given"), "{out}");
}

#[test]
fn limits_stop_a_runaway_loop() {
    let limits = Limits {
        max_operations: 100_000,
        ..Limits::default()
    };
    let (r, _) = run_captured("let i = 0;\nloop { i += 1; }", limits);
    let f = r.expect_err("the loop must be stopped");
    assert_eq!(f.kind, "limit");
    assert_eq!(f.line, Some(2));
    let limits = Limits {
        max_array_size: 100,
        ..Limits::default()
    };
    let (r, _) = run_captured("let a = [];\nfor i in 0..1000 { a.push(i); }", limits);
    assert_eq!(r.expect_err("array limit").kind, "limit");
    let (r, _) = run_captured("fn f(n) { f(n + 1) }\nf(0);", Limits::default());
    assert_eq!(r.expect_err("call depth").kind, "limit");
}

#[test]
fn runner_reports_file_line_and_column_and_exits_non_zero() {
    let dir = tmpdir("script_runner_error");
    let path = dir.join("bad.rhai");
    std::fs::write(
        &path,
        "let a = 1;\nlet b = a + 1;\nlet c = param(\"missing\");\n",
    )
    .unwrap();
    let (code, _, err) = primeflow(&["run", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.rhai:3:9:") && err.contains("'missing' was not given"),
        "{err}"
    );
    assert!(err.contains("   3 | let c = param"), "{err}");
    // Syntax errors name the line too.
    std::fs::write(&path, "let a = 1;\nlet b = a +;\n").unwrap();
    let (code, _, err) = primeflow(&["run", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("bad.rhai:2:"), "{err}");
    // A script-level throw: exit 1.
    std::fs::write(&path, "\n\nthrow \"stop here\";\n").unwrap();
    let (code, _, err) = primeflow(&["run", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.rhai:3:1:") && err.contains("stop here"),
        "{err}"
    );
}

#[test]
fn runner_passes_typed_set_values() {
    let dir = tmpdir("script_runner_set");
    let path = dir.join("set.rhai");
    std::fs::write(
        &path,
        r#"
        let steps = param("steps", 10);
        let lr = param("lr", 0.1);
        let name = param("name", "x");
        let ws = param("ws", [1.0]);
        print(`${steps} ${type_of(steps)} ${lr} ${type_of(lr)} ${name} ${ws.len()} ${flag}`);
        "#,
    )
    .unwrap();
    let (code, out, err) = primeflow(&[
        "run",
        path.to_str().unwrap(),
        "--set",
        "steps=3",
        "--set",
        "lr=1",
        "--set",
        "name=abc",
        "--set",
        "ws=[1,3,5]",
        "--set",
        "flag=true",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "3 i64 1.0 f64 abc 3 true");
    assert!(
        err.contains("--set flag was given but the script never asked"),
        "{err}"
    );
    let (code, _, err) = primeflow(&[
        "run",
        path.to_str().unwrap(),
        "--set",
        "steps=abc",
        "--set",
        "flag=1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--set steps") && err.contains("not an integer"),
        "{err}"
    );
}

/// Runs every tests/scripts/*.rhai in-process (CPU, tiny seeded configs):
/// each asserts its numbers through the stdlib's `check::` helpers.
#[test]
fn regression_scripts_pass() {
    primeflow::progress::set_quiet(true);
    let dir = root().join("tests/scripts");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    scripts.sort();
    assert!(
        scripts.len() >= 3,
        "no regression scripts in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for s in &scripts {
        let name = s.file_stem().unwrap().to_string_lossy().to_string();
        let out = tmpdir(&format!("script_regression_{name}"));
        let sets = vec![
            (
                "devel".to_string(),
                rhai::Dynamic::from(crate::common::devel().display().to_string()),
            ),
            (
                "out".to_string(),
                rhai::Dynamic::from(out.display().to_string()),
            ),
        ];
        let t = std::time::Instant::now();
        let r = script::run_file(
            s,
            sets,
            &Limits::default(),
            Some(Rc::new(RefCell::new(String::new()))),
        );
        println!("{name}: {:.1}s", t.elapsed().as_secs_f64());
        if let Err(f) = r {
            failures.push(f.render());
        }
    }
    assert!(
        failures.is_empty(),
        "regression scripts failed:\n{}",
        failures.join("\n\n")
    );
    // The PCA view they wrote is self-contained HTML.
    let html =
        std::fs::read_to_string(root().join("target/test-tmp/script_regression_pca_view/pca.html"))
            .unwrap();
    assert!(
        !primeflow::plot::has_external_script(&html),
        "the HTML loads a script from elsewhere"
    );
    assert!(
        html.contains("Plotly.newPlot") && html.len() > 1_000_000,
        "plotly.js is not inlined"
    );
}

/// The real REPL (piped stdin): Ctrl-C (SIGINT) during `fit` stops the
/// training, returns to the prompt, and every variable survives.
#[test]
fn repl_ctrl_c_during_fit_returns_to_the_prompt() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tmpdir("script_repl_ctrl_c");
    let mut child = Command::new(crate::common::bin())
        .args(["repl", "--history", dir.join("history").to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the REPL");
    let mut stdin = child.stdin.take().unwrap();
    let lines = "let x = 41;\nlet data = Dataset::simulate(#{preset: \"tiny\", seed: 0});\nlet model = MlpVelocity(\"tiny\");\nlet trainer = Trainer(#{steps: 1000000, log_every: 10});\ntrainer.fit(model, data);\n";
    stdin.write_all(lines.as_bytes()).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stdin
        .write_all(b"print(`x=${x + 1} built=${model.is_built} interrupted=${trainer.history.interrupted}`);\n:quit\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the REPL did not exit cleanly: {stderr}"
    );
    assert!(
        stderr.contains("training interrupted after step"),
        "{stderr}"
    );
    assert!(
        stdout.contains("x=42 built=true interrupted=true"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}
#[test]
fn every_script_in_scripts_compiles() {
    let s = session();
    let dir = root().join("scripts");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "rhai") {
            let src = std::fs::read_to_string(&p).unwrap();
            if let Err(err) = s.engine().compile(&src) {
                panic!("{}: {err}", p.display());
            }
            n += 1;
        }
    }
    assert!(
        n >= 4,
        "expected the four preset scripts in scripts/, found {n}"
    );
}

/// The README's main job with the tiny preset (CI: well under a minute on
/// 2 idle cores): `primeflow run scripts/quickstart.rhai` trains every
/// model of the comparison, samples, evaluates and leaves the report whose
/// paths it prints.
#[test]
fn quickstart_runs_end_to_end_with_the_tiny_preset() {
    let out = tmpdir("script_quickstart");
    let script = root().join("scripts/quickstart.rhai");
    let t = std::time::Instant::now();
    let (code, stdout, stderr) = primeflow(&[
        "run",
        script.to_str().unwrap(),
        "--set",
        "preset=tiny",
        "--set",
        "guidance=[1.0, 3.0]",
        "--set",
        &format!("out={}", out.display()),
    ]);
    println!("quickstart (tiny): {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    // The comparison table: one row per flow and guidance weight, one per
    // other model, all ten metrics.
    for row in [
        "PRiMeFlow U-Net w=1.0",
        "PRiMeFlow U-Net w=3.0",
        "PRiMeFlow MLP w=3.0",
        "Latent Additive",
        "Additive",
        "Control",
    ] {
        assert!(stdout.contains(row), "no row '{row}': {stdout}");
    }
    assert!(stdout.contains("mmd_pca_rank"), "{stdout}");
    // Every report file exists and its path is printed.
    for f in ["metrics.csv", "metrics.md", "report.html"] {
        let p = out.join(f);
        assert!(p.exists(), "{} is missing", p.display());
        assert!(
            stdout.contains(&p.display().to_string()),
            "{f} path not printed: {stdout}"
        );
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 8, "header, 2 x 2 flow rows, 3 others: {csv}");
    assert!(
        lines[0].starts_with("model,n_runs,rmse_average_mean,rmse_average_sd"),
        "{csv}"
    );
    // Numbers are finite and in range: rmse > 0, cosine in [-1, 1].
    let row: Vec<&str> = lines[1].split(',').collect();
    let rmse: f64 = row[2].parse().unwrap();
    assert!(rmse.is_finite() && rmse > 0.0, "{csv}");
    // Per-run tables read back through Metrics::load.
    assert!(out.join("runs/PRiMeFlow_U_Net_w_3.0_seed0.json").exists());
    // One report page: every figure, plotly.js inlined once.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!primeflow::plot::has_external_script(&page));
    assert!(
        page.matches("Plotly.newPlot").count() >= 3,
        "PCA view, loss, bars"
    );
}

/// One model's row of a `metrics.csv` written by `experiment::run`:
/// metric name -> mean.
fn csv_means(
    csv: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>> {
    // Fields split at commas outside double quotes (labels may hold commas).
    let fields = |line: &str| -> Vec<String> {
        let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        for ch in line.chars() {
            match ch {
                '"' => quoted = !quoted,
                ',' if !quoted => out.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        out.push(cur);
        out
    };
    let mut lines = csv.lines();
    let header = fields(lines.next().unwrap_or_default());
    let mut out = std::collections::BTreeMap::new();
    for line in lines {
        let cells = fields(line);
        let mut row = std::collections::BTreeMap::new();
        for (h, c) in header.iter().zip(&cells) {
            if let Some(metric) = h.strip_suffix("_mean") {
                row.insert(metric.to_string(), c.parse::<f64>().unwrap_or(f64::NAN));
            }
        }
        out.insert(cells[0].clone(), row);
    }
    out
}

/// The main job itself, as `make demo` runs it (about two minutes on 2
/// cores, one libtorch thread): on its simulated covariate-transfer data
/// with responder / non-responder cells the U-Net must beat every other
/// model on mmd_gex and mmd_pca (the bimodal response no mean shift
/// reproduces) and the `control` floor on every metric. Deterministic: the
/// script seeds every draw.
#[test]
fn the_main_job_shows_the_unet_winning() {
    let out = tmpdir("script_main_job");
    let script = root().join("scripts/quickstart.rhai");
    let t = std::time::Instant::now();
    let (code, stdout, stderr) = primeflow(&[
        "run",
        script.to_str().unwrap(),
        "--set",
        &format!("out={}", out.display()),
    ]);
    println!("main job: {:.1}s\n{stdout}", t.elapsed().as_secs_f64());
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let table = csv_means(&std::fs::read_to_string(out.join("metrics.csv")).unwrap());
    let unet = &table["PRiMeFlow U-Net"];
    for (name, row) in &table {
        if name == "PRiMeFlow U-Net" {
            continue;
        }
        for m in ["mmd_gex", "mmd_pca"] {
            assert!(
                unet[m] < row[m],
                "{m}: U-Net {} is not below {name} {}\n{stdout}",
                unet[m],
                row[m]
            );
        }
    }
    let control = &table["Control"];
    for (m, v) in unet {
        let higher_better = m == "cosine_logfc" || m == "deg_recall";
        let ok = if higher_better {
            *v > control[m]
        } else {
            *v < control[m]
        };
        assert!(
            ok,
            "{m}: U-Net {v} does not beat Control {}\n{stdout}",
            control[m]
        );
    }
}

/// The README's two experiment scripts at the tiny size, as a user runs
/// them (one process each, files between them): `paper_table.rhai` trains
/// all nine model kinds and writes one row per flow and guidance weight and
/// one per other model; `recipe_curve.rhai` writes one row per floor and per
/// (preset, steps) run, labelled with its training minutes.
#[test]
fn paper_table_and_recipe_curve_run_at_tiny_size() {
    let out = tmpdir("script_paper_table");
    let (code, stdout, stderr) = primeflow(&[
        "run",
        root().join("scripts/paper_table.rhai").to_str().unwrap(),
        "--set",
        "preset=tiny",
        "--set",
        "seeds=[0]",
        "--set",
        "guidance=[1.0, 3.0]",
        "--set",
        &format!("out={}", out.display()),
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let table = csv_means(&std::fs::read_to_string(out.join("metrics.csv")).unwrap());
    assert_eq!(table.len(), 4 * 2 + 5, "{table:?}");
    for row in [
        "FM PCA OT w=3.0",
        "Decoder-only",
        "Linear Additive",
        "Additive",
        "Control",
    ] {
        assert!(
            table.contains_key(row),
            "no row '{row}': {:?}",
            table.keys()
        );
    }
    assert!(out.join("report.html").exists());

    let out = tmpdir("script_recipe_curve");
    let (code, stdout, stderr) = primeflow(&[
        "run",
        root().join("scripts/recipe_curve.rhai").to_str().unwrap(),
        "--set",
        "preset=tiny",
        "--set",
        r#"curve=[{"name": "U-Net cpu", "kind": "unet", "preset": "cpu", "steps": [5, 10]}, {"name": "MLP cpu", "kind": "mlp", "preset": "cpu", "steps": [20]}]"#,
        "--set",
        &format!("out={}", out.display()),
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let table = csv_means(&std::fs::read_to_string(out.join("curve.csv")).unwrap());
    let names: Vec<&String> = table.keys().collect();
    assert_eq!(table.len(), 5, "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("U-Net cpu, 10 steps (") && n.ends_with(" min)")),
        "{names:?}"
    );
    assert!(table.values().all(|r| r["mmd_gex"].is_finite()));
}

/// The README's solver benchmark command at tiny size: every run appears in
/// the table with its measured NFE (Heun's 2 per step, dopri5's adaptive
/// count), and the report holds the quality-vs-NFE figures.
#[test]
fn solver_curve_runs_at_tiny_size() {
    let out = tmpdir("script_solver_curve");
    let (code, stdout, stderr) = primeflow(&[
        "run",
        root().join("scripts/solver_curve.rhai").to_str().unwrap(),
        "--set",
        "preset=tiny",
        "--set",
        "steps=[2, 4]",
        "--set",
        r#"solvers=["euler", "heun"]"#,
        "--set",
        "tolerances=[0.1]",
        "--set",
        &format!("out={}", out.display()),
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let md = std::fs::read_to_string(out.join("solvers.md")).unwrap();
    for row in [
        "Euler 100 steps (paper) (100.0 NFE,",
        "euler 2 steps (2.0 NFE,",
        "heun 4 steps (8.0 NFE,",
        "dopri5 tol 0.1 (",
    ] {
        assert!(md.contains(row), "no row '{row}' in\n{md}");
    }
    let dopri = md.lines().find(|l| l.contains("dopri5 tol 0.1 (")).unwrap();
    let nfe: f64 = dopri
        .split("dopri5 tol 0.1 (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(
        nfe >= 6.0,
        "dopri5 NFE {nfe}: at least one 6-evaluation step"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("mmd_gex against velocity evaluations"));
}

#[test]
fn vcc_script_runs_at_tiny_size() {
    // scripts/vcc.rhai at its CI size: simulate, truth-derived embeddings,
    // unseen-perturbation split, embedding MLP and the two floors, export,
    // cell-eval's VCC profile, report.
    let out = tmpdir("script_vcc");
    let (code, stdout, stderr) = primeflow(&[
        "run",
        root().join("scripts/vcc.rhai").to_str().unwrap(),
        "--set",
        "preset=tiny",
        "--set",
        &format!("out={}", out.display()),
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    for f in [
        "embeddings.tsv",
        "embeddings_shuffled.tsv",
        "real.h5ad",
        "submission.h5ad",
        "submission_control.h5ad",
        "submission_mean.h5ad",
        "vcc.json",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "no {f}: {stdout}");
    }
    for row in [
        "| model | overlap_at_N | mae | discrimination_score_l1 |",
        "| mlp + embeddings |",
        "| mean of training perturbations (floor) |",
    ] {
        assert!(stdout.contains(row), "no '{row}' in\n{stdout}");
    }
    // The submission is what the challenge reads: target_gene with
    // non-targeting controls, the data's genes.
    let sub = primeflow::data::Dataset::load(
        &out.join("submission.h5ad"),
        &primeflow::data::LoadOptions {
            columns: primeflow::data::ObsColumns {
                perturbation: "target_gene".into(),
                covariates: vec![],
                control: "non-targeting".into(),
            },
            allow_negative: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(sub.n_genes(), 48);
    let labels = sub.conditions();
    assert!(labels.contains(&"non-targeting".to_string()), "{labels:?}");
    assert!(labels.len() >= 2, "{labels:?}");
}

#[test]
fn model_maps_take_embedding_conditions_and_sample_unseen_perturbations() {
    let dir = tmpdir("script_embedding_model");
    let mut s = session();
    // Simulated data with its truth-derived table; P000 is held out of
    // training, then sampled from the table's vector.
    let setup = format!(
        r#"let data = Dataset::simulate(#{{preset: "tiny", n_cell_lines: 1, n_combinations: 0, seed: 0}});
           let files = simulated_embeddings(data, "{}/emb.tsv", #{{dim: 8}});
           let train = data.subset(#{{condition: data.conditions().filter(|c| c != "P000")}});"#,
        dir.display()
    );
    assert_eq!(s.eval_line(&setup), Outcome::Nothing);
    assert!(dir.join("emb_shuffled.tsv").is_file());
    let e =
        error(s.eval_line(r#"MlpVelocity(#{preset: "tiny", condition_encoding: "embedding"})"#));
    assert!(e.contains("needs 'embeddings'"), "{e}");
    let e = error(s.eval_line(r#"MlpVelocity(#{preset: "tiny", embeddings: "/no/such.tsv"})"#));
    assert!(e.contains("/no/such.tsv"), "{e}");
    assert_eq!(
        s.eval_line(
            r#"let m = MlpVelocity(#{preset: "tiny", embeddings: files.embeddings});
               let fit = Trainer(#{steps: 3}).fit(m, train);"#
        ),
        Outcome::Nothing
    );
    let n = text(s.eval_line(r#"Sampler(#{cells: 4, steps: 2}).sample(m, "P000 @ K562").n_cells"#));
    assert_eq!(n, "4");
    // A multi-hot model cannot encode it.
    assert_eq!(
        s.eval_line(
            r#"let h = MlpVelocity("tiny"); let fit2 = Trainer(#{steps: 1}).fit(h, train);"#
        ),
        Outcome::Nothing
    );
    let e = error(s.eval_line(r#"Sampler(#{cells: 4, steps: 2}).sample(h, "P000 @ K562")"#));
    assert!(e.contains("P000"), "{e}");
}
