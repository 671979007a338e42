//! The preprocessed cache as a [`CaseStore`]: one `CachedCase` per `<case>.case` file of
//! `<work>/<dataset>/preprocessed/<config>/`, patches read on demand with positioned reads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use autoseg_preprocessing::cache::{case_path, CASE_EXTENSION};
use autoseg_preprocessing::foreground::{self, LocationClass as CacheClass};
use autoseg_preprocessing::CachedCase;

use super::{CaseStore, TrainError};
use crate::sampling::{CaseSource, ClassLocations, LocationClass, Patch, SourceError};

/// The cases of one configuration's preprocessed cache.
#[derive(Debug, Clone)]
pub struct CacheStore {
    dir: PathBuf,
    ids: Vec<String>,
}

impl CacheStore {
    /// The cache folder `dir` (`preprocessed/<config>`), listing its case files.
    ///
    /// # Errors
    /// [`TrainError::Io`] when the folder cannot be read.
    pub fn open(dir: &Path) -> Result<CacheStore, TrainError> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, "list the cache", e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| TrainError::io(dir, "list the cache", e))?
                .path();
            let is_case = path.extension().is_some_and(|e| e == CASE_EXTENSION);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            match stem {
                Some(stem) if is_case && !stem.starts_with('.') => ids.push(stem),
                _ => {}
            }
        }
        ids.sort();
        Ok(CacheStore {
            dir: dir.to_path_buf(),
            ids,
        })
    }
}

impl CaseStore for CacheStore {
    fn case_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    fn open(&self, ids: &[String]) -> Result<Arc<dyn CaseSource>, SourceError> {
        let cases = ids
            .iter()
            .map(|id| {
                let case = CachedCase::open(&case_path(&self.dir, id))?;
                let locations = case.class_locations().iter().map(convert).collect();
                Ok(CacheEntry {
                    name: id.clone(),
                    case,
                    locations,
                })
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        let n_channels = cases.first().map_or(0, |c| c.case.n_channels());
        if let Some(odd) = cases.iter().find(|c| c.case.n_channels() != n_channels) {
            return Err(format!(
                "case '{}' has {} channels, case '{}' {n_channels}",
                odd.name,
                odd.case.n_channels(),
                cases[0].name
            )
            .into());
        }
        Ok(Arc::new(CacheSource { cases, n_channels }))
    }
}

/// The cache's location classes as the sampler names them: nnU-Net's `(-1, *labels)` tuple of
/// ignore-label datasets is "every annotated voxel".
fn convert(locations: &foreground::ClassLocations) -> ClassLocations {
    let class = match &locations.class {
        CacheClass::Label(label) => LocationClass::Label(*label),
        CacheClass::Region(labels) if labels.first() == Some(&-1) => LocationClass::Annotated,
        CacheClass::Region(labels) => LocationClass::Region(labels.clone()),
    };
    ClassLocations {
        class,
        voxels: locations.voxels.clone(),
    }
}

struct CacheEntry {
    name: String,
    case: CachedCase,
    locations: Vec<ClassLocations>,
}

/// A [`CaseSource`] over opened cache files.
struct CacheSource {
    cases: Vec<CacheEntry>,
    n_channels: usize,
}

impl CaseSource for CacheSource {
    fn n_cases(&self) -> usize {
        self.cases.len()
    }

    fn n_channels(&self) -> usize {
        self.n_channels
    }

    fn case_name(&self, case_idx: usize) -> &str {
        &self.cases[case_idx].name
    }

    fn shape(&self, case_idx: usize) -> [usize; 3] {
        self.cases[case_idx].case.shape()
    }

    fn read_patch(
        &self,
        case_idx: usize,
        lower: [isize; 3],
        size: [usize; 3],
    ) -> Result<Patch, SourceError> {
        let (data, seg) = self.cases[case_idx].case.read_patch(lower, size)?;
        Ok(Patch { data, seg })
    }

    fn class_locations(&self, case_idx: usize) -> &[ClassLocations] {
        &self.cases[case_idx].locations
    }
}
