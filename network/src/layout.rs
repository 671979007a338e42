//! The layer list of a U-Net, as plain data: which convolutions exist, with what channels,
//! kernels and strides. The network is built from this list and the VRAM proxy
//! ([`conv_feature_map_size`]) walks the same list, so the two cannot disagree.
//!
//! nnU-Net: dna `architectures/unet.py::PlainConvUNet`, `building_blocks/plain_conv_encoder.py`,
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
            })
            .collect();
        StackDesc { convs }
    }

    /// Sum of output voxels x channels over the blocks, and the output size.
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

/// The encoder's layer list; a new encoder family (ResidualEncoderUNet) is a new variant, and
/// the decoder stays shared, as in nnU-Net.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EncoderLayout {
    /// `PlainConvEncoder` with strided-conv downsampling: one stack per stage.
    Plain(Vec<StackDesc>),
}

impl EncoderLayout {
    /// Total feature-map size, and the output size of every stage (the skips).
    fn feature_map(&self, patch: &[u64]) -> (u64, Vec<Vec<u64>>) {
        match self {
            EncoderLayout::Plain(stages) => {
                let mut size = patch.to_vec();
                let mut total = 0;
                let mut skips = Vec::with_capacity(stages.len());
                for stage in stages {
                    let (n, out) = stage.feature_map(&size);
                    total += n;
                    skips.push(out.clone());
                    size = out;
                }
                (total, skips)
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
    /// A [`NetworkError`] naming the stage and fault for an invalid spec, and
    /// [`NetworkError::UnsupportedKind`] for ResidualEncoderUNet.
    pub(crate) fn new(
        spec: &UNetSpec,
        in_channels: i64,
        n_classes: i64,
    ) -> Result<UNetLayout, NetworkError> {
        validate(spec)?;
        let encoder = match spec.kind {
            NetworkKind::PlainConvUNet => EncoderLayout::Plain(plain_encoder(spec, in_channels)),
            kind => return Err(NetworkError::UnsupportedKind { kind }),
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
                },
                stack: StackDesc::new(n_convs, 2 * f_skip, f_skip, &as_i64(&skip.kernel), &ones),
                seg_head: ConvDesc {
                    in_ch: f_skip,
                    out_ch: n_classes,
                    kernel: ones.clone(),
                    stride: ones,
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
        for (spec, patch) in cases {
            for ds in [false, true] {
                let ours = conv_feature_map_size(&spec, &patch, 3, ds).unwrap();
                let planner =
                    autoseg_planner::compute_conv_feature_map_size(&spec, &patch, 3, ds).unwrap();
                assert_eq!(ours, planner, "patch {patch:?}, deep supervision {ds}");
            }
        }
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
        let mut resenc = hippocampus_3d();
        resenc.kind = NetworkKind::ResidualEncoderUNet;
        assert!(matches!(
            conv_feature_map_size(&resenc, &[40, 56, 40], 3, false),
            Err(NetworkError::UnsupportedKind { .. })
        ));
        assert!(matches!(
            conv_feature_map_size(&hippocampus_3d(), &[40, 56], 3, false),
            Err(NetworkError::PatchAxes { expected: 3, .. })
        ));
    }
}
