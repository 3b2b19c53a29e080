//! Tests: anndata_index_types — the integer types of written CSR matrices.
//!
//! scipy (and so anndata) stores `indices` and `indptr` as int32 unless the
//! stored-value count or the shape needs int64, and scikit-learn's sparse
//! routines need both of one type. primeflow once wrote int64 `indptr` with
//! int32 `indices`: anndata reads them as stored, and PerturBench's PCA step
//! (`sklearn.utils.sparsefuncs.mean_variance_axis`, through scanpy) failed
//! with "Buffer dtype mismatch, expected 'const int32_t' but got 'long'".
//! (The widening to int64 past 2^31 - 1 values is unit-tested in
//! `src/anndata/csr_sink.rs`.)

use std::path::Path;

use hdf5::types::{IntSize, TypeDescriptor};
use ndarray::{s, Array2};
use primeflow::anndata::{write_h5ad, AnnData, DataFrame, H5adStreamWriter, WriteOptions, XFormat};

use crate::common;

/// 40 cells x 12 genes, a third non-zero, and a `counts` layer.
fn sample() -> AnnData {
    let x = Array2::from_shape_fn((40, 12), |(i, j)| {
        if (i * 7 + j) % 3 == 0 {
            1.0 + (i + j) as f32 / 10.0
        } else {
            0.0
        }
    });
    let mut layers = std::collections::BTreeMap::new();
    layers.insert("counts".to_string(), x.mapv(|v| (v * 3.0).round()));
    AnnData {
        x: x.into(),
        obs: DataFrame::with_index((0..40).map(|i| format!("cell{i}")).collect()),
        var: DataFrame::with_index((0..12).map(|j| format!("G{j}")).collect()),
        layers,
        uns: Default::default(),
    }
}

/// The element type of dataset `name` in `path`.
fn dtype(path: &Path, name: &str) -> TypeDescriptor {
    let f = hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
        .unwrap();
    f.dataset(name)
        .unwrap()
        .dtype()
        .unwrap()
        .to_descriptor()
        .unwrap()
}

fn assert_int32_indices(path: &Path) {
    let int32 = TypeDescriptor::Integer(IntSize::U4);
    for m in ["X", "layers/counts"] {
        for a in ["indices", "indptr"] {
            assert_eq!(dtype(path, &format!("{m}/{a}")), int32, "{m}/{a}");
        }
    }
}

/// Both writers store int32 `indices` and `indptr` for a small matrix.
#[test]
fn small_csr_matrices_get_int32_indices() {
    let dir = common::tmpdir("anndata_index_types");
    let ad = sample();
    let p = dir.join("whole.h5ad");
    write_h5ad(&p, &ad, &WriteOptions::default()).unwrap();
    assert_int32_indices(&p);
    let p = dir.join("stream.h5ad");
    let opts = WriteOptions {
        x_format: XFormat::Csr,
        compression: Some(4),
    };
    let mut w = H5adStreamWriter::create(&p, &ad.var, &["counts"], &opts).unwrap();
    for (a, b) in [(0, 17), (17, 40)] {
        w.append_rows(
            ad.x.to_dense().slice(s![a..b, ..]),
            &[ad.layers["counts"].slice(s![a..b, ..])],
        )
        .unwrap();
    }
    w.finish(&ad.obs, &ad.uns).unwrap();
    assert_int32_indices(&p);
}

/// PerturBench's path: anndata reads a primeflow-written reference,
/// concatenates it with a dense prediction (both orders), and scikit-learn
/// computes sparse means and variances of each result, as scanpy's PCA does.
#[test]
fn perturbench_concat_and_sklearn_accept_primeflow_csr() {
    if !(common::python_has("anndata") && common::python_has("sklearn")) {
        println!("skipped: python anndata or scikit-learn not available");
        return;
    }
    let dir = common::tmpdir("anndata_index_types_py");
    let p = dir.join("ref.h5ad");
    let ad = sample();
    write_h5ad(&p, &ad, &WriteOptions::default()).unwrap();
    let code = format!(
        r#"
import json, warnings
warnings.simplefilter("ignore")
import anndata, numpy as np, scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis
ref = anndata.read_h5ad({path:?})
pred = anndata.AnnData(X=np.full((5, ref.n_vars), 0.5, dtype=np.float32), var=ref.var.copy())
pred.obs_names = [f"pred{{i}}" for i in range(5)]
out = {{}}
def check(name, X):
    # As returned: a scipy constructor would normalise the index types.
    if not sp.issparse(X):
        X = sp.csr_matrix(X)
    mean, var = mean_variance_axis(X, axis=0)
    out[name] = {{"indices": str(X.indices.dtype), "indptr": str(X.indptr.dtype),
                 "mean0": float(mean[0]), "n": int(X.shape[0])}}
check("ref", ref.X)
check("ref+pred", anndata.concat([ref, pred], label="source", keys=["ref", "pred"]).X)
check("pred+ref", anndata.concat([pred, ref], label="source", keys=["pred", "ref"]).X)
print(json.dumps(out))
"#,
        path = p.to_str().unwrap()
    );
    let out = common::run_python(&code);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ref"]["indices"], "int32", "{v}");
    assert_eq!(v["ref"]["indptr"], "int32", "{v}");
    let mean0 =
        ad.x.to_dense()
            .column(0)
            .iter()
            .map(|&x| x as f64)
            .sum::<f64>()
            / 40.0;
    assert!(
        (v["ref"]["mean0"].as_f64().unwrap() - mean0).abs() < 1e-5,
        "{v}"
    );
    for k in ["ref+pred", "pred+ref"] {
        assert_eq!(v[k]["n"], 45, "{v}");
        assert_eq!(v[k]["indices"], v[k]["indptr"], "{k}: {v}");
    }
}
