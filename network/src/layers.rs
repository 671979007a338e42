//! The building blocks of the U-Net on libtorch: an N-d convolution (plain or transposed),
//! instance norm, and nnU-Net's conv-norm-LeakyReLU stacks.
//!
//! One convolution type serves 2D and 3D: libtorch's `convolution` op takes the spatial rank from
//! the weight, so the kernel lengths of the layer list decide. (tch's own `ConvTranspose2D/3D`
//! cannot be built with per-axis kernels such as `[1, 2, 2]`, which nnU-Net plans use.)

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init};
use tch::{TchError, Tensor};

use crate::layout::{ConvDesc, StackDesc};

/// nnU-Net's LeakyReLU slope, also the `a` of its He init (`InitWeights_He(1e-2)`).
const NEG_SLOPE: f64 = 1e-2;

/// nnU-Net's `InstanceNorm` eps (`norm_op_kwargs = {'eps': 1e-5, 'affine': True}`).
const NORM_EPS: f64 = 1e-5;

/// `kaiming_normal_(w, a=0.01)`: normal, std `gain / sqrt(fan_in)`, gain `sqrt(2 / (1 + a^2))`;
/// fan_in is `w.size(1) * prod(kernel)` for plain and transposed convolutions alike.
fn he_init() -> Init {
    let gain = (2.0 / (1.0 + NEG_SLOPE * NEG_SLOPE)).sqrt();
    Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanIn,
        non_linearity: NonLinearity::ExplicitGain(gain),
    }
}

/// A convolution with bias, He-initialised; `transposed` ones have weight `[in, out, *k]`.
#[derive(Debug)]
pub(crate) struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: Vec<i64>,
    padding: Vec<i64>,
    transposed: bool,
}

impl Conv {
    /// Variables `weight` and `bias` under `p`.
    pub(crate) fn new(p: &nn::Path, desc: &ConvDesc, transposed: bool) -> Conv {
        let (first, second) = if transposed {
            (desc.in_ch, desc.out_ch)
        } else {
            (desc.out_ch, desc.in_ch)
        };
        let mut dims = vec![first, second];
        dims.extend(&desc.kernel);
        Conv {
            weight: p.var("weight", &dims, he_init()),
            bias: p.var("bias", &[desc.out_ch], Init::Const(0.0)),
            stride: desc.stride.clone(),
            padding: if transposed {
                vec![0; desc.kernel.len()]
            } else {
                desc.padding()
            },
            transposed,
        }
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let n_axes = self.stride.len();
        xs.f_convolution(
            &self.weight,
            Some(&self.bias),
            self.stride.as_slice(),
            self.padding.as_slice(),
            vec![1i64; n_axes].as_slice(),
            self.transposed,
            vec![0i64; n_axes].as_slice(),
            1,
        )
    }
}

/// `InstanceNorm{2,3}d(affine=True, eps=1e-5, track_running_stats=False)`: instance statistics
/// in training and inference alike.
#[derive(Debug)]
struct InstanceNorm {
    weight: Tensor,
    bias: Tensor,
}

impl InstanceNorm {
    fn new(p: &nn::Path, channels: i64) -> InstanceNorm {
        InstanceNorm {
            weight: p.var("weight", &[channels], Init::Const(1.0)),
            bias: p.var("bias", &[channels], Init::Const(0.0)),
        }
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        xs.f_instance_norm(
            Some(&self.weight),
            Some(&self.bias),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.1,
            NORM_EPS,
            true,
        )
    }
}

/// nnU-Net's `ConvDropoutNormReLU` without dropout: conv, instance norm, LeakyReLU(0.01).
/// Variables `conv.{weight,bias}` and `norm.{weight,bias}`.
#[derive(Debug)]
struct ConvNormAct {
    conv: Conv,
    norm: InstanceNorm,
}

impl ConvNormAct {
    fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let mut ys = self.norm.forward(&self.conv.forward(xs)?)?;
        // nnU-Net's LeakyReLU is in place (`nonlin_kwargs = {'inplace': True}`); tch's
        // leaky_relu uses torch's default slope, 0.01.
        ys.f_leaky_relu_()
    }
}

/// nnU-Net's `StackedConvBlocks`: variables `convs.{i}.conv.*` and `convs.{i}.norm.*`.
#[derive(Debug)]
pub(crate) struct StackedConvs {
    blocks: Vec<ConvNormAct>,
}

impl StackedConvs {
    pub(crate) fn new(p: &nn::Path, desc: &StackDesc) -> StackedConvs {
        let convs = p / "convs";
        let blocks = desc
            .convs
            .iter()
            .enumerate()
            .map(|(i, conv)| {
                let block = &convs / i;
                ConvNormAct {
                    conv: Conv::new(&(&block / "conv"), conv, false),
                    norm: InstanceNorm::new(&(&block / "norm"), conv.out_ch),
                }
            })
            .collect();
        StackedConvs { blocks }
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        self.blocks
            .iter()
            .try_fold(xs.shallow_clone(), |ys, block| block.forward(&ys))
    }
}
