//! Tests: the command-line argument groups shared by several commands
//! (`cli::args`): a flag means the same thing in every command.

use crate::common;

/// The scored units (`per_unit` rows) of an `evaluate --json` report.
fn scored(json: &std::path::Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    v["per_unit"].as_array().unwrap().clone()
}

#[test]
fn split_flags_name_the_same_split_in_split_and_evaluate() {
    let devel = common::devel();
    if !devel.exists() {
        eprintln!("skipped: {} not found", devel.display());
        return;
    }
    let d = devel.to_str().unwrap();
    let dir = common::tmpdir("cli_split_args");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let csv = dir.join("split.csv");
    // `split` takes the column flags of `train` and `evaluate`; a comma
    // list of covariate columns is one column here.
    let (code, _, err) = common::primeflow(&[
        "split",
        d,
        "--task",
        "covariate-transfer",
        "--covariate-col",
        "cell_type",
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{err}");
    let evaluate = |extra: &[&str], json: &std::path::Path| {
        let mut a = vec![
            "evaluate",
            "--pred",
            d,
            "--ref",
            d,
            "--metrics",
            "rmse_average",
            "--quiet",
        ];
        a.extend_from_slice(extra);
        let j = s(json);
        a.extend_from_slice(&["--json", &j]);
        let (code, _, err) = common::primeflow(&a);
        assert_eq!(code, 0, "{err}");
        scored(json)
    };
    let whole = evaluate(&[], &dir.join("whole.json"));
    let from_csv = evaluate(&["--split", &s(&csv)], &dir.join("csv.json"));
    let from_task = evaluate(&["--task", "covariate-transfer"], &dir.join("task.json"));
    let other_seed = evaluate(
        &["--task", "covariate-transfer", "--split-seed", "7"],
        &dir.join("seed7.json"),
    );
    // The generated split is the CSV's split: same units, same numbers.
    assert_eq!(from_csv, from_task);
    assert!(
        !from_csv.is_empty() && from_csv.len() < whole.len(),
        "{} of {} units",
        from_csv.len(),
        whole.len()
    );
    // --split-seed reaches the generator: other held-out units.
    assert!(!other_seed.is_empty());
    assert_ne!(other_seed, from_task);
    // --split and --task together are refused by the shared group.
    let (code, _, err) = common::primeflow(&[
        "evaluate",
        "--pred",
        d,
        "--ref",
        d,
        "--split",
        &s(&csv),
        "--task",
        "combination",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--task") || err.contains("--split"), "{err}");
}
