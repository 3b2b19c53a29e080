//! Tests: reading an X into the memory of one no longer needed
//! (`read_h5ad_reusing`, `Expr::into_buffers`), as `evaluate --profile vcc`
//! does with its two files: the values are those of a fresh read, the
//! memory is kept when it is large enough, and a bad file read into reused
//! memory is still a clear error.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use primeflow::anndata::{
    read_h5ad, read_h5ad_reusing, write_h5ad, AnnData, DataFrame, ReadOptions, WriteOptions,
    XBuffers, XFormat,
};
use rand::{Rng, SeedableRng};

use crate::common;

/// An `[n, m]` AnnData, about `density` of X non-zero, values from `seed`.
fn random(n: usize, m: usize, density: f64, seed: u64) -> AnnData {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, m), |_| {
        if rng.gen::<f64>() < density {
            rng.gen_range(0.1f32..5.0)
        } else {
            0.0
        }
    });
    AnnData {
        x: x.into(),
        obs: DataFrame::with_index((0..n).map(|i| format!("c{i}")).collect()),
        var: DataFrame::with_index((0..m).map(|j| format!("g{j}")).collect()),
        ..Default::default()
    }
}

fn write(dir: &Path, name: &str, ad: &AnnData, fmt: XFormat) -> PathBuf {
    let p = dir.join(name);
    let opts = WriteOptions {
        x_format: fmt,
        ..Default::default()
    };
    write_h5ad(&p, ad, &opts).unwrap();
    p
}

fn fresh(p: &Path) -> AnnData {
    read_h5ad(p, &ReadOptions::default()).unwrap()
}

fn reusing(p: &Path, b: XBuffers) -> AnnData {
    read_h5ad_reusing(p, &ReadOptions::default(), b).unwrap()
}

#[test]
fn reused_memory_gives_the_values_of_a_fresh_read() {
    let dir = common::tmpdir("anndata_reuse");
    let big = write(&dir, "big.h5ad", &random(300, 200, 0.4, 1), XFormat::Csr);
    let small = write(&dir, "small.h5ad", &random(60, 200, 0.2, 2), XFormat::Csr);
    let dense = write(&dir, "dense.h5ad", &random(80, 200, 0.5, 3), XFormat::Dense);

    let x_big = fresh(&big).x;
    assert!(x_big.is_csr());
    let b = x_big.into_buffers();
    let cap = b.capacity_bytes();
    assert!(cap >= 300 * 200 * 8 * 3 / 10, "{b:?}");

    // Smaller into larger: same values, the larger memory kept.
    let x = reusing(&small, b).x;
    assert_eq!(x.to_dense(), fresh(&small).x.to_dense());
    let b = x.into_buffers();
    assert_eq!(b.capacity_bytes(), cap, "{b:?}");

    // And back: the big file into the same memory.
    let x = reusing(&big, b).x;
    assert_eq!(x.to_dense(), fresh(&big).x.to_dense());

    // A dense X's memory serves a CSR read's values; the CSR's memory
    // is ignored by a dense read.
    let x_dense = fresh(&dense).x;
    let want_dense = x_dense.to_dense();
    let x = reusing(&small, x_dense.into_buffers()).x;
    assert_eq!(x.to_dense(), fresh(&small).x.to_dense());
    let x = reusing(&dense, x.into_buffers()).x;
    assert_eq!(x.to_dense(), want_dense);

    // Small into the memory of a smaller read: it grows.
    let tiny = write(&dir, "tiny.h5ad", &random(5, 200, 0.1, 4), XFormat::Csr);
    let x = reusing(&big, fresh(&tiny).x.into_buffers()).x;
    assert_eq!(x.to_dense(), fresh(&big).x.to_dense());

    // A row subset reads through the same memory.
    let rows = vec![7, 3, 250, 3];
    let opts = ReadOptions {
        rows: Some(rows.clone()),
        ..Default::default()
    };
    let sub = read_h5ad_reusing(&big, &opts, fresh(&small).x.into_buffers()).unwrap();
    assert_eq!(sub.x.to_dense(), fresh(&big).x.rows_dense(&rows).unwrap());
}

#[test]
fn shared_values_are_never_handed_out() {
    let dir = common::tmpdir("anndata_reuse_shared");
    let p = write(&dir, "a.h5ad", &random(40, 30, 0.3, 5), XFormat::Csr);
    let x = fresh(&p).x;
    let keep = x.select(&[0, 2]).unwrap();
    let want = keep.to_dense();
    assert_eq!(x.into_buffers().capacity_bytes(), 0);
    assert_eq!(keep.to_dense(), want);
}

#[test]
fn a_bad_index_read_into_reused_memory_is_a_clear_error() {
    let dir = common::tmpdir("anndata_reuse_bad");
    let p = write(&dir, "bad.h5ad", &random(50, 20, 0.5, 6), XFormat::Csr);
    {
        let f = hdf5::File::with_options()
            .with_fapl(|p| p.file_locking(false))
            .open_rw(&p)
            .unwrap();
        f.dataset("X/indices")
            .unwrap()
            .write_slice(&[-3i32], 9..10)
            .unwrap();
        f.close().unwrap();
    }
    let other = write(&dir, "ok.h5ad", &random(80, 20, 0.6, 7), XFormat::Csr);
    let err = read_h5ad_reusing(&p, &ReadOptions::default(), fresh(&other).x.into_buffers())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.h5ad") && err.contains("X/indices") && err.contains("index -3"),
        "{err}"
    );
}
