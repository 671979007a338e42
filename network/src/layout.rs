//! The layer list of a U-Net, as plain data: which convolutions exist, with what channels,
//! kernels and strides. The network is built from this list and the VRAM proxy
//! ([`conv_feature_map_size`]) walks the same list, so the two cannot disagree.
//!
//! nnU-Net: dna `architectures/unet.py::{PlainConvUNet, ResidualEncoderUNet}`,
//! `building_blocks/plain_conv_encoder.py`, `building_blocks/residual_encoders.py`,
//! `building_blocks/residual.py::{BasicBlockD, StackedResidualBlocks}`,
//! `building_blocks/unet_decoder.py` (layers and `compute_conv_feature_map_size`).

use autoseg_planner::{NetworkKind, StageSpec, UNetSpec};

use crate::NetworkError;

/// One convolution (plain or transposed) of the layer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvDesc {
    pub(crate) in_ch: i64,
    pub(crate) out_ch: i64,
    pub(crate) kernel: Vec<i64>,
    pub(crate) stride: Vec<i64>,
    /// nnU-Net's `conv_bias=True` everywhere except BasicBlockD's 1x1 skip projection.
    pub(crate) bias: bool,
}

impl ConvDesc {
    /// "Same" padding for odd kernels: `(k - 1) / 2` per axis.
    pub(crate) fn padding(&self) -> Vec<i64> {
        self.kernel.iter().map(|k| (k - 1) / 2).collect()
    }

    /// Output size of a (non-transposed) convolution with same padding: `size // stride`.
    fn out_size(&self, size: &[u64]) -> Vec<u64> {
        size.iter()
            .zip(&self.stride)
            .map(|(s, st)| s / *st as u64)
            .collect()
    }
}

/// nnU-Net's `StackedConvBlocks`: conv-norm-LeakyReLU blocks, the first one strided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StackDesc {
    pub(crate) convs: Vec<ConvDesc>,
}

impl StackDesc {
    fn new(n_convs: usize, in_ch: i64, out_ch: i64, kernel: &[i64], stride: &[i64]) -> StackDesc {
        let convs = (0..n_convs)
            .map(|i| ConvDesc {
                in_ch: if i == 0 { in_ch } else { out_ch },
                out_ch,
                kernel: kernel.to_vec(),
                stride: if i == 0 {
                    stride.to_vec()
                } else {
                    vec![1; stride.len()]
                },
                bias: true,
            })
            .collect();
        StackDesc { convs }
    }
}

/// The feature-map count of one encoder stage, for [`walk_stages`].
trait StageFeatureMap {
    /// Sum of output voxels x channels over the stage's convolutions, and its output size.
    fn feature_map(&self, size: &[u64]) -> (u64, Vec<u64>);
}

impl StageFeatureMap for StackDesc {
    fn feature_map(&self, size: &[u64]) -> (u64, Vec<u64>) {
        let mut size = size.to_vec();
        let mut total = 0;
        for conv in &self.convs {
            size = conv.out_size(&size);
            total += conv.out_ch as u64 * size.iter().product::<u64>();
        }
        (total, size)
    }
}

/// The skip path of dna's `BasicBlockD` (ResNet-D): `skip.0` is an `AvgPool(stride, stride)`
/// when the block is strided, followed by a 1x1 conv (no bias) + norm, without nonlinearity,
/// when the channels change. Neither: the identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkipDesc {
    pub(crate) pool: Option<Vec<i64>>,
    pub(crate) projection: Option<ConvDesc>,
}

/// dna's `BasicBlockD`: `conv1` (conv-norm-LeakyReLU, strided), `conv2` (conv-norm, no
/// nonlinearity), the skip added, then LeakyReLU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResidualBlockDesc {
    pub(crate) conv1: ConvDesc,
    pub(crate) conv2: ConvDesc,
    pub(crate) skip: SkipDesc,
}

impl ResidualBlockDesc {
    fn new(in_ch: i64, out_ch: i64, kernel: &[i64], stride: &[i64]) -> ResidualBlockDesc {
        let ones = vec![1; stride.len()];
        let conv = |in_ch, stride: &[i64]| ConvDesc {
            in_ch,
            out_ch,
            kernel: kernel.to_vec(),
            stride: stride.to_vec(),
            bias: true,
        };
        let projection = ConvDesc {
            in_ch,
            out_ch,
            kernel: ones.clone(),
            stride: ones.clone(),
            bias: false,
        };
        ResidualBlockDesc {
            conv1: conv(in_ch, stride),
            conv2: conv(out_ch, &ones),
            skip: SkipDesc {
                pool: stride.iter().any(|&s| s != 1).then(|| stride.to_vec()),
                projection: (in_ch != out_ch).then_some(projection),
            },
        }
    }

    /// dna `BasicBlockD.compute_conv_feature_map_size`: conv1 and conv2, plus the skip when the
    /// channels or the size change (a pool-only skip counts too, as in dna).
    fn feature_map(&self, size: &[u64]) -> (u64, Vec<u64>) {
        let out = self.conv1.out_size(size);
        let per_conv = self.conv1.out_ch as u64 * out.iter().product::<u64>();
        let skip_counts = self.conv1.in_ch != self.conv1.out_ch || out != size;
        (2 * per_conv + u64::from(skip_counts) * per_conv, out)
    }
}

/// dna's `StackedResidualBlocks`: the first block strided, all with the stage's channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResidualStageDesc {
    pub(crate) blocks: Vec<ResidualBlockDesc>,
}

impl ResidualStageDesc {
    fn new(n_blocks: usize, in_ch: i64, out_ch: i64, kernel: &[i64], stride: &[i64]) -> Self {
        let ones = vec![1; stride.len()];
        let blocks = (0..n_blocks)
            .map(|b| match b {
                0 => ResidualBlockDesc::new(in_ch, out_ch, kernel, stride),
                _ => ResidualBlockDesc::new(out_ch, out_ch, kernel, &ones),
            })
            .collect();
        ResidualStageDesc { blocks }
    }
}

impl StageFeatureMap for ResidualStageDesc {
    fn feature_map(&self, size: &[u64]) -> (u64, Vec<u64>) {
        let mut size = size.to_vec();
        let mut total = 0;
        for block in &self.blocks {
            let (n, out) = block.feature_map(&size);
            total += n;
            size = out;
        }
        (total, size)
    }
}

/// dna's `ResidualEncoder` as nnU-Net builds it: a stem (one conv-norm-LeakyReLU, stride 1,
/// `features[0]` channels, `kernel[0]`), then one residual stage per resolution, downsampling by
/// the strided first block (`pool_type='conv'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResidualEncoderDesc {
    pub(crate) stem: StackDesc,
    pub(crate) stages: Vec<ResidualStageDesc>,
}

/// Total feature-map size of a chain of stages, and the output size of every stage.
fn walk_stages<S: StageFeatureMap>(stages: &[S], patch: &[u64]) -> (u64, Vec<Vec<u64>>) {
    let mut size = patch.to_vec();
    let mut total = 0;
    let mut outputs = Vec::with_capacity(stages.len());
    for stage in stages {
        let (n, out) = stage.feature_map(&size);
        total += n;
        outputs.push(out.clone());
        size = out;
    }
    (total, outputs)
}

/// The encoder's layer list; each encoder family is a variant, and the decoder stays shared, as
/// in nnU-Net.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EncoderLayout {
    /// `PlainConvEncoder` with strided-conv downsampling: one stack per stage.
    Plain(Vec<StackDesc>),
    /// `ResidualEncoder` with `BasicBlockD` blocks and the default stem.
    Residual(ResidualEncoderDesc),
}

impl EncoderLayout {
    /// Total feature-map size, and the output size of every stage (the skips).
    fn feature_map(&self, patch: &[u64]) -> (u64, Vec<Vec<u64>>) {
        match self {
            EncoderLayout::Plain(stages) => walk_stages(stages, patch),
            EncoderLayout::Residual(encoder) => {
                let (stem, _) = encoder.stem.feature_map(patch);
                let (stages, skips) = walk_stages(&encoder.stages, patch);
                (stem + stages, skips)
            }
        }
    }
}

/// One decoder stage: upsample, concatenate the skip, convolve, and a 1x1 segmentation head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecoderStageDesc {
    pub(crate) transpconv: ConvDesc,
    pub(crate) stack: StackDesc,
    pub(crate) seg_head: ConvDesc,
}

/// The whole U-Net: encoder stages from the highest resolution down to the bottleneck, decoder
/// stages from the bottleneck up (nnU-Net's order and indices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UNetLayout {
    pub(crate) n_axes: usize,
    pub(crate) in_channels: i64,
    pub(crate) encoder: EncoderLayout,
    pub(crate) decoder: Vec<DecoderStageDesc>,
}

impl UNetLayout {
    /// The layer list of `spec` for `in_channels` inputs and `n_classes` outputs.
    ///
    /// # Errors
    /// A [`NetworkError`] naming the stage and fault for an invalid spec.
    pub(crate) fn new(
        spec: &UNetSpec,
        in_channels: i64,
        n_classes: i64,
    ) -> Result<UNetLayout, NetworkError> {
        validate(spec)?;
        let encoder = match spec.kind {
            NetworkKind::PlainConvUNet => EncoderLayout::Plain(plain_encoder(spec, in_channels)),
            NetworkKind::ResidualEncoderUNet => {
                EncoderLayout::Residual(residual_encoder(spec, in_channels))
            }
        };
        Ok(UNetLayout {
            n_axes: spec.dim.n_axes(),
            in_channels,
            encoder,
            decoder: decoder(spec, n_classes),
        })
    }

    /// nnU-Net's `compute_conv_feature_map_size` over this layer list (see
    /// [`conv_feature_map_size`]).
    fn feature_map_size(&self, patch: &[u64], deep_supervision: bool) -> u64 {
        let (mut total, skips) = self.encoder.feature_map(patch);
        let n_decoder = self.decoder.len();
        for (j, stage) in self.decoder.iter().enumerate() {
            let size = &skips[n_decoder - 1 - j];
            let voxels: u64 = size.iter().product();
            total += stage.stack.feature_map(size).0;
            total += stage.transpconv.out_ch as u64 * voxels;
            if deep_supervision || j + 1 == n_decoder {
                total += stage.seg_head.out_ch as u64 * voxels;
            }
        }
        total
    }
}

fn as_i64(values: &[usize]) -> Vec<i64> {
    values.iter().map(|&v| v as i64).collect()
}

fn plain_encoder(spec: &UNetSpec, in_channels: i64) -> Vec<StackDesc> {
    let mut in_ch = in_channels;
    spec.stages
        .iter()
        .map(|stage| {
            let out_ch = stage.features as i64;
            let stack = StackDesc::new(
                stage.n_convs,
                in_ch,
                out_ch,
                &as_i64(&stage.kernel),
                &as_i64(&stage.stride),
            );
            in_ch = out_ch;
            stack
        })
        .collect()
}

/// dna `ResidualEncoder(..., block=BasicBlockD, stem_channels=None)`: `n_convs` counts blocks.
fn residual_encoder(spec: &UNetSpec, in_channels: i64) -> ResidualEncoderDesc {
    let first = &spec.stages[0];
    let stem_ch = first.features as i64;
    let ones = vec![1; first.stride.len()];
    let stem = StackDesc::new(1, in_channels, stem_ch, &as_i64(&first.kernel), &ones);
    let mut in_ch = stem_ch;
    let stages = spec
        .stages
        .iter()
        .map(|stage| {
            let out_ch = stage.features as i64;
            let kernel = as_i64(&stage.kernel);
            let stride = as_i64(&stage.stride);
            let desc = ResidualStageDesc::new(stage.n_convs, in_ch, out_ch, &kernel, &stride);
            in_ch = out_ch;
            desc
        })
        .collect();
    ResidualEncoderDesc { stem, stages }
}

/// Decoder stage `j` (0 = just above the bottleneck) joins encoder stage `n - 2 - j`.
fn decoder(spec: &UNetSpec, n_classes: i64) -> Vec<DecoderStageDesc> {
    let n = spec.stages.len();
    (1..n)
        .map(|s| {
            let below = &spec.stages[n - s];
            let skip = &spec.stages[n - s - 1];
            let (f_below, f_skip) = (below.features as i64, skip.features as i64);
            let up = as_i64(&below.stride);
            let ones = vec![1; up.len()];
            let n_convs = skip
                .n_convs_decoder
                .expect("validate() checked every stage above the bottleneck has n_convs_decoder");
            DecoderStageDesc {
                transpconv: ConvDesc {
                    in_ch: f_below,
                    out_ch: f_skip,
                    kernel: up.clone(),
                    stride: up,
                    bias: true,
                },
                stack: StackDesc::new(n_convs, 2 * f_skip, f_skip, &as_i64(&skip.kernel), &ones),
                seg_head: ConvDesc {
                    in_ch: f_skip,
                    out_ch: n_classes,
                    kernel: ones.clone(),
                    stride: ones,
                    bias: true,
                },
            }
        })
        .collect()
}

fn validate(spec: &UNetSpec) -> Result<(), NetworkError> {
    let n_stages = spec.stages.len();
    if n_stages < 2 {
        return Err(NetworkError::TooFewStages { n_stages });
    }
    let n_axes = spec.dim.n_axes();
    for (stage_idx, stage) in spec.stages.iter().enumerate() {
        validate_stage(stage_idx, stage, n_axes)?;
        let is_bottleneck = stage_idx + 1 == n_stages;
        match stage.n_convs_decoder {
            None if !is_bottleneck => return Err(NetworkError::MissingDecoderConvs { stage_idx }),
            Some(0) if !is_bottleneck => {
                let what = "n_convs_decoder";
                return Err(NetworkError::ZeroSize { stage_idx, what });
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_stage(stage_idx: usize, stage: &StageSpec, n_axes: usize) -> Result<(), NetworkError> {
    for (what, values) in [("kernel", &stage.kernel), ("stride", &stage.stride)] {
        if values.len() != n_axes {
            let len = values.len();
            return Err(NetworkError::AxisCount {
                stage_idx,
                what,
                len,
                expected: n_axes,
            });
        }
        if values.contains(&0) {
            return Err(NetworkError::ZeroSize { stage_idx, what });
        }
    }
    for (what, value) in [("features", stage.features), ("n_convs", stage.n_convs)] {
        if value == 0 {
            return Err(NetworkError::ZeroSize { stage_idx, what });
        }
    }
    Ok(())
}

/// nnU-Net's VRAM proxy, `network.compute_conv_feature_map_size(patch)`: the number of output
/// elements (channels x voxels, batch 1) of every convolution, all sizes by integer floor
/// division. With `deep_supervision` off only the top segmentation head counts, as in nnU-Net's
/// planner estimate. Computed by walking the layer list [`crate::UNet`] is built from.
///
/// # Errors
/// [`NetworkError::PatchAxes`] when `patch` does not have the spec's axis count, and the spec
/// errors of [`crate::UNet::new`].
pub fn conv_feature_map_size(
    spec: &UNetSpec,
    patch: &[usize],
    n_classes: usize,
    deep_supervision: bool,
) -> Result<u64, NetworkError> {
    let layout = UNetLayout::new(spec, 1, n_classes as i64)?;
    if patch.len() != layout.n_axes {
        let expected = layout.n_axes;
        return Err(NetworkError::PatchAxes {
            patch: patch.to_vec(),
            expected,
        });
    }
    let patch: Vec<u64> = patch.iter().map(|&p| p as u64).collect();
    Ok(layout.feature_map_size(&patch, deep_supervision))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use autoseg_planner::Dim;

    /// A spec with `features` per stage, 2 convs everywhere, all kernels `kernel`.
    pub(crate) fn spec(
        dim: Dim,
        features: &[usize],
        kernel: &[usize],
        strides: &[&[usize]],
    ) -> UNetSpec {
        let n = features.len();
        let stages = features
            .iter()
            .zip(strides)
            .enumerate()
            .map(|(s, (&f, stride))| StageSpec {
                features: f,
                kernel: kernel.to_vec(),
                stride: stride.to_vec(),
                n_convs: 2,
                n_convs_decoder: (s + 1 < n).then_some(2),
            })
            .collect();
        UNetSpec {
            dim,
            kind: NetworkKind::PlainConvUNet,
            stages,
        }
    }

    pub(crate) fn hippocampus_3d() -> UNetSpec {
        let strides: [&[usize]; 4] = [&[1, 1, 1], &[2, 2, 2], &[2, 2, 2], &[2, 2, 2]];
        spec(Dim::Three, &[32, 64, 128, 256], &[3, 3, 3], &strides)
    }

    #[test]
    fn hippocampus_feature_map_size_matches_nnunet() {
        // reference/nnunet.md §5.3 and §12: PlainConvUNet 3D, patch (40,56,40), 3 classes.
        let size = conv_feature_map_size(&hippocampus_3d(), &[40, 56, 40], 3, false).unwrap();
        assert_eq!(size, 19_174_400);
    }

    #[test]
    fn deep_supervision_adds_the_lower_heads() {
        // By hand: the extra heads are 3 classes x (10*14*10 + 20*28*20) = 4_200 + 33_600.
        let size = conv_feature_map_size(&hippocampus_3d(), &[40, 56, 40], 3, true).unwrap();
        assert_eq!(size, 19_174_400 + 4_200 + 33_600);
    }

    #[test]
    fn network_feature_map_size_equals_the_planner_estimate() {
        let strides_2d: [&[usize]; 4] = [&[1, 1], &[2, 1], &[2, 2], &[2, 2]];
        let mut aniso = spec(Dim::Two, &[8, 16, 32, 32], &[3, 3], &strides_2d);
        aniso.stages[1].n_convs = 3;
        aniso.stages[0].n_convs_decoder = Some(1);
        let cases = [
            (hippocampus_3d(), vec![40, 56, 40]),
            (hippocampus_3d(), vec![41, 57, 39]),
            (aniso, vec![64, 48]),
        ];
        assert_matches_planner(&cases);
    }

    /// Our proxy equals the planner's for every `(spec, patch)`, with and without deep
    /// supervision.
    fn assert_matches_planner(cases: &[(UNetSpec, Vec<usize>)]) {
        for (spec, patch) in cases {
            for ds in [false, true] {
                let ours = conv_feature_map_size(spec, patch, 3, ds).unwrap();
                let planner =
                    autoseg_planner::compute_conv_feature_map_size(spec, patch, 3, ds).unwrap();
                assert_eq!(ours, planner, "patch {patch:?}, deep supervision {ds}");
            }
        }
    }

    /// `spec` as a ResidualEncoderUNet with `blocks` residual blocks per stage and
    /// `decoder_convs` convs per decoder stage.
    pub(crate) fn resenc(mut spec: UNetSpec, blocks: &[usize], decoder_convs: usize) -> UNetSpec {
        spec.kind = NetworkKind::ResidualEncoderUNet;
        let n = spec.stages.len();
        for (s, (stage, &b)) in spec.stages.iter_mut().zip(blocks).enumerate() {
            stage.n_convs = b;
            stage.n_convs_decoder = (s + 1 < n).then_some(decoder_convs);
        }
        spec
    }

    #[test]
    fn resenc_feature_map_size_matches_nnunet() {
        // reference/nnunet.md §12 (also planner/src/vram.rs): nnUNetPlannerResEncM's Hippocampus-like
        // 3D net, blocks [1, 3, 4, 6], 1 decoder conv, patch (40, 56, 40), 3 classes.
        let hippocampus = resenc(hippocampus_3d(), &[1, 3, 4, 6], 1);
        let size = conv_feature_map_size(&hippocampus, &[40, 56, 40], 3, false).unwrap();
        assert_eq!(size, 23_609_600);
        // The same section's 2D net: 4 stages 32..256, patch (56, 40) -> 1_001_280.
        let strides_2d: [&[usize]; 4] = [&[1, 1], &[2, 2], &[2, 2], &[2, 2]];
        let hippocampus_2d = spec(Dim::Two, &[32, 64, 128, 256], &[3, 3], &strides_2d);
        let hippocampus_2d = resenc(hippocampus_2d, &[1, 3, 4, 6], 1);
        let size = conv_feature_map_size(&hippocampus_2d, &[56, 40], 3, false).unwrap();
        assert_eq!(size, 1_001_280);
        // dna residual_encoder_unet_planners.py __main__: 6 stages (32..320) on 128^3 with 3
        // classes and deep supervision -> 558_319_104.
        let (one, two): (&[usize], &[usize]) = (&[1; 3], &[2; 3]);
        let strides = [one, two, two, two, two, two];
        let big = spec(
            Dim::Three,
            &[32, 64, 128, 256, 320, 320],
            &[3, 3, 3],
            &strides,
        );
        let big = resenc(big, &[1, 3, 4, 6, 6, 6], 1);
        let size = conv_feature_map_size(&big, &[128; 3], 3, true).unwrap();
        assert_eq!(size, 558_319_104);
    }

    #[test]
    fn resenc_feature_map_size_equals_the_planner_estimate() {
        let strides_3d: [&[usize]; 4] = [&[1, 1, 1], &[1, 2, 2], &[2, 2, 2], &[2, 2, 2]];
        let mut aniso_3d = spec(Dim::Three, &[4, 8, 16, 32], &[3, 3, 3], &strides_3d);
        aniso_3d.stages[0].kernel = vec![1, 3, 3];
        // Stage 2 keeps stage 1's channels, so its first block's skip is a pool only.
        let strides_2d: [&[usize]; 4] = [&[1, 1], &[2, 1], &[2, 2], &[2, 2]];
        let mut aniso_2d = resenc(
            spec(Dim::Two, &[8, 16, 16, 32], &[3, 3], &strides_2d),
            &[2, 1, 3, 2],
            2,
        );
        aniso_2d.stages[1].n_convs_decoder = Some(1);
        let cases = [
            (resenc(hippocampus_3d(), &[1, 3, 4, 6], 1), vec![40, 56, 40]),
            (resenc(hippocampus_3d(), &[2, 2, 2, 2], 2), vec![41, 57, 39]),
            (resenc(aniso_3d, &[1, 2, 2, 2], 1), vec![8, 32, 24]),
            (aniso_2d.clone(), vec![64, 48]),
            (aniso_2d, vec![33, 50]),
        ];
        assert_matches_planner(&cases);
    }

    #[test]
    fn resenc_blocks_follow_basic_block_d() {
        let strides: [&[usize]; 3] = [&[1, 1], &[2, 1], &[2, 2]];
        let spec = resenc(spec(Dim::Two, &[4, 8, 8], &[3, 3], &strides), &[2, 1, 2], 1);
        let layout = UNetLayout::new(&spec, 2, 3).unwrap();
        let EncoderLayout::Residual(encoder) = &layout.encoder else {
            panic!("a ResidualEncoderUNet spec gives a residual encoder");
        };
        let stem = &encoder.stem.convs;
        assert_eq!((stem.len(), stem[0].in_ch, stem[0].out_ch), (1, 2, 4));
        assert_eq!(stem[0].stride, [1, 1]);
        let identity = SkipDesc {
            pool: None,
            projection: None,
        };
        assert_eq!(encoder.stages[0].blocks[0].skip, identity);
        let down = &encoder.stages[1].blocks[0];
        assert_eq!(
            (down.conv1.stride.as_slice(), down.conv2.stride.as_slice()),
            (&[2, 1][..], &[1, 1][..])
        );
        assert_eq!(down.skip.pool, Some(vec![2, 1]));
        let projection = down.skip.projection.as_ref().unwrap();
        assert_eq!(
            (projection.in_ch, projection.out_ch, projection.bias),
            (4, 8, false)
        );
        assert_eq!(projection.kernel, [1, 1]);
        let pool_only = &encoder.stages[2].blocks[0].skip;
        assert_eq!(
            (pool_only.pool.as_deref(), &pool_only.projection),
            (Some(&[2, 2][..]), &None)
        );
        assert_eq!(encoder.stages[2].blocks[1].skip, identity);
    }

    #[test]
    fn decoder_stages_mirror_the_encoder() {
        let strides: [&[usize]; 3] = [&[1, 1], &[1, 2], &[2, 2]];
        let layout =
            UNetLayout::new(&spec(Dim::Two, &[4, 8, 16], &[3, 3], &strides), 2, 5).unwrap();
        let first = &layout.decoder[0];
        assert_eq!((first.transpconv.in_ch, first.transpconv.out_ch), (16, 8));
        assert_eq!(first.transpconv.kernel, [2, 2]);
        assert_eq!(
            (first.stack.convs[0].in_ch, first.stack.convs[0].out_ch),
            (16, 8)
        );
        let top = &layout.decoder[1];
        assert_eq!(top.transpconv.stride, [1, 2]);
        assert_eq!((top.seg_head.in_ch, top.seg_head.out_ch), (4, 5));
    }

    #[test]
    fn invalid_specs_are_named_errors() {
        let strides: [&[usize]; 2] = [&[1, 1], &[2, 2]];
        let mut bad = spec(Dim::Two, &[4, 8], &[3, 3], &strides);
        bad.stages[1].stride = vec![2, 2, 2];
        let err = UNetLayout::new(&bad, 1, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "architecture: stage 1 stride has 3 axes, expected 2"
        );
        bad.stages[1].stride = vec![2, 2];
        bad.stages[0].n_convs_decoder = None;
        assert!(matches!(
            UNetLayout::new(&bad, 1, 2),
            Err(NetworkError::MissingDecoderConvs { stage_idx: 0 })
        ));
        bad.stages.truncate(1);
        assert!(matches!(
            UNetLayout::new(&bad, 1, 2),
            Err(NetworkError::TooFewStages { n_stages: 1 })
        ));
        assert!(matches!(
            conv_feature_map_size(&hippocampus_3d(), &[40, 56], 3, false),
            Err(NetworkError::PatchAxes { expected: 3, .. })
        ));
    }
}
