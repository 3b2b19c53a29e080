//! The U-Net's layout as data: which block sits where, with which channels,
//! at which downsampling factor `ds`. Built once from a [`UNetConfig`] and
//! used both to build the network ([`super::UNetVelocity::new`]) and to count
//! its FLOPs ([`super::UNetVelocity::flops_per_cell`]), so the two cannot
//! drift apart.
//!
//! Rules (model.md "Blocks"; guided-diffusion's `UNetModel.__init__`):
//! * `input_blocks.0` is `Conv1d(d -> channel_mult[0] d, k3)`.
//! * Down path, level `l` (ds = 2^l): `num_res_blocks` ResBlocks to
//!   `channel_mult[l] d` channels, each followed by an AttentionBlock when
//!   `ds` is in `attention_resolutions`; then a Downsample (its own input
//!   block) except at the last level. Every input block's output is a skip.
//! * Middle: ResBlock, AttentionBlock, ResBlock at the deepest channels.
//! * Up path, levels reversed: `num_res_blocks + 1` ResBlocks, each on the
//!   concatenation `[h, popped skip]`, AttentionBlock when `ds` is listed, and
//!   an Upsample after the level's last block except at level 0.

use super::config::UNetConfig;

/// One layer and the channel counts it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `input_blocks.0.0`: `Conv1d(cin -> cout, k3)`.
    InConv { cin: usize, cout: usize },
    /// `ResBlock(cin -> cout)`.
    Res { cin: usize, cout: usize },
    /// `AttentionBlock(ch)`.
    Attn { ch: usize },
    /// `Downsample(ch)`: length / 2.
    Down { ch: usize },
    /// `Upsample(ch)`: length x 2.
    Up { ch: usize },
}

/// A layer whose input has length `M / ds` (M: the padded gene axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The layer.
    pub layer: Layer,
    /// Downsampling factor of the layer's input.
    pub ds: usize,
}

/// The whole layout; block `i` of `input_blocks` is `input_blocks.i` in the
/// VarStore, its layer `j` is `input_blocks.i.j` (likewise for the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Encoder blocks; each block's output is pushed as a skip.
    pub input_blocks: Vec<Vec<Placed>>,
    /// Res, Attn, Res at the deepest level.
    pub middle_block: Vec<Placed>,
    /// Decoder blocks; each first concatenates the last skip.
    pub output_blocks: Vec<Vec<Placed>>,
    /// Channels entering the head (`channel_mult[0] * d`).
    pub out_channels: usize,
}

impl Plan {
    /// The layout `cfg` describes (assumes `cfg.validate()` passed).
    pub fn new(cfg: &UNetConfig) -> Plan {
        let d = cfg.hidden_dim;
        let levels = cfg.levels();
        let attends = |ds: usize| cfg.attention_resolutions.contains(&ds);
        let mut ch = cfg.channel_mult.first().copied().unwrap_or(1) * d;
        let mut ds = 1;
        let mut input_blocks = vec![vec![Placed {
            layer: Layer::InConv { cin: d, cout: ch },
            ds,
        }]];
        let mut skips = vec![ch];
        for (level, &mult) in cfg.channel_mult.iter().enumerate() {
            for _ in 0..cfg.num_res_blocks {
                let cout = mult * d;
                let mut block = vec![Placed {
                    layer: Layer::Res { cin: ch, cout },
                    ds,
                }];
                ch = cout;
                if attends(ds) {
                    block.push(Placed {
                        layer: Layer::Attn { ch },
                        ds,
                    });
                }
                input_blocks.push(block);
                skips.push(ch);
            }
            if level + 1 != levels {
                input_blocks.push(vec![Placed {
                    layer: Layer::Down { ch },
                    ds,
                }]);
                skips.push(ch);
                ds *= 2;
            }
        }
        let middle_block = vec![
            Placed {
                layer: Layer::Res { cin: ch, cout: ch },
                ds,
            },
            Placed {
                layer: Layer::Attn { ch },
                ds,
            },
            Placed {
                layer: Layer::Res { cin: ch, cout: ch },
                ds,
            },
        ];
        let mut output_blocks = Vec::new();
        for (level, &mult) in cfg.channel_mult.iter().enumerate().rev() {
            for i in 0..=cfg.num_res_blocks {
                let skip = skips.pop().unwrap_or(0);
                let cout = mult * d;
                let mut block = vec![Placed {
                    layer: Layer::Res {
                        cin: ch + skip,
                        cout,
                    },
                    ds,
                }];
                ch = cout;
                if attends(ds) {
                    block.push(Placed {
                        layer: Layer::Attn { ch },
                        ds,
                    });
                }
                if level > 0 && i == cfg.num_res_blocks {
                    block.push(Placed {
                        layer: Layer::Up { ch },
                        ds,
                    });
                    ds /= 2;
                }
                output_blocks.push(block);
            }
        }
        Plan {
            input_blocks,
            middle_block,
            output_blocks,
            out_channels: ch,
        }
    }
}
