//! Tests: streaming training data from the file (`train --stream`,
//! `Trainer(#{stream: ...})`; issue 9 part 2): seeded, resumable bit for
//! bit, every cell once per epoch, the same statistics as in memory, clear
//! errors on bad files, and the CLI sequence train -> sample -> evaluate.

use std::path::{Path, PathBuf};

use primeflow::anndata::AnnData;
use primeflow::data::{DataSpec, Dataset};
use primeflow::model::stats::StatsOptions;
use primeflow::model::{DataStats, Model};
use primeflow::train::stream::{StreamLoader, StreamPlan, StreamSource};
use primeflow::train::{StreamConfig, TrainConfig, Trainer};
use tch::Device;

use crate::common::{
    evaluate_test, read_json, run_ok, sample_test, simulate_tiny, split, tmpdir, write_layout,
    Layout, LAYOUTS,
};
use crate::train::{fit_tiny_mlp, isolated, params_equal, quick_train, tiny_mlp, toy_dataset};

/// The toy data (200 cells, 12 genes; a third of the values zero) written
/// as `dir/toy.h5ad` with X in `layout`.
fn toy_file(dir: &Path, layout: Layout) -> PathBuf {
    let ds = toy_dataset(12, 20, true);
    let mut ad = ds.to_anndata();
    ad.x.dense_mut()
        .unwrap()
        .mapv_inplace(|v| if v < 1.2 { 0.0 } else { v });
    write(dir, &ad, layout)
}

/// `ad` written as `dir/toy.h5ad` with X in `layout`.
fn write(dir: &Path, ad: &AnnData, layout: Layout) -> PathBuf {
    let path = dir.join("toy.h5ad");
    write_layout(&path, ad, layout);
    path
}

/// Small chunks and buffers, so a 200-cell file spans many of each.
fn small_stream() -> StreamConfig {
    StreamConfig {
        chunk_rows: 7,
        buffer_chunks: 3,
    }
}

/// Trains a tiny MLP on the cells of `path` opened for streaming.
fn fit_streamed(
    path: &Path,
    cfg: TrainConfig,
    stop_at: Option<usize>,
    out: Option<&Path>,
) -> (Model, primeflow::train::History) {
    let ds = DataSpec::new(path).open_for_streaming().unwrap();
    assert!(ds.x.is_absent(), "X stays in the file");
    fit_tiny_mlp(&ds, cfg, stop_at, out)
}

#[test]
fn streamed_training_is_seeded_and_resumes_bit_identically() {
    isolated(
        "stream::streamed_training_is_seeded_and_resumes_bit_identically",
        || {
            for layout in LAYOUTS {
                let dir = tmpdir(&format!("stream_resume_{layout:?}"));
                let path = toy_file(&dir, layout);
                // grad_accum 2, warm-up and a cosine schedule: state that
                // must survive the restart; 30 steps x 64 cells = 9.6 epochs.
                let cfg = TrainConfig {
                    grad_accum: 2,
                    warmup_steps: 5,
                    lr_schedule: primeflow::train::LrSchedule::Cosine,
                    checkpoint_every: 7,
                    stream: Some(small_stream()),
                    ..quick_train(30)
                };
                let (a, ha) = fit_streamed(&path, cfg.clone(), None, None);
                let (b, _) = fit_streamed(&path, cfg.clone(), None, None);
                assert!(params_equal(&a, &b), "{layout:?}: same seed, other weights");
                let other = TrainConfig {
                    seed: cfg.seed + 1,
                    ..cfg.clone()
                };
                let (c, _) = fit_streamed(&path, other, None, None);
                assert!(
                    !params_equal(&a, &c),
                    "{layout:?}: another seed, same weights"
                );
                let first = ha.rows.first().unwrap().loss;
                assert!(
                    ha.last_loss().unwrap() < first,
                    "{layout:?}: the loss does not fall"
                );

                let out = dir.join("run");
                let (_, h1) = fit_streamed(&path, cfg.clone(), Some(12), Some(&out));
                assert_eq!(h1.final_step, 12);
                let state = read_json(&out.join("step-00000012/state.json"));
                assert_eq!(
                    state["loader"]["cells_drawn"].as_u64(),
                    Some(12 * 2 * 32),
                    "{state}"
                );
                let ds = DataSpec::new(&path).open_for_streaming().unwrap();
                let (mut trainer, mut model) = Trainer::resume(&out, Device::Cpu).unwrap();
                assert_eq!(trainer.start_step(), 12);
                assert_eq!(trainer.config.stream, Some(small_stream()));
                let h = trainer.fit(&mut model, &ds, None, Some(&out)).unwrap();
                assert_eq!(h.final_step, 30);
                assert!(
                    params_equal(&a, &model),
                    "{layout:?}: resumed weights differ from the straight run"
                );
                assert_eq!(
                    h.rows.last().map(|r| r.loss.to_bits()),
                    ha.rows.last().map(|r| r.loss.to_bits())
                );
                // A checkpoint whose stream position does not fit the
                // settings is refused.
                let (mut t2, mut m2) = Trainer::resume(&out, Device::Cpu).unwrap();
                t2.config.steps = 40;
                t2.config.stream = Some(StreamConfig {
                    chunk_rows: 5,
                    ..small_stream()
                });
                let e = t2
                    .fit(&mut m2, &ds, None, Some(&out))
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("stream position"), "{e}");
            }
        },
    );
}

/// Draws `epochs` epochs of `batch`-cell batches from a loader over the
/// cells of `ds` and checks each epoch holds every cell once, with the
/// file's values. Returns the positions drawn.
fn drain(ds: &Dataset, cfg: &StreamConfig, batch: usize, epochs: usize) -> Vec<i64> {
    let n = ds.n_cells();
    let m = ds.n_genes();
    let src = StreamSource::of(ds).unwrap();
    let plan = StreamPlan::new(n, cfg, 4).unwrap();
    let mut loader = StreamLoader::start(src, plan, 0).unwrap();
    let mem = Dataset::load(ds.source.as_deref().unwrap(), &Default::default()).unwrap();
    let mut drawn = Vec::new();
    while drawn.len() < n * epochs {
        let (idx, values) = loader.next_batch(batch).unwrap();
        assert_eq!(values.len(), idx.len() * m);
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(
                &values[k * m..(k + 1) * m],
                mem.x.row_vec(i as usize).as_slice()
            );
        }
        drawn.extend(idx);
    }
    for e in 0..epochs {
        let mut epoch: Vec<i64> = drawn[e * n..(e + 1) * n].to_vec();
        epoch.sort_unstable();
        assert_eq!(epoch, (0..n as i64).collect::<Vec<_>>(), "epoch {e}");
    }
    drawn
}

#[test]
fn every_cell_once_per_epoch_with_the_files_values() {
    for layout in LAYOUTS {
        let dir = tmpdir(&format!("stream_epochs_{layout:?}"));
        let ds = DataSpec::new(toy_file(&dir, layout))
            .open_for_streaming()
            .unwrap();
        // A buffer of the whole file (29 chunks of 7): a full shuffle.
        let whole = StreamConfig {
            chunk_rows: 7,
            buffer_chunks: 1000,
        };
        let a = drain(&ds, &whole, 16, 2);
        assert_ne!(a[..200], a[200..400], "each epoch has its own order");
        // Small buffers: still every cell once per epoch, but the first
        // 21 cells come from only 3 chunks.
        let b = drain(&ds, &small_stream(), 13, 2);
        let mut chunks: Vec<i64> = b[..21].iter().map(|c| c / 7).collect();
        chunks.sort_unstable();
        chunks.dedup();
        assert_eq!(chunks.len(), 3, "{chunks:?}");
        // The same seed gives the same stream; a restart mid-stream
        // continues it.
        let plan = StreamPlan::new(200, &small_stream(), 4).unwrap();
        let mut late = StreamLoader::start(StreamSource::of(&ds).unwrap(), plan, 13 * 5).unwrap();
        let (idx, _) = late.next_batch(13).unwrap();
        assert_eq!(idx, b[13 * 5..13 * 6]);
    }
}

#[test]
fn streamed_statistics_equal_the_in_memory_ones() {
    let dir = tmpdir("stream_stats");
    let path = toy_file(&dir, Layout::Csr);
    let mem = Dataset::load(&path, &Default::default()).unwrap();
    let st = DataSpec::new(&path).open_for_streaming().unwrap();
    let opts = StatsOptions {
        control_cells: 7,
        pca_components: None,
        seed: 1,
    };
    let a = DataStats::fit(&mem, &opts).unwrap();
    let b = DataStats::fit_streamed(&st, &StreamSource::of(&st).unwrap(), &opts).unwrap();
    assert!(a.gene_mean.equal(&b.gene_mean) && a.gene_std.equal(&b.gene_std));
    assert_eq!(a.controls.len(), b.controls.len());
    for (x, y) in a.controls.iter().zip(&b.controls) {
        assert!(x.cells.equal(&y.cells) && x.mean.equal(&y.mean));
    }
    assert_eq!(a.shifts.len(), b.shifts.len());
    for (x, y) in a.shifts.iter().zip(&b.shifts) {
        assert!(x.shift.equal(&y.shift), "{}", x.perturbation);
    }
    assert!(a.response_std.allclose(&b.response_std, 1e-6, 1e-7, false));
    // X of a streamed dataset is not in memory: asking for it is an error.
    assert!(st.x.rows_vec(&[0], None).is_err());
}

#[test]
fn bad_files_and_unsupported_models_are_clear_errors() {
    let dir = tmpdir("stream_bad");
    // A value that the in-memory load would refuse, in a row read late:
    // training stops with an error naming the file and the row; the last
    // checkpoint stays valid.
    let ds = toy_dataset(12, 20, true);
    let mut ad = ds.to_anndata();
    ad.x.dense_mut().unwrap()[[199, 3]] = f32::NAN;
    let path = write(&dir, &ad, Layout::Csr);
    let st = DataSpec::new(&path).open_for_streaming().unwrap();
    let cfg = TrainConfig {
        checkpoint_every: 1,
        steps: 50,
        stream: Some(StreamConfig {
            chunk_rows: 10,
            buffer_chunks: 1,
        }),
        ..quick_train(50)
    };
    let mut model = Model::for_dataset(tiny_mlp(), &st, Device::Cpu, 0).unwrap();
    let out = dir.join("run");
    // The statistics pass reads every row first and finds it.
    let e = Trainer::new(cfg.clone())
        .unwrap()
        .fit(&mut model, &st, None, Some(&out))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&path.display().to_string())
            && e.contains("non-finite")
            && e.contains("row 199"),
        "{e}"
    );
    // With the statistics already fitted (a resumed run), the stream
    // meets it mid-run.
    let mem_ok = toy_dataset(12, 20, true);
    model.fit_stats(&mem_ok, 1000, 0).unwrap();
    let e = Trainer::new(cfg)
        .unwrap()
        .fit(&mut model, &st, None, Some(&out))
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite") && e.contains("row 199"), "{e}");
    let (t, _) = Trainer::resume(&out, Device::Cpu).unwrap();
    assert!(t.start_step() >= 1, "a checkpoint before the bad chunk");

    // A truncated file: a clear error naming the file.
    let good = toy_file(&tmpdir("stream_bad_trunc"), Layout::Csr);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.h5ad");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = DataSpec::new(&cut)
        .open_for_streaming()
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.h5ad") && e.contains("truncated"), "{e}");

    // Models that need every cell at once say so.
    let st = DataSpec::new(&good).open_for_streaming().unwrap();
    for (kind, what) in [("pca", "PCA space"), ("linear", "control cells")] {
        let mut mc = primeflow::model::ModelConfig::preset(kind, "tiny").unwrap();
        if let primeflow::model::ModelConfig::Pca(c) = &mut mc {
            c.n_components = 4;
        }
        let mut m = Model::for_dataset(mc, &st, Device::Cpu, 0).unwrap();
        let e = Trainer::new(TrainConfig {
            stream: Some(small_stream()),
            ..quick_train(3)
        })
        .unwrap()
        .fit(&mut m, &st, None, None)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(what) && e.contains("without streaming"),
            "{kind}: {e}"
        );
    }
}

#[test]
fn script_trainer_streams() {
    let dir = tmpdir("stream_script");
    let path = toy_file(&dir, Layout::Csr);
    primeflow::progress::set_quiet(true);
    let mut s = primeflow::script::Session::new(&primeflow::script::EngineOptions::default());
    let code = format!(
        r#"let data = Dataset::load("{}", #{{stream: true}});
let model = MlpVelocity("tiny");
let trainer = Trainer(#{{steps: 4, batch_size: 16, log_every: 2, stream: #{{chunk_rows: 8, buffer_chunks: 2}}}});
let h = trainer.fit(model, data);
h.final_step"#,
        path.display()
    );
    let v = s.eval(&code).unwrap();
    assert_eq!(v.as_int().unwrap(), 4);
    let e = s.eval(r#"Trainer(#{stream: #{chunk: 8}})"#).unwrap_err();
    assert!(e.contains("chunk"), "{e}");
}

#[test]
fn cli_stream_train_resume_sample_evaluate() {
    let dir = tmpdir("stream_cli");
    let p = |f: &str| dir.join(f).display().to_string();
    let data = simulate_tiny(&dir, "3", &["--cells", "1500", "--genes", "64"]);
    let split_csv = p("split.csv");
    split(&data, "combination", &split_csv, &[]);
    let train = |steps: &str, resume: bool| {
        let mut a = vec![
            "train",
            "--data",
            &data,
            "--model",
            "unet",
            "--preset",
            "tiny",
            "--split",
            &split_csv,
            "--steps",
            steps,
            "--batch-size",
            "32",
            "--checkpoint-every",
            "3",
            "--val-every",
            "3",
            "--stream",
            "--stream-chunk",
            "64",
            "--stream-buffer",
            "4",
            "--threads",
            "1",
            "--quiet",
        ];
        let out = p("run");
        if resume {
            a = vec!["train", "--resume", "--steps", steps, "--quiet"];
        }
        let mut a: Vec<String> = a.into_iter().map(String::from).collect();
        a.extend(["--out".to_string(), out]);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        run_ok(&a)
    };
    let first = train("6", false);
    // Validation cells are read from the file (X is not in memory).
    assert!(
        first.contains("Step 6") && first.contains("best validation loss"),
        "{first}"
    );
    let resumed = train("8", true);
    assert!(
        resumed.contains("Resuming") && resumed.contains("Step 8"),
        "{resumed}"
    );
    let state = read_json(&dir.join("run/step-00000008/state.json"));
    assert_eq!(state["loader"]["cells_drawn"].as_u64(), Some(8 * 32));
    let pred = p("pred.h5ad");
    sample_test(
        &p("run"),
        &pred,
        &["--cells-per-unit", "20", "--steps", "3", "--seed", "1"],
    );
    let (_, ev) = evaluate_test(&pred, &data, &split_csv, &p("ev.json"), &[]);
    let mmd = ev["summary"]["mmd_gex"].as_f64();
    assert!(mmd.is_some_and(f64::is_finite), "{ev}");
}
