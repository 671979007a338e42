//! `Plans` and `plans.toml`: named configurations as the user may edit them (every key
//! optional, `inherits_from` allowed), and [`Configuration`], the resolved, validated form the
//! trainer and predictor consume.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::channel_table;
use crate::resampling::ResamplingSettings;
use crate::training::TrainingEntry;
use crate::UNetSpec;
use crate::{Dim, ForegroundIntensityProperties, NetworkKind, PlanError, PlannerPreset};

/// Version of the `plans.toml` layout written by this build.
pub const PLANS_SCHEMA_VERSION: u32 = 1;

/// Per-channel intensity normalization, spelled as nnU-Net's class names.
///
/// nnU-Net: `preprocessing/normalization/default_normalization_schemes.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NormalizationScheme {
    /// Clip to the dataset's foreground 0.5/99.5 percentiles, then z-score with its mean/std.
    CTNormalization,
    /// Cast only.
    NoNormalization,
    /// Per-image z-score (inside the nonzero mask when `use_mask_for_norm`).
    ZScoreNormalization,
    /// Per-image min-max to [0, 1].
    #[serde(rename = "RescaleTo01Normalization")]
    RescaleTo01,
    /// Divide by 255.
    #[serde(rename = "RGBTo01Normalization")]
    RgbTo01,
}

/// `[configurations.<name>.architecture]`: nnU-Net's parallel lists, kept for number-for-number
/// comparison with `nnUNetPlans.json`. A shallow `inherits_from` merge replaces it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchitectureEntry {
    /// `"PlainConvUNet"` or `"ResidualEncoderUNet"`.
    pub network: NetworkKind,
    /// Number of resolution stages.
    pub n_stages: usize,
    /// Channels per stage.
    pub features_per_stage: Vec<usize>,
    /// Kernel per stage and axis.
    pub kernel_sizes: Vec<Vec<usize>>,
    /// Stride per stage and axis (stage 0 all ones).
    pub strides: Vec<Vec<usize>>,
    /// Convolutions per encoder stage (PlainConvUNet only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_conv_per_stage: Option<Vec<usize>>,
    /// Residual blocks per encoder stage (ResidualEncoderUNet only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_blocks_per_stage: Option<Vec<usize>>,
    /// Convolutions per decoder stage, from the lowest resolution up (`n_stages - 1` entries).
    pub n_conv_per_stage_decoder: Vec<usize>,
}

/// One `[configurations.<name>]` table as written in `plans.toml`. Every key is optional so a
/// configuration can inherit the rest; [`Plans::resolve`] checks completeness.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationEntry {
    /// Configuration whose keys this one starts from (shallow merge of top-level keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherits_from: Option<String>,
    /// The cascade's previous stage (whose predictions are an extra input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stage: Option<String>,
    /// The cascade's next stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stage: Option<String>,
    /// Target spacing, `(z, y, x)` or `(y, x)`, transposed axes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spacing: Option<Vec<f64>>,
    /// Training patch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_size: Option<Vec<usize>>,
    /// Training batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Median image size at the target spacing (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_image_size_in_voxels: Option<Vec<f64>>,
    /// Normalization per channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization_schemes: Option<Vec<NormalizationScheme>>,
    /// Whether to normalize inside the nonzero mask only, per channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_mask_for_norm: Option<Vec<bool>>,
    /// Dice over the whole batch (true) or per sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_dice: Option<bool>,
    /// Image resampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resampling_data: Option<ResamplingSettings>,
    /// Segmentation resampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resampling_seg: Option<ResamplingSettings>,
    /// Probability resampling at export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resampling_probabilities: Option<ResamplingSettings>,
    /// Network architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<ArchitectureEntry>,
    /// How the configuration trains ([`crate::Training`]); merged key by key through
    /// `inherits_from`, nnU-Net's trainer defaults where absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingEntry>,
}

/// The experiment plans: everything the planner chose, per named configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plans {
    /// Layout version; [`PLANS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The dataset's folder name.
    pub dataset_name: String,
    /// The planner preset that produced these plans.
    pub planner: PlannerPreset,
    /// GPU memory the plans were sized for, in GB.
    pub gpu_memory_target_gb: f64,
    /// Axis permutation applied to every image before processing.
    pub transpose_forward: [usize; 3],
    /// Its inverse, applied to predictions.
    pub transpose_backward: [usize; 3],
    /// nnU-Net's `original_median_spacing_after_transp`: the cases' median spacing, transposed.
    /// Recorded for nnU-Net's plans file (its planners read it); nothing in autoseg does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_median_spacing_after_transp: Option<Vec<f64>>,
    /// nnU-Net's `original_median_shape_after_transp`: the cases' median shape after cropping,
    /// transposed, rounded half to even as Python's `round`. Recorded as the spacing is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_median_shape_after_transp: Option<Vec<u64>>,
    /// Foreground intensity statistics per channel (CT normalization uses them).
    #[serde(with = "channel_table")]
    pub foreground_intensity_properties: Vec<ForegroundIntensityProperties>,
    /// Configurations by name (`2d`, `3d_fullres`, `3d_lowres`, `3d_cascade_fullres`, or any
    /// the user adds).
    pub configurations: BTreeMap<String, ConfigurationEntry>,
}

/// A resolved configuration: inheritance applied, every required key present, list lengths
/// consistent.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// Configuration name.
    pub name: String,
    /// Target spacing, one entry per axis of `network.dim`.
    pub spacing: Vec<f64>,
    /// Training patch size, divisible by the product of the strides on every axis.
    pub patch_size: Vec<usize>,
    /// Training batch size (>= 1).
    pub batch_size: usize,
    /// Median image size at the target spacing.
    pub median_image_size_in_voxels: Vec<f64>,
    /// Normalization per channel.
    pub normalization_schemes: Vec<NormalizationScheme>,
    /// Mask-restricted normalization per channel.
    pub use_mask_for_norm: Vec<bool>,
    /// Batch Dice.
    pub batch_dice: bool,
    /// Image resampling.
    pub resampling_data: ResamplingSettings,
    /// Segmentation resampling.
    pub resampling_seg: ResamplingSettings,
    /// Probability resampling at export.
    pub resampling_probabilities: ResamplingSettings,
    /// The cascade's previous stage, if any.
    pub previous_stage: Option<String>,
    /// The cascade's next stage, if any.
    pub next_stage: Option<String>,
    /// The network, one entry per stage.
    pub network: UNetSpec,
}

impl Configuration {
    /// The network architecture.
    pub fn unet_spec(&self) -> &UNetSpec {
        &self.network
    }

    /// 2D or 3D.
    pub fn dim(&self) -> Dim {
        self.network.dim
    }

    /// Whether 3D training augments in-plane only (nnU-Net's `do_dummy_2d_data_aug`:
    /// `max(patch) / patch[0] > 3` for 3D patches; always false for 2D).
    ///
    /// nnU-Net: `nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size`.
    pub fn do_dummy_2d_data_aug(&self) -> bool {
        let max = self.patch_size.iter().copied().max().unwrap_or(0) as f64;
        self.dim() == Dim::Three && max / self.patch_size[0] as f64 > crate::ANISO_THRESHOLD
    }
}

impl Plans {
    /// Serialises to the text of `plans.toml`.
    ///
    /// # Errors
    /// [`PlanError::Serialize`] if a value cannot be written as TOML.
    pub fn to_toml_string(&self) -> Result<String, PlanError> {
        toml::to_string(self).map_err(|source| PlanError::Serialize {
            what: "plans.toml",
            source,
        })
    }

    /// Parses the text of `plans.toml` (configurations are checked by [`Plans::resolve`]).
    ///
    /// # Errors
    /// [`PlanError::ParsePlans`] for malformed TOML, unknown keys or misspelt enum values;
    /// [`PlanError::UnsupportedSchemaVersion`] for another layout version.
    pub fn from_toml_str(text: &str) -> Result<Plans, PlanError> {
        let plans: Plans = toml::from_str(text).map_err(PlanError::ParsePlans)?;
        if plans.schema_version != PLANS_SCHEMA_VERSION {
            return Err(PlanError::UnsupportedSchemaVersion {
                what: "plans.toml",
                found: plans.schema_version,
                supported: PLANS_SCHEMA_VERSION,
            });
        }
        Ok(plans)
    }

    /// Reads `plans.toml` at `path` (a [`crate::WorkLayout::plans`]).
    ///
    /// # Errors
    /// [`PlanError::MissingArtifact`] when it does not exist (run `autoseg plan`),
    /// [`PlanError::Io`], or [`PlanError::InFile`] wrapping [`Plans::from_toml_str`]'s errors.
    pub fn read(path: &Path) -> Result<Plans, PlanError> {
        let text = crate::atomic::read_artifact(path, "run `autoseg plan DATASET` first")?;
        Plans::from_toml_str(&text).map_err(|source| PlanError::InFile {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Writes `plans.toml` at `path` atomically.
    ///
    /// # Errors
    /// [`PlanError::Serialize`] or [`PlanError::Io`].
    pub fn write(&self, path: &Path) -> Result<(), PlanError> {
        crate::atomic::write_artifact(path, &self.to_toml_string()?)
    }

    /// Names of all configurations.
    pub fn configuration_names(&self) -> Vec<String> {
        self.configurations.keys().cloned().collect()
    }

    /// The configuration whose preprocessed data `name` uses: a cascade stage (one with a
    /// `previous_stage`) shares the data of the configuration it inherits from (nnU-Net: the
    /// same `data_identifier`); any other configuration has its own.
    pub fn data_configuration<'a>(&'a self, name: &'a str) -> &'a str {
        match self.configurations.get(name) {
            Some(ConfigurationEntry {
                previous_stage: Some(_),
                inherits_from: Some(parent),
                ..
            }) => parent,
            _ => name,
        }
    }
}

impl ArchitectureEntry {
    /// Writes a network as nnU-Net's parallel lists.
    pub fn from_spec(spec: &UNetSpec) -> ArchitectureEntry {
        let per_stage: Vec<usize> = spec.stages.iter().map(|s| s.n_convs).collect();
        let (n_conv_per_stage, n_blocks_per_stage) = match spec.kind {
            NetworkKind::PlainConvUNet => (Some(per_stage), None),
            NetworkKind::ResidualEncoderUNet => (None, Some(per_stage)),
        };
        ArchitectureEntry {
            network: spec.kind,
            n_stages: spec.stages.len(),
            features_per_stage: spec.stages.iter().map(|s| s.features).collect(),
            kernel_sizes: spec.stages.iter().map(|s| s.kernel.clone()).collect(),
            strides: spec.stages.iter().map(|s| s.stride.clone()).collect(),
            n_conv_per_stage,
            n_blocks_per_stage,
            // nnU-Net lists decoder stages from the bottom up.
            n_conv_per_stage_decoder: spec
                .stages
                .iter()
                .rev()
                .filter_map(|s| s.n_convs_decoder)
                .collect(),
        }
    }
}
