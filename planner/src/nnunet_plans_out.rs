//! Plans written as nnU-Net's `nnUNetPlans.json` (a model folder's `plans.json`): the inverse
//! of [`crate::nnunet_plans`]' reader, keys in nnU-Net's order, with the image reader nnU-Net's
//! registry would pick for the dataset.

use serde_json::Value;

use crate::nnunet_plans::{fault, PLAIN, RESENC};
use crate::plans::{ArchitectureEntry, ConfigurationEntry, NormalizationScheme};
use crate::resampling::{ForceSeparateZ, ResamplingSettings};
use crate::{ForegroundIntensityProperties, NetworkKind, PlanError, Plans};

/// The reader nnU-Net 2.8.1's registry (`determine_reader_writer_from_file_ending`, readers
/// tried in the order `NaturalImage2DIO`, `SimpleITKIO`, `Tiff3DIO`, `NibabelIO`) picks for a
/// dataset whose `file_ending` is `file_ending` and whose images are 2-D when `two_d`: a 3-D
/// `.tif` stack is not read by `NaturalImage2DIO`, so `Tiff3DIO` gets it. `.nhdr` and `.mhd`,
/// which no nnU-Net reader lists, get `SimpleITKIO` (SimpleITK reads them).
pub fn nnunet_reader_for(file_ending: &str, two_d: bool) -> &'static str {
    match file_ending.to_ascii_lowercase().as_str() {
        ".png" | ".bmp" => "NaturalImage2DIO",
        ".tif" if two_d => "NaturalImage2DIO",
        ".tif" | ".tiff" => "Tiff3DIO",
        ".nii" => "NibabelIO",
        _ => "SimpleITKIO",
    }
}

impl Plans {
    /// Writes these plans as nnU-Net's `nnUNetPlans.json` (a model folder's `plans.json`), keys
    /// in nnU-Net's order, so that nnU-Net 2.8.1 builds the same networks and preprocesses the
    /// same way. [`Plans::from_nnunet_json`] reads it back to the same plans.
    ///
    /// nnU-Net's `original_median_spacing_after_transp` and `original_median_shape_after_transp`
    /// are written when the plans record them (autoseg's planner and nnU-Net's files do).
    ///
    /// `image_reader_writer` is the reader nnU-Net would pick for the dataset's `file_ending`
    /// ([`nnunet_reader_for`]; the images are 2-D when the median image has one slice).
    ///
    /// # Errors
    /// [`PlanError::NnUnetPlans`] when serialisation fails.
    pub fn to_nnunet_json(&self, file_ending: &str) -> Result<String, PlanError> {
        let two_d = self
            .original_median_shape_after_transp
            .as_deref()
            .is_some_and(|shape| shape.first() == Some(&1));
        let plans_name = self.planner.nnunet_plans_name();
        let configurations = self
            .configurations
            .iter()
            .map(|(name, entry)| (name.clone(), configuration_out(name, entry)))
            .collect();
        let channels = self
            .foreground_intensity_properties
            .iter()
            .enumerate()
            .map(|(c, p)| (c.to_string(), IntensitiesOut::from(p)))
            .collect();
        let out = PlansOut {
            dataset_name: &self.dataset_name,
            plans_name,
            original_median_spacing_after_transp: self
                .original_median_spacing_after_transp
                .as_deref(),
            original_median_shape_after_transp: self.original_median_shape_after_transp.as_deref(),
            image_reader_writer: nnunet_reader_for(file_ending, two_d),
            transpose_forward: self.transpose_forward,
            transpose_backward: self.transpose_backward,
            configurations: Ordered(configurations),
            experiment_planner_used: self.planner.nnunet_class_name(),
            label_manager: "LabelManager",
            foreground_intensity_properties_per_channel: Ordered(channels),
        };
        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        serde::Serialize::serialize(&out, &mut serializer)
            .map_err(|e| fault(format!("cannot write nnU-Net plans: {e}")))?;
        Ok(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
    }
}

/// A map written in the order given (serde_json's own map sorts its keys).
struct Ordered<T>(Vec<(String, T)>);

impl<T: serde::Serialize> serde::Serialize for Ordered<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct PlansOut<'a> {
    dataset_name: &'a str,
    plans_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_median_spacing_after_transp: Option<&'a [f64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_median_shape_after_transp: Option<&'a [u64]>,
    image_reader_writer: &'a str,
    transpose_forward: [usize; 3],
    transpose_backward: [usize; 3],
    configurations: Ordered<ConfigurationOut<'a>>,
    experiment_planner_used: &'a str,
    label_manager: &'a str,
    foreground_intensity_properties_per_channel: Ordered<IntensitiesOut>,
}

/// nnU-Net writes the intensity properties in this order.
#[derive(serde::Serialize)]
struct IntensitiesOut {
    max: f64,
    mean: f64,
    median: f64,
    min: f64,
    percentile_00_5: f64,
    percentile_99_5: f64,
    std: f64,
}

impl From<&ForegroundIntensityProperties> for IntensitiesOut {
    fn from(p: &ForegroundIntensityProperties) -> IntensitiesOut {
        IntensitiesOut {
            max: p.max,
            mean: p.mean,
            median: p.median,
            min: p.min,
            percentile_00_5: p.percentile_00_5,
            percentile_99_5: p.percentile_99_5,
            std: p.std,
        }
    }
}

/// One configuration in nnU-Net's key order; a configuration that `inherits_from` another
/// writes only what it sets, as nnU-Net's cascade entry does.
#[derive(serde::Serialize)]
struct ConfigurationOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    inherits_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preprocessor_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_size: Option<&'a [usize]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    median_image_size_in_voxels: Option<&'a [f64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spacing: Option<&'a [f64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalization_schemes: Option<&'a [NormalizationScheme]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    use_mask_for_norm: Option<&'a [bool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resampling_fn_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resampling_fn_seg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resampling_fn_data_kwargs: Option<ResamplingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resampling_fn_seg_kwargs: Option<ResamplingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resampling_fn_probabilities: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resampling_fn_probabilities_kwargs: Option<ResamplingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<ArchitectureOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_dice: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_stage: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct ResamplingOut {
    is_seg: bool,
    order: u8,
    order_z: u8,
    force_separate_z: Option<bool>,
}

const RESAMPLE_FN: &str = "resample_data_or_seg_to_shape";

fn configuration_out<'a>(name: &str, c: &'a ConfigurationEntry) -> ConfigurationOut<'a> {
    let resampling = |r: &Option<ResamplingSettings>, is_seg: bool| {
        r.as_ref().map(|r| ResamplingOut {
            is_seg,
            order: r.order.as_u8(),
            order_z: r.order_z.as_u8(),
            force_separate_z: match r.force_separate_z {
                ForceSeparateZ::Auto => None,
                ForceSeparateZ::Always => Some(true),
                ForceSeparateZ::Never => Some(false),
            },
        })
    };
    let function = |r: &Option<ResamplingSettings>| r.as_ref().map(|_| RESAMPLE_FN);
    // A configuration of its own (not one that inherits) preprocesses its own data: nnU-Net's
    // planners name it `nnUNetPlans_<configuration>` (the ResEnc planners share that name).
    let own = c.inherits_from.is_none();
    ConfigurationOut {
        inherits_from: c.inherits_from.as_deref(),
        data_identifier: own.then(|| format!("nnUNetPlans_{name}")),
        preprocessor_name: own.then_some("DefaultPreprocessor"),
        batch_size: c.batch_size,
        patch_size: c.patch_size.as_deref(),
        median_image_size_in_voxels: c.median_image_size_in_voxels.as_deref(),
        spacing: c.spacing.as_deref(),
        normalization_schemes: c.normalization_schemes.as_deref(),
        use_mask_for_norm: c.use_mask_for_norm.as_deref(),
        resampling_fn_data: function(&c.resampling_data),
        resampling_fn_seg: function(&c.resampling_seg),
        resampling_fn_data_kwargs: resampling(&c.resampling_data, false),
        resampling_fn_seg_kwargs: resampling(&c.resampling_seg, true),
        resampling_fn_probabilities: function(&c.resampling_probabilities),
        resampling_fn_probabilities_kwargs: resampling(&c.resampling_probabilities, false),
        architecture: c.architecture.as_ref().map(architecture_out),
        batch_dice: c.batch_dice,
        previous_stage: c.previous_stage.as_deref(),
        next_stage: c.next_stage.as_deref(),
    }
}

/// `architecture` as nnU-Net 2.4+ writes it (the layers autoseg builds, named as torch does).
fn architecture_out(a: &ArchitectureEntry) -> ArchitectureOut {
    let dim = a.kernel_sizes.first().map_or(3, Vec::len);
    let (class, blocks_key, blocks) = match a.network {
        NetworkKind::PlainConvUNet => (PLAIN, "n_conv_per_stage", &a.n_conv_per_stage),
        NetworkKind::ResidualEncoderUNet => (RESENC, "n_blocks_per_stage", &a.n_blocks_per_stage),
    };
    let mut kwargs = Vec::new();
    let mut put = |k: &str, v: Value| kwargs.push((k.to_string(), v));
    put("n_stages", a.n_stages.into());
    put("features_per_stage", a.features_per_stage.clone().into());
    put(
        "conv_op",
        format!("torch.nn.modules.conv.Conv{dim}d").into(),
    );
    put("kernel_sizes", serde_json::json!(a.kernel_sizes));
    put("strides", serde_json::json!(a.strides));
    put(blocks_key, serde_json::json!(blocks));
    put(
        "n_conv_per_stage_decoder",
        a.n_conv_per_stage_decoder.clone().into(),
    );
    put("conv_bias", true.into());
    put(
        "norm_op",
        format!("torch.nn.modules.instancenorm.InstanceNorm{dim}d").into(),
    );
    put(
        "norm_op_kwargs",
        serde_json::json!({"eps": 1e-5, "affine": true}),
    );
    put("dropout_op", Value::Null);
    put("dropout_op_kwargs", Value::Null);
    put("nonlin", "torch.nn.LeakyReLU".into());
    put("nonlin_kwargs", serde_json::json!({"inplace": true}));
    ArchitectureOut {
        network_class_name: class,
        arch_kwargs: Ordered(kwargs),
        _kw_requires_import: ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
}

#[derive(serde::Serialize)]
struct ArchitectureOut {
    network_class_name: &'static str,
    arch_kwargs: Ordered<Value>,
    _kw_requires_import: [&'static str; 4],
}
