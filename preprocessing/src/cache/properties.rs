//! The JSON form of [`CaseProperties`] inside a case file: nnU-Net's `.pkl` keys
//! (`spacing`, `shape_before_cropping`, `bbox_used_for_cropping`,
//! `shape_after_cropping_and_before_resampling`, `class_locations`) plus the source geometry.

use serde::{Deserialize, Serialize};

use crate::crop::BoundingBox;
use crate::foreground::{ClassLocations, LocationClass};
use crate::pipeline::CaseProperties;
use crate::volume::GeometryRecord;

/// Serialized properties.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PropertiesFile {
    case: String,
    spacing: [f64; 3],
    shape_before_cropping: [usize; 3],
    /// Half-open `[start, end)` per axis, as nnU-Net writes it.
    bbox_used_for_cropping: [[usize; 2]; 3],
    shape_after_cropping_and_before_resampling: [usize; 3],
    spacing_after_resampling: [f64; 3],
    class_locations: Vec<LocationsFile>,
    source_geometry: GeometryRecord,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationsFile {
    class: ClassFile,
    /// `(z, y, x)` voxels.
    voxels: Vec<[usize; 3]>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClassFile {
    Label(i16),
    Region(Vec<i16>),
}

impl PropertiesFile {
    pub(super) fn of(p: &CaseProperties) -> PropertiesFile {
        let bbox = &p.bbox_used_for_cropping;
        PropertiesFile {
            case: p.case.clone(),
            spacing: p.spacing,
            shape_before_cropping: p.shape_before_cropping,
            bbox_used_for_cropping: std::array::from_fn(|i| [bbox.start[i], bbox.end[i]]),
            shape_after_cropping_and_before_resampling: p
                .shape_after_cropping_and_before_resampling,
            spacing_after_resampling: p.spacing_after_resampling,
            class_locations: p.class_locations.iter().map(LocationsFile::of).collect(),
            source_geometry: GeometryRecord::from(&p.source_geometry),
        }
    }

    pub(super) fn into_properties(self) -> CaseProperties {
        let b = self.bbox_used_for_cropping;
        CaseProperties {
            case: self.case,
            spacing: self.spacing,
            shape_before_cropping: self.shape_before_cropping,
            bbox_used_for_cropping: BoundingBox {
                start: b.map(|r| r[0]),
                end: b.map(|r| r[1]),
            },
            shape_after_cropping_and_before_resampling: self
                .shape_after_cropping_and_before_resampling,
            spacing_after_resampling: self.spacing_after_resampling,
            class_locations: self
                .class_locations
                .into_iter()
                .map(LocationsFile::into_locations)
                .collect(),
            source_geometry: self.source_geometry.into(),
        }
    }
}

impl LocationsFile {
    fn of(l: &ClassLocations) -> LocationsFile {
        let class = match &l.class {
            LocationClass::Label(label) => ClassFile::Label(*label),
            LocationClass::Region(labels) => ClassFile::Region(labels.clone()),
        };
        LocationsFile {
            class,
            voxels: l.voxels.clone(),
        }
    }

    fn into_locations(self) -> ClassLocations {
        let class = match self.class {
            ClassFile::Label(label) => LocationClass::Label(label),
            ClassFile::Region(labels) => LocationClass::Region(labels),
        };
        ClassLocations {
            class,
            voxels: self.voxels,
        }
    }
}
