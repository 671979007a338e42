//! The resolved network architecture of one configuration: an array of stages, never parallel
//! lists. `plans.toml` keeps nnU-Net's parallel lists; resolving a configuration builds this.

use serde::{Deserialize, Serialize};

/// Spatial dimensionality of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    /// 2D convolutions over (y, x) slices.
    Two,
    /// 3D convolutions over (z, y, x) volumes.
    Three,
}

impl Dim {
    /// Number of spatial axes (2 or 3).
    pub fn n_axes(self) -> usize {
        match self {
            Dim::Two => 2,
            Dim::Three => 3,
        }
    }
}

/// Which U-Net family a configuration uses (nnU-Net's `network_class_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetworkKind {
    /// `dynamic_network_architectures.architectures.unet.PlainConvUNet`.
    PlainConvUNet,
    /// `dynamic_network_architectures.architectures.unet.ResidualEncoderUNet`.
    ResidualEncoderUNet,
}

/// One resolution stage of the U-Net encoder (and the decoder stage at the same resolution).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    /// Feature maps (channels) of this stage.
    pub features: usize,
    /// Convolution kernel size per spatial axis.
    pub kernel: Vec<usize>,
    /// Stride of the stage's first convolution per spatial axis (all ones for stage 0).
    pub stride: Vec<usize>,
    /// Convolutions (PlainConvUNet) or residual blocks (ResidualEncoderUNet) in the encoder stage.
    pub n_convs: usize,
    /// Convolutions of the decoder stage at this resolution; `None` only for the bottleneck.
    pub n_convs_decoder: Option<usize>,
}

/// A validated U-Net architecture: at least two stages, every kernel and stride with `dim` axes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UNetSpec {
    /// 2D or 3D.
    pub dim: Dim,
    /// Network family.
    pub kind: NetworkKind,
    /// Stages from the highest resolution (index 0) to the bottleneck (last).
    pub stages: Vec<StageSpec>,
}
