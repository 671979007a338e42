//! The building blocks of the U-Net on libtorch: an N-d convolution (plain or transposed),
//! instance or batch norm, nnU-Net's conv-norm-LeakyReLU stacks, and dna's residual
//! `BasicBlockD` stacks.
//!
//! One convolution type serves 2D and 3D: libtorch's `convolution` op takes the spatial rank from
//! the weight, so the kernel lengths of the layer list decide. (tch's own `ConvTranspose2D/3D`
//! cannot be built with per-axis kernels such as `[1, 2, 2]`, which nnU-Net plans use.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use autoseg_planner::NormKind;
use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init};
use tch::{Kind, TchError, Tensor};

use crate::layout::{ConvDesc, ResidualBlockDesc, ResidualStageDesc, StackDesc};

/// nnU-Net's LeakyReLU slope, also the `a` of its He init (`InitWeights_He(1e-2)`).
const NEG_SLOPE: f64 = 1e-2;

/// nnU-Net's norm eps (`norm_op_kwargs = {'eps': 1e-5, 'affine': True}`).
const NORM_EPS: f64 = 1e-5;

/// torch `BatchNorm`'s default momentum of the running statistics.
const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// How the network's norms are built, and the mode batch norm runs in (shared by every norm of
/// one network: [`crate::UNet::set_training`]).
#[derive(Debug, Clone)]
pub(crate) struct NormSetup {
    pub kind: NormKind,
    pub training: Arc<AtomicBool>,
}

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

/// A convolution, He-initialised, with a zero bias when `desc.bias`; `transposed` ones have
/// weight `[in, out, *k]`.
#[derive(Debug)]
pub(crate) struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: Vec<i64>,
    padding: Vec<i64>,
    transposed: bool,
}

impl Conv {
    /// Variables `weight` and (when `desc.bias`) `bias` under `p`.
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
            bias: desc
                .bias
                .then(|| p.var("bias", &[desc.out_ch], Init::Const(0.0))),
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
            self.bias.as_ref(),
            self.stride.as_slice(),
            self.padding.as_slice(),
            vec![1i64; n_axes].as_slice(),
            self.transposed,
            vec![0i64; n_axes].as_slice(),
            1,
        )
    }
}

/// The norm after a convolution: `InstanceNorm{2,3}d(affine=True, eps=1e-5)` (instance
/// statistics in training and inference alike), or `BatchNorm{2,3}d(affine=True, eps=1e-5,
/// momentum=0.1)`: batch statistics in training, which update the running ones, and the running
/// ones in inference. Variables `weight`, `bias`, and for batch norm the non-trainable
/// `running_mean`, `running_var` and `num_batches_tracked` (int64), as torch names them.
#[derive(Debug)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    batch: Option<BatchStats>,
}

/// Batch norm's running statistics and the network's mode.
#[derive(Debug)]
struct BatchStats {
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
    training: Arc<AtomicBool>,
}

impl Norm {
    /// Weight `weight_init` (1 as in torch, 0 for dna's `init_last_bn_before_add_to_0`), bias 0;
    /// running mean 0 and variance 1.
    fn new(p: &nn::Path, channels: i64, weight_init: f64, setup: &NormSetup) -> Norm {
        let batch = (setup.kind == NormKind::Batch).then(|| BatchStats {
            running_mean: p.zeros_no_train("running_mean", &[channels]),
            running_var: p.ones_no_train("running_var", &[channels]),
            num_batches_tracked: p.add(
                "num_batches_tracked",
                Tensor::zeros([], (Kind::Int64, p.device())),
                false,
            ),
            training: Arc::clone(&setup.training),
        });
        Norm {
            weight: p.var("weight", &[channels], Init::Const(weight_init)),
            bias: p.var("bias", &[channels], Init::Const(0.0)),
            batch,
        }
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let Some(stats) = &self.batch else {
            return xs.f_instance_norm(
                Some(&self.weight),
                Some(&self.bias),
                None::<&Tensor>,
                None::<&Tensor>,
                true,
                0.1,
                NORM_EPS,
                true,
            );
        };
        let training = stats.training.load(Ordering::Relaxed);
        if training {
            let mut count = stats.num_batches_tracked.shallow_clone();
            let _ = count.f_add_scalar_(1)?;
        }
        xs.f_batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&stats.running_mean),
            Some(&stats.running_var),
            training,
            BATCH_NORM_MOMENTUM,
            NORM_EPS,
            true,
        )
    }
}

/// nnU-Net's `ConvDropoutNormReLU` without dropout and nonlinearity: conv, norm.
/// Variables `conv.{weight,bias}` and `norm.*`.
#[derive(Debug)]
struct ConvNorm {
    conv: Conv,
    norm: Norm,
}

impl ConvNorm {
    /// `zero_norm`: the norm starts as weight 0 (the last norm before a residual addition).
    fn new(p: &nn::Path, desc: &ConvDesc, zero_norm: bool, norm: &NormSetup) -> ConvNorm {
        let weight_init = if zero_norm { 0.0 } else { 1.0 };
        ConvNorm {
            conv: Conv::new(&(p / "conv"), desc, false),
            norm: Norm::new(&(p / "norm"), desc.out_ch, weight_init, norm),
        }
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        self.norm.forward(&self.conv.forward(xs)?)
    }
}

/// nnU-Net's `ConvDropoutNormReLU` without dropout: conv, norm, LeakyReLU(0.01).
/// Variables `conv.{weight,bias}` and `norm.*`.
#[derive(Debug)]
struct ConvNormAct(ConvNorm);

impl ConvNormAct {
    fn new(p: &nn::Path, desc: &ConvDesc, norm: &NormSetup) -> ConvNormAct {
        ConvNormAct(ConvNorm::new(p, desc, false, norm))
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let mut ys = self.0.forward(xs)?;
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
    pub(crate) fn new(p: &nn::Path, desc: &StackDesc, norm: &NormSetup) -> StackedConvs {
        let convs = p / "convs";
        let blocks = desc
            .convs
            .iter()
            .enumerate()
            .map(|(i, conv)| ConvNormAct::new(&(&convs / i), conv, norm))
            .collect();
        StackedConvs { blocks }
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        self.blocks
            .iter()
            .try_fold(xs.shallow_clone(), |ys, block| block.forward(&ys))
    }
}

/// `AvgPool{2,3}d(stride, stride)`: kernel = stride, no padding, floor mode.
fn avg_pool(xs: &Tensor, stride: &[i64]) -> Result<Tensor, TchError> {
    let padding = vec![0i64; stride.len()];
    if stride.len() == 2 {
        xs.f_avg_pool2d(stride, stride, padding.as_slice(), false, true, None)
    } else {
        xs.f_avg_pool3d(stride, stride, padding.as_slice(), false, true, None)
    }
}

/// dna's `BasicBlockD`: variables `conv1.{conv,norm}.*`, `conv2.{conv,norm}.*` (conv2's norm
/// starts at weight 0 and bias 0, dna's `init_last_bn_before_add_to_0`), and the skip
/// projection `skip.{i}.{conv.weight,norm.*}`, `i` = 1 after a pool, else 0.
#[derive(Debug)]
struct ResidualBlock {
    conv1: ConvNormAct,
    conv2: ConvNorm,
    pool: Option<Vec<i64>>,
    projection: Option<ConvNorm>,
}

impl ResidualBlock {
    fn new(p: &nn::Path, desc: &ResidualBlockDesc, norm: &NormSetup) -> ResidualBlock {
        let pool = desc.skip.pool.clone();
        let projection_idx = usize::from(pool.is_some());
        let projection = desc
            .skip
            .projection
            .as_ref()
            .map(|conv| ConvNorm::new(&(p / "skip" / projection_idx), conv, false, norm));
        ResidualBlock {
            conv1: ConvNormAct::new(&(p / "conv1"), &desc.conv1, norm),
            conv2: ConvNorm::new(&(p / "conv2"), &desc.conv2, true, norm),
            pool,
            projection,
        }
    }

    /// `nonlin(conv2(conv1(x)) + skip(x))`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let mut residual = xs.shallow_clone();
        if let Some(stride) = &self.pool {
            residual = avg_pool(&residual, stride)?;
        }
        if let Some(projection) = &self.projection {
            residual = projection.forward(&residual)?;
        }
        let mut ys = self.conv2.forward(&self.conv1.forward(xs)?)?;
        // `out += residual`, then dna's `nonlin2`, LeakyReLU(0.01), both in place.
        ys.f_add_(&residual)?.f_leaky_relu_()
    }
}

/// dna's `StackedResidualBlocks`: variables `blocks.{b}.*` (see `ResidualBlock`).
#[derive(Debug)]
pub(crate) struct ResidualBlocks {
    blocks: Vec<ResidualBlock>,
}

impl ResidualBlocks {
    pub(crate) fn new(p: &nn::Path, desc: &ResidualStageDesc, norm: &NormSetup) -> ResidualBlocks {
        let p = p / "blocks";
        let blocks = desc
            .blocks
            .iter()
            .enumerate()
            .map(|(b, block)| ResidualBlock::new(&(&p / b), block, norm))
            .collect();
        ResidualBlocks { blocks }
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        self.blocks
            .iter()
            .try_fold(xs.shallow_clone(), |ys, block| block.forward(&ys))
    }
}
