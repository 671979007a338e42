//! nnU-Net's U-Nets on libtorch: built from a [`UNetSpec`], with nnU-Net's parameter names.
//!
//! nnU-Net: dna `architectures/unet.py::PlainConvUNet` (encoder `PlainConvEncoder`, decoder
//! `UNetDecoder`, init `InitWeights_He(1e-2)`) and `ResidualEncoderUNet` (encoder
//! `ResidualEncoder` of `BasicBlockD`s, the same decoder, init `InitWeights_He(1e-2)` then
//! `init_last_bn_before_add_to_0`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use autoseg_planner::{NormKind, UNetSpec};
use tch::{nn, TchError, Tensor};

use crate::layers::{Conv, NormSetup, ResidualBlocks, StackedConvs};
use crate::layout::{EncoderLayout, UNetLayout};
use crate::NetworkError;

/// The encoder, one variant per network family; the decoder is shared.
#[derive(Debug)]
enum Encoder {
    /// `PlainConvEncoder`: stage `s` is `encoder.stages.{s}.0` (a one-element `nn.Sequential`
    /// holding the stack), downsampling by its strided first convolution.
    Plain(Vec<StackedConvs>),
    /// `ResidualEncoder`: the stem `encoder.stem`, then stage `s` is `encoder.stages.{s}`
    /// (`StackedResidualBlocks`), downsampling by its strided first block.
    Residual {
        stem: StackedConvs,
        stages: Vec<ResidualBlocks>,
    },
}

impl Encoder {
    fn new(p: &nn::Path, layout: &EncoderLayout, norm: &NormSetup) -> Encoder {
        let stages_p = p / "stages";
        match layout {
            EncoderLayout::Plain(stages) => {
                let stacks = stages
                    .iter()
                    .enumerate()
                    .map(|(s, stack)| StackedConvs::new(&(&stages_p / s / 0), stack, norm))
                    .collect();
                Encoder::Plain(stacks)
            }
            EncoderLayout::Residual(encoder) => Encoder::Residual {
                stem: StackedConvs::new(&(p / "stem"), &encoder.stem, norm),
                stages: encoder
                    .stages
                    .iter()
                    .enumerate()
                    .map(|(s, stage)| ResidualBlocks::new(&(&stages_p / s), stage, norm))
                    .collect(),
            },
        }
    }

    /// The output of every stage, highest resolution first; the last is the bottleneck.
    fn skips(&self, xs: &Tensor) -> Result<Vec<Tensor>, TchError> {
        match self {
            Encoder::Plain(stages) => chain(xs.shallow_clone(), stages, StackedConvs::forward),
            Encoder::Residual { stem, stages } => {
                chain(stem.forward(xs)?, stages, ResidualBlocks::forward)
            }
        }
    }
}

/// Runs `stages` one after the other from `input`; returns every stage's output.
fn chain<S>(
    input: Tensor,
    stages: &[S],
    forward: impl Fn(&S, &Tensor) -> Result<Tensor, TchError>,
) -> Result<Vec<Tensor>, TchError> {
    let mut outputs: Vec<Tensor> = Vec::with_capacity(stages.len());
    for stage in stages {
        let out = forward(stage, outputs.last().unwrap_or(&input))?;
        outputs.push(out);
    }
    Ok(outputs)
}

/// One `UNetDecoder` stage: `transpconvs.{j}`, `stages.{j}`, `seg_layers.{j}`.
#[derive(Debug)]
struct DecoderStage {
    transpconv: Conv,
    stack: StackedConvs,
    seg_head: Conv,
}

/// nnU-Net's PlainConvUNet or ResidualEncoderUNet (2D or 3D), as its spec says.
///
/// Variables (nnU-Net's parameter names, dna's `named_parameters()`): PlainConvUNet's encoder
/// has `encoder.stages.{s}.0.convs.{i}.{conv,norm}.{weight,bias}`; ResidualEncoderUNet's has
/// `encoder.stem.convs.0.{conv,norm}.{weight,bias}`,
/// `encoder.stages.{s}.blocks.{b}.{conv1,conv2}.{conv,norm}.{weight,bias}` and, in a stage's
/// first block when its channels change, `encoder.stages.{s}.blocks.0.skip.{i}.conv.weight` and
/// `.norm.{weight,bias}` (`i` = 1 when the block is strided, the pool being `skip.0`). The
/// decoder is shared: `decoder.transpconvs.{j}.{weight,bias}`,
/// `decoder.stages.{j}.convs.{i}.{conv,norm}.{weight,bias}`, `decoder.seg_layers.{j}.{weight,bias}`,
/// where decoder stage `j = 0` sits just above the bottleneck. Every segmentation head exists
/// whether or not deep supervision is used, so one checkpoint serves training and inference.
/// With batch norm ([`UNet::with_norm`]) every `norm` also has `running_mean`, `running_var`
/// and `num_batches_tracked`.
#[derive(Debug)]
pub struct UNet {
    encoder: Encoder,
    decoder: Vec<DecoderStage>,
    /// Batch norm's mode: batch statistics (training) or running ones (inference).
    training: Arc<AtomicBool>,
    in_channels: i64,
    /// Per spatial axis, the product of all stage strides: input sizes must be multiples.
    divisor: Vec<i64>,
}

impl UNet {
    /// Builds the network's variables under `p` (He-initialised convolutions, zero biases,
    /// norm weights 1 and biases 0, except each residual block's `conv2.norm`, weight 0), with
    /// nnU-Net's instance norm.
    ///
    /// # Errors
    /// A [`NetworkError`] naming the stage and fault when `spec` is invalid.
    pub fn new(
        p: &nn::Path,
        spec: &UNetSpec,
        in_channels: i64,
        n_classes: i64,
    ) -> Result<UNet, NetworkError> {
        UNet::with_norm(p, spec, in_channels, n_classes, NormKind::Instance)
    }

    /// [`UNet::new`] with the norm `norm` (`training.norm`; batch norm is `nnUNetTrainerBN`).
    /// The network starts in inference mode ([`UNet::set_training`]).
    ///
    /// # Errors
    /// As [`UNet::new`].
    pub fn with_norm(
        p: &nn::Path,
        spec: &UNetSpec,
        in_channels: i64,
        n_classes: i64,
        norm: NormKind,
    ) -> Result<UNet, NetworkError> {
        let layout = UNetLayout::new(spec, in_channels, n_classes)?;
        let norm = NormSetup {
            kind: norm,
            training: Arc::new(AtomicBool::new(false)),
        };
        let encoder = Encoder::new(&(p / "encoder"), &layout.encoder, &norm);
        let p = p / "decoder";
        let decoder = layout
            .decoder
            .iter()
            .enumerate()
            .map(|(j, stage)| DecoderStage {
                transpconv: Conv::new(&(&p / "transpconvs" / j), &stage.transpconv, true),
                stack: StackedConvs::new(&(&p / "stages" / j), &stage.stack, &norm),
                seg_head: Conv::new(&(&p / "seg_layers" / j), &stage.seg_head, false),
            })
            .collect();
        let divisor = (0..layout.n_axes)
            .map(|axis| spec.stages.iter().map(|s| s.stride[axis] as i64).product())
            .collect();
        Ok(UNet {
            encoder,
            decoder,
            training: norm.training,
            in_channels: layout.in_channels,
            divisor,
        })
    }

    /// Training mode (batch norm uses and updates batch statistics) or inference mode (it uses
    /// the running ones); instance norm is the same in both. nnU-Net: `network.train()` /
    /// `network.eval()`.
    pub fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    /// Number of deep-supervision outputs: stages - 1.
    pub fn n_outputs_ds(&self) -> usize {
        self.decoder.len()
    }

    /// Deep-supervision forward pass (training): one logit map per decoder stage.
    ///
    /// # Shapes
    /// `xs`: `[b, in_channels, *spatial]`, each spatial size a multiple of the product of the
    /// strides on its axis. Returns `n_outputs_ds()` tensors `[b, n_classes, *spatial / scale_i]`,
    /// highest resolution first (index 0 has the input's size).
    ///
    /// # Errors
    /// [`NetworkError::InputShape`] when `xs` does not fit; [`NetworkError::Torch`] when libtorch
    /// fails (e.g. out of memory).
    pub fn forward_ds(&self, xs: &Tensor) -> Result<Vec<Tensor>, NetworkError> {
        self.check_input(xs)?;
        let skips = self.encoder.skips(xs)?;
        let mut outputs = self.decode(&skips, true)?;
        outputs.reverse();
        Ok(outputs)
    }

    /// Forward pass without deep supervision (inference): the top head's logits only.
    ///
    /// # Shapes
    /// `xs`: `[b, in_channels, *spatial]` as for [`UNet::forward_ds`]; returns
    /// `[b, n_classes, *spatial]`.
    ///
    /// # Errors
    /// As [`UNet::forward_ds`].
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, NetworkError> {
        self.check_input(xs)?;
        let skips = self.encoder.skips(xs)?;
        let top = self.decode(&skips, false)?.pop();
        Ok(top.expect("the decoder has at least one stage and always runs the top head"))
    }

    /// Runs the decoder from the bottleneck up; returns the heads computed, lowest resolution
    /// first (every head with `all_heads`, else only the top one).
    fn decode(&self, skips: &[Tensor], all_heads: bool) -> Result<Vec<Tensor>, TchError> {
        let n_skips = skips.len();
        let mut x = skips[n_skips - 1].shallow_clone();
        let mut heads = Vec::with_capacity(self.decoder.len());
        for (j, stage) in self.decoder.iter().enumerate() {
            let up = stage.transpconv.forward(&x)?;
            let joined = Tensor::f_cat(&[&up, &skips[n_skips - 2 - j]], 1)?;
            x = stage.stack.forward(&joined)?;
            if all_heads || j + 1 == self.decoder.len() {
                heads.push(stage.seg_head.forward(&x)?);
            }
        }
        Ok(heads)
    }

    fn check_input(&self, xs: &Tensor) -> Result<(), NetworkError> {
        let shape = xs.size();
        let n_axes = self.divisor.len();
        let fits = shape.len() == 2 + n_axes
            && shape[1] == self.in_channels
            && shape[2..]
                .iter()
                .zip(&self.divisor)
                .all(|(size, div)| *size > 0 && size % div == 0);
        if fits {
            return Ok(());
        }
        Err(NetworkError::InputShape {
            shape,
            expected: format!(
                "[batch, {}, spatial x{n_axes}] with spatial sizes multiples of {:?}",
                self.in_channels, self.divisor
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::spec;
    use autoseg_planner::Dim;
    use tch::{Device, Kind};

    fn aniso_3d() -> UNetSpec {
        let strides: [&[usize]; 3] = [&[1, 1, 1], &[1, 2, 2], &[2, 2, 2]];
        let mut spec = spec(Dim::Three, &[4, 8, 16], &[3, 3, 3], &strides);
        spec.stages[0].kernel = vec![1, 3, 3];
        spec
    }

    fn shapes(outputs: &[Tensor]) -> Vec<Vec<i64>> {
        outputs.iter().map(Tensor::size).collect()
    }

    #[test]
    fn anisotropic_3d_outputs_have_the_deep_supervision_shapes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = UNet::new(&vs.root(), &aniso_3d(), 1, 3).unwrap();
        let xs = Tensor::randn([2, 1, 4, 8, 8], (Kind::Float, Device::Cpu));
        let outputs = net.forward_ds(&xs).unwrap();
        assert_eq!(shapes(&outputs), [vec![2, 3, 4, 8, 8], vec![2, 3, 4, 4, 4]]);
        assert_eq!(net.n_outputs_ds(), 2);
        let top = net.forward(&xs).unwrap();
        assert_eq!(top.size(), [2, 3, 4, 8, 8]);
        // Without deep supervision the top head is the same computation.
        assert!(top.allclose(&outputs[0], 1e-6, 1e-6, false));
    }

    #[test]
    fn anisotropic_2d_outputs_have_the_deep_supervision_shapes() {
        let strides: [&[usize]; 3] = [&[1, 1], &[2, 1], &[2, 2]];
        let vs = nn::VarStore::new(Device::Cpu);
        let net = UNet::new(
            &vs.root(),
            &spec(Dim::Two, &[4, 8, 16], &[3, 3], &strides),
            2,
            4,
        )
        .unwrap();
        let xs = Tensor::randn([1, 2, 8, 4], (Kind::Float, Device::Cpu));
        let outputs = net.forward_ds(&xs).unwrap();
        assert_eq!(shapes(&outputs), [vec![1, 4, 8, 4], vec![1, 4, 4, 4]]);
    }

    #[test]
    fn variables_carry_nnunet_state_dict_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = UNet::new(&vs.root(), &aniso_3d(), 1, 3).unwrap();
        let vars = vs.variables();
        let size = |name: &str| vars.get(name).map(Tensor::size);
        assert_eq!(
            size("encoder.stages.0.0.convs.0.conv.weight"),
            Some(vec![4, 1, 1, 3, 3])
        );
        assert_eq!(size("encoder.stages.2.0.convs.1.norm.bias"), Some(vec![16]));
        assert_eq!(
            size("decoder.transpconvs.0.weight"),
            Some(vec![16, 8, 2, 2, 2])
        );
        assert_eq!(
            size("decoder.transpconvs.1.weight"),
            Some(vec![8, 4, 1, 2, 2])
        );
        assert_eq!(
            size("decoder.stages.1.convs.0.conv.weight"),
            Some(vec![4, 8, 1, 3, 3])
        );
        assert_eq!(
            size("decoder.seg_layers.0.weight"),
            Some(vec![3, 8, 1, 1, 1])
        );
        assert_eq!(size("decoder.seg_layers.1.bias"), Some(vec![3]));
        // Encoder 3 stages x 2 blocks x 4; decoder 2 stages x (2 + 2 blocks x 4 + 2).
        assert_eq!(vars.len(), 24 + 24);
    }

    fn std_and_mean(t: &Tensor) -> (f64, f64) {
        let t = t.to_kind(Kind::Double);
        (
            t.std(true).double_value(&[]),
            t.mean(Kind::Double).double_value(&[]),
        )
    }

    #[test]
    fn weights_start_from_nnunets_he_init() {
        tch::manual_seed(0);
        let strides: [&[usize]; 2] = [&[1, 1, 1], &[2, 2, 2]];
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = UNet::new(
            &vs.root(),
            &spec(Dim::Three, &[32, 64], &[3, 3, 3], &strides),
            1,
            2,
        )
        .unwrap();
        let vars = vs.variables();
        let gain = (2.0f64 / (1.0 + 1e-4)).sqrt();
        // Conv weight [64, 32, 3, 3, 3]: fan_in 32 * 27; transposed [64, 32, 2, 2, 2]: 32 * 8.
        for (name, fan_in) in [
            ("encoder.stages.1.0.convs.0.conv.weight", 864.0),
            ("decoder.transpconvs.0.weight", 256.0),
        ] {
            let (std, mean) = std_and_mean(&vars[name]);
            let expected = gain / f64::sqrt(fan_in);
            assert!(
                (std / expected - 1.0).abs() < 0.03,
                "{name}: std {std} vs {expected}"
            );
            assert!(mean.abs() < 0.05 * expected, "{name}: mean {mean}");
        }
        let bias = &vars["encoder.stages.1.0.convs.1.conv.bias"];
        assert_eq!(bias.abs().sum(Kind::Double).double_value(&[]), 0.0);
        let norm_w = &vars["decoder.stages.0.convs.0.norm.weight"];
        assert_eq!(norm_w.sum(Kind::Double).double_value(&[]), 32.0);
    }

    #[test]
    fn inputs_that_do_not_fit_are_errors() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = UNet::new(&vs.root(), &aniso_3d(), 1, 3).unwrap();
        let wrong_channels = Tensor::zeros([1, 2, 4, 8, 8], (Kind::Float, Device::Cpu));
        let odd_size = Tensor::zeros([1, 1, 4, 8, 6], (Kind::Float, Device::Cpu));
        for xs in [wrong_channels, odd_size] {
            let err = net.forward_ds(&xs).unwrap_err();
            assert!(matches!(err, NetworkError::InputShape { .. }), "{err}");
        }
        let err = net.forward(&Tensor::zeros([1, 1, 3, 8, 8], (Kind::Float, Device::Cpu)));
        assert_eq!(
            err.unwrap_err().to_string(),
            "input of shape [1, 1, 3, 8, 8] does not fit the network: expected \
             [batch, 1, spatial x3] with spatial sizes multiples of [2, 4, 4]"
        );
    }

    /// Fills every variable, in name order, with `sin(0.37 k + i) * 0.3` (k the element index,
    /// i the variable's rank).
    fn fill_deterministically(vs: &nn::VarStore) {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (_, mut var)) in vars.into_iter().enumerate() {
            let n = var.numel() as i64;
            let values = ((Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.37 + i as f64).sin()
                * 0.3)
                .reshape(var.size());
            tch::no_grad(|| var.copy_(&values));
        }
    }

    fn checksum(t: &Tensor) -> f64 {
        let flat = t.flatten(0, -1);
        let n = flat.numel() as i64;
        let weights = (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.7).cos();
        (flat * weights).sum(Kind::Float).double_value(&[])
    }

    // torch 2.11 (/work/main/.venv/bin/python): dna's PlainConvUNet written out with torch.nn
    // (Conv3d/InstanceNorm3d(eps 1e-5, affine)/LeakyReLU(0.01) stacks, ConvTranspose3d, cat
    // [up, skip]) for this spec, the same names and fill (`for i, (name, p) in
    // enumerate(sorted(net.named_parameters())): p.copy_(((arange(p.numel()) * 0.37 + i).sin()
    // * 0.3).reshape(p.shape))`), input `(arange(256) * 0.11).cos().reshape(1, 1, 4, 8, 8)`:
    //   output 0: checksum sum(f * cos(0.7 k)) = -0.1526927947998047, std 0.0639234110713005
    //   output 1: checksum 0.04242449998855591, std 0.09246070683002472
    #[test]
    fn outputs_match_torch_for_the_same_weights() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = UNet::new(&vs.root(), &aniso_3d(), 1, 3).unwrap();
        fill_deterministically(&vs);
        let xs = (Tensor::arange(256, (Kind::Float, Device::Cpu)) * 0.11)
            .cos()
            .reshape([1, 1, 4, 8, 8]);
        let outputs = net.forward_ds(&xs).unwrap();
        let expected = [
            (-0.152_692_794_8, 0.063_923_411_07),
            (0.042_424_499_99, 0.092_460_706_83),
        ];
        for (output, (sum, std)) in outputs.iter().zip(expected) {
            let (got_sum, got_std) = (checksum(output), output.std(true).double_value(&[]));
            assert!((got_sum - sum).abs() < 1e-4, "checksum {got_sum} vs {sum}");
            assert!((got_std / std - 1.0).abs() < 1e-4, "std {got_std} vs {std}");
        }
    }

    #[test]
    fn weights_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpoint.safetensors");
        let vs = nn::VarStore::new(Device::Cpu);
        let net = UNet::new(&vs.root(), &aniso_3d(), 1, 3).unwrap();
        vs.save(&file).unwrap();
        let mut loaded_vs = nn::VarStore::new(Device::Cpu);
        let loaded = UNet::new(&loaded_vs.root(), &aniso_3d(), 1, 3).unwrap();
        loaded_vs.load(&file).unwrap();
        let xs = Tensor::randn([1, 1, 4, 8, 8], (Kind::Float, Device::Cpu));
        let (a, b) = (net.forward(&xs).unwrap(), loaded.forward(&xs).unwrap());
        assert!(a.equal(&b));
    }

    /// Batch norm (`nnUNetTrainerBN`): torch's running statistics and counter beside every
    /// norm's weight and bias; training mode normalises with the batch's statistics and
    /// updates the running ones (momentum 0.1), inference mode uses the running ones, so a
    /// sample's output does not depend on the rest of its batch.
    #[test]
    fn batch_norm_keeps_running_statistics_and_uses_them_in_inference() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = UNet::with_norm(&vs.root(), &aniso_3d(), 1, 3, NormKind::Batch).unwrap();
        let vars = vs.variables();
        let name = "encoder.stages.0.0.convs.0.norm";
        let var = |what: &str| vars[&format!("{name}.{what}")].shallow_clone();
        assert_eq!(var("num_batches_tracked").kind(), Kind::Int64);
        assert!(!var("running_mean").requires_grad());
        assert!(var("weight").requires_grad());
        let xs = Tensor::randn([2, 1, 4, 16, 16], (Kind::Float, Device::Cpu)) * 3.0 + 2.0;
        net.set_training(true);
        let _ = net.forward_ds(&xs).unwrap();
        assert_eq!(var("num_batches_tracked").int64_value(&[]), 1);
        // After one batch: 0.9 * 0 + 0.1 * the batch mean of the first conv's output.
        let mean = var("running_mean");
        assert!(mean.abs().max().double_value(&[]) > 0.0);
        net.set_training(false);
        let _no_grad = tch::no_grad_guard();
        let both = net.forward(&xs).unwrap();
        let first = net.forward(&xs.narrow(0, 0, 1)).unwrap();
        assert!(both.narrow(0, 0, 1).allclose(&first, 1e-5, 1e-5, false));
        assert_eq!(var("num_batches_tracked").int64_value(&[]), 1);
        assert!(var("running_mean").equal(&mean));
        // Instance norm has no statistics to keep.
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = UNet::new(&vs.root(), &aniso_3d(), 1, 3).unwrap();
        assert!(!vs.variables().keys().any(|k| k.contains("running")));
    }
}
