//! PRiMeFlow's U-Net velocity field (model.md "The U-Net velocity field"):
//! guided-diffusion's `UNetModel` with `dims = 1`, genes as the spatial axis
//! and features as channels, layout `[B, C, M]`.
//!
//! One block per file, in the order a reader needs them:
//! * [`config`]: [`UNetConfig`] and its presets;
//! * [`layers`]: `Linear`, `Conv1d`, fp32 `GroupNorm` (PyTorch default init);
//! * [`embed`]: value encoding, gene embedding, time and condition MLPs;
//! * [`resblock`], [`attention`], [`resample`]: the U-Net's blocks;
//! * [`plan`]: the block layout derived from a config;
//! * [`unet`]: [`UNetVelocity`], the network, implementing
//!   [`VelocityField`](crate::model::VelocityField);
//! * `flops`: forward FLOPs per cell ([`UNetVelocity::flops_per_cell`]).

pub mod attention;
pub mod config;
pub mod embed;
mod flops;
pub mod layers;
mod memory;
pub mod plan;
pub mod resample;
pub mod resblock;
#[allow(clippy::module_inception)]
pub mod unet;

pub use attention::AttentionBlock;
pub use config::UNetConfig;
pub use resample::{Downsample, Upsample};
pub use resblock::ResBlock;
pub use unet::UNetVelocity;
