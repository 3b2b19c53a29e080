//! Forward FLOPs of the U-Net per cell (model.md: Srivatsan20 at m = 2000
//! costs about 104.5 GFLOP forward, 313 forward+backward, > 98% convolution).
//!
//! Counted as 2 x multiply-accumulates:
//! * convolutions: `2 cin cout k L_out` (input conv, ResBlock convs and 1x1
//!   skips, Downsample/Upsample convs, attention `qkv` and `proj_out`, head);
//! * linear layers: `2 i o` per row (value MLP on each of the m real genes,
//!   the time and condition MLPs once per cell, each ResBlock's `emb_layers`);
//! * attention matmuls: `q^T k` and `v w^T`, `2 T^2 C` each.
//!
//! Not counted (a fraction of a percent): GroupNorm, SiLU, softmax, dropout,
//! the sinusoids, additions, padding, nearest upsampling and concatenation.
//! Lengths use the padded gene axis `M`.

use super::config::UNetConfig;
use super::plan::{Layer, Plan};
use super::unet::{padded_len, UNetVelocity};

/// FLOPs of `Conv1d(cin -> cout, k)` producing `len` outputs.
fn conv(cin: usize, cout: usize, k: usize, len: usize) -> f64 {
    2.0 * (cin * cout * k) as f64 * len as f64
}

/// FLOPs of `Linear(i -> o)` on `rows` rows.
fn linear(i: usize, o: usize, rows: usize) -> f64 {
    2.0 * (i * o) as f64 * rows as f64
}

impl UNetVelocity {
    /// Forward FLOPs for one cell of `n_genes` genes and condition width
    /// `cond_dim` under `cfg` (see the module doc for what is counted).
    /// Forward+backward is about three times this.
    pub fn flops_per_cell(cfg: &UNetConfig, n_genes: usize, cond_dim: usize) -> f64 {
        let d = cfg.hidden_dim;
        let emb = 4 * d;
        let big_m = padded_len(n_genes, cfg.pad_multiple());
        // Inputs: value MLP per real gene; time and condition MLPs per cell.
        let mlp = |i: usize, o: usize, n: usize, rows: usize| -> f64 {
            (0..n)
                .map(|k| linear(if k == 0 { i } else { o }, o, rows))
                .sum()
        };
        let mut total = mlp(d, d, cfg.n_layers_gene_expression, n_genes)
            + mlp(d, emb, cfg.n_layers_time, 1)
            + mlp(cond_dim, emb, cfg.n_layers_conditions, 1);
        if cfg.condition_skip {
            total += linear(cond_dim, n_genes, 1);
        }
        let plan = Plan::new(cfg);
        let layers = plan
            .input_blocks
            .iter()
            .chain(std::iter::once(&plan.middle_block))
            .chain(plan.output_blocks.iter())
            .flatten();
        for placed in layers {
            let len = big_m / placed.ds.max(1);
            total += match placed.layer {
                Layer::InConv { cin, cout } => conv(cin, cout, 3, len),
                Layer::Res { cin, cout } => {
                    let e_out = if cfg.use_scale_shift_norm {
                        2 * cout
                    } else {
                        cout
                    };
                    let skip = if cin == cout {
                        0.0
                    } else {
                        conv(cin, cout, 1, len)
                    };
                    conv(cin, cout, 3, len)
                        + conv(cout, cout, 3, len)
                        + linear(emb, e_out, 1)
                        + skip
                }
                Layer::Attn { ch } => {
                    conv(ch, 3 * ch, 1, len)
                        + conv(ch, ch, 1, len)
                        + 2.0 * 2.0 * (len * len * ch) as f64
                }
                Layer::Down { ch } if cfg.conv_resample => conv(ch, ch, 3, len / 2),
                Layer::Up { ch } if cfg.conv_resample => conv(ch, ch, 3, len * 2),
                Layer::Down { .. } | Layer::Up { .. } => 0.0,
            };
        }
        // Head: Conv1d(mult_0 d -> 1, k3) over M.
        total + conv(plan.out_channels, 1, 3, big_m)
    }
}
