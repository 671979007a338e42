//! The cascade's full-resolution stage as a [`CaseStore`]: the cases of the configuration it
//! inherits its data from (nnU-Net shares the `data_identifier` of `3d_fullres`), each with the
//! previous stage's segmentation as a second segmentation channel.
//!
//! The previous stage's segmentations (`results/<previous>/predicted_next_stage/<config>/`,
//! written by the final validation of every fold of `3d_lowres`) are read once, when the cases
//! are opened, and kept in memory as `i16` label maps; a patch's channel 1 is their crop at the
//! same window, padded with -1 like the label map.
//!
//! nnU-Net: `nnUNetDataLoader.generate_train_batch` (`seg_prev` cropped with the same bounding
//! box, padded with -1, stacked after the segmentation) and `nnUNetDataset` (`seg_from_prev_stage`
//! must exist for every training case).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use autoseg_preprocessing::cache::{prev_stage_path, read_prev_stage_seg};
use ndarray::{concatenate, Array4, Axis};
use rayon::prelude::*;

use super::{CacheStore, CaseStore, TrainError};
use crate::sampling::{crop_and_pad, CaseSource, ClassLocations, Patch, SourceError};

/// Padding of the previous stage's segmentation outside the case (as the label map's).
const OUTSIDE: i16 = -1;

/// A [`CaseStore`] whose cases carry the previous stage's segmentation: patches have seg
/// `(2, z, y, x)`, channel 0 the label map, channel 1 the previous stage's prediction.
#[derive(Debug, Clone)]
pub struct CascadeStore<S = CacheStore> {
    inner: S,
    prev_dir: PathBuf,
}

impl CascadeStore<CacheStore> {
    /// The preprocessed cache `cache_dir` (`preprocessed/3d_fullres`) with the previous stage's
    /// segmentations in `prev_dir` (a `WorkLayout::predicted_next_stage`).
    ///
    /// # Errors
    /// [`TrainError::Io`] when the cache folder cannot be read.
    pub fn open(cache_dir: &Path, prev_dir: &Path) -> Result<CascadeStore, TrainError> {
        Ok(CascadeStore::new(CacheStore::open(cache_dir)?, prev_dir))
    }
}

impl<S: CaseStore> CascadeStore<S> {
    /// The cases of `inner` with the previous stage's segmentations in `prev_dir`.
    pub fn new(inner: S, prev_dir: &Path) -> CascadeStore<S> {
        CascadeStore {
            inner,
            prev_dir: prev_dir.to_path_buf(),
        }
    }

    /// The folder of the previous stage's segmentations.
    pub fn prev_dir(&self) -> &Path {
        &self.prev_dir
    }
}

impl<S: CaseStore> CaseStore for CascadeStore<S> {
    fn case_ids(&self) -> Vec<String> {
        self.inner.case_ids()
    }

    /// Opens the cases of the inner store and reads every case's previous-stage segmentation.
    ///
    /// # Errors
    /// The inner store's error; a missing previous-stage file (named, with the stage to train
    /// first), an unreadable or misshapen one, or one with labels above 32767.
    fn open(&self, ids: &[String]) -> Result<Arc<dyn CaseSource>, SourceError> {
        let inner = self.inner.open(ids)?;
        if inner.n_seg_channels() != 1 {
            return Err(format!(
                "the cases already have {} segmentation channels; a cascade adds the second",
                inner.n_seg_channels()
            )
            .into());
        }
        let prev_dir = self.prev_dir.as_path();
        // Read in parallel, then report the first failing case in order (rayon's own
        // `collect` into a `Result` returns whichever error a thread met first).
        let prev = (0..inner.n_cases())
            .into_par_iter()
            .map(|idx| read_prev_seg(prev_dir, inner.case_name(idx), inner.shape(idx)))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(CascadeSource { inner, prev }))
    }
}

/// The previous stage's segmentation of case `id` as `(1, z, y, x)` `i16`, checked against the
/// case's `shape`.
fn read_prev_seg(prev_dir: &Path, id: &str, shape: [usize; 3]) -> Result<Array4<i16>, SourceError> {
    let path = prev_stage_path(prev_dir, id);
    if !path.is_file() {
        return Err(format!(
            "{}: the previous stage's segmentation of case '{id}' is missing: train and validate \
             every fold of {} first",
            path.display(),
            previous_stage_name(prev_dir)
        )
        .into());
    }
    let seg = read_prev_stage_seg(&path, shape)?;
    if let Some(&label) = seg.iter().find(|&&v| v > i16::MAX as u16) {
        return Err(format!(
            "{}: label {label} is above 32767, the largest the cascade's input can hold",
            path.display()
        )
        .into());
    }
    Ok(seg.mapv(|v| v as i16).insert_axis(Axis(0)))
}

/// The previous stage's configuration name from a `WorkLayout::predicted_next_stage` folder
/// (`results/<previous>/predicted_next_stage/<next>`).
fn previous_stage_name(prev_dir: &Path) -> String {
    prev_dir
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map_or_else(
            || "the previous stage".to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
}

/// A [`CaseSource`] adding the previous stage's segmentation as seg channel 1.
struct CascadeSource {
    inner: Arc<dyn CaseSource>,
    /// Per case `(1, z, y, x)`.
    prev: Vec<Array4<i16>>,
}

impl CaseSource for CascadeSource {
    fn n_cases(&self) -> usize {
        self.inner.n_cases()
    }

    fn n_channels(&self) -> usize {
        self.inner.n_channels()
    }

    fn n_seg_channels(&self) -> usize {
        2
    }

    fn case_name(&self, case_idx: usize) -> &str {
        self.inner.case_name(case_idx)
    }

    fn shape(&self, case_idx: usize) -> [usize; 3] {
        self.inner.shape(case_idx)
    }

    fn read_patch(
        &self,
        case_idx: usize,
        lower: [isize; 3],
        size: [usize; 3],
    ) -> Result<Patch, SourceError> {
        let Patch { data, seg } = self.inner.read_patch(case_idx, lower, size)?;
        let prev = crop_and_pad(self.prev[case_idx].view(), lower, size, OUTSIDE);
        let seg = concatenate(Axis(0), &[seg.view(), prev.view()])?;
        Ok(Patch { data, seg })
    }

    fn class_locations(&self, case_idx: usize) -> &[ClassLocations] {
        self.inner.class_locations(case_idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{InMemoryCase, PatchSampler};
    use crate::train::InMemoryStore;
    use autoseg_planner::WorkLayout;
    use autoseg_preprocessing::cache::write_prev_stage_seg;
    use ndarray::{s, Array3};

    /// A `(1, 3, 4, 5)` case whose label is `z` (0, 1, 2) and image `100 z + 10 y + x`.
    fn case(name: &str) -> InMemoryCase {
        let data =
            Array4::from_shape_fn((1, 3, 4, 5), |(_, z, y, x)| (100 * z + 10 * y + x) as f32);
        let seg = Array4::from_shape_fn((1, 3, 4, 5), |(_, z, _, _)| z as i16);
        InMemoryCase::new(name, data, seg)
    }

    /// The previous stage's segmentation written for the cases: `(y + x) % 3`.
    fn prev_seg() -> Array3<u16> {
        Array3::from_shape_fn((3, 4, 5), |(_, y, x)| ((y + x) % 3) as u16)
    }

    fn store(dataset_dir: &Path, names: &[&str]) -> CascadeStore<InMemoryStore> {
        let inner = InMemoryStore {
            cases: names.iter().map(|n| case(n)).collect(),
        };
        CascadeStore::new(
            inner,
            &WorkLayout::new(dataset_dir).predicted_next_stage("3d_lowres", "3d_cascade_fullres"),
        )
    }

    #[test]
    fn patches_carry_the_previous_stage_crop_padded_with_minus_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &["a"]);
        std::fs::create_dir_all(store.prev_dir()).unwrap();
        write_prev_stage_seg(&prev_stage_path(store.prev_dir(), "a"), prev_seg().view()).unwrap();
        let source = store.open(&["a".to_string()]).unwrap();
        assert_eq!((source.n_seg_channels(), source.n_channels()), (2, 1));
        let patch = source.read_patch(0, [-1, 2, 3], [2, 3, 3]).unwrap();
        assert_eq!(patch.seg.shape(), &[2, 2, 3, 3]);
        // Patch voxel (z, y, x) is case voxel (z - 1, y + 2, x + 3): inside for z = 1,
        // y in 0..2, x in 0..2.
        for ((c, z, y, x), &v) in patch.seg.indexed_iter() {
            let (cz, cy, cx) = (z as isize - 1, y + 2, x + 3);
            let inside = cz >= 0 && cy < 4 && cx < 5;
            let expected = match (inside, c) {
                (false, _) => -1,
                (true, 0) => cz as i16,
                (true, _) => ((cy + cx) % 3) as i16,
            };
            assert_eq!(v, expected, "seg channel {c} at ({z}, {y}, {x})");
        }
        // The image is the inner store's crop, untouched.
        assert_eq!(patch.data[[0, 1, 0, 0]], 23.0);
        assert_eq!(patch.data[[0, 0, 0, 0]], 0.0);
        // Case row (0, 2, 3..6): (2 + 3) % 3, (2 + 4) % 3, then x = 5 is outside the case.
        assert_eq!(patch.seg.slice(s![1, 1, 0, ..]).to_vec(), vec![2, 0, -1]);
        // The sampler accepts the 2-channel seg.
        let sampler = PatchSampler::new([2, 3, 3], [2, 3, 3], 1, false).unwrap();
        let drawn = crate::sampling::DrawnPatch {
            case_idx: 0,
            lower: [-1, 2, 3],
            forced_foreground: false,
        };
        assert_eq!(sampler.read(source.as_ref(), &drawn).unwrap(), patch);
    }

    #[test]
    fn a_missing_previous_stage_file_names_it_and_the_stage_to_train() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &["a", "b"]);
        std::fs::create_dir_all(store.prev_dir()).unwrap();
        write_prev_stage_seg(&prev_stage_path(store.prev_dir(), "a"), prev_seg().view()).unwrap();
        let ids = ["a".to_string(), "b".to_string()];
        let err = store
            .open(&ids)
            .err()
            .expect("case b has no file")
            .to_string();
        let expected = format!(
            "{}: the previous stage's segmentation of case 'b' is missing: train and validate \
             every fold of 3d_lowres first",
            prev_stage_path(store.prev_dir(), "b").display()
        );
        assert_eq!(err, expected);
        // A file of another shape than the case is refused, naming the file and both shapes.
        let wrong = Array3::<u16>::zeros((3, 4, 6));
        write_prev_stage_seg(&prev_stage_path(store.prev_dir(), "b"), wrong.view()).unwrap();
        let err = store.open(&ids).err().expect("shape differs").to_string();
        assert!(
            err.contains("b.nii.gz") && err.contains("[3, 4, 6]"),
            "{err}"
        );
        assert!(err.contains("[3, 4, 5]"), "{err}");
    }
}
