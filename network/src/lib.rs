//! `autoseg-network`: the dynamic U-Net on libtorch.
//!
//! Owns nnU-Net's PlainConvUNet and ResidualEncoderUNet (2D and 3D, per-stage kernels and
//! strides, deep supervision), built only from a plan's architecture, with nnU-Net's parameter
//! names, plus the description of the libtorch the process runs on.
//!
//! Must not: read files other than checkpoints it is handed, choose hyper-parameters (the plan
//! does), or panic on a plan that was validated when it was loaded.

mod error;
mod layers;
mod layout;
mod torch_info;
mod unet;

pub use error::NetworkError;
pub use layout::conv_feature_map_size;
pub use torch_info::{torch_runtime, TorchRuntime};
pub use unet::UNet;
