//! The README's command sequence at the norman19 preset's size (91,205
//! cells x 2,000 genes): simulate, train, sample the test split with
//! guidance w = 3 under the default memory budget, evaluate. Steps and
//! cells are reduced so it fits CI; the sizes that set memory (genes, the
//! forward batch, every test unit, w = 3 doubling each forward) are the
//! README's. Issue 9: this sequence used to be killed by the kernel's
//! out-of-memory killer on a 24 GiB machine with the old fixed 4,096-row
//! forward batch.

use crate::common::{primeflow, tmpdir};

/// Largest resident set of any child process this test binary has waited
/// for so far, in bytes (an upper bound for the commands of this test).
fn children_peak_rss() -> u64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    assert_eq!(rc, 0, "getrusage failed");
    u.ru_maxrss.max(0) as u64 * 1024
}

#[test]
fn readme_sequence_at_norman19_size_fits_24_gib() {
    let dir = tmpdir("readme_norman19_size");
    let sim = dir.join("sim.h5ad");
    let run = |args: &[&str]| {
        let (code, out, err) = primeflow(args);
        assert_eq!(code, 0, "primeflow {args:?}\nstdout: {out}\nstderr: {err}");
        out
    };
    run(&[
        "simulate",
        "--preset",
        "norman19",
        "--seed",
        "1",
        "--out",
        sim.to_str().unwrap(),
    ]);
    let ckpt = dir.join("unet");
    run(&[
        "train",
        "--data",
        sim.to_str().unwrap(),
        "--model",
        "unet",
        "--preset",
        "tiny",
        "--task",
        "combination",
        "--steps",
        "3",
        "--batch-size",
        "64",
        "--seed",
        "0",
        "--out",
        ckpt.to_str().unwrap(),
        "--quiet",
    ]);
    let pred = dir.join("pred.h5ad");
    run(&[
        "sample",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        sim.to_str().unwrap(),
        "--task",
        "combination",
        "--which",
        "test",
        "--cells-per-unit",
        "20",
        "--guidance",
        "3",
        "--steps",
        "1",
        "--seed",
        "0",
        "--out",
        pred.to_str().unwrap(),
        "--quiet",
    ]);
    let split = dir.join("split.csv");
    run(&[
        "split",
        sim.to_str().unwrap(),
        "--task",
        "combination",
        "--seed",
        "42",
        "--out",
        split.to_str().unwrap(),
    ]);
    let json = dir.join("eval.json");
    run(&[
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--ref",
        sim.to_str().unwrap(),
        "--split",
        split.to_str().unwrap(),
        "--which",
        "test",
        "--metrics",
        "rmse_average,mmd_gex",
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    let ev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let units = ev["per_unit"].as_array().map(|a| a.len()).unwrap_or(0);
    assert!(units >= 10, "{units} test units scored");
    assert!(ev["summary"]["mmd_gex"].as_f64().unwrap().is_finite());
    let peak = children_peak_rss();
    println!(
        "peak RSS of the commands: {:.2} GiB",
        peak as f64 / (1u64 << 30) as f64
    );
    assert!(
        peak < 24 << 30,
        "a command peaked at {peak} bytes, over 24 GiB"
    );
}
