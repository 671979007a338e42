//! The dataset fingerprint (nnU-Net's `dataset_fingerprint.json`, here `fingerprint.toml`):
//! per-case geometry after cropping and per-channel foreground intensity statistics.
//! Extraction from images lives in `autoseg-preprocessing`; this module only defines and
//! validates the type.

use serde::{Deserialize, Serialize};

use crate::channel_table;
use crate::PlanError;

/// Version of the `fingerprint.toml` layout written by this build.
pub const FINGERPRINT_SCHEMA_VERSION: u32 = 1;

/// Foreground intensity statistics of one image channel over the whole dataset.
///
/// nnU-Net: `fingerprint_extractor.py` (population std, numpy linear percentiles). NaN when the
/// dataset has no foreground.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForegroundIntensityProperties {
    /// Mean of the sampled foreground intensities.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// 0.5th percentile.
    pub percentile_00_5: f64,
    /// 99.5th percentile.
    pub percentile_99_5: f64,
}

/// One raw file the fingerprint was computed from, to detect stale fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampEntry {
    /// File name relative to the dataset folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime_secs: i64,
}

/// A validated dataset fingerprint: at least one case, positive spacings, non-empty shapes.
///
/// Spacings and shapes are per case, in array order `(z, y, x)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FingerprintFile", into = "FingerprintFile")]
pub struct Fingerprint {
    spacings: Vec<[f64; 3]>,
    shapes_after_crop: Vec<[usize; 3]>,
    median_relative_size_after_cropping: f64,
    foreground_intensity_properties: Vec<ForegroundIntensityProperties>,
    stamp: Vec<StampEntry>,
}

/// The on-disk layout of `fingerprint.toml`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintFile {
    schema_version: u32,
    spacings: Vec<[f64; 3]>,
    shapes_after_crop: Vec<[usize; 3]>,
    median_relative_size_after_cropping: f64,
    #[serde(with = "channel_table")]
    foreground_intensity_properties: Vec<ForegroundIntensityProperties>,
    #[serde(default)]
    stamp: Vec<StampEntry>,
}

impl Fingerprint {
    /// Builds a fingerprint from per-case spacings and cropped shapes (array order `(z, y, x)`),
    /// the median cropped-to-original size ratio, and per-channel foreground statistics (in
    /// channel order).
    ///
    /// # Errors
    /// [`PlanError::EmptyFingerprint`], [`PlanError::CaseCountMismatch`],
    /// [`PlanError::InvalidSpacing`], [`PlanError::EmptyShape`] or
    /// [`PlanError::InvalidRelativeSize`].
    pub fn new(
        spacings: Vec<[f64; 3]>,
        shapes_after_crop: Vec<[usize; 3]>,
        median_relative_size_after_cropping: f64,
        foreground_intensity_properties: Vec<ForegroundIntensityProperties>,
    ) -> Result<Fingerprint, PlanError> {
        if spacings.is_empty() || shapes_after_crop.is_empty() {
            return Err(PlanError::EmptyFingerprint);
        }
        if spacings.len() != shapes_after_crop.len() {
            return Err(PlanError::CaseCountMismatch {
                n_spacings: spacings.len(),
                n_shapes: shapes_after_crop.len(),
            });
        }
        if let Some(case) = spacings
            .iter()
            .position(|sp| sp.iter().any(|&s| !(s.is_finite() && s > 0.0)))
        {
            let spacing = spacings[case];
            return Err(PlanError::InvalidSpacing { case, spacing });
        }
        if let Some(case) = shapes_after_crop.iter().position(|sh| sh.contains(&0)) {
            let shape = shapes_after_crop[case];
            return Err(PlanError::EmptyShape { case, shape });
        }
        if !(0.0..=1.0).contains(&median_relative_size_after_cropping) {
            return Err(PlanError::InvalidRelativeSize(
                median_relative_size_after_cropping,
            ));
        }
        Ok(Fingerprint {
            spacings,
            shapes_after_crop,
            median_relative_size_after_cropping,
            foreground_intensity_properties,
            stamp: Vec::new(),
        })
    }

    /// Attaches the stamp of the raw files the fingerprint was computed from.
    pub fn with_stamp(mut self, stamp: Vec<StampEntry>) -> Fingerprint {
        self.stamp = stamp;
        self
    }

    /// Per-case spacing, `(z, y, x)`.
    pub fn spacings(&self) -> &[[f64; 3]] {
        &self.spacings
    }

    /// Per-case shape after cropping to the nonzero region, `(z, y, x)`.
    pub fn shapes_after_crop(&self) -> &[[usize; 3]] {
        &self.shapes_after_crop
    }

    /// Number of cases.
    pub fn n_cases(&self) -> usize {
        self.spacings.len()
    }

    /// Median over cases of `prod(cropped shape) / prod(original shape)`.
    pub fn median_relative_size_after_cropping(&self) -> f64 {
        self.median_relative_size_after_cropping
    }

    /// Foreground intensity statistics, one entry per channel in channel order.
    pub fn foreground_intensity_properties(&self) -> &[ForegroundIntensityProperties] {
        &self.foreground_intensity_properties
    }

    /// The raw-file stamp (empty when the extractor recorded none).
    pub fn stamp(&self) -> &[StampEntry] {
        &self.stamp
    }

    /// Serialises to the text of `fingerprint.toml`.
    ///
    /// # Errors
    /// [`PlanError::Serialize`] if a value cannot be written as TOML.
    pub fn to_toml_string(&self) -> Result<String, PlanError> {
        toml::to_string(self).map_err(|source| PlanError::Serialize {
            what: "fingerprint.toml",
            source,
        })
    }

    /// Parses and validates the text of `fingerprint.toml`.
    ///
    /// # Errors
    /// [`PlanError::ParseFingerprint`] for malformed TOML, unknown keys, an unsupported
    /// `schema_version` or values [`Fingerprint::new`] rejects.
    pub fn from_toml_str(text: &str) -> Result<Fingerprint, PlanError> {
        toml::from_str(text).map_err(PlanError::ParseFingerprint)
    }

    /// Reads `fingerprint.toml` at `path` (a [`crate::WorkLayout::fingerprint`]).
    ///
    /// # Errors
    /// [`PlanError::MissingArtifact`], [`PlanError::Io`], or [`PlanError::InFile`] wrapping
    /// [`Fingerprint::from_toml_str`]'s errors.
    pub fn read(path: &std::path::Path) -> Result<Fingerprint, PlanError> {
        let text = crate::atomic::read_artifact(path, "run `autoseg fingerprint DATASET` first")?;
        Fingerprint::from_toml_str(&text).map_err(|source| PlanError::InFile {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Writes `fingerprint.toml` at `path` atomically.
    ///
    /// # Errors
    /// [`PlanError::Serialize`] or [`PlanError::Io`].
    pub fn write(&self, path: &std::path::Path) -> Result<(), PlanError> {
        crate::atomic::write_artifact(path, &self.to_toml_string()?)
    }
}

impl TryFrom<FingerprintFile> for Fingerprint {
    type Error = PlanError;

    fn try_from(file: FingerprintFile) -> Result<Fingerprint, PlanError> {
        if file.schema_version != FINGERPRINT_SCHEMA_VERSION {
            return Err(PlanError::UnsupportedSchemaVersion {
                what: "fingerprint.toml",
                found: file.schema_version,
                supported: FINGERPRINT_SCHEMA_VERSION,
            });
        }
        let fingerprint = Fingerprint::new(
            file.spacings,
            file.shapes_after_crop,
            file.median_relative_size_after_cropping,
            file.foreground_intensity_properties,
        )?;
        Ok(fingerprint.with_stamp(file.stamp))
    }
}

impl From<Fingerprint> for FingerprintFile {
    fn from(fp: Fingerprint) -> FingerprintFile {
        FingerprintFile {
            schema_version: FINGERPRINT_SCHEMA_VERSION,
            spacings: fp.spacings,
            shapes_after_crop: fp.shapes_after_crop,
            median_relative_size_after_cropping: fp.median_relative_size_after_cropping,
            foreground_intensity_properties: fp.foreground_intensity_properties,
            stamp: fp.stamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(mean: f64) -> ForegroundIntensityProperties {
        ForegroundIntensityProperties {
            mean,
            median: mean,
            std: 2.0,
            min: -1.0,
            max: 9.5,
            percentile_00_5: -0.5,
            percentile_99_5: 9.0,
        }
    }

    #[test]
    fn new_rejects_empty_mismatched_and_non_positive_inputs() {
        assert!(matches!(
            Fingerprint::new(vec![], vec![], 1.0, vec![]),
            Err(PlanError::EmptyFingerprint)
        ));
        assert!(matches!(
            Fingerprint::new(vec![[1.0; 3]], vec![[2; 3], [2; 3]], 1.0, vec![]),
            Err(PlanError::CaseCountMismatch {
                n_spacings: 1,
                n_shapes: 2
            })
        ));
        assert!(matches!(
            Fingerprint::new(
                vec![[1.0; 3], [1.0, 0.0, 1.0]],
                vec![[2; 3]; 2],
                1.0,
                vec![]
            ),
            Err(PlanError::InvalidSpacing { case: 1, .. })
        ));
        assert!(matches!(
            Fingerprint::new(vec![[1.0, f64::NAN, 1.0]], vec![[2; 3]], 1.0, vec![]),
            Err(PlanError::InvalidSpacing { case: 0, .. })
        ));
        assert!(matches!(
            Fingerprint::new(vec![[1.0; 3]], vec![[2, 0, 2]], 1.0, vec![]),
            Err(PlanError::EmptyShape { case: 0, .. })
        ));
        assert!(matches!(
            Fingerprint::new(vec![[1.0; 3]], vec![[2; 3]], 1.5, vec![]),
            Err(PlanError::InvalidRelativeSize(_))
        ));
    }

    #[test]
    fn toml_round_trip_keeps_every_field_and_channel_order() {
        let stamp = vec![StampEntry {
            name: "imagesTr/a_0000.nii.gz".into(),
            size: 1234,
            mtime_secs: 1_700_000_000,
        }];
        let channels: Vec<_> = (0..11).map(|c| props(c as f64)).collect();
        let fp = Fingerprint::new(vec![[3.0, 0.5, 0.5]], vec![[20, 320, 319]], 0.8, channels)
            .expect("valid fingerprint")
            .with_stamp(stamp);
        let text = fp.to_toml_string().expect("serialisable");
        assert!(text.contains("schema_version = 1"), "{text}");
        assert!(
            text.contains("[foreground_intensity_properties.10]"),
            "{text}"
        );
        let back = Fingerprint::from_toml_str(&text).expect("parses");
        assert_eq!(back, fp);
        assert_eq!(back.foreground_intensity_properties()[10].mean, 10.0);
    }

    #[test]
    fn from_toml_rejects_wrong_version_unknown_keys_and_invalid_values() {
        let good = "schema_version = 1\nspacings = [[1.0, 1.0, 1.0]]\n\
                    shapes_after_crop = [[4, 4, 4]]\nmedian_relative_size_after_cropping = 1.0\n\
                    [foreground_intensity_properties]\n";
        assert!(Fingerprint::from_toml_str(good).is_ok());
        let v2 = good.replace("schema_version = 1", "schema_version = 2");
        let err = Fingerprint::from_toml_str(&v2).expect_err("version 2 is unknown");
        assert!(err.to_string().contains("schema_version 2"), "{err}");
        let extra = good.replace("schema_version = 1", "schema_version = 1\nbogus = 3");
        assert!(Fingerprint::from_toml_str(&extra).is_err());
        let zero = good.replace("[4, 4, 4]", "[4, 0, 4]");
        let err = Fingerprint::from_toml_str(&zero).expect_err("empty axis");
        assert!(err.to_string().contains("empty axis"), "{err}");
        let channel_1 = "mean = 1.0\nmedian = 1.0\nstd = 1.0\nmin = 0.0\nmax = 2.0\n\
                         percentile_00_5 = 0.0\npercentile_99_5 = 2.0\n";
        let one = format!("{good}[foreground_intensity_properties.0]\n{channel_1}");
        assert_eq!(
            Fingerprint::from_toml_str(&one)
                .expect("channel 0")
                .foreground_intensity_properties()
                .len(),
            1
        );
        let gap = format!("{good}[foreground_intensity_properties.1]\n{channel_1}");
        let err = Fingerprint::from_toml_str(&gap).expect_err("channel 0 missing");
        assert!(err.to_string().contains("without gaps"), "{err}");
    }
}
