//! Planning one configuration (nnU-Net's `get_plans_for_configuration`): initial patch,
//! topology, network, the shrink loop that fits the VRAM budget, and the batch size.

use crate::numeric::{argsort_last, product};
use crate::rules::initial_patch_size;
use crate::settings::PresetConstants;
use crate::topology::{pool_and_conv_props, Topology};
use crate::{compute_conv_feature_map_size, Dim, NetworkKind, PlanError, PlannerSettings};
use crate::{StageSpec, UNetSpec};

/// Reference batch sizes the VRAM references were calibrated with (nnU-Net's
/// `UNet_reference_val_corresp_bs_{2d,3d}`).
const REFERENCE_BATCH_2D: f64 = 12.0;
const REFERENCE_BATCH_3D: f64 = 2.0;
/// nnU-Net's `UNet_min_batch_size`.
const MIN_BATCH_SIZE: usize = 2;
/// nnU-Net's `UNet_base_num_features`.
const BASE_FEATURES: usize = 32;

/// Everything per-configuration planning needs besides geometry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanContext {
    pub constants: PresetConstants,
    pub gpu_memory_target_gb: f64,
    /// `len(dataset_json['labels'])`.
    pub n_classes: usize,
}

/// How one configuration's patch and batch size came about.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigurationReport {
    /// Configuration name.
    pub name: String,
    /// Initial patch, clipped to the median shape (may be fractional).
    pub initial_patch_size: Vec<f64>,
    /// The initial patch padded to the topology's divisors.
    pub padded_patch_size: Vec<usize>,
    /// The patch after every step of the shrink loop, in order.
    pub shrink_steps: Vec<Vec<usize>>,
    /// Final VRAM estimate (feature-map elements).
    pub estimate: u64,
    /// The VRAM reference it was compared with, scaled to the GPU-memory target.
    pub reference: f64,
    /// Batch size from the VRAM headroom alone.
    pub batch_size_from_vram: usize,
    /// Cap from the fraction of the dataset one batch may cover.
    pub batch_size_cap: usize,
    /// Final batch size.
    pub batch_size: usize,
}

/// A planned configuration before it is written into [`crate::Plans`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedConfiguration {
    pub spacing: Vec<f64>,
    pub median_shape: Vec<f64>,
    pub network: UNetSpec,
    pub patch_size: Vec<usize>,
    pub batch_size: usize,
    pub report: ConfigurationReport,
}

impl PlanContext {
    pub fn new(settings: &PlannerSettings, n_classes: usize) -> PlanContext {
        PlanContext {
            constants: settings.preset.constants(),
            gpu_memory_target_gb: settings.gpu_memory_target_gb,
            n_classes,
        }
    }

    /// nnU-Net: `reference = UNet_reference_val * (UNet_vram_target_GB / corresp_GB)`.
    fn reference(&self, dim: Dim) -> f64 {
        let c = &self.constants;
        c.reference_val(dim) * (self.gpu_memory_target_gb / c.reference_corresp_gb)
    }

    /// The shrink loop's condition: default planner `estimate / ref_bs * 2 > reference`
    /// (lets 2D use 6x the reference), ResEnc planners `estimate > reference`.
    fn exceeds_budget(&self, estimate: u64, reference: f64, dim: Dim) -> bool {
        match self.constants.network {
            NetworkKind::PlainConvUNet => estimate as f64 / reference_batch(dim) * 2.0 > reference,
            NetworkKind::ResidualEncoderUNet => estimate as f64 > reference,
        }
    }

    /// The network nnU-Net builds for a topology: features `min(32 * 2^i, 320 | 512)`, the
    /// preset's convolutions (or blocks) per stage.
    fn network(&self, dim: Dim, topology: &Topology) -> UNetSpec {
        let max_features = match dim {
            Dim::Two => 512,
            Dim::Three => 320,
        };
        let n_stages = topology.n_stages();
        let count = |list: &[usize], idx: usize| list[idx.min(list.len() - 1)];
        let stages = (0..n_stages)
            .map(|i| StageSpec {
                features: (BASE_FEATURES << i.min(16)).min(max_features),
                kernel: topology.kernels[i].clone(),
                stride: topology.strides[i].clone(),
                n_convs: count(self.constants.blocks_per_stage_encoder, i),
                n_convs_decoder: (i + 1 < n_stages)
                    .then(|| count(self.constants.convs_per_stage_decoder, n_stages - 2 - i)),
            })
            .collect();
        UNetSpec {
            dim,
            kind: self.constants.network,
            stages,
        }
    }

    fn estimate(&self, dim: Dim, topology: &Topology) -> Result<u64, PlanError> {
        let spec = self.network(dim, topology);
        compute_conv_feature_map_size(&spec, &topology.patch_size, self.n_classes, false)
    }
}

fn reference_batch(dim: Dim) -> f64 {
    match dim {
        Dim::Two => REFERENCE_BATCH_2D,
        Dim::Three => REFERENCE_BATCH_3D,
    }
}

/// Plans configuration `name` at `spacing` for images of `median_shape` (both transposed), in a
/// dataset of about `approx_n_voxels_dataset` voxels.
pub(crate) fn plan_configuration(
    ctx: &PlanContext,
    name: &str,
    spacing: &[f64],
    median_shape: &[f64],
    approx_n_voxels_dataset: f64,
) -> Result<PlannedConfiguration, PlanError> {
    let dim = if spacing.len() == 2 {
        Dim::Two
    } else {
        Dim::Three
    };
    let initial = initial_patch_size(spacing, median_shape);
    let topology = pool_and_conv_props(spacing, &initial);
    let padded_patch_size = topology.patch_size.clone();
    let reference = ctx.reference(dim);
    let shrunk = shrink_patch_to_budget(ctx, name, spacing, median_shape, topology, reference)?;
    let (topology, estimate, shrink_steps) = shrunk;
    if topology.n_stages() < 2 {
        return Err(PlanError::InvalidConfiguration {
            configuration: name.to_string(),
            fault: format!(
                "patch {:?} is too small to downsample even once (median image {median_shape:?})",
                topology.patch_size
            ),
        });
    }
    let from_vram = (reference / estimate as f64 * reference_batch(dim)).round_ties_even();
    let patch_voxels = product(
        &topology
            .patch_size
            .iter()
            .map(|&p| p as f64)
            .collect::<Vec<_>>(),
    );
    let cap = (approx_n_voxels_dataset * ctx.constants.max_dataset_covered / patch_voxels)
        .round_ties_even();
    let batch_size = batch_size(from_vram, cap);
    let report = ConfigurationReport {
        name: name.to_string(),
        initial_patch_size: initial,
        padded_patch_size,
        shrink_steps,
        estimate,
        reference,
        batch_size_from_vram: from_vram as usize,
        batch_size_cap: cap as usize,
        batch_size,
    };
    Ok(PlannedConfiguration {
        spacing: spacing.to_vec(),
        median_shape: median_shape.to_vec(),
        network: ctx.network(dim, &topology),
        patch_size: topology.patch_size,
        batch_size,
        report,
    })
}

/// nnU-Net's batch size rule: `max(min(from_vram, cap), 2)` with both already rounded
/// half-to-even.
fn batch_size(from_vram: f64, cap: f64) -> usize {
    from_vram.min(cap).max(MIN_BATCH_SIZE as f64) as usize
}

type Shrunk = (Topology, u64, Vec<Vec<usize>>);

/// nnU-Net's shrink loop: while the estimate exceeds the budget, shrink the axis with the
/// largest patch/median ratio (last among ties) and recompute the topology.
fn shrink_patch_to_budget(
    ctx: &PlanContext,
    name: &str,
    spacing: &[f64],
    median_shape: &[f64],
    mut topology: Topology,
    reference: f64,
) -> Result<Shrunk, PlanError> {
    let dim = if spacing.len() == 2 {
        Dim::Two
    } else {
        Dim::Three
    };
    let mut estimate = ctx.estimate(dim, &topology)?;
    let mut steps = Vec::new();
    while ctx.exceeds_budget(estimate, reference, dim) {
        topology = shrink_once(spacing, median_shape, &topology).ok_or_else(|| {
            PlanError::BudgetTooSmall {
                configuration: name.to_string(),
                patch: topology.patch_size.clone(),
                estimate,
                reference,
            }
        })?;
        estimate = ctx.estimate(dim, &topology)?;
        steps.push(topology.patch_size.clone());
    }
    Ok((topology, estimate, steps))
}

/// One shrink step. nnU-Net first subtracts the current divisor, recomputes the divisor for
/// that smaller patch, and subtracts the NEW divisor from the original edge (so 256 -> 224
/// rather than 192). `None` when the edge would vanish.
fn shrink_once(spacing: &[f64], median_shape: &[f64], topology: &Topology) -> Option<Topology> {
    let patch = &topology.patch_size;
    let ratios: Vec<f64> = patch
        .iter()
        .zip(median_shape)
        .map(|(&p, &m)| p as f64 / m)
        .collect();
    let axis = argsort_last(&ratios);
    let mut trial: Vec<f64> = patch.iter().map(|&p| p as f64).collect();
    trial[axis] = patch[axis].checked_sub(topology.divisor[axis])? as f64;
    let new_divisor = pool_and_conv_props(spacing, &trial).divisor[axis];
    let mut shrunk: Vec<f64> = patch.iter().map(|&p| p as f64).collect();
    let edge = patch[axis].checked_sub(new_divisor).filter(|&e| e >= 1)?;
    shrunk[axis] = edge as f64;
    Some(pool_and_conv_props(spacing, &shrunk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlannerPreset;

    fn ctx(preset: PlannerPreset, n_classes: usize) -> PlanContext {
        PlanContext::new(&PlannerSettings::for_preset(preset), n_classes)
    }

    #[test]
    fn heart_like_shrink_sequence_matches_nnunet() {
        // nnunet.md §12 Heart-like: 20 cases, spacing (1.37, 1.25, 1.25), median (115, 320, 232),
        // labels background + 1.
        let median = [115.0, 320.0, 232.0];
        let n_vox = 115.0 * 320.0 * 232.0 * 20.0;
        let plan = plan_configuration(
            &ctx(PlannerPreset::Default, 2),
            "3d_fullres",
            &[1.37, 1.25, 1.25],
            &median,
            n_vox,
        )
        .expect("plannable");
        let r = &plan.report;
        assert_eq!(r.initial_patch_size, vec![115.0, 264.0, 232.0]);
        assert_eq!(r.padded_patch_size, vec![128, 320, 256]);
        let expected: Vec<Vec<usize>> = [
            [112, 320, 256],
            [112, 320, 224],
            [112, 288, 224],
            [96, 288, 224],
            [96, 288, 192],
            [96, 256, 192],
            [80, 256, 192],
            [80, 256, 160],
            [80, 224, 160],
            [80, 192, 160],
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        assert_eq!(r.shrink_steps, expected);
        assert_eq!(plan.patch_size, vec![80, 192, 160]);
        assert_eq!(r.estimate, 528_211_200);
        assert_eq!(plan.batch_size, 2);
        let strides: Vec<Vec<usize>> = plan
            .network
            .stages
            .iter()
            .map(|s| s.stride.clone())
            .collect();
        let mut want = vec![vec![1, 1, 1]];
        want.extend(vec![vec![2, 2, 2]; 4]);
        want.push(vec![1, 2, 2]);
        assert_eq!(strides, want);
        assert!(plan
            .network
            .stages
            .iter()
            .all(|s| s.kernel == vec![3, 3, 3]));
    }

    #[test]
    fn batch_size_is_capped_then_floored_at_two() {
        assert_eq!(batch_size(9.0, 100.0), 9);
        assert_eq!(batch_size(366.0, 5.0), 5);
        assert_eq!(batch_size(1.0, 50.0), 2);
        assert_eq!(batch_size(9.0, 0.0), 2);
    }

    #[test]
    fn tiny_budget_is_an_error_not_an_endless_loop() {
        let settings = PlannerSettings {
            gpu_memory_target_gb: 1e-9,
            ..PlannerSettings::nnunet_default()
        };
        let ctx = PlanContext::new(&settings, 3);
        let err = plan_configuration(&ctx, "3d_fullres", &[1.0; 3], &[36.0, 50.0, 35.0], 1e6)
            .expect_err("nothing fits");
        assert!(matches!(err, PlanError::BudgetTooSmall { .. }), "{err}");
        assert!(err.to_string().contains("3d_fullres"), "{err}");
    }

    #[test]
    fn shrink_once_subtracts_the_recomputed_divisor() {
        // (256, 200) pools 5 times per axis (divisor 32) and pads to (256, 224). Axis 0 has the
        // larger patch/median ratio; trial 224 still has divisor 32, so 256 -> 224.
        let t = pool_and_conv_props(&[1.0, 1.0], &[256.0, 200.0]);
        assert_eq!(t.patch_size, vec![256, 224]);
        let s = shrink_once(&[1.0, 1.0], &[256.0, 256.0], &t).expect("shrinkable");
        assert_eq!(s.patch_size, vec![224, 224]);
    }
}
