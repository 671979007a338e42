//! `autoseg-planner`: nnU-Net's experiment planning as a pure library.
//!
//! Owns `Fingerprint`, `DatasetInfo`, `Plans`, `Configuration`, the planning rules (target
//! spacing, transpose, patch size, pooling topology, batch size, the low-res/cascade rule,
//! normalization choice) and the VRAM model that sizes networks for a GPU-memory budget.
//!
//! Also owns the work folder's layout ([`WorkLayout`]: where every artifact of a dataset lives)
//! and atomic artifact writes ([`write_atomic`]), the lowest crate every stage depends on.
//!
//! Must not: read or write files beyond (de)serialising its own types, depend on libtorch or
//! rayon, or print. `plan` is a deterministic function of its arguments.
//!
//! # Example
//!
//! A Hippocampus-like dataset (260 MRI cases of 36 x 50 x 35 voxels at 1 mm, background + 2
//! labels) gets nnU-Net's 3d_fullres patch (40, 56, 40) with batch size 9:
//!
//! ```
//! use autoseg_planner::{plan, DatasetInfo, Fingerprint, ForegroundIntensityProperties};
//! use autoseg_planner::{LabelEntry, LabelValue, PlannerSettings, Plans};
//!
//! let stats = ForegroundIntensityProperties {
//!     mean: 100.0, median: 98.0, std: 20.0, min: 0.0, max: 400.0,
//!     percentile_00_5: 10.0, percentile_99_5: 300.0,
//! };
//! let fingerprint = Fingerprint::new(vec![[1.0; 3]; 260], vec![[36, 50, 35]; 260], 1.0, vec![stats])?;
//! let label = |name: &str, v| LabelEntry { name: name.into(), value: LabelValue::Single(v) };
//! let labels = vec![label("background", 0), label("anterior", 1), label("posterior", 2)];
//! let dataset = DatasetInfo::new("Dataset004_Hippocampus", vec!["MRI".into()], labels, 260, ".nii.gz")?;
//!
//! let plans = plan(&fingerprint, &dataset, &PlannerSettings::nnunet_default())?;
//! let fullres = plans.resolve("3d_fullres")?;
//! assert_eq!(fullres.patch_size, vec![40, 56, 40]);
//! assert_eq!(fullres.batch_size, 9);
//! assert_eq!(fullres.unet_spec().stages.len(), 4);
//!
//! // plans.toml round-trips; the caller does the file I/O.
//! let text = plans.to_toml_string()?;
//! assert_eq!(Plans::from_toml_str(&text)?, plans);
//! # Ok::<(), autoseg_planner::PlanError>(())
//! ```

mod atomic;
mod channel_table;
mod configure;
mod dataset_info;
mod error;
mod fingerprint;
mod layout;
mod lock;
mod lowres;
mod nnunet_plans;
mod nnunet_plans_out;
mod numeric;
mod order;
pub mod pickle;
mod planner;
mod plans;
mod report;
mod resampling;
mod resolve;
mod rules;
mod settings;
mod spec;
mod topology;
mod training;
mod transfer;
mod vram;

pub use atomic::{is_orphaned_temp, temp_path, write_atomic, write_atomic_with};
pub use configure::ConfigurationReport;
pub use dataset_info::{DatasetInfo, LabelEntry, LabelValue};
pub use error::PlanError;
pub use fingerprint::{
    Fingerprint, ForegroundIntensityProperties, StampEntry, FINGERPRINT_SCHEMA_VERSION,
};
pub use layout::{fold_folder, fold_of_folder, WorkLayout, SUMMARY_JSON};
pub use lock::WorkLock;
pub use lowres::LowresDecision;
pub use nnunet_plans_out::nnunet_reader_for;
pub use planner::{plan, plan_with_report};
pub use plans::{
    ArchitectureEntry, Configuration, ConfigurationEntry, NormalizationScheme, Plans,
    PLANS_SCHEMA_VERSION,
};
pub use report::PlanReport;
pub use resampling::{ForceSeparateZ, ResamplingSettings, SplineOrder};
pub use rules::{compute_new_shape, Anisotropy, TargetSpacing};
pub use settings::{PlannerPreset, PlannerSettings, UnknownPreset};
pub use spec::{Dim, NetworkKind, StageSpec, UNetSpec};
pub use training::{
    nnunet_trainer, nnunet_trainer_names, AugmentationPreset, LossKind, LrScheduleKind, NormKind,
    OptimizerKind, Training, TrainingEntry,
};
pub use transfer::{nnunet_plans_to_move, transfer_plans};
pub use vram::compute_conv_feature_map_size;

/// nnU-Net's `ANISO_THRESHOLD` (`nnunetv2/configuration.py`): a spacing ratio above this makes
/// an axis anisotropic (target spacing, separate-z resampling, dummy 2D augmentation).
pub const ANISO_THRESHOLD: f64 = 3.0;
