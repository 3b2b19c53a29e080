//! Tests: export (Virtual Cell Challenge submission files, issue 4 section 5).

use std::path::Path;

use primeflow::anndata::{
    inspect_h5ad, read_h5ad, write_h5ad, AnnData, Categorical, Column, DataFrame, ReadOptions,
    WriteOptions,
};
use primeflow::data::{Dataset, ObsColumns};
use primeflow::export::{export_vcc, read_gene_list, vcc_anndata};

use crate::common;

/// A prediction with genes G0..G3 and (condition, values) cells.
fn prediction(cells: &[(&str, [f32; 4])]) -> AnnData {
    let mut x = ndarray::Array2::<f32>::zeros((cells.len(), 4));
    for (i, (_, v)) in cells.iter().enumerate() {
        for (j, &e) in v.iter().enumerate() {
            x[[i, j]] = e;
        }
    }
    let mut obs = DataFrame::with_index((0..cells.len()).map(|i| format!("cell{i}")).collect());
    let cond: Vec<&str> = cells.iter().map(|c| c.0).collect();
    obs.insert(
        "condition",
        Column::Categorical(Categorical::from_labels(&cond, true)),
    )
    .unwrap();
    AnnData {
        x: x.into(),
        obs,
        var: DataFrame::with_index((0..4).map(|j| format!("G{j}")).collect()),
        ..Default::default()
    }
}

fn cols() -> ObsColumns {
    ObsColumns {
        covariates: vec![],
        ..Default::default()
    }
}

fn small() -> Dataset {
    let ad = prediction(&[
        ("control", [1.0, 0.0, 2.0, 3.0]),
        ("KLF1", [0.0, 4.0, 0.5, 0.0]),
        ("ctrl", [2.0, 0.0, 0.0, 1.0]),
        ("MAP2K6", [0.0, 0.0, 0.0, 7.0]),
    ]);
    Dataset::from_anndata(ad, cols(), None, false).unwrap()
}

fn write_genes(path: &Path, genes: &[&str]) {
    std::fs::write(path, genes.join("\n") + "\n").unwrap();
}

#[test]
fn export_picks_genes_in_list_order_and_labels_controls() {
    let dir = common::tmpdir("export_vcc_lib");
    let out = dir.join("sub.h5ad");
    let genes: Vec<String> = ["G3", "G1", "G0"].iter().map(|s| s.to_string()).collect();
    let report = export_vcc(&small(), &genes, &out).unwrap();
    assert_eq!(
        (
            report.n_cells,
            report.n_genes,
            report.n_perturbations,
            report.n_controls
        ),
        (4, 3, 2, 2)
    );
    let ad = read_h5ad(&out, &ReadOptions::default()).unwrap();
    assert_eq!(ad.var.index, genes, "var names are the list, in its order");
    let labels: Vec<String> = (0..4)
        .map(|i| ad.obs.get("target_gene").unwrap().label(i).unwrap())
        .collect();
    assert_eq!(
        labels,
        vec!["non-targeting", "KLF1", "non-targeting", "MAP2K6"]
    );
    // Row 1 (KLF1) was G0..G3 = [0, 4, 0.5, 0] -> G3, G1, G0 = [0, 4, 0].
    assert_eq!(ad.x.row_vec(1), vec![0.0, 4.0, 0.0]);
    assert_eq!(ad.x.row_vec(3), vec![7.0, 0.0, 0.0]);
    let info = inspect_h5ad(&out).unwrap();
    assert_eq!(info.x.encoding, "csr");
    assert_eq!(info.x.dtype, "float32");
}

#[test]
fn export_errors_name_the_problem() {
    let ds = small();
    let genes: Vec<String> = ["G0", "NOPE", "G2", "ALSO_NOPE"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let e = vcc_anndata(&ds, &genes).unwrap_err().to_string();
    assert!(
        e.contains("2 of the 4 genes") && e.contains("NOPE") && e.contains("ALSO_NOPE"),
        "{e}"
    );
    // No control cells.
    let ad = prediction(&[("KLF1", [1.0; 4])]);
    let e = vcc_anndata(
        &Dataset::from_anndata(ad, cols(), None, false).unwrap(),
        &["G0".to_string()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("non-targeting"), "{e}");
    // More than 200,000 cells.
    let n = 200_001;
    let mut obs = DataFrame::with_index((0..n).map(|i| i.to_string()).collect());
    let labels: Vec<&str> = (0..n)
        .map(|i| if i % 2 == 0 { "control" } else { "A" })
        .collect();
    obs.insert(
        "condition",
        Column::Categorical(Categorical::from_labels(&labels, true)),
    )
    .unwrap();
    let big = AnnData {
        x: ndarray::Array2::zeros((n, 1)).into(),
        obs,
        var: DataFrame::with_index(vec!["G0".into()]),
        ..Default::default()
    };
    let big = Dataset::from_anndata(big, cols(), None, false).unwrap();
    let e = vcc_anndata(&big, &["G0".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("200001 cells") && e.contains("200000"), "{e}");
    // Gene lists: first CSV field, no header; duplicates are an error.
    let dir = common::tmpdir("export_vcc_genes");
    let p = dir.join("genes.csv");
    std::fs::write(&p, "G1,x\n\n\"G0\"\n").unwrap();
    assert_eq!(read_gene_list(&p).unwrap(), vec!["G1", "G0"]);
    std::fs::write(&p, "G1\nG0\nG1\n").unwrap();
    let e = read_gene_list(&p).unwrap_err().to_string();
    assert!(e.contains("G1") && e.contains("line 3"), "{e}");
}

#[test]
fn export_vcc_cli_and_cell_eval_prep() {
    let dir = common::tmpdir("export_vcc_cli");
    let pred = dir.join("pred.h5ad");
    write_h5ad(&pred, &small().to_anndata(), &WriteOptions::default()).unwrap();
    let genes = dir.join("genes.csv");
    write_genes(&genes, &["G2", "G0", "G1", "G3"]);
    let out = dir.join("submission.h5ad");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (code, stdout, err) = common::primeflow(&[
        "export-vcc",
        "--pred",
        &s(&pred),
        "--genes",
        &s(&genes),
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("4 cells x 4 genes"), "{stdout}");
    // An unclipped flow sample has small negative values: exported as
    // generated (evaluate scores it the same way), not refused.
    let neg = dir.join("neg.h5ad");
    let ad = prediction(&[
        ("control", [1.0, 0.0, 2.0, 3.0]),
        ("KLF1", [-0.02, 4.0, 0.5, 0.0]),
    ]);
    write_h5ad(&neg, &ad, &WriteOptions::default()).unwrap();
    let (code, stdout, err) = common::primeflow(&[
        "export-vcc",
        "--pred",
        &s(&neg),
        "--genes",
        &s(&genes),
        "--out",
        &s(&dir.join("neg_submission.h5ad")),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("2 cells x 4 genes"), "{stdout}");
    let bad = dir.join("bad.csv");
    write_genes(&bad, &["G0", "MISSING1"]);
    let (code, _, err) = common::primeflow(&[
        "export-vcc",
        "--pred",
        &s(&pred),
        "--genes",
        &s(&bad),
        "--out",
        &s(&dir.join("x.h5ad")),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MISSING1"), "{err}");
    assert!(!dir.join("x.h5ad").exists(), "no file on error");

    // The challenge's own tool, when installed.
    let cell_eval = common::root().join(".venv/bin/cell-eval");
    if !common::python_has("cell_eval") || !cell_eval.exists() {
        println!("skipped: cell-eval is not installed in .venv (pip install cell-eval)");
        return;
    }
    if std::process::Command::new("zstd")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: cell-eval prep needs zstd on PATH");
        return;
    }
    let vcc = dir.join("submission.vcc");
    let o = std::process::Command::new(&cell_eval)
        .args([
            "prep",
            "-i",
            &s(&out),
            "-g",
            &s(&genes),
            "-o",
            &s(&vcc),
            "--expected-gene-dim",
            "-1",
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cell-eval prep failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(vcc.exists(), "cell-eval prep wrote no {}", vcc.display());
}
