//! The previous stage's segmentations of a cascade: `3d_lowres` predictions of every training
//! case, resampled onto the `3d_cascade_fullres` preprocessed grid, which that stage's training
//! reads as an extra input (nnU-Net: `predicted_next_stage/<next>/<case>`).
//!
//! Layout: `<work>/<dataset>/results/<previous>/predicted_next_stage/<next>/<case>.nii.gz`, a
//! label map whose array `(z, y, x)` has exactly the shape of the case's preprocessed data in
//! `<next>`'s cache (identity geometry: the file is a plain array, not an image in world space).
//!
//! [`append_one_hot`] turns such a segmentation into the extra input channels (nnU-Net:
//! `convert_labelmap_to_one_hot` appended to the image in `preprocessing_iterator_fromfiles` and
//! `perform_actual_validation`).

use std::path::{Path, PathBuf};

use ndarray::{s, Array3, Array4, ArrayView3, Axis};

use super::CacheError;
use crate::{read_label_map, write_label_map, Geometry, HeaderGeometry, LabelMap, Shape3, Spacing};

/// The file of `case` in a `predicted_next_stage` folder
/// ([`autoseg_planner::WorkLayout::predicted_next_stage`]).
pub fn prev_stage_path(dir: &Path, case: &str) -> PathBuf {
    dir.join(format!("{case}.nii.gz"))
}

/// Writes a previous-stage segmentation atomically (gzip level 1).
///
/// # Errors
/// [`CacheError::PrevStage`] when the file cannot be written.
pub fn write_prev_stage_seg(path: &Path, seg: ArrayView3<'_, u16>) -> Result<(), CacheError> {
    let shape = Shape3([seg.shape()[0], seg.shape()[1], seg.shape()[2]]);
    let header = HeaderGeometry::axis_aligned(Spacing([1.0; 3]), [0.0; 3]);
    let labels = LabelMap {
        data: seg.to_owned().insert_axis(Axis(0)),
        geometry: Geometry::new(shape, header),
    };
    write_label_map(path, &labels, 1).map_err(|e| CacheError::PrevStage {
        path: path.to_path_buf(),
        fault: e.to_string(),
    })
}

/// Reads a previous-stage segmentation and checks that its shape is `expected` `(z, y, x)`.
///
/// # Errors
/// [`CacheError::PrevStage`] when the file is missing or unreadable, or has another shape.
pub fn read_prev_stage_seg(path: &Path, expected: [usize; 3]) -> Result<Array3<u16>, CacheError> {
    let fault = |fault: String| CacheError::PrevStage {
        path: path.to_path_buf(),
        fault,
    };
    if !path.is_file() {
        return Err(fault(
            "missing: train and validate every fold of the previous stage first".to_string(),
        ));
    }
    let labels = read_label_map(path).map_err(|e| fault(e.to_string()))?;
    let shape = labels.data_shape().0;
    if shape != expected || labels.n_channels() != 1 {
        return Err(fault(format!(
            "shape {shape:?} with {} channel(s), the preprocessed case has {expected:?}",
            labels.n_channels()
        )));
    }
    Ok(labels.data.index_axis_move(Axis(0), 0))
}

/// `data` `(c, z, y, x)` with one 0/1 channel per label of `labels` appended (in that order),
/// 1 where `seg` equals the label. Values of `seg` outside `labels` (background, -1) give zeros.
/// Used by the predictor and by the trainer's augmentation pipeline (nnU-Net's
/// `MoveSegAsOneHotToDataTransform`).
///
/// `seg` must have `data`'s spatial shape (an internal invariant: both come from the same
/// preprocessing or crop, or from files checked against it).
pub fn append_one_hot<T, L>(data: Array4<f32>, seg: ArrayView3<'_, T>, labels: &[L]) -> Array4<f32>
where
    T: Copy + Into<i32>,
    L: Copy + Into<i32>,
{
    let (c, z, y, x) = data.dim();
    assert_eq!(
        seg.dim(),
        (z, y, x),
        "the previous-stage segmentation has the image's shape"
    );
    let mut out = Array4::<f32>::zeros((c + labels.len(), z, y, x));
    out.slice_mut(s![..c, .., .., ..]).assign(&data);
    drop(data);
    for (k, &label) in labels.iter().enumerate() {
        let label: i32 = label.into();
        let mut channel = out.index_axis_mut(Axis(0), c + k);
        ndarray::Zip::from(&mut channel)
            .and(&seg)
            .for_each(|o, &v| {
                if v.into() == label {
                    *o = 1.0;
                }
            });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_channels_follow_the_image() {
        let data = Array4::from_shape_fn((1, 2, 2, 2), |(_, z, y, x)| (z * 4 + y * 2 + x) as f32);
        let seg = Array3::from_shape_vec((2, 2, 2), vec![0i16, 1, 2, -1, 2, 2, 0, 1]).unwrap();
        let out = append_one_hot(data.clone(), seg.view(), &[1, 2]);
        assert_eq!(out.dim(), (3, 2, 2, 2));
        assert_eq!(out.slice(s![0..1, .., .., ..]), data);
        let ones: Vec<f32> = out.index_axis(Axis(0), 1).iter().copied().collect();
        assert_eq!(ones, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let twos: Vec<f32> = out.index_axis(Axis(0), 2).iter().copied().collect();
        assert_eq!(twos, vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_written_segmentation_reads_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let layout = autoseg_planner::WorkLayout::new(dir.path());
        let path = prev_stage_path(&layout.predicted_next_stage("3d_lowres", "next"), "c_001");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let seg = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| ((z + 2 * y + x) % 3) as u16);
        write_prev_stage_seg(&path, seg.view()).unwrap();
        assert_eq!(read_prev_stage_seg(&path, [3, 4, 5]).unwrap(), seg);
        let err = read_prev_stage_seg(&path, [3, 4, 6])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c_001.nii.gz") && err.contains("[3, 4, 6]"),
            "{err}"
        );
        let missing = read_prev_stage_seg(&dir.path().join("x.nii.gz"), [1, 1, 1]);
        assert!(missing.unwrap_err().to_string().contains("missing"));
    }
}
