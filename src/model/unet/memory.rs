//! Peak activation memory of one U-Net forward pass per row (cell), for
//! sizing sampling batches by bytes instead of rows.
//!
//! Under no-grad a forward keeps every input block's output as a skip until
//! the decoder consumes it, plus the working tensors of the layer it is in.
//! Counted in f32 elements per row, with `L = M / ds`:
//! * the value encoding: the `[m, d]` sinusoid and its per-gene MLP (about
//!   3 tensors of `m d`) and the padded `[d, M]` input;
//! * skips: `ch L` of every input block's output, all held at once;
//! * working set: `4 ch_out L` for a ResBlock (input, normalised, first conv,
//!   output; the concatenated input of an up-path block counted in), and for
//!   an AttentionBlock `4 ch L` (qkv and output) plus `2 heads L^2` (the
//!   scores and their softmax, f32);
//! * the largest working set of any layer is added to the skips.
//!
//! Allocator slack is not counted; callers keep a margin (the sampler uses
//! 2x). [`UNetVelocity::activation_bytes_per_row`] is an estimate, checked
//! against measured peak RSS in the sampling benchmark.

use super::config::UNetConfig;
use super::plan::{Layer, Plan};
use super::unet::{padded_len, UNetVelocity};

impl UNetVelocity {
    /// Estimated peak activation bytes of one row of a no-grad forward at
    /// `n_genes` genes (see the module docs).
    pub fn activation_bytes_per_row(cfg: &UNetConfig, n_genes: usize) -> f64 {
        let d = cfg.hidden_dim as f64;
        let big_m = padded_len(n_genes, cfg.pad_multiple());
        let m = n_genes as f64;
        let inputs = 3.0 * m * d + d * big_m as f64;
        let plan = Plan::new(cfg);
        let mut skips = 0.0f64;
        let mut work = inputs;
        let mut visit = |placed: &super::plan::Placed, skips: &mut f64, add_skip: bool| {
            let len = (big_m / placed.ds.max(1)) as f64;
            let (ch_out, w) = match placed.layer {
                Layer::InConv { cin, cout } => (cout as f64, (cin + 2 * cout) as f64 * len),
                Layer::Res { cin, cout } => (cout as f64, (cin + 3 * cout) as f64 * len),
                Layer::Attn { ch } => (
                    ch as f64,
                    4.0 * ch as f64 * len + 2.0 * cfg.num_heads as f64 * len * len,
                ),
                Layer::Down { ch } => (ch as f64, 1.5 * ch as f64 * len),
                Layer::Up { ch } => (ch as f64, 3.0 * ch as f64 * len),
            };
            work = work.max(w);
            if add_skip {
                let out_len = match placed.layer {
                    Layer::Down { .. } => len / 2.0,
                    _ => len,
                };
                *skips = ch_out * out_len;
            }
        };
        let mut total_skips = 0.0;
        for block in &plan.input_blocks {
            let mut last = 0.0;
            for p in block {
                visit(p, &mut last, true);
            }
            total_skips += last;
        }
        for p in plan
            .middle_block
            .iter()
            .chain(plan.output_blocks.iter().flatten())
        {
            visit(p, &mut skips, false);
        }
        4.0 * (total_skips + work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_grows_with_genes_and_attention_quadratically() {
        let tiny = UNetConfig::preset("tiny").unwrap();
        let a = UNetVelocity::activation_bytes_per_row(&tiny, 500);
        let b = UNetVelocity::activation_bytes_per_row(&tiny, 2000);
        // At least linear in m; the attention scores make it superlinear.
        assert!(b > 4.0 * a * 0.99, "{a} {b}");
        assert!(a > 4.0 * 32.0 * 500.0, "{a}");
        let paper = UNetConfig::preset("srivatsan20").unwrap();
        let p = UNetVelocity::activation_bytes_per_row(&paper, 2000);
        assert!(p > b, "{p} vs {b}");
    }
}
