//! Tests: every paper preset pinned to the paper's Tables 10-17, value by
//! value (source: ../shared/docs/paper-tables.md, which copies the tables
//! verbatim). A table's `num_gpus` x `grad_accum_batches` becomes
//! `grad_accum` on one device.

use primeflow::flow::PathKind;
use primeflow::model::{ModelConfig, UNetConfig};
use primeflow::train::TrainConfig;

/// One table's training rows.
struct TrainRow {
    prob_unconditional: f64,
    path: PathKind,
    sigma: f64,
    lr: f64,
    weight_decay: f64,
    batch_size: usize,
    num_gpus: usize,
    grad_accum_batches: usize,
    grad_clip: f64,
}

fn check_train(kind: &str, preset: &str, t: TrainRow) {
    let c = TrainConfig::preset(kind, preset).unwrap();
    let what = format!("{kind}/{preset}");
    assert_eq!(
        c.prob_unconditional, t.prob_unconditional,
        "{what} prob_unconditional"
    );
    assert_eq!(c.path, t.path, "{what} interpl_type");
    assert_eq!(c.sigma, t.sigma, "{what} sigma");
    assert_eq!(c.lr, t.lr, "{what} learning_rate");
    assert_eq!(c.weight_decay, t.weight_decay, "{what} weight_decay");
    assert_eq!(c.batch_size, t.batch_size, "{what} batch_size");
    assert_eq!(
        c.grad_accum,
        t.grad_accum_batches * t.num_gpus,
        "{what} grad_accum_batches x num_gpus"
    );
    assert_eq!(c.grad_clip, t.grad_clip, "{what} grad_clip_threshold");
}

#[test]
fn unet_presets_are_tables_10_and_11() {
    for (preset, mult, batch) in [
        ("srivatsan20", vec![1, 2, 2, 4, 4], 54),
        ("norman19", vec![1, 1, 2, 2, 4], 100),
    ] {
        let ModelConfig::Unet(u) = ModelConfig::preset("unet", preset).unwrap() else {
            panic!("not a U-Net")
        };
        assert_eq!(u.num_res_blocks, 2);
        assert_eq!(u.hidden_dim, 256);
        assert_eq!(u.dropout, 0.1);
        assert_eq!(u.channel_mult, mult);
        assert!(u.conv_resample);
        assert_eq!(u.num_heads, 8);
        assert_eq!(u.attention_resolutions, vec![16]);
        assert_eq!(u.n_layers_gene_expression, 2);
        assert_eq!(u.n_layers_conditions, 2);
        assert_eq!(u.n_layers_time, 2);
        assert_eq!(u, UNetConfig::preset(preset).unwrap());
        check_train(
            "unet",
            preset,
            TrainRow {
                prob_unconditional: 0.2,
                path: PathKind::Linear,
                sigma: 0.0,
                lr: 5e-5,
                weight_decay: 0.0,
                batch_size: batch,
                num_gpus: 4,
                grad_accum_batches: 4,
                grad_clip: 5.0,
            },
        );
    }
}

#[test]
fn mlp_presets_are_tables_12_and_13() {
    // (preset, hidden, dropout, layers gene/cond/time/decoding)
    for (preset, h, dropout, layers) in [
        ("srivatsan20", 3072, 0.0, [1, 1, 3, 2]),
        ("norman19", 2048, 0.1, [2, 3, 5, 1]),
    ] {
        let ModelConfig::Mlp(m) = ModelConfig::preset("mlp", preset).unwrap() else {
            panic!("not an MLP")
        };
        assert_eq!(m.hidden_dim, h, "{preset}");
        assert_eq!(m.dropout, dropout, "{preset}");
        assert_eq!(
            [
                m.n_layers_gene_expression,
                m.n_layers_conditions,
                m.n_layers_time,
                m.n_layers_decoding
            ],
            layers,
            "{preset}"
        );
    }
    check_train(
        "mlp",
        "srivatsan20",
        TrainRow {
            prob_unconditional: 0.0,
            path: PathKind::Linear,
            sigma: 0.01,
            lr: 3.71e-05,
            weight_decay: 4.05e-07,
            batch_size: 512,
            num_gpus: 1,
            grad_accum_batches: 1,
            grad_clip: 5.0,
        },
    );
    check_train(
        "mlp",
        "norman19",
        TrainRow {
            prob_unconditional: 0.1,
            path: PathKind::Trigonometric,
            sigma: 0.1,
            lr: 8.56e-06,
            weight_decay: 9.58e-07,
            batch_size: 1024,
            num_gpus: 1,
            grad_accum_batches: 1,
            grad_clip: 5.0,
        },
    );
}

#[test]
fn fm_pca_presets_are_tables_14_and_15() {
    for (preset, h, layers) in [
        ("srivatsan20", 3072, [2, 3, 4, 4]),
        ("norman19", 1792, [4, 2, 2, 4]),
    ] {
        let ModelConfig::Pca(p) = ModelConfig::preset("pca", preset).unwrap() else {
            panic!("not FM PCA")
        };
        let m = &p.velocity;
        assert_eq!(m.hidden_dim, h, "{preset}");
        assert_eq!(m.dropout, 0.2, "{preset}");
        assert_eq!(
            [
                m.n_layers_gene_expression,
                m.n_layers_conditions,
                m.n_layers_time,
                m.n_layers_decoding
            ],
            layers,
            "{preset}"
        );
    }
    check_train(
        "pca",
        "srivatsan20",
        TrainRow {
            prob_unconditional: 0.4,
            path: PathKind::Trigonometric,
            sigma: 0.1,
            lr: 8.18e-05,
            weight_decay: 1.28e-10,
            batch_size: 1024,
            num_gpus: 1,
            grad_accum_batches: 1,
            grad_clip: 5.0,
        },
    );
    check_train(
        "pca",
        "norman19",
        TrainRow {
            prob_unconditional: 0.4,
            path: PathKind::Trigonometric,
            sigma: 0.01,
            lr: 1.73e-04,
            weight_decay: 6.75e-06,
            batch_size: 2048,
            num_gpus: 1,
            grad_accum_batches: 1,
            grad_clip: 5.0,
        },
    );
}

#[test]
fn presets_are_per_kind_and_unknown_names_list_the_valid_ones() {
    // The same preset name means different settings for different kinds.
    let u = TrainConfig::preset("unet", "norman19").unwrap();
    let m = TrainConfig::preset("mlp", "norman19").unwrap();
    assert_ne!(u.lr, m.lr);
    let e = TrainConfig::preset("unet", "huge").unwrap_err().to_string();
    assert!(e.contains("huge") && e.contains("norman19"), "{e}");
    let e = TrainConfig::preset("transformer", "tiny")
        .unwrap_err()
        .to_string();
    assert!(e.contains("transformer") && e.contains("additive"), "{e}");
    // Settings a kind does not have are errors listing the valid keys.
    let e = ModelConfig::preset("unet", "tiny")
        .unwrap()
        .merged(&serde_json::json!({"tau_a": 0.9}), "cfg.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("tau_a") && e.contains("hidden_dim"), "{e}");
    let e = ModelConfig::preset("additive", "tiny")
        .unwrap()
        .merged(&serde_json::json!({"hidden_dim": 3}), "cfg.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("hidden_dim"), "{e}");
}

#[test]
fn fm_pca_ot_presets_are_tables_14_to_17() {
    for (preset, fm, cells) in [("srivatsan20", 14, 128), ("norman19", 15, 256)] {
        let ModelConfig::PcaOt(c) = ModelConfig::preset("pca-ot", preset).unwrap() else {
            panic!("not FM PCA OT")
        };
        // FM PCA's table of the same data set (Table 14 or 15) ...
        let ModelConfig::Pca(p) = ModelConfig::preset("pca", preset).unwrap() else {
            panic!("not FM PCA")
        };
        assert_eq!(c.velocity, p.velocity, "Table {fm}");
        assert_eq!(c.n_components, p.n_components);
        assert_eq!(
            TrainConfig::preset("pca-ot", preset).unwrap(),
            TrainConfig::preset("pca", preset).unwrap(),
            "Table {fm}"
        );
        // ... plus Table 16 or 17.
        assert_eq!(c.ot.num_samples_per_condition, cells, "{preset}");
        assert_eq!((c.ot.tau_a, c.ot.tau_b), (1.0, 1.0), "{preset}");
        assert!(
            c.ot.is_balanced(),
            "solver_type unbalanced with tau 1 is balanced"
        );
    }
}

#[test]
fn perturbench_baseline_presets_take_perturbench_settings() {
    // configs/model/{linear_additive,latent_additive,decoder_only}.yaml and
    // the neurips2024 best-params yamls (see src/model/baselines/*.rs).
    use primeflow::model::baselines::{decoder, latent, linear};
    for (kind, preset, lr, wd) in [
        (
            "linear",
            "norman19",
            linear::NORMAN19_LR,
            linear::NORMAN19_WD,
        ),
        (
            "linear",
            "srivatsan20",
            linear::SRIVATSAN20_LR,
            linear::SRIVATSAN20_WD,
        ),
        (
            "latent",
            "norman19",
            latent::NORMAN19_LR,
            latent::NORMAN19_WD,
        ),
        (
            "latent",
            "srivatsan20",
            latent::SRIVATSAN20_LR,
            latent::SRIVATSAN20_WD,
        ),
        (
            "decoder",
            "norman19",
            decoder::NORMAN19_LR,
            decoder::NORMAN19_WD,
        ),
        (
            "decoder",
            "srivatsan20",
            decoder::SRIVATSAN20_LR,
            decoder::SRIVATSAN20_WD,
        ),
    ] {
        let c = TrainConfig::preset(kind, preset).unwrap();
        assert_eq!(
            (c.lr, c.weight_decay, c.batch_size),
            (lr, wd, 4000),
            "{kind}/{preset}"
        );
        assert_eq!(c.prob_unconditional, 0.0);
    }
    assert_eq!(latent::PAPER_LR, 6.72106935566634e-05);
    assert_eq!(linear::PAPER_WD, 1e-4);
    let ModelConfig::Latent(l) = ModelConfig::preset("latent", "norman19").unwrap() else {
        panic!()
    };
    assert_eq!((l.n_layers, l.encoder_width, l.latent_dim), (1, 5376, 64));
}

/// The CPU recipe (`cpu`, docs/results/recipe.md): the 16-channel U-Net
/// with one condition layer, the condition skip and the response space,
/// trained at lr 3e-3 with covariate dropout; the MLP in the response
/// space; every other kind takes its `tiny` settings under that name.
#[test]
fn cpu_presets_are_the_recipe() {
    use primeflow::model::DataSpace;
    let ModelConfig::Unet(u) = ModelConfig::preset("unet", "cpu").unwrap() else {
        panic!("not a U-Net")
    };
    assert_eq!(
        (u.hidden_dim, u.norm_groups, u.n_layers_conditions),
        (16, 4, 1)
    );
    assert!(u.condition_skip);
    assert_eq!(u.space, DataSpace::Response);
    let t = TrainConfig::preset("unet", "cpu").unwrap();
    assert_eq!((t.lr, t.steps, t.covariate_dropout), (3e-3, 1000, 0.3));
    assert_eq!(t.lr_schedule, primeflow::train::LrSchedule::Cosine);
    let ModelConfig::Mlp(m) = ModelConfig::preset("mlp", "cpu").unwrap() else {
        panic!("not an MLP")
    };
    assert_eq!(m.space, DataSpace::Response);
    assert_eq!(
        TrainConfig::preset("mlp", "cpu").unwrap().covariate_dropout,
        0.3
    );
    for kind in [
        "pca", "pca-ot", "linear", "latent", "decoder", "control", "additive",
    ] {
        let a = serde_json::to_value(ModelConfig::preset(kind, "cpu").unwrap()).unwrap();
        let b = serde_json::to_value(ModelConfig::preset(kind, "tiny").unwrap()).unwrap();
        assert_eq!(a, b, "{kind}");
        let a = serde_json::to_value(TrainConfig::preset(kind, "cpu").unwrap()).unwrap();
        let b = serde_json::to_value(TrainConfig::preset(kind, "tiny").unwrap()).unwrap();
        assert_eq!(a, b, "{kind}");
    }
    // The paper presets are untouched by the recipe.
    for name in ["norman19", "srivatsan20"] {
        let ModelConfig::Unet(u) = ModelConfig::preset("unet", name).unwrap() else {
            panic!()
        };
        assert!(!u.condition_skip);
        assert_eq!(u.space, DataSpace::Log1p);
        assert_eq!(
            TrainConfig::preset("unet", name).unwrap().covariate_dropout,
            0.0
        );
    }
}
