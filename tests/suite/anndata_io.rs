//! Tests: anndata_io — .h5ad reading, writing, the streaming writer, `primeflow
//! info`, a corpus of malformed files, and round trips with Python anndata.

use std::path::{Path, PathBuf};

use ndarray::{s, Array2};
use primeflow::anndata::{
    inspect_h5ad, read_h5ad, write_h5ad, AnnData, Categorical, Column, DataFrame, H5adStreamWriter,
    ReadOptions, WriteOptions, XFormat,
};
use serde_json::json;

use crate::common;

/// A small AnnData with every column kind, a `counts` layer and nested uns.
/// X is `[7, 5]`, about half zeros, values `i + j/10` style so every cell
/// differs.
fn sample() -> AnnData {
    let (n, m) = (7, 5);
    let x = Array2::from_shape_fn((n, m), |(i, j)| {
        if (i + j) % 2 == 0 {
            0.0
        } else {
            i as f32 + j as f32 / 10.0 + 0.25
        }
    });
    let counts = x.mapv(|v| (v * 4.0).round());
    let mut obs = DataFrame::with_index((0..n).map(|i| format!("cell{i}")).collect());
    let labels = ["control", "A", "B", "A+B", "control", "A", "B"];
    obs.insert(
        "condition",
        Column::Categorical(Categorical::from_labels(&labels, true)),
    )
    .unwrap();
    let mut ordered =
        Categorical::from_labels(&["low", "high", "low", "mid", "high", "low", "mid"], false);
    ordered.ordered = true;
    ordered.codes[3] = -1; // a missing value
    obs.insert("dose", Column::Categorical(ordered)).unwrap();
    obs.insert(
        "note",
        Column::Str((0..n).map(|i| format!("note ü {i}")).collect()),
    )
    .unwrap();
    obs.insert(
        "ncounts",
        Column::Float((0..n).map(|i| i as f64 * 1.5).collect()),
    )
    .unwrap();
    obs.insert(
        "ngenes",
        Column::Int((0..n).map(|i| i as i64 * 100 - 3).collect()),
    )
    .unwrap();
    obs.insert("qc", Column::Bool((0..n).map(|i| i % 3 == 0).collect()))
        .unwrap();
    obs.insert(
        "batch",
        Column::NullableInt(
            (0..n)
                .map(|i| if i == 2 { None } else { Some(i as i64) })
                .collect(),
        ),
    )
    .unwrap();
    obs.insert(
        "flag",
        Column::NullableBool(
            (0..n)
                .map(|i| if i == 4 { None } else { Some(i % 2 == 0) })
                .collect(),
        ),
    )
    .unwrap();
    let mut var = DataFrame::with_index((0..m).map(|j| format!("GENE{j}")).collect());
    var.index_name = "gene_symbol".into();
    var.insert(
        "means",
        Column::Float((0..m).map(|j| j as f64 / 3.0).collect()),
    )
    .unwrap();
    let uns = json!({
        "n_cells": 7, "scale": 0.5, "log1p": true, "title": "sample",
        "effects": [[1.0, -2.0], [3.5, 4.0]], "genes": ["GENE0", "GENE3"], "ids": [3, 1, 2],
        "truth": {"responder_fraction": {"A": 0.5, "B": 1.0}, "seed": 42}
    });
    let uns = uns.as_object().unwrap().clone();
    let mut layers = std::collections::BTreeMap::new();
    layers.insert("counts".to_string(), counts);
    AnnData {
        x,
        obs,
        var,
        layers,
        uns,
    }
}

fn read_all(path: &Path) -> AnnData {
    read_h5ad(
        path,
        &ReadOptions {
            load_layers: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn assert_same(a: &AnnData, b: &AnnData) {
    assert_eq!(a.x, b.x);
    assert_eq!(a.obs, b.obs);
    assert_eq!(a.var, b.var);
    assert_eq!(a.layers, b.layers);
    assert_eq!(a.uns, b.uns);
}

#[test]
fn roundtrip_csr_and_dense() {
    let dir = common::tmpdir("anndata_roundtrip");
    let ad = sample();
    for (fmt, name) in [(XFormat::Csr, "csr.h5ad"), (XFormat::Dense, "dense.h5ad")] {
        let p = dir.join(name);
        write_h5ad(
            &p,
            &ad,
            &WriteOptions {
                x_format: fmt,
                ..Default::default()
            },
        )
        .unwrap();
        let back = read_all(&p);
        assert_same(&ad, &back);
        let info = inspect_h5ad(&p).unwrap();
        assert_eq!((info.n_obs, info.n_vars), (7, 5));
        assert_eq!(
            info.x.encoding,
            if fmt == XFormat::Csr { "csr" } else { "dense" }
        );
    }
    // gzip-compressed output reads back the same.
    let p = dir.join("gz.h5ad");
    write_h5ad(
        &p,
        &ad,
        &WriteOptions {
            compression: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    assert_same(&ad, &read_all(&p));
    // No temporary file is left beside the outputs.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}

#[test]
fn row_subset_and_layer_option() {
    let dir = common::tmpdir("anndata_subset");
    let ad = sample();
    for fmt in [XFormat::Csr, XFormat::Dense] {
        let p = dir.join("s.h5ad");
        write_h5ad(
            &p,
            &ad,
            &WriteOptions {
                x_format: fmt,
                ..Default::default()
            },
        )
        .unwrap();
        let rows = vec![6, 0, 3, 3, 1];
        let sub = read_h5ad(
            &p,
            &ReadOptions {
                rows: Some(rows.clone()),
                load_layers: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_same(&ad.take_rows(&rows), &sub);
        let counts = read_h5ad(
            &p,
            &ReadOptions {
                layer: Some("counts".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(counts.x, ad.layers["counts"]);
        let err = read_h5ad(
            &p,
            &ReadOptions {
                layer: Some("raw".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("layers/raw") && err.contains("counts"),
            "{err}"
        );
        let err = read_h5ad(
            &p,
            &ReadOptions {
                rows: Some(vec![7]),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("row 7") && err.contains("7 cells"), "{err}");
    }
}

#[test]
fn stream_writer_appends_chunks_atomically() {
    let dir = common::tmpdir("anndata_stream");
    let ad = sample();
    for fmt in [XFormat::Csr, XFormat::Dense] {
        let p = dir.join("stream.h5ad");
        let opts = WriteOptions {
            x_format: fmt,
            ..Default::default()
        };
        let mut w = H5adStreamWriter::create(&p, &ad.var, &["counts"], &opts).unwrap();
        for (a, b) in [(0, 3), (3, 3), (3, 7)] {
            w.append_rows(
                ad.x.slice(s![a..b, ..]),
                &[ad.layers["counts"].slice(s![a..b, ..])],
            )
            .unwrap();
            assert!(!p.exists(), "the target appears only at finish");
        }
        assert_eq!(w.rows(), 7);
        w.finish(&ad.obs, &ad.uns).unwrap();
        assert_same(&ad, &read_all(&p));
        std::fs::remove_file(&p).unwrap();
    }
    // Wrong widths and wrong obs length are errors; an unfinished writer
    // leaves nothing behind.
    let p = dir.join("bad.h5ad");
    let mut w = H5adStreamWriter::create(&p, &ad.var, &[], &WriteOptions::default()).unwrap();
    let err = w
        .append_rows(Array2::<f32>::zeros((2, 4)).view(), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("4 genes") && err.contains("5"), "{err}");
    w.append_rows(ad.x.slice(s![0..2, ..]), &[]).unwrap();
    let err = w.finish(&ad.obs, &ad.uns).unwrap_err().to_string();
    assert!(
        err.contains("obs has 7 rows") && err.contains("2 cells"),
        "{err}"
    );
    let w = H5adStreamWriter::create(&p, &ad.var, &[], &WriteOptions::default()).unwrap();
    drop(w);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn write_rejects_inconsistent_anndata() {
    let dir = common::tmpdir("anndata_write_bad");
    let mut ad = sample();
    ad.obs = ad.obs.take(&[0, 1]);
    let err = write_h5ad(&dir.join("a.h5ad"), &ad, &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("obs has 2 rows"), "{err}");
    let mut ad = sample();
    ad.uns.insert("mixed".into(), json!([1, "a"]));
    let err = write_h5ad(&dir.join("a.h5ad"), &ad, &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("uns/mixed"), "{err}");
    assert!(!dir.join("a.h5ad").exists());
}

fn devel() -> PathBuf {
    common::devel()
}

/// Row `r` of devel.h5ad's X rebuilt from the raw CSR arrays, read with the
/// hdf5 crate directly (independent of primeflow's reader).
fn devel_raw_row(r: usize) -> Vec<(usize, f64)> {
    let f = hdf5::File::open(devel()).unwrap();
    let indptr: Vec<i64> = f.dataset("X/indptr").unwrap().read_raw().unwrap();
    let (a, b) = (indptr[r] as usize, indptr[r + 1] as usize);
    let data: Vec<f64> = f
        .dataset("X/data")
        .unwrap()
        .read_slice_1d(a..b)
        .unwrap()
        .to_vec();
    let idx: Vec<i64> = f
        .dataset("X/indices")
        .unwrap()
        .read_slice_1d(a..b)
        .unwrap()
        .to_vec();
    idx.into_iter().map(|j| j as usize).zip(data).collect()
}

#[test]
fn devel_shape_categories_and_values() {
    let ad = read_h5ad(&devel(), &ReadOptions::default()).unwrap();
    assert_eq!((ad.n_obs(), ad.n_vars()), (5961, 500));
    assert_eq!(ad.x.iter().filter(|&&v| v != 0.0).count(), 211_790);
    assert_eq!(ad.var.index_name, "gene_symbol");
    let Some(Column::Categorical(cond)) = ad.obs.get("condition") else {
        panic!("condition is not categorical")
    };
    assert_eq!(cond.categories.len(), 34);
    assert!(cond.categories.iter().any(|c| c == "KLF1+MAP2K6"));
    let Some(Column::Categorical(ct)) = ad.obs.get("cell_type") else {
        panic!("cell_type is not categorical")
    };
    assert_eq!(ct.categories, ["A172", "T98G", "U87MG", "k562"]);
    assert!(matches!(ad.obs.get("ngenes"), Some(Column::Int(_))));
    assert!(matches!(
        ad.var.get("highly_variable"),
        Some(Column::Bool(_))
    ));
    assert_eq!(ad.uns["hvg"]["flavor"], "seurat");
    // Values against the raw CSR arrays (indices unsorted within rows).
    let mut unsorted = false;
    for r in [0usize, 1, 2500, 5960] {
        let raw = devel_raw_row(r);
        unsorted |= raw.windows(2).any(|w| w[1].0 < w[0].0);
        let mut dense = vec![0f32; 500];
        for &(j, v) in &raw {
            dense[j] += v as f32;
        }
        assert_eq!(ad.x.row(r).to_vec(), dense, "row {r}");
        let sum: f64 = raw.iter().map(|&(_, v)| v).sum();
        let got: f64 = ad.x.row(r).iter().map(|&v| v as f64).sum();
        assert!((sum - got).abs() < 1e-3, "row {r}: {sum} vs {got}");
    }
    assert!(
        unsorted,
        "devel.h5ad is documented to have unsorted indices"
    );
}

#[test]
fn devel_row_subset_matches_full_read() {
    let full = read_h5ad(&devel(), &ReadOptions::default()).unwrap();
    let rows = vec![5960, 0, 17, 18, 19, 3000, 17, 4095, 4096, 4097];
    let sub = read_h5ad(
        &devel(),
        &ReadOptions {
            rows: Some(rows.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(sub.x, full.x.select(ndarray::Axis(0), &rows));
    assert_eq!(sub.obs, full.obs.take(&rows));
    assert_eq!(sub.var, full.var);
}

#[test]
fn devel_missing_layer_is_a_clear_error() {
    let err = read_h5ad(
        &devel(),
        &ReadOptions {
            layer: Some("counts".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), "format");
    let msg = err.to_string();
    assert!(
        msg.contains("devel.h5ad") && msg.contains("layers/counts") && msg.contains("no layers"),
        "{msg}"
    );
}

#[test]
fn info_cli_on_devel() {
    let d = devel();
    let (code, out, err) = common::primeflow(&["info", d.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["n_obs"].as_u64(), v["n_vars"].as_u64()),
        (Some(5961), Some(500))
    );
    assert_eq!(v["x"]["encoding"], "csr");
    assert_eq!(v["x"]["dtype"], "float64");
    assert_eq!(v["x"]["nnz"], 211_790);
    let col = |name: &str| {
        v["obs"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    let cond = col("condition");
    assert_eq!(cond["kind"], "categorical");
    assert_eq!(cond["n_levels"], 34);
    let levels: Vec<&str> = cond["levels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        levels.contains(&"control") && levels.contains(&"KLF1+MAP2K6"),
        "{levels:?}"
    );
    assert_eq!(col("cell_type")["n_levels"], 4);
    assert_eq!(v["var"]["index_name"], "gene_symbol");
    // Text form, and --load.
    let (code, out, err) = common::primeflow(&["info", d.to_str().unwrap(), "--load"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("5961 cells x 500 genes")
            && out.contains("csr float64")
            && out.contains("load:"),
        "{out}"
    );
    // A missing file: exit 2, message names it.
    let (code, _, err) = common::primeflow(&["info", "no-such-file.h5ad"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-file.h5ad"), "{err}");
}
