//! `autoseg-network`: the dynamic U-Net on libtorch.
//!
//! Owns nnU-Net's PlainConvUNet and ResidualEncoderUNet (2D and 3D, per-stage kernels and
//! strides, deep supervision), built only from a plan's architecture, with nnU-Net's parameter
//! names, the checkpoint format ([`checkpoint`]: file names, schema version, metadata, saving
//! and loading weights with their checks; the trainer and the predictor both go through it),
//! plus the description of the libtorch the process runs on, and reading `torch.save` archives
//! (nnU-Net's `.pth` checkpoints) without executing their pickle ([`torch_file`]).
//!
//! Must not: read files other than checkpoints (its own and torch's), choose hyper-parameters (the plan
//! does), or panic on a plan that was validated when it was loaded.

pub mod checkpoint;
mod error;
mod layers;
mod layout;
pub mod torch_file;
mod torch_info;
mod unet;

pub use error::NetworkError;
pub use layout::conv_feature_map_size;
pub use torch_info::{torch_runtime, TorchRuntime};
pub use unet::UNet;
