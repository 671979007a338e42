//! Fingerprints of tiny hand-made datasets written as NIfTI files, checked against nnU-Net 2.8.1.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ndarray::{s, Array4};

use super::*;
use crate::{
    write_image, write_label_map, Geometry, HeaderGeometry, Shape3, Spacing, StackError, Volume,
};

const DATASET_JSON: &str = r#"{"channel_names": {"0": "MRI"},
    "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 2, "file_ending": ".nii.gz"}"#;

fn geometry(shape: [usize; 3], spacing: [f64; 3]) -> Geometry {
    Geometry::new(
        Shape3(shape),
        HeaderGeometry::axis_aligned(Spacing(spacing), [0.0; 3]),
    )
}

fn write_case(root: &Path, id: &str, image: Array4<f32>, labels: Array4<u16>, spacing: [f64; 3]) {
    let (_, z, y, x) = image.dim();
    let geometry = geometry([z, y, x], spacing);
    let image = Volume {
        data: image,
        geometry: geometry.clone(),
    };
    let labels = Volume {
        data: labels,
        geometry,
    };
    write_image(&root.join(format!("imagesTr/{id}_0000.nii.gz")), &image, 1).expect("write");
    write_label_map(&root.join(format!("labelsTr/{id}.nii.gz")), &labels, 1).expect("write");
}

/// Case `a`: 5 x 6 x 8 at (2, 1, 0.5) mm, nonzero box z 1..4, y 1..5, x 1..7 holding
/// `1 + 100 z + 10 y + x`, with an enclosed two-voxel cavity of zeros (filled, so inside the
/// mask) that is labelled; one label voxel at (0, 0, 0) lies outside the box and is cropped away.
/// Case `b`: 3 x 4 x 5 at (3, 1, 0.5) mm, every voxel `1000 + 20 z + 5 y + x`, label 1 for x >= 2.
fn write_dataset(root: &Path) {
    for dir in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::write(root.join("dataset.json"), DATASET_JSON).expect("write json");
    let mut a = Array4::<f32>::zeros((1, 5, 6, 8));
    for z in 1..4 {
        for y in 1..5 {
            for x in 1..7 {
                a[[0, z, y, x]] = (1 + z * 100 + y * 10 + x) as f32;
            }
        }
    }
    a[[0, 2, 2, 3]] = 0.0;
    a[[0, 2, 3, 3]] = 0.0;
    let mut labels_a = Array4::<u16>::zeros((1, 5, 6, 8));
    labels_a.slice_mut(s![0, 1..4, 2..4, 2..6]).fill(1);
    labels_a.slice_mut(s![0, 2, 2, 2..4]).fill(2);
    labels_a[[0, 0, 0, 0]] = 1;
    write_case(root, "a", a, labels_a, [2.0, 1.0, 0.5]);
    let b = Array4::from_shape_fn((1, 3, 4, 5), |(_, z, y, x)| {
        (1000 + z * 20 + y * 5 + x) as f32
    });
    let mut labels_b = Array4::<u16>::zeros((1, 3, 4, 5));
    labels_b.slice_mut(s![0, .., .., 2..]).fill(1);
    write_case(root, "b", b, labels_b, [3.0, 1.0, 0.5]);
}

fn open_dataset() -> (tempfile::TempDir, Dataset) {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_dataset(tmp.path());
    let dataset = Dataset::open(tmp.path()).expect("open");
    (tmp, dataset)
}

// nnU-Net 2.8.1 on the same arrays (numpy 2.4.6), 500 samples per case:
//   d, s, _ = crop_to_nonzero(img, seg)
//   ints, _ = DatasetFingerprintExtractor.collect_foreground_intensities(s, d, num_samples=500)
//   pooled = np.concatenate([ints_a[0], ints_b[0]])
//   -> shapes after crop (3, 4, 6), (3, 4, 5); median relative size 0.65;
//      mean 621.5780029296875, median 669.0, std 414.97723388671875, min 0.0, max 1059.0,
//      percentile_00_5 0.0, percentile_99_5 1059.0
#[test]
fn matches_nnunet_on_a_tiny_dataset() {
    let (_tmp, dataset) = open_dataset();
    let fp = extract_with_budget(&dataset, 1000, &()).expect("extract");
    assert_eq!(fp.spacings(), [[2.0, 1.0, 0.5], [3.0, 1.0, 0.5]]);
    assert_eq!(fp.shapes_after_crop(), [[3, 4, 6], [3, 4, 5]]);
    assert_eq!(fp.median_relative_size_after_cropping(), 0.65);
    let stats = fp.foreground_intensity_properties();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].mean, 621.5780029296875);
    assert_eq!(stats[0].median, 669.0);
    assert_eq!(stats[0].std, 414.97723388671875);
    assert_eq!((stats[0].min, stats[0].max), (0.0, 1059.0));
    assert_eq!(stats[0].percentile_00_5, 0.0);
    assert_eq!(stats[0].percentile_99_5, 1059.0);
}

#[test]
fn stamp_names_every_raw_file_and_detects_a_change() {
    let (tmp, dataset) = open_dataset();
    let fp = extract_with_budget(&dataset, 10, &()).expect("extract");
    let names: Vec<&str> = fp.stamp().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dataset.json",
            "imagesTr/a_0000.nii.gz",
            "labelsTr/a.nii.gz",
            "imagesTr/b_0000.nii.gz",
            "labelsTr/b.nii.gz"
        ]
    );
    assert!(fingerprint_is_current(&fp, &dataset));
    let label = tmp.path().join("labelsTr/b.nii.gz");
    let file = std::fs::File::options()
        .write(true)
        .open(&label)
        .expect("open");
    file.set_modified(SystemTime::now() + Duration::from_secs(3600))
        .expect("set mtime");
    assert!(!fingerprint_is_current(&fp, &dataset));
    assert!(!fingerprint_is_current(
        &fp.clone().with_stamp(vec![]),
        &dataset
    ));
}

#[test]
fn constant_foreground_gives_analytic_statistics() {
    // Case a's foreground all 100, case b's all 300: the pool is half 100, half 300.
    let tmp = tempfile::tempdir().expect("tempdir");
    write_dataset(tmp.path());
    let ones = |shape: (usize, usize, usize, usize), v: f32| Array4::from_elem(shape, v);
    let labels = |shape| Array4::<u16>::from_elem(shape, 1);
    let spacing = [1.0; 3];
    write_case(
        tmp.path(),
        "a",
        ones((1, 2, 3, 4), 100.0),
        labels((1, 2, 3, 4)),
        spacing,
    );
    write_case(
        tmp.path(),
        "b",
        ones((1, 2, 3, 4), 300.0),
        labels((1, 2, 3, 4)),
        spacing,
    );
    let dataset = Dataset::open(tmp.path()).expect("open");
    let fp = extract_with_budget(&dataset, 1000, &()).expect("extract");
    let stats = fp.foreground_intensity_properties()[0];
    assert_eq!((stats.mean, stats.std, stats.median), (200.0, 100.0, 200.0));
    assert_eq!(
        (stats.percentile_00_5, stats.percentile_99_5),
        (100.0, 300.0)
    );
    assert_eq!(fp.median_relative_size_after_cropping(), 1.0);
}

#[test]
fn faults_name_the_case_and_file() {
    let (tmp, _) = open_dataset();
    let mut nan = Array4::<f32>::ones((1, 2, 2, 2));
    nan[[0, 1, 1, 1]] = f32::NAN;
    write_case(tmp.path(), "b", nan, Array4::ones((1, 2, 2, 2)), [1.0; 3]);
    let dataset = Dataset::open(tmp.path()).expect("open");
    let err = extract_with_budget(&dataset, 10, &()).expect_err("NaN");
    assert!(
        matches!(&err, FingerprintError::Channels { case, source, .. } if case == "b" && matches!(**source, StackError::Nan { .. }))
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("imagesTr/b_0000.nii.gz"), "{source}");

    let labels = Volume {
        data: Array4::<u16>::ones((1, 2, 2, 3)),
        geometry: geometry([2, 2, 3], [1.0; 3]),
    };
    write_image(
        &tmp.path().join("imagesTr/b_0000.nii.gz"),
        &Volume {
            data: Array4::ones((1, 2, 2, 2)),
            geometry: geometry([2, 2, 2], [1.0; 3]),
        },
        1,
    )
    .expect("write");
    write_label_map(&tmp.path().join("labelsTr/b.nii.gz"), &labels, 1).expect("write");
    let err = extract_with_budget(&dataset, 10, &()).expect_err("shape");
    assert!(
        matches!(
            &err,
            FingerprintError::ShapeMismatch {
                found: [2, 2, 3],
                ..
            }
        ),
        "{err}"
    );
    std::fs::remove_file(tmp.path().join("labelsTr/a.nii.gz")).expect("rm");
    let err = extract_with_budget(&dataset, 10, &()).expect_err("missing label");
    assert!(matches!(&err, FingerprintError::Stamp { path, .. } if path.ends_with("a.nii.gz")));
}

// As above plus case `c` (2 x 3 x 4, all 5.0, no label), 333 samples per case: nnU-Net pools
// [ints_a, ints_b, []], which numpy makes float64 ->
//   mean 623.7177177177177, std 413.520258754994 (float32 would give 623.7177124023438 and
//   413.520263671875), median 669.0, percentiles 0.0 / 1059.0, median relative size 1.0
#[test]
fn a_case_without_foreground_switches_to_float64_like_numpy() {
    let (tmp, _) = open_dataset();
    let image = Array4::from_elem((1, 2, 3, 4), 5.0f32);
    write_case(
        tmp.path(),
        "c",
        image,
        Array4::zeros((1, 2, 3, 4)),
        [1.0; 3],
    );
    let dataset = Dataset::open(tmp.path()).expect("open");
    let fp = extract_with_budget(&dataset, 1000, &()).expect("extract");
    assert_eq!(fp.median_relative_size_after_cropping(), 1.0);
    let stats = fp.foreground_intensity_properties()[0];
    assert_eq!(stats.mean, 623.7177177177177);
    assert_eq!(stats.std, 413.520258754994);
    assert_eq!(stats.median, 669.0);
    assert_eq!(
        (stats.percentile_00_5, stats.percentile_99_5),
        (0.0, 1059.0)
    );
}
