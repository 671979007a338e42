//! `stamp.toml`: the plan fields a configuration's cache depends on, and their key.
//!
//! The key is FNV-1a (64 bit) of the fields' TOML text: stable across builds and platforms
//! (std's hasher is not), and it changes exactly when a field preprocessing reads changes.

use std::collections::BTreeMap;
use std::path::Path;

use autoseg_planner::{
    Configuration, ForegroundIntensityProperties, NormalizationScheme, Plans, ResamplingSettings,
};
use serde::{Deserialize, Serialize};

use super::format::CACHE_FORMAT_VERSION;
use super::CacheError;
use crate::foreground::LocationClass;
use crate::write_atomic;

/// Version of the `stamp.toml` layout.
pub const STAMP_SCHEMA_VERSION: u32 = 1;

/// The stamp's file name inside `preprocessed/<config>/`.
pub const STAMP_FILE: &str = "stamp.toml";

/// Exactly what preprocessing reads from the plans (and the dataset's labels, which decide
/// the sampled location classes). Batch size, patch size and the architecture are not here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampFields {
    /// [`CACHE_FORMAT_VERSION`].
    pub format_version: u32,
    /// `transpose_forward`.
    pub transpose_forward: [usize; 3],
    /// The configuration's target spacing.
    pub spacing: Vec<f64>,
    /// Normalization per channel.
    pub normalization_schemes: Vec<NormalizationScheme>,
    /// `use_mask_for_norm` per channel.
    pub use_mask_for_norm: Vec<bool>,
    /// Image resampling.
    pub resampling_data: ResamplingSettings,
    /// Segmentation resampling.
    pub resampling_seg: ResamplingSettings,
    /// Foreground intensity properties of the CT-normalized channels, by channel index.
    pub ct_intensity_properties: BTreeMap<String, ForegroundIntensityProperties>,
    /// The sampled location classes: `"1"` for a label, `"[1, 2]"` for a region.
    pub location_classes: Vec<String>,
}

impl StampFields {
    /// The fields of configuration `config` of `plans` with the given location classes.
    pub fn of(plans: &Plans, config: &Configuration, classes: &[LocationClass]) -> StampFields {
        let ct_intensity_properties = config
            .normalization_schemes
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == NormalizationScheme::CTNormalization)
            .filter_map(|(c, _)| {
                let props = plans.foreground_intensity_properties.get(c)?;
                Some((c.to_string(), *props))
            })
            .collect();
        StampFields {
            format_version: CACHE_FORMAT_VERSION,
            transpose_forward: plans.transpose_forward,
            spacing: config.spacing.clone(),
            normalization_schemes: config.normalization_schemes.clone(),
            use_mask_for_norm: config.use_mask_for_norm.clone(),
            resampling_data: config.resampling_data,
            resampling_seg: config.resampling_seg,
            ct_intensity_properties,
            location_classes: classes.iter().map(class_name).collect(),
        }
    }

    /// The key: FNV-1a 64 of the fields' TOML text.
    pub fn key(&self) -> u64 {
        let text = toml::to_string(self).expect(
            "StampFields serializes to TOML: it holds only numbers, strings, lists and tables",
        );
        fnv1a(text.as_bytes())
    }
}

fn class_name(class: &LocationClass) -> String {
    match class {
        LocationClass::Label(label) => label.to_string(),
        LocationClass::Region(labels) => format!("{labels:?}"),
    }
}

/// FNV-1a, 64 bit.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The content of `stamp.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    /// [`STAMP_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// [`StampFields::key`] as 16 hex digits.
    pub key: String,
    /// The fields, for people reading the stamp.
    pub fields: StampFields,
}

impl Stamp {
    /// The stamp of `fields`.
    pub fn new(fields: StampFields) -> Stamp {
        Stamp {
            schema_version: STAMP_SCHEMA_VERSION,
            key: format!("{:016x}", fields.key()),
            fields,
        }
    }
}

/// Reads `stamp.toml` at `path`; `Ok(None)` if there is none.
///
/// # Errors
/// [`CacheError::Io`] when it exists but cannot be read, [`CacheError::Stamp`] when it does
/// not parse (e.g. another schema, a hand edit).
pub fn read_stamp(path: &Path) -> Result<Option<Stamp>, CacheError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io(path, "cannot read the cache stamp", e)),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|source| CacheError::Stamp {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes `stamp` to `path` atomically.
///
/// # Errors
/// [`CacheError::Serialize`] or [`CacheError::Io`].
pub fn write_stamp(path: &Path, stamp: &Stamp) -> Result<(), CacheError> {
    let text = toml::to_string(stamp).map_err(|e| CacheError::Serialize {
        case: path.display().to_string(),
        what: "the cache stamp",
        fault: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
        .map_err(|e| CacheError::io(path, "cannot write the cache stamp", e))
}
