//! Tests: every model kind through the README's command-line sequence, as a
//! user runs it (separate processes, files between them): simulate, split,
//! train, sample, evaluate.

use crate::common::{self, evaluate_test, run_ok, sample_test, simulate_tiny, split, tmpdir};

#[test]
fn every_model_kind_trains_samples_and_evaluates_from_the_cli() {
    let dir = tmpdir("kinds_cli");
    let p = |name: &str| dir.join(name).display().to_string();
    let sim = simulate_tiny(&dir, "3", &[]);
    split(&sim, "combination", &p("split.csv"), &["--seed", "42"]);
    for kind in primeflow::model::ModelConfig::KINDS {
        let run_dir = p(&format!("runs/{kind}"));
        let pred = p(&format!("pred_{kind}.h5ad"));
        let json = p(&format!("eval_{kind}.json"));
        run_ok(&[
            "train",
            "--data",
            &sim,
            "--model",
            kind,
            "--preset",
            "tiny",
            "--split",
            &p("split.csv"),
            "--steps",
            "20",
            "--batch-size",
            "32",
            "--seed",
            "0",
            "--out",
            &run_dir,
            "--quiet",
        ]);
        sample_test(
            &run_dir,
            &pred,
            &["--cells-per-unit", "40", "--steps", "5", "--seed", "1"],
        );
        let (out, ev) = evaluate_test(&pred, &sim, &p("split.csv"), &json, &[]);
        let summary = ev["summary"].as_object().unwrap();
        assert_eq!(summary.len(), 10, "{kind}: {out}");
        for m in ["rmse_average", "mmd_gex", "mmd_pca", "cosine_logfc"] {
            let v = summary[m].as_f64();
            assert!(
                v.is_some_and(f64::is_finite),
                "{kind}: {m} = {:?}\n{out}",
                summary[m]
            );
        }
        // The test part's units only: nothing is reported missing.
        assert!(
            ev["only_in_ref"].as_array().unwrap().is_empty(),
            "{kind}: {out}"
        );
    }
    // The README's `evaluate --task combination --stream`: the split named by
    // task (seed 42, as `split` made it) and X read unit by unit give the
    // --split CSV's numbers.
    let streamed = p("eval_unet_stream.json");
    run_ok(&[
        "evaluate",
        "--pred",
        &p("pred_unet.h5ad"),
        "--ref",
        &sim,
        "--task",
        "combination",
        "--stream",
        "--json",
        &streamed,
        "--quiet",
    ]);
    let (a, b) = (
        common::read_json(std::path::Path::new(&streamed)),
        common::read_json(std::path::Path::new(&p("eval_unet.json"))),
    );
    assert_eq!(a["summary"], b["summary"]);
    assert_eq!(a["per_unit"], b["per_unit"]);
    // Settings a kind does not have are clear errors listing the valid keys.
    std::fs::write(dir.join("cfg.json"), r#"{"model": {"tau_a": 0.9}}"#).unwrap();
    let (code, out, err) = common::primeflow(&[
        "train",
        "--data",
        &sim,
        "--model",
        "unet",
        "--preset",
        "tiny",
        "--config",
        &p("cfg.json"),
        "--out",
        &p("runs/bad"),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("tau_a") && err.contains("hidden_dim"), "{err}");
    // Guidance belongs to flow models.
    let (code, _, err) = common::primeflow(&[
        "sample",
        "--checkpoint",
        &p("runs/additive"),
        "--which",
        "test",
        "--guidance",
        "3",
        "--out",
        &p("bad.h5ad"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("guidance"), "{err}");
}

#[test]
fn rerunning_a_train_command_with_resume_appended_continues_it() {
    let dir = tmpdir("kinds_resume_repeat");
    let p = |name: &str| dir.join(name).display().to_string();
    let sim = simulate_tiny(&dir, "4", &[]);
    let base = [
        "train",
        "--data",
        &sim,
        "--model",
        "mlp",
        "--preset",
        "tiny",
        "--task",
        "combination",
        "--batch-size",
        "16",
        "--seed",
        "1",
        "--out",
        &p("run"),
        "--quiet",
    ];
    let mut first = base.to_vec();
    first.extend(["--steps", "4"]);
    run_ok(&first);
    // The same command with --resume appended (and more steps) continues.
    let mut again = base.to_vec();
    again.extend(["--steps", "8", "--resume"]);
    let out = run_ok(&again);
    assert!(out.contains("Step 8"), "{out}");
    // A changed setting is refused, naming the flag and both values.
    let mut changed: Vec<&str> = base
        .iter()
        .map(|a| if *a == "1" { "2" } else { *a })
        .collect();
    changed.extend(["--steps", "10", "--resume", "--lr", "0.5"]);
    let (code, _, err) = common::primeflow(&changed);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--lr") && err.contains("0.5") && err.contains("--seed"),
        "{err}"
    );
    assert!(
        !err.contains("--model") && !err.contains("--batch-size"),
        "{err}"
    );
}
