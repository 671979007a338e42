//! [`Plans::resolve`]: following `inherits_from` (nnU-Net's shallow merge), then turning the
//! merged [`ConfigurationEntry`] into a [`Configuration`]: every required key present, list
//! lengths checked once, the architecture's parallel lists turned into a [`UNetSpec`].

use crate::plans::{ArchitectureEntry, Configuration, ConfigurationEntry, Plans};
use crate::training::{Training, TrainingEntry};
use crate::{Dim, NetworkKind, PlanError, StageSpec, UNetSpec};

impl Plans {
    /// Resolves configuration `name`: follows `inherits_from` with nnU-Net's shallow merge of
    /// top-level keys (a child's `architecture` replaces the parent's whole table), then checks
    /// that every key is present and every list has the right length.
    ///
    /// # Errors
    /// [`PlanError::UnknownConfiguration`], [`PlanError::InheritanceCycle`],
    /// [`PlanError::MissingKey`] or [`PlanError::InvalidConfiguration`].
    pub fn resolve(&self, name: &str) -> Result<Configuration, PlanError> {
        let entry = self.merged_entry(name)?;
        validate(name, entry, self.foreground_intensity_properties.len())
    }

    /// The training settings of configuration `name`: its `training` table (merged through
    /// `inherits_from`), then `overrides` (a `--trainer` name's keys and the command line's
    /// flags) key by key, nnU-Net's defaults for the keys neither sets.
    ///
    /// # Errors
    /// What [`Plans::resolve`] reports, or [`PlanError::InvalidConfiguration`] naming the
    /// training key at fault.
    pub fn training(&self, name: &str, overrides: &TrainingEntry) -> Result<Training, PlanError> {
        let config = self.resolve(name)?;
        let entry = self.merged_entry(name)?.training.unwrap_or_default();
        entry
            .overlaid_with(overrides.clone())
            .resolve(config.dim())
            .map_err(|fault| PlanError::InvalidConfiguration {
                configuration: name.to_string(),
                fault,
            })
    }

    fn merged_entry(&self, name: &str) -> Result<ConfigurationEntry, PlanError> {
        let mut chain = vec![name.to_string()];
        let mut entry = self.entry(name)?.clone();
        while let Some(parent) = entry.inherits_from.take() {
            if chain.contains(&parent) {
                chain.push(parent);
                return Err(PlanError::InheritanceCycle {
                    name: name.to_string(),
                    chain,
                });
            }
            let base = self.entry(&parent)?.clone();
            chain.push(parent);
            entry = base.overlaid_with(entry);
        }
        Ok(entry)
    }

    fn entry(&self, name: &str) -> Result<&ConfigurationEntry, PlanError> {
        self.configurations
            .get(name)
            .ok_or_else(|| PlanError::UnknownConfiguration {
                name: name.to_string(),
                available: self.configuration_names(),
            })
    }
}

impl ConfigurationEntry {
    /// nnU-Net's `base.update(child)`: every key the child sets replaces the base's.
    fn overlaid_with(self, child: ConfigurationEntry) -> ConfigurationEntry {
        ConfigurationEntry {
            inherits_from: child.inherits_from.or(self.inherits_from),
            previous_stage: child.previous_stage.or(self.previous_stage),
            next_stage: child.next_stage.or(self.next_stage),
            spacing: child.spacing.or(self.spacing),
            patch_size: child.patch_size.or(self.patch_size),
            batch_size: child.batch_size.or(self.batch_size),
            median_image_size_in_voxels: child
                .median_image_size_in_voxels
                .or(self.median_image_size_in_voxels),
            normalization_schemes: child.normalization_schemes.or(self.normalization_schemes),
            use_mask_for_norm: child.use_mask_for_norm.or(self.use_mask_for_norm),
            batch_dice: child.batch_dice.or(self.batch_dice),
            resampling_data: child.resampling_data.or(self.resampling_data),
            resampling_seg: child.resampling_seg.or(self.resampling_seg),
            resampling_probabilities: child
                .resampling_probabilities
                .or(self.resampling_probabilities),
            architecture: child.architecture.or(self.architecture),
            // Every training key is optional, so a child changes one and keeps the others.
            training: match (self.training, child.training) {
                (Some(base), Some(over)) => Some(base.overlaid_with(over)),
                (base, over) => over.or(base),
            },
        }
    }
}

/// Checks a merged entry and builds the resolved configuration. `n_channels` is the number of
/// channels the plans' intensity properties describe.
fn validate(
    name: &str,
    entry: ConfigurationEntry,
    n_channels: usize,
) -> Result<Configuration, PlanError> {
    let invalid = |fault: String| PlanError::InvalidConfiguration {
        configuration: name.to_string(),
        fault,
    };
    let spacing = require(entry.spacing, name, "spacing")?;
    let patch_size = require(entry.patch_size, name, "patch_size")?;
    let batch_size = require(entry.batch_size, name, "batch_size")?;
    let median = require(
        entry.median_image_size_in_voxels,
        name,
        "median_image_size_in_voxels",
    )?;
    let schemes = require(entry.normalization_schemes, name, "normalization_schemes")?;
    let use_mask = require(entry.use_mask_for_norm, name, "use_mask_for_norm")?;
    let architecture = require(entry.architecture, name, "architecture")?;
    let dim = match spacing.len() {
        2 => Dim::Two,
        3 => Dim::Three,
        n => return Err(invalid(format!("spacing has {n} axes; expected 2 or 3"))),
    };
    check_geometry(dim, &spacing, &patch_size, &median, batch_size).map_err(invalid)?;
    if schemes.len() != n_channels || use_mask.len() != n_channels {
        return Err(invalid(format!(
            "normalization_schemes has {} and use_mask_for_norm {} entries, but the plans \
             describe {n_channels} channels",
            schemes.len(),
            use_mask.len()
        )));
    }
    let network = unet_spec(&architecture, dim).map_err(invalid)?;
    check_divisible(&network, &patch_size).map_err(invalid)?;
    Ok(Configuration {
        name: name.to_string(),
        spacing,
        patch_size,
        batch_size,
        median_image_size_in_voxels: median,
        normalization_schemes: schemes,
        use_mask_for_norm: use_mask,
        batch_dice: require(entry.batch_dice, name, "batch_dice")?,
        resampling_data: require(entry.resampling_data, name, "resampling_data")?,
        resampling_seg: require(entry.resampling_seg, name, "resampling_seg")?,
        resampling_probabilities: require(
            entry.resampling_probabilities,
            name,
            "resampling_probabilities",
        )?,
        previous_stage: entry.previous_stage,
        next_stage: entry.next_stage,
        network,
    })
}

/// A required key of configuration `name`.
fn require<T>(value: Option<T>, name: &str, key: &'static str) -> Result<T, PlanError> {
    value.ok_or_else(|| PlanError::MissingKey {
        configuration: name.to_string(),
        key,
    })
}

fn check_geometry(
    dim: Dim,
    spacing: &[f64],
    patch_size: &[usize],
    median: &[f64],
    batch_size: usize,
) -> Result<(), String> {
    let n = dim.n_axes();
    if patch_size.len() != n || median.len() != n {
        return Err(format!(
            "spacing has {n} axes but patch_size has {} and median_image_size_in_voxels {}",
            patch_size.len(),
            median.len()
        ));
    }
    if spacing.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        return Err(format!("spacing {spacing:?} must be positive and finite"));
    }
    if patch_size.contains(&0) {
        return Err(format!("patch_size {patch_size:?} has an empty axis"));
    }
    if batch_size == 0 {
        return Err("batch_size must be at least 1".into());
    }
    Ok(())
}

/// Builds the stage array from nnU-Net's parallel lists, checking every length once.
pub(crate) fn unet_spec(arch: &ArchitectureEntry, dim: Dim) -> Result<UNetSpec, String> {
    let n = arch.n_stages;
    if n < 2 {
        return Err(format!(
            "architecture.n_stages is {n}; a U-Net needs at least 2"
        ));
    }
    let per_stage = encoder_counts(arch)?;
    let lengths = [
        ("features_per_stage", arch.features_per_stage.len(), n),
        ("kernel_sizes", arch.kernel_sizes.len(), n),
        ("strides", arch.strides.len(), n),
        ("n_conv_per_stage/n_blocks_per_stage", per_stage.len(), n),
        (
            "n_conv_per_stage_decoder",
            arch.n_conv_per_stage_decoder.len(),
            n - 1,
        ),
    ];
    if let Some((key, found, want)) = lengths.iter().find(|(_, found, want)| found != want) {
        return Err(format!(
            "architecture.{key} has {found} entries; n_stages = {n} needs {want}"
        ));
    }
    let stages = (0..n)
        .map(|i| stage(arch, per_stage, dim, i))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(UNetSpec {
        dim,
        kind: arch.network,
        stages,
    })
}

fn encoder_counts(arch: &ArchitectureEntry) -> Result<&[usize], String> {
    match (
        arch.network,
        &arch.n_conv_per_stage,
        &arch.n_blocks_per_stage,
    ) {
        (NetworkKind::PlainConvUNet, Some(convs), None) => Ok(convs),
        (NetworkKind::ResidualEncoderUNet, None, Some(blocks)) => Ok(blocks),
        (NetworkKind::PlainConvUNet, _, _) => Err(
            "architecture: PlainConvUNet takes n_conv_per_stage (and no n_blocks_per_stage)".into(),
        ),
        (NetworkKind::ResidualEncoderUNet, _, _) => Err(
            "architecture: ResidualEncoderUNet takes n_blocks_per_stage (and no n_conv_per_stage)"
                .into(),
        ),
    }
}

fn stage(
    arch: &ArchitectureEntry,
    per_stage: &[usize],
    dim: Dim,
    idx: usize,
) -> Result<StageSpec, String> {
    let n_axes = dim.n_axes();
    let (kernel, stride) = (&arch.kernel_sizes[idx], &arch.strides[idx]);
    if kernel.len() != n_axes || stride.len() != n_axes {
        return Err(format!(
            "architecture stage {idx}: kernel {kernel:?} and stride {stride:?} need {n_axes} axes"
        ));
    }
    if kernel.iter().any(|&k| k % 2 == 0) || stride.contains(&0) {
        return Err(format!(
            "architecture stage {idx}: kernels must be odd and strides >= 1 (kernel {kernel:?}, \
             stride {stride:?})"
        ));
    }
    if arch.features_per_stage[idx] == 0 || per_stage[idx] == 0 {
        return Err(format!(
            "architecture stage {idx}: features and convolutions per stage must be >= 1"
        ));
    }
    let n_stages = arch.n_stages;
    // n_conv_per_stage_decoder[0] belongs to the lowest-resolution decoder stage.
    let n_convs_decoder =
        (idx + 1 < n_stages).then(|| arch.n_conv_per_stage_decoder[n_stages - 2 - idx]);
    if n_convs_decoder == Some(0) {
        return Err(format!(
            "architecture.n_conv_per_stage_decoder: the decoder stage at stage {idx} has 0 convolutions"
        ));
    }
    Ok(StageSpec {
        features: arch.features_per_stage[idx],
        kernel: kernel.clone(),
        stride: stride.clone(),
        n_convs: per_stage[idx],
        n_convs_decoder,
    })
}

fn check_divisible(network: &UNetSpec, patch_size: &[usize]) -> Result<(), String> {
    for (axis, &edge) in patch_size.iter().enumerate() {
        let divisor: usize = network.stages.iter().map(|s| s.stride[axis]).product();
        if edge % divisor != 0 {
            return Err(format!(
                "patch_size {patch_size:?}: axis {axis} edge {edge} is not divisible by {divisor}, \
                 the product of the strides on that axis"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UNetSpec {
        let stage = |features, stride: usize, n_convs, n_convs_decoder| StageSpec {
            features,
            kernel: vec![1, 3, 3],
            stride: vec![1, stride, stride],
            n_convs,
            n_convs_decoder,
        };
        UNetSpec {
            dim: Dim::Three,
            kind: NetworkKind::ResidualEncoderUNet,
            stages: vec![
                stage(32, 1, 1, Some(4)),
                stage(64, 2, 3, Some(5)),
                stage(128, 2, 4, None),
            ],
        }
    }

    #[test]
    fn architecture_lists_round_trip_with_decoder_counts_bottom_up() {
        let arch = ArchitectureEntry::from_spec(&spec());
        // nnU-Net's n_conv_per_stage_decoder starts at the lowest-resolution decoder stage.
        assert_eq!(arch.n_conv_per_stage_decoder, vec![5, 4]);
        assert_eq!(arch.n_blocks_per_stage, Some(vec![1, 3, 4]));
        assert_eq!(arch.n_conv_per_stage, None);
        assert_eq!(unet_spec(&arch, Dim::Three), Ok(spec()));
    }

    #[test]
    fn architecture_errors_name_the_list_at_fault() {
        let mut arch = ArchitectureEntry::from_spec(&spec());
        arch.n_conv_per_stage = Some(vec![2, 2, 2]);
        let err = unet_spec(&arch, Dim::Three).expect_err("both lists");
        assert!(
            err.contains("ResidualEncoderUNet takes n_blocks_per_stage"),
            "{err}"
        );
        let mut arch = ArchitectureEntry::from_spec(&spec());
        arch.kernel_sizes[1] = vec![3, 3];
        let err = unet_spec(&arch, Dim::Three).expect_err("2-axis kernel");
        assert!(err.contains("stage 1: kernel [3, 3]"), "{err}");
        let mut arch = ArchitectureEntry::from_spec(&spec());
        arch.kernel_sizes[0] = vec![2, 3, 3];
        assert!(unet_spec(&arch, Dim::Three).is_err());
        let mut arch = ArchitectureEntry::from_spec(&spec());
        arch.n_conv_per_stage_decoder = vec![0, 1];
        let err = unet_spec(&arch, Dim::Three).expect_err("empty decoder stage");
        assert!(err.contains("stage 1 has 0 convolutions"), "{err}");
        let mut arch = ArchitectureEntry::from_spec(&spec());
        arch.n_stages = 1;
        assert!(unet_spec(&arch, Dim::Three).is_err());
    }

    #[test]
    fn geometry_checks_reject_mismatched_axes_and_empty_values() {
        assert!(check_geometry(Dim::Two, &[1.0, 1.0], &[64, 64], &[70.0, 70.0], 2).is_ok());
        assert!(check_geometry(Dim::Two, &[1.0, 1.0], &[64, 64, 64], &[70.0, 70.0], 2).is_err());
        assert!(check_geometry(Dim::Two, &[1.0, -1.0], &[64, 64], &[70.0, 70.0], 2).is_err());
        assert!(check_geometry(Dim::Two, &[1.0, 1.0], &[64, 0], &[70.0, 70.0], 2).is_err());
        assert!(check_geometry(Dim::Two, &[1.0, 1.0], &[64, 64], &[70.0, 70.0], 0).is_err());
    }
}
