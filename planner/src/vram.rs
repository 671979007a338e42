//! The VRAM proxy nnU-Net sizes networks with: the number of output elements of every
//! convolution (and transposed convolution) for one sample, as a pure function of the
//! architecture and the patch.
//!
//! nnU-Net: `compute_conv_feature_map_size` of dynamic-network-architectures 0.4.4
//! (`PlainConvEncoder`, `ResidualEncoder` with `BasicBlockD`, `UNetDecoder`), all sizes with
//! integer floor division.

use crate::{NetworkKind, PlanError, StageSpec, UNetSpec};

/// Feature-map elements of all convolutions of `spec` on one `patch_size` input
/// (`(z, y, x)` or `(y, x)`), with `n_classes` output channels; with `deep_supervision` every
/// decoder stage's segmentation head counts, otherwise only the highest-resolution one.
/// Input channels do not matter.
///
/// # Errors
/// [`PlanError::PatchDimMismatch`] when `patch_size` has a different number of axes than the
/// network.
pub fn compute_conv_feature_map_size(
    spec: &UNetSpec,
    patch_size: &[usize],
    n_classes: usize,
    deep_supervision: bool,
) -> Result<u64, PlanError> {
    let n_axes = spec.dim.n_axes();
    let mismatched = |stage: &StageSpec| stage.stride.len() != n_axes;
    if patch_size.len() != n_axes || spec.stages.iter().any(mismatched) {
        return Err(PlanError::PatchDimMismatch {
            patch: patch_size.to_vec(),
            n_axes,
        });
    }
    let patch: Vec<u64> = patch_size.iter().map(|&s| s as u64).collect();
    let encoder = match spec.kind {
        NetworkKind::PlainConvUNet => plain_encoder(spec, &patch),
        NetworkKind::ResidualEncoderUNet => residual_encoder(spec, &patch),
    };
    Ok(encoder + decoder(spec, &patch, n_classes as u64, deep_supervision))
}

fn strided(size: &[u64], stride: &[usize]) -> Vec<u64> {
    size.iter()
        .zip(stride)
        .map(|(&s, &st)| s / st as u64)
        .collect()
}

fn voxels(size: &[u64]) -> u64 {
    size.iter().product()
}

/// `StackedConvBlocks` per stage: the first conv strided, the rest at the strided size.
fn plain_encoder(spec: &UNetSpec, patch: &[u64]) -> u64 {
    let mut size = patch.to_vec();
    let mut total = 0;
    for stage in &spec.stages {
        size = strided(&size, &stage.stride);
        total += stage.n_convs as u64 * stage.features as u64 * voxels(&size);
    }
    total
}

/// Stem conv, then `n_convs` `BasicBlockD` per stage (two convs each, plus a projection or
/// pooled skip when channels or size change).
fn residual_encoder(spec: &UNetSpec, patch: &[u64]) -> u64 {
    let stem_features = spec.stages[0].features as u64;
    let mut total = stem_features * voxels(patch);
    let mut size = patch.to_vec();
    let mut in_features = stem_features;
    for stage in &spec.stages {
        let out_size = strided(&size, &stage.stride);
        let f = stage.features as u64;
        let per_conv = f * voxels(&out_size);
        let needs_skip = in_features != f || out_size != size;
        total += 2 * per_conv * stage.n_convs as u64 + if needs_skip { per_conv } else { 0 };
        size = out_size;
        in_features = f;
    }
    total
}

/// `UNetDecoder`: per stage from the bottom, its convs, the transposed conv, and the
/// segmentation head (every stage with deep supervision, else only the last).
fn decoder(spec: &UNetSpec, patch: &[u64], n_classes: u64, deep_supervision: bool) -> u64 {
    let n_stages = spec.stages.len();
    let mut skip_sizes = Vec::with_capacity(n_stages);
    let mut size = patch.to_vec();
    for stage in &spec.stages[..n_stages.saturating_sub(1)] {
        size = strided(&size, &stage.stride);
        skip_sizes.push(size.clone());
    }
    let mut total = 0;
    for (stage_idx, skip) in skip_sizes.iter().enumerate().rev() {
        let stage = &spec.stages[stage_idx];
        let n_convs = stage.n_convs_decoder.unwrap_or(0) as u64;
        let n = voxels(skip);
        total += (n_convs + 1) * stage.features as u64 * n;
        if deep_supervision || stage_idx == 0 {
            total += n_classes * n;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dim;

    /// The 4-stage isotropic 3D network of nnunet.md §12 Hippocampus-like.
    fn hippocampus(kind: NetworkKind, blocks: [usize; 4], decoder_convs: usize) -> UNetSpec {
        let stages = (0..4)
            .map(|i| StageSpec {
                features: 32 << i,
                kernel: vec![3; 3],
                stride: vec![if i == 0 { 1 } else { 2 }; 3],
                n_convs: blocks[i],
                n_convs_decoder: (i < 3).then_some(decoder_convs),
            })
            .collect();
        UNetSpec {
            dim: Dim::Three,
            kind,
            stages,
        }
    }

    #[test]
    fn plain_conv_unet_matches_nnunet_hippocampus_estimate() {
        let spec = hippocampus(NetworkKind::PlainConvUNet, [2; 4], 2);
        let est = compute_conv_feature_map_size(&spec, &[40, 56, 40], 3, false).expect("3D");
        assert_eq!(est, 19_174_400);
        // Deep supervision adds the three lower heads: 3 * (11200 + 1400) voxels.
        let ds = compute_conv_feature_map_size(&spec, &[40, 56, 40], 3, true).expect("3D");
        assert_eq!(ds, 19_174_400 + 3 * (11_200 + 1_400));
    }

    #[test]
    fn residual_encoder_unet_matches_nnunet_hippocampus_estimate() {
        let spec = hippocampus(NetworkKind::ResidualEncoderUNet, [1, 3, 4, 6], 1);
        let est = compute_conv_feature_map_size(&spec, &[40, 56, 40], 3, false).expect("3D");
        assert_eq!(est, 23_609_600);
    }

    #[test]
    fn residual_encoder_unet_matches_dna_self_check_values() {
        // dna residual_encoder_unet_planners.py __main__: 6-stage 3D net (32..320) on 128^3 with
        // 3 classes and deep supervision -> 558_319_104; 7-stage 2D (32..512) on 512^2 ->
        // 129_793_792.
        let make = |dim: Dim, n_stages: usize, max_f: usize| UNetSpec {
            dim,
            kind: NetworkKind::ResidualEncoderUNet,
            stages: (0..n_stages)
                .map(|i| StageSpec {
                    features: (32 << i).min(max_f),
                    kernel: vec![3; dim.n_axes()],
                    stride: vec![if i == 0 { 1 } else { 2 }; dim.n_axes()],
                    n_convs: [1, 3, 4, 6, 6, 6, 6][i],
                    n_convs_decoder: (i + 1 < n_stages).then_some(1),
                })
                .collect(),
        };
        let est3 = compute_conv_feature_map_size(&make(Dim::Three, 6, 320), &[128; 3], 3, true);
        assert_eq!(est3.expect("3D"), 558_319_104);
        let est2 = compute_conv_feature_map_size(&make(Dim::Two, 7, 512), &[512; 2], 3, true);
        assert_eq!(est2.expect("2D"), 129_793_792);
    }

    #[test]
    fn patch_with_wrong_axis_count_is_an_error() {
        let spec = hippocampus(NetworkKind::PlainConvUNet, [2; 4], 2);
        let err = compute_conv_feature_map_size(&spec, &[40, 56], 3, false).expect_err("2 axes");
        assert!(matches!(err, PlanError::PatchDimMismatch { n_axes: 3, .. }));
    }
}
