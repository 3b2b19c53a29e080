//! `UNetVelocity`: PRiMeFlow's velocity field `v_theta(x_t, t, c)`, the
//! guided-diffusion `UNetModel` with `dims = 1` over the gene axis
//! (model.md "The U-Net velocity field").
//!
//! ```text
//! x_t [B, m] --value encoding + gene embedding--> [B, m, d]
//!            --transpose--> [B, d, m] --zero-pad right--> [B, d, M]   (M = m rounded up to 2^(levels-1))
//! t [B]   --sinusoid(1000 t)--> [B, d] --time_embed--> [B, 4d] \
//!                                                              + = emb [B, 4d]
//! c [B, n_c] --cond_embed-------------------------------> [B, 4d] /
//! h = input_blocks(h, emb)  (skips pushed)  [B, mult_L d, M / 2^(L-1)]
//! h = middle_block(h, emb)
//! h = output_blocks([h, skip], emb)         [B, mult_0 d, M]
//! out = Conv1d_k3(SiLU(GN(h)))  (out.{0,2}, zero-initialised) [B, 1, M] -> [B, m]
//! out = out + Linear(c)          (only with `condition_skip`: [B, n_c] -> [B, m],
//!                                 condition_skip.{weight [m, n_c], bias [m]}, zero-initialised)
//! ```
//!
//! VarStore names follow guided-diffusion's PyTorch state dict
//! (`time_embed.0.weight`, `input_blocks.1.0.in_layers.0.weight`,
//! `middle_block.1.qkv.weight`, `out.2.weight`, ...) plus PRiMeFlow's
//! `value_mlp.*`, `gene_embedding.weight` and `cond_embed.*`.

use tch::nn::Path;
use tch::{Device, Kind, Tensor};

use super::attention::AttentionBlock;
use super::config::UNetConfig;
use super::embed::{sinusoidal_embedding, Mlp, ValueEncoder, TIME_SCALE};
use super::layers::{Conv1d, GroupNorm, Linear};
use super::plan::{Layer, Plan};
use super::resample::{Downsample, Upsample};
use super::resblock::ResBlock;
use crate::error::{Error, Result};
use crate::model::VelocityField;

/// One layer inside a U-Net block (guided-diffusion's
/// `TimestepEmbedSequential` members).
#[derive(Debug)]
enum Module {
    Conv(Conv1d),
    Res(ResBlock),
    Attn(AttentionBlock),
    Down(Downsample),
    Up(Upsample),
}

impl Module {
    fn new(p: &Path, layer: Layer, emb_dim: usize, cfg: &UNetConfig) -> Result<Module> {
        Ok(match layer {
            Layer::InConv { cin, cout } => Module::Conv(Conv1d::k3(p, cin, cout, false)?),
            Layer::Res { cin, cout } => Module::Res(ResBlock::new(p, cin, cout, emb_dim, cfg)?),
            Layer::Attn { ch } => {
                Module::Attn(AttentionBlock::new(p, ch, cfg.num_heads, cfg.norm_groups)?)
            }
            Layer::Down { ch } => Module::Down(Downsample::new(p, ch, cfg.conv_resample)?),
            Layer::Up { ch } => Module::Up(Upsample::new(p, ch, cfg.conv_resample)?),
        })
    }

    fn forward(&self, x: &Tensor, emb: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Module::Conv(m) => m.forward(x),
            Module::Res(m) => m.forward(x, emb, train),
            Module::Attn(m) => m.forward(x),
            Module::Down(m) => m.forward(x),
            Module::Up(m) => m.forward(x),
        }
    }
}

/// A sequence of layers sharing `emb`, named `<p>.0`, `<p>.1`, ...
#[derive(Debug)]
struct Block(Vec<Module>);

impl Block {
    fn new(
        p: &Path,
        layers: &[super::plan::Placed],
        emb_dim: usize,
        cfg: &UNetConfig,
    ) -> Result<Block> {
        let modules = layers
            .iter()
            .enumerate()
            .map(|(j, placed)| Module::new(&(p / j), placed.layer, emb_dim, cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Block(modules))
    }

    fn forward(&self, x: &Tensor, emb: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for m in &self.0 {
            h = m.forward(&h, emb, train)?;
        }
        Ok(h)
    }
}

/// The U-Net velocity field: `x_t [B, m]`, `t [B]`, `cond [B, n_c]` ->
/// `[B, m]` (model.md "The U-Net velocity field").
#[derive(Debug)]
pub struct UNetVelocity {
    cfg: UNetConfig,
    n_genes: usize,
    cond_dim: usize,
    device: Device,
    value: ValueEncoder,
    time_embed: Mlp,
    cond_embed: Mlp,
    input_blocks: Vec<Block>,
    middle_block: Block,
    output_blocks: Vec<Block>,
    out_norm: GroupNorm,
    out_conv: Conv1d,
    condition_skip: Option<Linear>,
}

impl UNetVelocity {
    /// Builds the U-Net for `n_genes` genes (`m`) and condition encodings of
    /// width `cond_dim` (`n_c`) under `p` (use the VarStore's root for
    /// state-dict names). Initial weights are drawn from torch's global RNG:
    /// seed it first (`crate::device::seed_everything`) for reproducible
    /// initialisation. Fails on an invalid `cfg`, `n_genes = 0` or
    /// `cond_dim = 0`.
    pub fn new(
        p: &Path,
        cfg: &UNetConfig,
        n_genes: usize,
        cond_dim: usize,
    ) -> Result<UNetVelocity> {
        cfg.validate()?;
        if n_genes == 0 {
            return Err(Error::invalid(
                "U-Net gene count",
                "0 genes; the data must have at least one gene",
            ));
        }
        if cond_dim == 0 {
            return Err(Error::invalid(
                "U-Net condition width",
                "0; the condition encoding must have at least one column",
            ));
        }
        let d = cfg.hidden_dim;
        let emb_dim = 4 * d;
        let value =
            ValueEncoder::new(p, d, n_genes, cfg.n_layers_gene_expression, cfg.value_scale)?;
        let time_embed = Mlp::new(&(p / "time_embed"), d, emb_dim, cfg.n_layers_time)?;
        let cond_embed = Mlp::new(
            &(p / "cond_embed"),
            cond_dim,
            emb_dim,
            cfg.n_layers_conditions,
        )?;
        let plan = Plan::new(cfg);
        let build = |name: &str, blocks: &[Vec<super::plan::Placed>]| {
            blocks
                .iter()
                .enumerate()
                .map(|(i, layers)| Block::new(&(p / name / i), layers, emb_dim, cfg))
                .collect::<Result<Vec<_>>>()
        };
        let input_blocks = build("input_blocks", &plan.input_blocks)?;
        let output_blocks = build("output_blocks", &plan.output_blocks)?;
        let middle_block = Block::new(&(p / "middle_block"), &plan.middle_block, emb_dim, cfg)?;
        let out_norm = GroupNorm::new(&(p / "out" / 0), cfg.norm_groups, plan.out_channels)?;
        let out_conv = Conv1d::k3(&(p / "out" / 2), plan.out_channels, 1, true)?;
        // Created last and zero-initialised: it draws nothing from the RNG,
        // so every other weight is the same with or without it.
        let condition_skip = if cfg.condition_skip {
            Some(Linear::new(
                &(p / "condition_skip"),
                cond_dim,
                n_genes,
                true,
            )?)
        } else {
            None
        };
        Ok(UNetVelocity {
            cfg: cfg.clone(),
            n_genes,
            cond_dim,
            device: p.device(),
            value,
            time_embed,
            cond_embed,
            input_blocks,
            middle_block,
            output_blocks,
            out_norm,
            out_conv,
            condition_skip,
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// Number of genes `m`.
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Width `n_c` of the condition encoding.
    pub fn cond_dim(&self) -> usize {
        self.cond_dim
    }

    /// The padded gene-axis length `M` (a multiple of `2^(levels-1)`).
    pub fn padded_len(&self) -> usize {
        padded_len(self.n_genes, self.cfg.pad_multiple())
    }

    /// Checks `x_t [B, m]`, `t [B]`, `cond [B, n_c]` and their device,
    /// returning `B`.
    fn check_inputs(&self, x_t: &Tensor, t: &Tensor, cond: &Tensor) -> Result<i64> {
        let (xs, ts, cs) = (x_t.size(), t.size(), cond.size());
        let (m, nc) = (self.n_genes as i64, self.cond_dim as i64);
        let b = match xs.as_slice() {
            &[b, g] if g == m => b,
            _ => {
                return Err(Error::Mismatch(format!(
                    "U-Net x_t has shape {xs:?}, expected [B, {m}] (B cells x {m} genes)"
                )))
            }
        };
        if ts.as_slice() != [b] {
            return Err(Error::Mismatch(format!(
                "U-Net t has shape {ts:?}, expected [{b}] (one time per row of x_t {xs:?})"
            )));
        }
        if cs.as_slice() != [b, nc] {
            return Err(Error::Mismatch(format!(
                "U-Net cond has shape {cs:?}, expected [{b}, {nc}] (x_t is {xs:?}; the model was built for {nc} condition columns)"
            )));
        }
        for (name, tensor) in [("x_t", x_t), ("t", t), ("cond", cond)] {
            if tensor.device() != self.device {
                return Err(Error::Mismatch(format!(
                    "U-Net input {name} is on {:?} but the model is on {:?}",
                    tensor.device(),
                    self.device
                )));
            }
        }
        Ok(b)
    }
}

/// `m` rounded up to a multiple of `multiple`.
pub(crate) fn padded_len(m: usize, multiple: usize) -> usize {
    m.div_ceil(multiple.max(1)) * multiple.max(1)
}

impl VelocityField for UNetVelocity {
    /// `x_t [B, m]`, `t [B]`, `cond [B, n_c]` -> velocity `[B, m]` f32.
    fn velocity(&self, x_t: &Tensor, t: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor> {
        let b = self.check_inputs(x_t, t, cond)?;
        let m = self.n_genes as i64;
        let d = self.cfg.hidden_dim;
        // Inputs: [B, m] -> [B, m, d] -> [B, d, m] -> [B, d, M]
        let h = self.value.forward(x_t)?.f_permute([0, 2, 1])?;
        let pad = self.padded_len() as i64 - m;
        let mut h = if pad > 0 {
            h.f_constant_pad_nd([0, pad])?
        } else {
            h
        };
        // emb = time_embed(sinusoid(1000 t)) + cond_embed(c): [B, 4d]
        let t_emb = self
            .time_embed
            .forward(&sinusoidal_embedding(t, d, TIME_SCALE)?)?;
        let c_emb = self.cond_embed.forward(&cond.f_to_kind(Kind::Float)?)?;
        let emb = t_emb.f_add(&c_emb)?;
        let mut skips = Vec::with_capacity(self.input_blocks.len());
        for block in &self.input_blocks {
            h = block.forward(&h, &emb, train)?;
            skips.push(h.shallow_clone());
        }
        h = self.middle_block.forward(&h, &emb, train)?;
        for block in &self.output_blocks {
            let skip = skips
                .pop()
                .ok_or_else(|| Error::Torch("U-Net: more output blocks than skips".into()))?;
            // [B, ch, L] ++ [B, skip_ch, L] -> [B, ch + skip_ch, L]
            h = block.forward(&Tensor::f_cat(&[&h, &skip], 1)?, &emb, train)?;
        }
        // Head: [B, mult_0 d, M] -> [B, 1, M] -> [B, M] -> [B, m]
        let out = self
            .out_conv
            .forward(&self.out_norm.forward(&h)?.f_silu()?)?;
        let out = out.f_squeeze_dim(1)?.f_narrow(1, 0, m)?;
        // Additive condition skip: [B, n_c] -> [B, m]
        let out = match &self.condition_skip {
            Some(lin) => out.f_add(&lin.forward(&cond.f_to_kind(Kind::Float)?)?)?,
            None => out,
        };
        debug_assert_eq!(out.size(), [b, m]);
        Ok(out.f_to_kind(Kind::Float)?)
    }
}
