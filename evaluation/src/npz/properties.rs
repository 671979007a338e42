//! The `<case>.props.toml` sidecar of a probability file: [`ProbabilityProperties`] (format in
//! the [`crate::npz`] module docs).

use std::path::Path;

use autoseg_preprocessing::{write_atomic, Geometry, GeometryRecord};
use serde::{Deserialize, Serialize};

use super::NpzError;
use crate::SegmentationRule;

/// The sidecar schema this crate writes and reads.
const PROPERTIES_SCHEMA_VERSION: u32 = 1;

/// What a probability file needs besides its voxels to become a mask (the `<case>.props.toml`
/// sidecar; format in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilityProperties {
    /// Geometry of the input image; the probabilities' last three axes have its shape.
    pub geometry: Geometry,
    /// Extension of masks written from these probabilities, e.g. `.nii.gz`.
    pub file_ending: String,
    /// For region-based datasets, nnU-Net's `regions_class_order` (one output label per
    /// channel); `None` for label-based datasets (argmax).
    pub regions_class_order: Option<Vec<u16>>,
}

/// The sidecar as written: [`ProbabilityProperties`] with a schema version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertiesFile {
    schema_version: u32,
    file_ending: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regions_class_order: Option<Vec<u16>>,
    geometry: GeometryRecord,
}

impl ProbabilityProperties {
    /// How these probabilities become labels: argmax, or thresholded regions.
    pub fn segmentation_rule(&self) -> SegmentationRule {
        match &self.regions_class_order {
            Some(order) => SegmentationRule::Regions {
                regions_class_order: order.clone(),
            },
            None => SegmentationRule::Argmax,
        }
    }

    /// Writes the sidecar atomically.
    ///
    /// # Errors
    /// [`NpzError::PropertiesRender`] or [`NpzError::Io`], naming `path`.
    pub fn write(&self, path: &Path) -> Result<(), NpzError> {
        let file = PropertiesFile {
            schema_version: PROPERTIES_SCHEMA_VERSION,
            file_ending: self.file_ending.clone(),
            regions_class_order: self.regions_class_order.clone(),
            geometry: GeometryRecord::from(&self.geometry),
        };
        let text = toml::to_string(&file).map_err(|source| NpzError::PropertiesRender {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        write_atomic(path, text.as_bytes()).map_err(|source| NpzError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })
    }

    /// Reads a sidecar.
    ///
    /// # Errors
    /// [`NpzError::Io`], [`NpzError::PropertiesToml`] (naming the bad key) or
    /// [`NpzError::PropertiesVersion`], each naming `path`.
    pub fn read(path: &Path) -> Result<ProbabilityProperties, NpzError> {
        let text = std::fs::read_to_string(path).map_err(|source| NpzError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        let file: PropertiesFile =
            toml::from_str(&text).map_err(|source| NpzError::PropertiesToml {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        if file.schema_version != PROPERTIES_SCHEMA_VERSION {
            return Err(NpzError::PropertiesVersion {
                path: path.to_path_buf(),
                found: file.schema_version,
                supported: PROPERTIES_SCHEMA_VERSION,
            });
        }
        Ok(ProbabilityProperties {
            geometry: file.geometry.into(),
            file_ending: file.file_ending,
            regions_class_order: file.regions_class_order,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npz::properties_file;
    use autoseg_preprocessing::{HeaderGeometry, Shape3, Spacing};

    #[test]
    fn properties_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = properties_file(dir.path(), "case_000");
        let mut header = HeaderGeometry::axis_aligned(Spacing([2.5, 0.8, 0.8]), [1.0, -2.0, 3.5]);
        header.quatern = [0.0, 0.0, 1.0];
        header.srow[0][1] = 0.125;
        let props = ProbabilityProperties {
            geometry: Geometry::new(Shape3([4, 5, 6]), header),
            file_ending: ".nii.gz".to_string(),
            regions_class_order: Some(vec![1, 2]),
        };
        props.write(&path).unwrap();
        assert_eq!(ProbabilityProperties::read(&path).unwrap(), props);
        assert_eq!(
            props.segmentation_rule(),
            SegmentationRule::Regions {
                regions_class_order: vec![1, 2]
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("schema_version = 1", "schema_version = 9"),
        )
        .unwrap();
        assert!(matches!(
            ProbabilityProperties::read(&path),
            Err(NpzError::PropertiesVersion { found: 9, .. })
        ));
        std::fs::write(&path, text.replace("xyzt_units", "units")).unwrap();
        let err = ProbabilityProperties::read(&path).unwrap_err();
        assert!(matches!(err, NpzError::PropertiesToml { .. }));
    }
}
