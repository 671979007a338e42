//! Planner settings: the GPU-memory target, the planner preset (nnU-Net's default
//! `ExperimentPlanner` or a ResEnc preset) and an optional target-spacing override.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Dim, NetworkKind};

/// Which nnU-Net planner to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PlannerPreset {
    /// `ExperimentPlanner`: PlainConvUNet, 8 GB reference.
    #[serde(rename = "default")]
    Default,
    /// `nnUNetPlannerResEncM`: ResidualEncoderUNet, 8 GB reference, no 5% batch cap.
    #[serde(rename = "resenc-m")]
    ResEncM,
    /// `nnUNetPlannerResEncL`: ResidualEncoderUNet, 24 GB reference, no 5% batch cap.
    #[serde(rename = "resenc-l")]
    ResEncL,
    /// `nnUNetPlannerResEncXL`: ResidualEncoderUNet, 40 GB reference, no 5% batch cap.
    #[serde(rename = "resenc-xl")]
    ResEncXL,
}

/// The numbers a planner class fixes. nnU-Net: `ExperimentPlanner.__init__` and the
/// `residual_encoder_unet_planners.py` subclasses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PresetConstants {
    pub network: NetworkKind,
    pub reference_val_3d: f64,
    pub reference_val_2d: f64,
    pub reference_corresp_gb: f64,
    /// Encoder convs (PlainConvUNet) or residual blocks (ResEnc) per stage.
    pub blocks_per_stage_encoder: &'static [usize],
    pub convs_per_stage_decoder: &'static [usize],
    /// Largest fraction of the dataset's voxels one batch may cover.
    pub max_dataset_covered: f64,
}

impl PresetConstants {
    /// The VRAM reference for `dim` (before scaling by the GPU-memory target).
    pub fn reference_val(&self, dim: Dim) -> f64 {
        match dim {
            Dim::Two => self.reference_val_2d,
            Dim::Three => self.reference_val_3d,
        }
    }
}

const PLAIN_ENCODER: &[usize] = &[2; 14];
const PLAIN_DECODER: &[usize] = &[2; 13];
const RESENC_ENCODER: &[usize] = &[1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6];
const RESENC_DECODER: &[usize] = &[1; 12];

impl PlannerPreset {
    /// All presets, in CLI order.
    pub const ALL: [PlannerPreset; 4] = [
        PlannerPreset::Default,
        PlannerPreset::ResEncM,
        PlannerPreset::ResEncL,
        PlannerPreset::ResEncXL,
    ];

    /// The CLI / `plans.toml` spelling: `default`, `resenc-m`, `resenc-l`, `resenc-xl`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlannerPreset::Default => "default",
            PlannerPreset::ResEncM => "resenc-m",
            PlannerPreset::ResEncL => "resenc-l",
            PlannerPreset::ResEncXL => "resenc-xl",
        }
    }

    /// nnU-Net's class name for this planner.
    pub fn nnunet_class_name(self) -> &'static str {
        match self {
            PlannerPreset::Default => "ExperimentPlanner",
            PlannerPreset::ResEncM => "nnUNetPlannerResEncM",
            PlannerPreset::ResEncL => "nnUNetPlannerResEncL",
            PlannerPreset::ResEncXL => "nnUNetPlannerResEncXL",
        }
    }

    /// nnU-Net's plans identifier for this planner (`plans_name`, the `<Plans>` of a model
    /// folder's `<Trainer>__<Plans>__<configuration>`).
    pub fn nnunet_plans_name(self) -> &'static str {
        match self {
            PlannerPreset::Default => "nnUNetPlans",
            PlannerPreset::ResEncM => "nnUNetResEncUNetMPlans",
            PlannerPreset::ResEncL => "nnUNetResEncUNetLPlans",
            PlannerPreset::ResEncXL => "nnUNetResEncUNetXLPlans",
        }
    }

    /// The GPU memory (GB) the preset is calibrated for: nnU-Net's default
    /// `gpu_memory_target_in_gb` of each planner class (8, 8, 24, 40).
    pub fn native_gpu_memory_gb(self) -> f64 {
        match self {
            PlannerPreset::Default | PlannerPreset::ResEncM => 8.0,
            PlannerPreset::ResEncL => 24.0,
            PlannerPreset::ResEncXL => 40.0,
        }
    }

    pub(crate) fn constants(self) -> PresetConstants {
        let resenc = |reference_val_3d: f64, reference_val_2d: f64| PresetConstants {
            network: NetworkKind::ResidualEncoderUNet,
            reference_val_3d,
            reference_val_2d,
            reference_corresp_gb: self.native_gpu_memory_gb(),
            blocks_per_stage_encoder: RESENC_ENCODER,
            convs_per_stage_decoder: RESENC_DECODER,
            max_dataset_covered: 1.0,
        };
        match self {
            PlannerPreset::Default => PresetConstants {
                network: NetworkKind::PlainConvUNet,
                reference_val_3d: 560_000_000.0,
                reference_val_2d: 85_000_000.0,
                reference_corresp_gb: 8.0,
                blocks_per_stage_encoder: PLAIN_ENCODER,
                convs_per_stage_decoder: PLAIN_DECODER,
                max_dataset_covered: 0.05,
            },
            PlannerPreset::ResEncM => resenc(680_000_000.0, 135_000_000.0),
            PlannerPreset::ResEncL => resenc(2_100_000_000.0, 380_000_000.0),
            PlannerPreset::ResEncXL => resenc(3_600_000_000.0, 560_000_000.0),
        }
    }
}

impl fmt::Display for PlannerPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`PlannerPreset::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown planner {given:?}; expected one of default, resenc-m, resenc-l, resenc-xl")]
pub struct UnknownPreset {
    /// The text given.
    pub given: String,
}

impl FromStr for PlannerPreset {
    type Err = UnknownPreset;

    fn from_str(text: &str) -> Result<PlannerPreset, UnknownPreset> {
        PlannerPreset::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| UnknownPreset {
                given: text.to_string(),
            })
    }
}

/// What the user chooses about planning.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerSettings {
    /// GPU memory to plan for, in GB; scales the VRAM reference by
    /// `gpu_memory_target_gb / preset's calibration GB`.
    pub gpu_memory_target_gb: f64,
    /// Planner preset.
    pub preset: PlannerPreset,
    /// Replaces the computed 3d_fullres target spacing (and through it 3d_lowres), `(z, y, x)`.
    pub target_spacing_override: Option<[f64; 3]>,
}

impl PlannerSettings {
    /// nnU-Net's defaults: `ExperimentPlanner` with an 8 GB target and no spacing override
    /// (nnU-Net: `nnUNetv2_plan_experiment` without `-pl`, `-gpu_memory_target`,
    /// `-overwrite_target_spacing`).
    pub fn nnunet_default() -> PlannerSettings {
        PlannerSettings::for_preset(PlannerPreset::Default)
    }

    /// A preset at the GPU memory it is calibrated for (8, 8, 24 or 40 GB).
    pub fn for_preset(preset: PlannerPreset) -> PlannerSettings {
        PlannerSettings {
            gpu_memory_target_gb: preset.native_gpu_memory_gb(),
            preset,
            target_spacing_override: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_spellings_round_trip_and_unknown_names_are_rejected() {
        for preset in PlannerPreset::ALL {
            assert_eq!(preset.as_str().parse::<PlannerPreset>(), Ok(preset));
        }
        let err = "resenc-xxl".parse::<PlannerPreset>().expect_err("unknown");
        assert!(err.to_string().contains("resenc-xl"), "{err}");
    }

    #[test]
    fn preset_defaults_match_nnunet_planner_classes() {
        assert_eq!(PlannerSettings::nnunet_default().gpu_memory_target_gb, 8.0);
        assert_eq!(
            PlannerSettings::for_preset(PlannerPreset::ResEncL).gpu_memory_target_gb,
            24.0
        );
        let xl = PlannerPreset::ResEncXL.constants();
        assert_eq!(xl.reference_val(Dim::Three), 3_600_000_000.0);
        assert_eq!(xl.reference_corresp_gb, 40.0);
        assert_eq!(PlannerPreset::Default.constants().max_dataset_covered, 0.05);
    }
}
