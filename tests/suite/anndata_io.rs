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
        x: x.into(),
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
        assert_same(&ad.take_rows(&rows).unwrap(), &sub);
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
                ad.x.to_dense().slice(s![a..b, ..]),
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
    w.append_rows(ad.x.to_dense().slice(s![0..2, ..]), &[])
        .unwrap();
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
    assert_eq!(
        ad.x.to_dense().iter().filter(|&&v| v != 0.0).count(),
        211_790
    );
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
        assert_eq!(ad.x.row_vec(r), dense, "row {r}");
        let sum: f64 = raw.iter().map(|&(_, v)| v).sum();
        let got: f64 = ad.x.row_vec(r).iter().map(|&v| v as f64).sum();
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
    assert_eq!(sub.x, full.x.select(&rows).unwrap());
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
            && out.contains("load:")
            && out.contains("(csr; dense "),
        "{out}"
    );
    // A missing file: exit 2, message names it.
    let (code, _, err) = common::primeflow(&["info", "no-such-file.h5ad"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-file.h5ad"), "{err}");
}

// ------------------------------------------------------------ bad input corpus

/// Writes the sample (CSR or dense X) to `dir/name.h5ad`, then lets `edit`
/// corrupt it through the hdf5 crate.
fn corrupt(dir: &Path, name: &str, fmt: XFormat, edit: impl FnOnce(&hdf5::File)) -> PathBuf {
    let p = dir.join(format!("{name}.h5ad"));
    write_h5ad(
        &p,
        &sample(),
        &WriteOptions {
            x_format: fmt,
            ..Default::default()
        },
    )
    .unwrap();
    // No HDF5 file lock: a child process spawned by a parallel test would
    // inherit it and keep it past our close.
    let f = hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open_rw(&p)
        .unwrap();
    edit(&f);
    f.close().unwrap();
    p
}

fn set_attr_str(loc: &hdf5::Location, name: &str, value: &str) {
    let _ = loc.delete_attr(name);
    let a = loc
        .new_attr::<hdf5::types::VarLenUnicode>()
        .shape(())
        .create(name)
        .unwrap();
    a.write_scalar(&value.parse::<hdf5::types::VarLenUnicode>().unwrap())
        .unwrap();
}

/// Replaces dataset `path` of `f` with `data` (HDF5's ndarray version).
fn replace<T: hdf5::H5Type>(f: &hdf5::File, path: &str, data: ndarray_h5::ArrayViewD<T>) {
    f.unlink(path).unwrap();
    f.new_dataset_builder()
        .with_data(data)
        .create(path)
        .unwrap();
}

/// Reading `p` fails with a format error whose message names the file and
/// contains every needle (the field and the offending value). With `cli`,
/// `primeflow info` fails too, with exit code 2, the file named and nothing
/// from HDF5 or a panic on stderr (a few cases only: each run loads libtorch).
fn expect_format(p: &Path, needles: &[&str], cli: bool) {
    expect_format_as(p, needles, cli, false)
}

/// [`expect_format`], and with `structural` `inspect_h5ad` fails on the same
/// field (values are not read by inspect, structure is).
fn expect_format_as(p: &Path, needles: &[&str], cli: bool, structural: bool) {
    let err = read_h5ad(
        p,
        &ReadOptions {
            load_layers: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), "format", "{msg}");
    let file = p.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(file), "message does not name the file: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message lacks '{n}': {msg}");
    }
    if structural {
        let e = inspect_h5ad(p).unwrap_err();
        assert_eq!(e.kind(), "format", "inspect_h5ad: {e}");
        assert!(e.to_string().contains(needles[0]), "inspect_h5ad: {e}");
    }
    if cli {
        let (code, _, stderr) = common::primeflow(&["info", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            !stderr.contains("HDF5-DIAG") && !stderr.contains("panicked"),
            "{stderr}"
        );
        assert!(stderr.contains(file), "{stderr}");
    }
}

#[test]
fn bad_files_structure() {
    let dir = common::tmpdir("anndata_bad_structure");
    let csr = XFormat::Csr;
    let p = corrupt(&dir, "missing_x", csr, |f| f.unlink("X").unwrap());
    expect_format_as(&p, &["field 'X'", "missing"], true, true);
    // Without X, a layer still serves as the matrix (anndata allows X=None).
    let ad = read_h5ad(
        &p,
        &ReadOptions {
            layer: Some("counts".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ad.x, sample().layers["counts"]);
    let p = corrupt(&dir, "x_encoding", csr, |f| {
        set_attr_str(&f.group("X").unwrap(), "encoding-type", "coo_matrix")
    });
    expect_format_as(&p, &["field 'X'", "'coo_matrix'"], false, true);
    let p = corrupt(&dir, "x_no_encoding", csr, |f| {
        f.group("X").unwrap().delete_attr("encoding-type").unwrap()
    });
    expect_format_as(&p, &["field 'X'", "encoding-type"], false, true);
    let p = corrupt(&dir, "root_encoding", csr, |f| {
        set_attr_str(f, "encoding-type", "loom")
    });
    expect_format_as(&p, &["field '/'", "'loom'"], false, true);
    let p = corrupt(&dir, "obs_encoding", csr, |f| {
        set_attr_str(&f.group("obs").unwrap(), "encoding-type", "dict")
    });
    expect_format_as(&p, &["field 'obs'", "'dict'"], false, true);
    let p = corrupt(&dir, "encoding_not_string", csr, |f| {
        let g = f.group("X").unwrap();
        g.delete_attr("encoding-type").unwrap();
        g.new_attr::<i32>()
            .shape(())
            .create("encoding-type")
            .unwrap()
            .write_scalar(&3)
            .unwrap();
    });
    expect_format_as(
        &p,
        &["X@encoding-type", "expected strings, found int32"],
        false,
        true,
    );
    let p = corrupt(&dir, "shape_vs_indptr", csr, |f| {
        let g = f.group("X").unwrap();
        g.delete_attr("shape").unwrap();
        g.new_attr_builder()
            .with_data(&[9i64, 5][..])
            .create("shape")
            .unwrap();
    });
    expect_format_as(&p, &["X/indptr", "has 8 elements", "[9, 5]"], false, true);
    let p = corrupt(&dir, "data_vs_indices", csr, |f| {
        replace(
            f,
            "X/data",
            ndarray_h5::arr1(&[1f32, 2.0]).into_dyn().view(),
        )
    });
    expect_format_as(&p, &["X/indices", "X/data has 2"], false, true);
    let p = corrupt(&dir, "wrong_rank", csr, |f| {
        replace(
            f,
            "X/data",
            ndarray_h5::Array2::<f32>::ones((3, 6)).into_dyn().view(),
        )
    });
    expect_format_as(
        &p,
        &["X/data", "expected a 1-D array", "[3, 6]"],
        false,
        true,
    );
    let p = corrupt(&dir, "dense_rank", XFormat::Dense, |f| {
        replace(
            f,
            "X",
            ndarray_h5::Array1::<f32>::ones(35).into_dyn().view(),
        )
    });
    expect_format_as(
        &p,
        &["field 'X'", "expected a 2-D matrix", "[35]"],
        false,
        true,
    );
    let p = corrupt(&dir, "data_strings", csr, |f| {
        let n = f.dataset("X/data").unwrap().size();
        let v: Vec<hdf5::types::VarLenUnicode> = (0..n).map(|_| "x".parse().unwrap()).collect();
        replace(f, "X/data", ndarray_h5::Array1::from(v).into_dyn().view());
    });
    expect_format_as(&p, &["X/data", "found string"], false, true);
    let p = corrupt(&dir, "obs_vs_x", XFormat::Dense, |f| {
        replace(
            f,
            "X",
            ndarray_h5::Array2::<f32>::ones((6, 5)).into_dyn().view(),
        )
    });
    expect_format_as(
        &p,
        &["field 'obs'", "obs has 7 rows but X has 6 cells"],
        false,
        true,
    );
    let p = corrupt(&dir, "column_length", csr, |f| {
        replace(
            f,
            "obs/ncounts",
            ndarray_h5::arr1(&[1.0f64, 2.0]).into_dyn().view(),
        )
    });
    expect_format_as(&p, &["obs/ncounts", "has 2 rows", "has 7"], false, true);
    let p = corrupt(&dir, "column_missing", csr, |f| {
        f.unlink("obs/ngenes").unwrap()
    });
    expect_format_as(&p, &["obs/ngenes", "missing"], false, true);
    let p = corrupt(&dir, "layer_bad", csr, |f| {
        f.unlink("layers/counts/indptr").unwrap()
    });
    expect_format_as(&p, &["layers/counts/indptr", "missing"], false, true);
}

#[test]
fn bad_files_values() {
    let dir = common::tmpdir("anndata_bad_values");
    let csr = XFormat::Csr;
    // The sample's X row 0 holds columns 1 and 3; indptr = [0, 2, 5, ...].
    let p = corrupt(&dir, "indptr_decreasing", csr, |f| {
        f.dataset("X/indptr")
            .unwrap()
            .write_slice(&[1i64], 2..3)
            .unwrap()
    });
    expect_format(&p, &["X/indptr", "not monotone", "element 2 is 1"], false);
    let p = corrupt(&dir, "indptr_last", csr, |f| {
        let ds = f.dataset("X/indptr").unwrap();
        let n = ds.size();
        let last: Vec<i64> = ds.read_slice_1d(n - 1..n).unwrap().to_vec();
        ds.write_slice(&[last[0] + 3], n - 1..n).unwrap();
    });
    expect_format(&p, &["X/indptr", "ends at", "stores"], false);
    let p = corrupt(&dir, "indptr_start", csr, |f| {
        f.dataset("X/indptr")
            .unwrap()
            .write_slice(&[1i64], 0..1)
            .unwrap()
    });
    expect_format(&p, &["X/indptr", "starts at 1"], false);
    let p = corrupt(&dir, "index_range", csr, |f| {
        f.dataset("X/indices")
            .unwrap()
            .write_slice(&[99i32], 3..4)
            .unwrap()
    });
    expect_format(&p, &["X/indices", "index 99", "position 3", "0..5"], false);
    let p = corrupt(&dir, "index_negative", csr, |f| {
        f.dataset("X/indices")
            .unwrap()
            .write_slice(&[-4i32], 0..1)
            .unwrap()
    });
    expect_format(&p, &["X/indices", "index -4"], false);
    let p = corrupt(&dir, "codes_range", csr, |f| {
        f.dataset("obs/condition/codes")
            .unwrap()
            .write_slice(&[50i8], 1..2)
            .unwrap()
    });
    expect_format(
        &p,
        &["obs/condition/codes", "code 50 at row 1", "4 categories"],
        false,
    );
    let p = corrupt(&dir, "codes_float", csr, |f| {
        replace(
            f,
            "obs/condition/codes",
            ndarray_h5::Array1::<f64>::zeros(7).into_dyn().view(),
        )
    });
    expect_format(
        &p,
        &["obs/condition/codes", "expected integers, found float64"],
        false,
    );
    // A row subset meets the same checks.
    let err = read_h5ad(
        &p,
        &ReadOptions {
            rows: Some(vec![0]),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("obs/condition/codes"), "{err}");
}

/// Files that anndata/pandas refuse and primeflow once read silently: an
/// unknown encoding-version on X or a layer, and duplicate categories (two
/// codes with one label merged their cells into one unit).
#[test]
fn bad_files_versions_and_duplicate_categories() {
    let dir = common::tmpdir("anndata_bad_versions");
    let p = corrupt(&dir, "x_version", XFormat::Csr, |f| {
        set_attr_str(&f.group("X").unwrap(), "encoding-version", "9.9.9")
    });
    expect_format_as(
        &p,
        &["X@encoding-version", "'9.9.9'", "csr_matrix 0.1.0"],
        true,
        true,
    );
    let p = corrupt(&dir, "dense_version", XFormat::Dense, |f| {
        set_attr_str(&f.dataset("X").unwrap(), "encoding-version", "0.3.0")
    });
    expect_format_as(
        &p,
        &["X@encoding-version", "'0.3.0'", "array 0.2.0"],
        false,
        true,
    );
    let p = corrupt(&dir, "layer_version", XFormat::Csr, |f| {
        set_attr_str(
            &f.group("layers/counts").unwrap(),
            "encoding-version",
            "9.9.9",
        )
    });
    expect_format_as(
        &p,
        &["layers/counts@encoding-version", "'9.9.9'"],
        false,
        true,
    );
    // The sample's condition categories are A, A+B, B, control.
    let p = corrupt(&dir, "duplicate_categories", XFormat::Csr, |f| {
        let v: Vec<hdf5::types::VarLenUnicode> = ["A", "A+B", "A", "control"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let ds = f.dataset("obs/condition/categories").unwrap();
        let attrs: Vec<(String, String)> = ["encoding-type", "encoding-version"]
            .iter()
            .map(|a| {
                let s: hdf5::types::VarLenUnicode = ds.attr(a).unwrap().read_scalar().unwrap();
                (a.to_string(), s.to_string())
            })
            .collect();
        drop(ds);
        replace(
            f,
            "obs/condition/categories",
            ndarray_h5::Array1::from(v).into_dyn().view(),
        );
        let ds = f.dataset("obs/condition/categories").unwrap();
        for (a, s) in attrs {
            set_attr_str(&ds, &a, &s);
        }
    });
    expect_format_as(
        &p,
        &[
            "obs/condition/categories",
            "category 'A' appears twice",
            "positions 0 and 2",
        ],
        true,
        true,
    );
}

/// A float covariate column is read, with a warning that says each value
/// becomes a level and how to store the column as a categorical.
#[test]
fn float_covariate_warns() {
    let d = devel();
    let dir = common::tmpdir("anndata_float_covariate");
    let out = dir.join("split.csv");
    let (_, _, err) = common::primeflow(&[
        "split",
        d.to_str().unwrap(),
        "--task",
        "covariate-transfer",
        "--covariate-col",
        "ncounts",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("warning:")
            && err.contains("devel.h5ad")
            && err.contains("'obs/ncounts' is a float array")
            && err.contains("distinct values")
            && err.contains(".astype(str).astype('category')"),
        "{err}"
    );
    let (code, _, err) = common::primeflow(&[
        "split",
        d.to_str().unwrap(),
        "--task",
        "covariate-transfer",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn bad_files_not_h5ad() {
    let dir = common::tmpdir("anndata_bad_files");
    let empty = dir.join("empty.h5ad");
    std::fs::write(&empty, b"").unwrap();
    expect_format(&empty, &["field 'file'", "empty (0 bytes)"], false);
    let text = dir.join("text.h5ad");
    std::fs::write(&text, "cell,gene,value\nc1,g1,1.0\n").unwrap();
    expect_format(&text, &["field 'file'", "not an HDF5 file"], true);
    let bytes = std::fs::read(devel()).unwrap();
    let half = dir.join("truncated.h5ad");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    expect_format(&half, &["field 'file'", "truncated"], true);
    let err = inspect_h5ad(&dir.join("absent.h5ad")).unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("absent.h5ad"));
}

#[test]
fn bad_values_rejected_by_dataset_load() {
    use primeflow::data::{Dataset, LoadOptions, ObsColumns};
    let dir = common::tmpdir("anndata_bad_dataset");
    let cols = ObsColumns {
        covariates: vec![],
        ..Default::default()
    };
    let write = |name: &str, edit: &dyn Fn(&mut AnnData)| {
        let mut ad = sample();
        edit(&mut ad);
        let p = dir.join(name);
        write_h5ad(&p, &ad, &WriteOptions::default()).unwrap();
        p
    };
    let good = write("good.h5ad", &|_| {});
    assert!(Dataset::load(
        &good,
        &LoadOptions {
            columns: cols.clone(),
            ..Default::default()
        }
    )
    .is_ok());
    let load = |p: &Path, columns: &ObsColumns| {
        Dataset::load(
            p,
            &LoadOptions {
                columns: columns.clone(),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string()
    };
    let p = write("nan.h5ad", &|ad| {
        ad.x.dense_mut().unwrap()[[2, 3]] = f32::NAN
    });
    let e = load(&p, &cols);
    assert!(
        e.contains("nan.h5ad") && e.contains("'X'") && e.contains("NaN") && e.contains("cell 2"),
        "{e}"
    );
    let p = write("inf.h5ad", &|ad| {
        ad.x.dense_mut().unwrap()[[4, 1]] = f32::INFINITY
    });
    let e = load(&p, &cols);
    assert!(
        e.contains("'X'") && e.contains("inf") && e.contains("cell 4"),
        "{e}"
    );
    let p = write("negative.h5ad", &|ad| {
        ad.x.dense_mut().unwrap()[[1, 0]] = -0.5
    });
    let e = load(&p, &cols);
    assert!(
        e.contains("'X'")
            && e.contains("negative value")
            && e.contains("-0.5")
            && e.contains("cell 1"),
        "{e}"
    );
    let with_line = ObsColumns {
        covariates: vec!["cell_line".into()],
        ..Default::default()
    };
    let e = load(&good, &with_line);
    assert!(
        e.contains("good.h5ad") && e.contains("obs/cell_line"),
        "{e}"
    );
}

// ------------------------------------------------------------ Python interop

fn have_anndata() -> bool {
    let ok = common::python_has("anndata") && common::python_has("scipy");
    if !ok {
        println!("skipped: python anndata not available");
    }
    ok
}

/// Python anndata reads what primeflow wrote (CSR and dense X, every column
/// kind, var names, a `counts` layer, nested uns); the script dumps what it
/// sees as JSON and the test compares it with the written sample.
#[test]
fn python_reads_primeflow_output() {
    if !have_anndata() {
        return;
    }
    let dir = common::tmpdir("anndata_py_reads");
    let ad = sample();
    for fmt in [XFormat::Csr, XFormat::Dense] {
        let p = dir.join("pf.h5ad");
        write_h5ad(
            &p,
            &ad,
            &WriteOptions {
                x_format: fmt,
                ..Default::default()
            },
        )
        .unwrap();
        let code = format!(
            r#"
import json, warnings
warnings.simplefilter("ignore")
import anndata, numpy as np, pandas as pd, scipy.sparse as sp
a = anndata.read_h5ad({path:?})
X = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
def col(s):
    if isinstance(s.dtype, pd.CategoricalDtype):
        return {{"kind": "categorical", "categories": [str(c) for c in s.cat.categories],
                 "ordered": bool(s.cat.ordered), "codes": [int(c) for c in s.cat.codes]}}
    return {{"kind": str(s.dtype), "values": [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in s]}}
def plain(v):
    if isinstance(v, dict): return {{k: plain(x) for k, x in v.items()}}
    if isinstance(v, np.ndarray): return v.tolist()
    if isinstance(v, np.generic): return v.item()
    return v
print(json.dumps({{
    "sparse": bool(sp.issparse(a.X)), "shape": list(a.shape), "dtype": str(a.X.dtype), "X": X.tolist(),
    "obs_names": list(a.obs_names), "var_names": list(a.var_names), "var_index_name": a.var.index.name,
    "obs": {{c: col(a.obs[c]) for c in a.obs.columns}}, "means": a.var["means"].tolist(),
    "counts": (a.layers["counts"].toarray() if sp.issparse(a.layers["counts"]) else a.layers["counts"]).tolist(),
    "uns": plain(dict(a.uns)),
}}))
"#,
            path = p.to_str().unwrap()
        );
        let out = common::run_python(&code);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["sparse"], fmt == XFormat::Csr);
        assert_eq!(v["shape"], json!([7, 5]));
        assert_eq!(v["dtype"], "float32");
        let x: Vec<Vec<f32>> = serde_json::from_value(v["X"].clone()).unwrap();
        assert_eq!(
            x,
            ad.x.to_dense()
                .outer_iter()
                .map(|r| r.to_vec())
                .collect::<Vec<_>>()
        );
        let counts: Vec<Vec<f32>> = serde_json::from_value(v["counts"].clone()).unwrap();
        assert_eq!(
            counts,
            ad.layers["counts"]
                .outer_iter()
                .map(|r| r.to_vec())
                .collect::<Vec<_>>()
        );
        assert_eq!(v["obs_names"], json!(ad.obs.index));
        assert_eq!(v["var_names"], json!(ad.var.index));
        assert_eq!(v["var_index_name"], "gene_symbol");
        let obs = &v["obs"];
        let Some(Column::Categorical(cond)) = ad.obs.get("condition") else {
            unreachable!()
        };
        assert_eq!(obs["condition"]["categories"], json!(cond.categories));
        assert_eq!(obs["condition"]["codes"], json!(cond.codes));
        assert_eq!(obs["dose"]["ordered"], true);
        assert_eq!(obs["dose"]["categories"], json!(["low", "high", "mid"]));
        assert_eq!(obs["dose"]["codes"][3], -1);
        assert_eq!(obs["note"]["values"][0], "note ü 0");
        assert_eq!(
            obs["ncounts"],
            json!({"kind": "float64", "values": [0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0]})
        );
        assert_eq!(
            obs["ngenes"],
            json!({"kind": "int64", "values": [-3, 97, 197, 297, 397, 497, 597]})
        );
        assert_eq!(obs["qc"]["kind"], "bool");
        assert_eq!(
            obs["qc"]["values"],
            json!([true, false, false, true, false, false, true])
        );
        assert_eq!(
            obs["batch"],
            json!({"kind": "Int64", "values": [0, 1, null, 3, 4, 5, 6]})
        );
        assert_eq!(
            obs["flag"],
            json!({"kind": "boolean", "values": [true, false, true, false, null, false, true]})
        );
        assert_eq!(
            v["means"],
            json!([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 4.0 / 3.0])
        );
        assert_eq!(v["uns"], serde_json::Value::Object(ad.uns.clone()));
    }
}

/// primeflow reads files written by Python anndata: X as CSC (float64) and
/// as CSR (float32), dense X, an int32 `counts` layer, categoricals (int8
/// and int16 codes, one ordered, one with missing values), strings,
/// nullable int/bool, uns, and (in csr.h5ad) fixed-length ASCII/UTF-8 and
/// variable-length ASCII strings. The script also dumps the expected values.
#[test]
fn primeflow_reads_python_output() {
    if !have_anndata() {
        return;
    }
    let dir = common::tmpdir("anndata_pf_reads");
    let code = format!(
        r#"
import json, warnings
warnings.simplefilter("ignore")
import anndata, numpy as np, pandas as pd, scipy.sparse as sp
rng = np.random.default_rng(0)
n, m = 300, 40
dense = rng.random((n, m)) * (rng.random((n, m)) < 0.2)
counts = rng.integers(0, 9, size=(n, m)).astype(np.int32)
obs = pd.DataFrame(index=[f"c{{i}}" for i in range(n)])
obs["condition"] = pd.Categorical([["control", "A", "B", "A+B"][i % 4] for i in range(n)])
obs["many"] = pd.Categorical([f"k{{i % 200:03d}}" for i in range(n)])
obs["dose"] = pd.Categorical([["lo", "hi", None][i % 3] for i in range(n)], categories=["lo", "hi"], ordered=True)
obs["barcode"] = [f"BC{{i:05d}}" for i in range(n)]
obs["ncounts"] = np.arange(n) * 0.5
obs["ngenes"] = np.arange(n, dtype=np.int16)
obs["qc"] = np.arange(n) % 2 == 0
obs["batch"] = pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64")
obs["flag"] = pd.array([None if i % 5 == 0 else i % 3 == 0 for i in range(n)], dtype="boolean")
var = pd.DataFrame(index=pd.Index([f"G{{j}}" for j in range(m)], name="gene_symbol"))
var["hv"] = np.arange(m) % 3 == 0
uns = {{"title": "py", "n": 3, "x": 0.25, "arr": np.array([1.0, 2.0]), "names": np.array(["a", "b"]), "d": {{"e": {{"f": 1}}}}}}
files = {{
    "csc": sp.csc_matrix(dense),
    "csr": sp.csr_matrix(dense.astype(np.float32)),
    "dense": dense.astype(np.float64),
}}
for name, X in files.items():
    a = anndata.AnnData(X=X, obs=obs.copy(), var=var.copy(), uns=uns)
    a.layers["counts"] = sp.csr_matrix(counts) if name != "dense" else counts
    a.write_h5ad({dir:?} + f"/{{name}}.h5ad")
# Other HDF5 string flavours, as older writers or h5py users produce them:
# fixed-length ASCII, fixed-length UTF-8 and variable-length ASCII.
import h5py
with h5py.File({dir:?} + "/csr.h5ad", "r+") as f:
    for path, data, dt in [
        ("obs/barcode", obs["barcode"].to_numpy().astype("S7"), None),
        ("var/gene_symbol", [g.encode() for g in var.index], h5py.string_dtype("utf-8", 8)),
        ("obs/condition/categories", [c.encode() for c in obs["condition"].cat.categories], h5py.string_dtype("ascii")),
    ]:
        attrs = dict(f[path].attrs)
        del f[path]
        f.create_dataset(path, data=np.array(data, dtype=dt) if dt is not None else data)
        f[path].attrs.update(attrs)
print(json.dumps({{"X": dense.astype(np.float32).tolist(), "counts": counts.tolist()}}))
"#,
        dir = dir.to_str().unwrap()
    );
    let out = common::run_python(&code);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let want_x: Vec<Vec<f32>> = serde_json::from_value(v["X"].clone()).unwrap();
    let want_counts: Vec<Vec<f32>> = serde_json::from_value(v["counts"].clone()).unwrap();
    let rows_of = |a: &Array2<f32>| a.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    for name in ["csc", "csr", "dense"] {
        let p = dir.join(format!("{name}.h5ad"));
        let info = inspect_h5ad(&p).unwrap();
        assert_eq!(info.x.encoding, name);
        let ad = read_all(&p);
        assert_eq!((ad.n_obs(), ad.n_vars()), (300, 40));
        assert_eq!(rows_of(&ad.x.to_dense()), want_x, "{name}: X");
        assert_eq!(rows_of(&ad.layers["counts"]), want_counts, "{name}: counts");
        assert_eq!(ad.obs.index[7], "c7");
        assert_eq!(ad.var.index_name, "gene_symbol");
        assert_eq!(ad.var.index[39], "G39");
        assert_eq!(
            ad.var.get("hv"),
            Some(&Column::Bool((0..40).map(|j| j % 3 == 0).collect()))
        );
        let Some(Column::Categorical(c)) = ad.obs.get("condition") else {
            panic!("{name}: condition")
        };
        assert_eq!(c.categories, ["A", "A+B", "B", "control"]);
        assert_eq!(ad.obs.labels("obs", "condition").unwrap()[3], "A+B");
        let Some(Column::Categorical(many)) = ad.obs.get("many") else {
            panic!("{name}: many")
        };
        assert_eq!(many.categories.len(), 200);
        assert_eq!(many.label(257), Some("k057"));
        let Some(Column::Categorical(dose)) = ad.obs.get("dose") else {
            panic!("{name}: dose")
        };
        assert!(dose.ordered);
        assert_eq!(
            (dose.label(0), dose.label(1), dose.label(2)),
            (Some("lo"), Some("hi"), None)
        );
        assert_eq!(
            ad.obs.get("barcode").and_then(|c| c.label(12)),
            Some("BC00012".to_string())
        );
        assert_eq!(
            ad.obs.get("ncounts"),
            Some(&Column::Float((0..300).map(|i| i as f64 * 0.5).collect()))
        );
        assert_eq!(ad.obs.get("ngenes"), Some(&Column::Int((0..300).collect())));
        assert_eq!(
            ad.obs.get("qc"),
            Some(&Column::Bool((0..300).map(|i| i % 2 == 0).collect()))
        );
        let batch: Vec<Option<i64>> = (0..300)
            .map(|i| if i % 7 == 0 { None } else { Some(i) })
            .collect();
        assert_eq!(ad.obs.get("batch"), Some(&Column::NullableInt(batch)));
        let flag: Vec<Option<bool>> = (0..300)
            .map(|i| if i % 5 == 0 { None } else { Some(i % 3 == 0) })
            .collect();
        assert_eq!(ad.obs.get("flag"), Some(&Column::NullableBool(flag)));
        assert_eq!(
            serde_json::Value::Object(ad.uns.clone()),
            json!({"title": "py", "n": 3, "x": 0.25, "arr": [1.0, 2.0], "names": ["a", "b"], "d": {"e": {"f": 1}}})
        );
        // A row subset of each encoding equals the same rows of the full read.
        let rows = vec![299, 0, 150, 151, 7];
        let sub = read_h5ad(
            &p,
            &ReadOptions {
                rows: Some(rows.clone()),
                layer: Some("counts".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            sub.x,
            ad.layers["counts"].select(ndarray::Axis(0), &rows),
            "{name}: counts rows"
        );
        let sub = read_h5ad(
            &p,
            &ReadOptions {
                rows: Some(rows.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(sub.x, ad.x.select(&rows).unwrap(), "{name}: X rows");
    }
}
