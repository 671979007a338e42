//! nnU-Net's `nnUNetPlans.json` (a trained model's `plans.json`) read as [`Plans`]: the same
//! numbers under autoseg's names, so an nnU-Net model runs on autoseg's own preprocessing,
//! network and sliding window. What autoseg does not build is refused by name (another network
//! class, normalisation layer, non-linearity, preprocessor or image reader), never guessed.
//!
//! nnU-Net: `utilities/plans_handling/plans_handler.py` (`PlansManager`,
//! `ConfigurationManager`), the planners' `get_plans_for_configuration`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::plans::{
    ArchitectureEntry, ConfigurationEntry, NormalizationScheme, PLANS_SCHEMA_VERSION,
};
use crate::resampling::{ForceSeparateZ, ResamplingSettings, SplineOrder};
use crate::{ForegroundIntensityProperties, NetworkKind, PlanError, PlannerPreset, Plans};

/// nnU-Net's network classes autoseg builds.
pub(crate) const PLAIN: &str = "dynamic_network_architectures.architectures.unet.PlainConvUNet";
pub(crate) const RESENC: &str =
    "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet";

/// nnU-Net's image readers whose arrays autoseg's readers give for the same files (axis order
/// z, y, x; NibabelIO transposes to it): plans written for these describe autoseg's arrays.
/// `NibabelIOWithReorient` (RAS reorientation) is not among them.
const SAME_AXES_READERS: [&str; 4] = ["SimpleITKIO", "NibabelIO", "NaturalImage2DIO", "Tiff3DIO"];

impl Plans {
    /// Reads nnU-Net's plans (`nnUNetPlans.json`, or a trained model's `plans.json`).
    ///
    /// # Errors
    /// [`PlanError::NnUnetPlans`] naming the key and what autoseg would need instead: malformed
    /// JSON, a missing key, plans older than nnU-Net 2.4 (no `architecture`), or a network,
    /// layer, preprocessor, resampling function or image reader autoseg does not implement.
    pub fn from_nnunet_json(text: &str) -> Result<Plans, PlanError> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| fault(format!("not JSON: {e}")))?;
        let top = json
            .as_object()
            .ok_or_else(|| fault("not a JSON object".into()))?;
        let reader = top.get("image_reader_writer").and_then(Value::as_str);
        if let Some(reader) = reader.filter(|r| !SAME_AXES_READERS.contains(r)) {
            return Err(fault(format!(
                "image_reader_writer is {reader}; autoseg reads images as nnU-Net's {} do \
                 (axis order z, y, x) and would present other readers' axes in another order",
                SAME_AXES_READERS.join(", ")
            )));
        }
        let configs = obj(top, "configurations")?;
        let mut configurations = BTreeMap::new();
        for (name, entry) in configs {
            let entry = entry
                .as_object()
                .ok_or_else(|| fault(format!("configurations.{name} is not an object")))?;
            let parsed =
                configuration(entry).map_err(|e| fault(format!("configurations.{name}: {e}")))?;
            configurations.insert(name.clone(), parsed);
        }
        let network = configurations
            .values()
            .find_map(|c| c.architecture.as_ref().map(|a| a.network));
        let planner = match top.get("plans_name").and_then(Value::as_str) {
            Some("nnUNetResEncUNetMPlans") => PlannerPreset::ResEncM,
            Some("nnUNetResEncUNetLPlans") => PlannerPreset::ResEncL,
            Some("nnUNetResEncUNetXLPlans") => PlannerPreset::ResEncXL,
            _ if network == Some(NetworkKind::ResidualEncoderUNet) => PlannerPreset::ResEncM,
            _ => PlannerPreset::Default,
        };
        Ok(Plans {
            schema_version: PLANS_SCHEMA_VERSION,
            dataset_name: string(top, "dataset_name")?,
            planner,
            gpu_memory_target_gb: planner.native_gpu_memory_gb(),
            transpose_forward: axes(top, "transpose_forward")?,
            transpose_backward: axes(top, "transpose_backward")?,
            original_median_spacing_after_transp: optional(
                top,
                "original_median_spacing_after_transp",
            )?,
            original_median_shape_after_transp: optional(
                top,
                "original_median_shape_after_transp",
            )?,
            foreground_intensity_properties: intensities(obj(
                top,
                "foreground_intensity_properties_per_channel",
            )?)?,
            configurations,
        })
    }
}

pub(crate) fn fault(what: String) -> PlanError {
    PlanError::NnUnetPlans { what }
}

type Fields = Map<String, Value>;

fn obj<'a>(map: &'a Fields, key: &str) -> Result<&'a Fields, PlanError> {
    map.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| fault(format!("{key} is missing or not an object")))
}

fn string(map: &Fields, key: &str) -> Result<String, PlanError> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| fault(format!("{key} is missing or not a string")))
}

fn axes(map: &Fields, key: &str) -> Result<[usize; 3], PlanError> {
    let list: Option<Vec<usize>> = map
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    list.and_then(|l| <[usize; 3]>::try_from(l).ok())
        .ok_or_else(|| fault(format!("{key} is not a list of three axes")))
}

/// An optional key of a type serde reads; absent or null is `None`.
fn optional<T: serde::de::DeserializeOwned>(
    map: &Fields,
    key: &str,
) -> Result<Option<T>, PlanError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| fault(format!("{key}: {e}"))),
    }
}

fn intensities(map: &Fields) -> Result<Vec<ForegroundIntensityProperties>, PlanError> {
    let mut out = Vec::new();
    for channel in 0..map.len() {
        let entry = obj(map, &channel.to_string())?;
        let number = |key: &str| {
            entry.get(key).and_then(Value::as_f64).ok_or_else(|| {
                fault(format!(
                    "foreground_intensity_properties_per_channel.{channel}.{key} is missing"
                ))
            })
        };
        out.push(ForegroundIntensityProperties {
            mean: number("mean")?,
            median: number("median")?,
            std: number("std")?,
            min: number("min")?,
            max: number("max")?,
            percentile_00_5: number("percentile_00_5")?,
            percentile_99_5: number("percentile_99_5")?,
        });
    }
    Ok(out)
}

/// One configuration; every key optional, as a configuration that `inherits_from` another
/// holds only what it changes.
fn configuration(entry: &Fields) -> Result<ConfigurationEntry, String> {
    let get = |key: &str| entry.get(key).filter(|v| !v.is_null());
    let typed = |key: &str| get(key).cloned();
    fn parse<T: serde::de::DeserializeOwned>(
        key: &str,
        v: Option<Value>,
    ) -> Result<Option<T>, String> {
        v.map(|v| serde_json::from_value(v).map_err(|e| format!("{key}: {e}")))
            .transpose()
    }
    if let Some(name) = get("preprocessor_name").and_then(Value::as_str) {
        if name != "DefaultPreprocessor" {
            return Err(format!(
                "preprocessor_name {name}: autoseg implements DefaultPreprocessor only"
            ));
        }
    }
    let normalization: Option<Vec<String>> =
        parse("normalization_schemes", typed("normalization_schemes"))?;
    let normalization_schemes = normalization
        .map(|names| {
            names
                .iter()
                .map(|n| scheme(n))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(ConfigurationEntry {
        inherits_from: parse("inherits_from", typed("inherits_from"))?,
        previous_stage: parse("previous_stage", typed("previous_stage"))?,
        next_stage: parse("next_stage", typed("next_stage"))?,
        spacing: parse("spacing", typed("spacing"))?,
        patch_size: parse("patch_size", typed("patch_size"))?,
        batch_size: parse("batch_size", typed("batch_size"))?,
        median_image_size_in_voxels: parse(
            "median_image_size_in_voxels",
            typed("median_image_size_in_voxels"),
        )?,
        normalization_schemes,
        use_mask_for_norm: parse("use_mask_for_norm", typed("use_mask_for_norm"))?,
        batch_dice: parse("batch_dice", typed("batch_dice"))?,
        resampling_data: resampling(entry, "resampling_fn_data")?,
        resampling_seg: resampling(entry, "resampling_fn_seg")?,
        resampling_probabilities: resampling(entry, "resampling_fn_probabilities")?,
        architecture: match get("architecture") {
            Some(a) => Some(architecture(a)?),
            None if get("UNet_class_name").is_some() => {
                return Err("plans of nnU-Net before 2.4 (no architecture entry): \
                            open them once with nnU-Net 2.4 or later, or plan again"
                    .into())
            }
            None => None,
        },
        training: None,
    })
}

fn scheme(name: &str) -> Result<NormalizationScheme, String> {
    serde_json::from_value(Value::String(name.to_string()))
        .map_err(|_| format!("normalization scheme {name} is not one autoseg implements"))
}

/// `resampling_fn_*` and its `_kwargs`: only nnU-Net's `resample_data_or_seg_to_shape`.
fn resampling(entry: &Fields, key: &str) -> Result<Option<ResamplingSettings>, String> {
    let Some(function) = entry.get(key).and_then(Value::as_str) else {
        return Ok(None);
    };
    if function != "resample_data_or_seg_to_shape" {
        return Err(format!(
            "{key} {function}: autoseg implements resample_data_or_seg_to_shape only"
        ));
    }
    let kwargs_key = format!("{key}_kwargs");
    let kwargs = entry
        .get(&kwargs_key)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{kwargs_key} is missing"))?;
    let order = |k: &str| -> Result<SplineOrder, String> {
        kwargs
            .get(k)
            .and_then(Value::as_u64)
            .and_then(|o| u8::try_from(o).ok())
            .and_then(SplineOrder::from_u8)
            .ok_or_else(|| {
                format!("{kwargs_key}.{k} is not a spline order autoseg implements (0, 1, 3)")
            })
    };
    let force_separate_z = match kwargs.get("force_separate_z") {
        None | Some(Value::Null) => ForceSeparateZ::Auto,
        Some(Value::Bool(true)) => ForceSeparateZ::Always,
        Some(Value::Bool(false)) => ForceSeparateZ::Never,
        Some(other) => return Err(format!("{kwargs_key}.force_separate_z is {other}")),
    };
    Ok(Some(ResamplingSettings {
        order: order("order")?,
        order_z: order("order_z")?,
        force_separate_z,
    }))
}

/// `architecture`: the network class and the layers autoseg builds (conv with bias, instance
/// norm with eps 1e-5 and affine, no dropout, LeakyReLU with nnU-Net's default slope).
fn architecture(value: &Value) -> Result<ArchitectureEntry, String> {
    let arch = value.as_object().ok_or("architecture is not an object")?;
    let class = arch
        .get("network_class_name")
        .and_then(Value::as_str)
        .ok_or("architecture.network_class_name is missing")?;
    let network = match class {
        PLAIN => NetworkKind::PlainConvUNet,
        RESENC => NetworkKind::ResidualEncoderUNet,
        other => {
            return Err(format!(
            "network class {other} is not one autoseg builds (PlainConvUNet, ResidualEncoderUNet)"
        ))
        }
    };
    let kw = arch
        .get("arch_kwargs")
        .and_then(Value::as_object)
        .ok_or("architecture.arch_kwargs is missing")?;
    let text = |k: &str| kw.get(k).and_then(Value::as_str).unwrap_or("");
    let expect = |key: &str, ok: bool, want: &str| -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "arch_kwargs.{key} is {}; autoseg builds {want}",
                kw.get(key).unwrap_or(&Value::Null)
            ))
        }
    };
    let conv = text("conv_op");
    expect(
        "conv_op",
        conv.ends_with("Conv2d") || conv.ends_with("Conv3d"),
        "Conv2d/Conv3d",
    )?;
    let dim = if conv.ends_with("2d") { "2d" } else { "3d" };
    expect(
        "norm_op",
        text("norm_op").ends_with(&format!("InstanceNorm{dim}")),
        "InstanceNorm",
    )?;
    let norm = kw.get("norm_op_kwargs").and_then(Value::as_object);
    let eps = norm.and_then(|n| n.get("eps")).and_then(Value::as_f64);
    let affine = norm.and_then(|n| n.get("affine")).and_then(Value::as_bool);
    expect(
        "norm_op_kwargs",
        eps == Some(1e-5) && affine == Some(true),
        "eps 1e-5, affine",
    )?;
    expect(
        "conv_bias",
        kw.get("conv_bias") == Some(&Value::Bool(true)),
        "convolutions with bias",
    )?;
    expect(
        "dropout_op",
        kw.get("dropout_op").is_none_or(Value::is_null),
        "no dropout",
    )?;
    expect("nonlin", text("nonlin").ends_with("LeakyReLU"), "LeakyReLU")?;
    let slope = kw
        .get("nonlin_kwargs")
        .and_then(Value::as_object)
        .and_then(|n| n.get("negative_slope"));
    expect(
        "nonlin_kwargs",
        slope.is_none_or(|s| s.as_f64() == Some(0.01)),
        "negative_slope 0.01",
    )?;
    let field = |key: &str| -> Result<Value, String> {
        kw.get(key)
            .cloned()
            .ok_or_else(|| format!("arch_kwargs.{key} is missing"))
    };
    let list = |key: &str| -> Result<Option<Vec<usize>>, String> {
        kw.get(key)
            .map(|v| {
                serde_json::from_value(v.clone()).map_err(|e| format!("arch_kwargs.{key}: {e}"))
            })
            .transpose()
    };
    let parse_field = |key: &str| -> Result<Vec<Vec<usize>>, String> {
        serde_json::from_value(field(key)?).map_err(|e| format!("arch_kwargs.{key}: {e}"))
    };
    Ok(ArchitectureEntry {
        network,
        n_stages: serde_json::from_value(field("n_stages")?)
            .map_err(|e| format!("arch_kwargs.n_stages: {e}"))?,
        features_per_stage: list("features_per_stage")?
            .ok_or("arch_kwargs.features_per_stage is missing")?,
        kernel_sizes: parse_field("kernel_sizes")?,
        strides: parse_field("strides")?,
        n_conv_per_stage: list("n_conv_per_stage")?,
        n_blocks_per_stage: list("n_blocks_per_stage")?,
        n_conv_per_stage_decoder: list("n_conv_per_stage_decoder")?
            .ok_or("arch_kwargs.n_conv_per_stage_decoder is missing")?,
    })
}
