//! Cache tests: exact round trips, padded patch reads, stamp invalidation, and whole runs over
//! a tiny dataset written as NIfTI files (skip, invalidate, resume).

use std::path::Path;

use autoseg_planner::{
    plan, Fingerprint, ForegroundIntensityProperties, PlannerSettings, Plans, WorkLayout,
};
use ndarray::{s, Array4};

use super::*;
use crate::crop::BoundingBox;
use crate::foreground::{ClassLocations, LocationClass};
use crate::pipeline::{CaseProperties, PreprocessError, PreprocessedCase};
use crate::{
    write_image, write_label_map, Dataset, Geometry, HeaderGeometry, Shape3, Spacing, Volume,
};

fn geometry(shape: [usize; 3], spacing: [f64; 3]) -> Geometry {
    let mut header = HeaderGeometry::axis_aligned(Spacing(spacing), [-12.5, 3.25, 0.1]);
    header.srow[0][1] = 0.015625;
    Geometry::new(Shape3(shape), header)
}

/// A 2-channel 5 x 6 x 7 case with distinct values everywhere and two location classes.
fn sample_case() -> PreprocessedCase {
    let data = Array4::from_shape_fn((2, 5, 6, 7), |(c, z, y, x)| {
        (c * 1000 + z * 100 + y * 10 + x) as f32 * 0.5 - 7.25
    });
    let seg = Array4::from_shape_fn((1, 5, 6, 7), |(_, z, y, x)| ((z + y + x) % 4) as i16 - 1);
    PreprocessedCase {
        data,
        seg: Some(seg),
        properties: CaseProperties {
            case: "case_007".into(),
            spacing: [2.5, 0.7, 0.7],
            shape_before_cropping: [9, 12, 13],
            bbox_used_for_cropping: BoundingBox {
                start: [1, 2, 3],
                end: [6, 8, 10],
            },
            shape_after_cropping_and_before_resampling: [5, 6, 7],
            spacing_after_resampling: [2.5, 0.7, 0.7],
            class_locations: vec![
                ClassLocations {
                    class: LocationClass::Label(1),
                    voxels: vec![[0, 0, 2], [4, 5, 6]],
                },
                ClassLocations {
                    class: LocationClass::Region(vec![-1, 0, 1]),
                    voxels: vec![],
                },
            ],
            source_geometry: geometry([9, 12, 13], [2.5, 0.7, 0.1 + 0.2]),
        },
    }
}

const KEYS: CaseKeys = CaseKeys {
    stamp: 0x0123_4567_89ab_cdef,
    source: 42,
};

#[test]
fn case_file_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case_007.case");
    let case = sample_case();
    write_case(&path, &case, KEYS).unwrap();
    let cached = CachedCase::open(&path).unwrap();
    assert_eq!(cached.shape(), [5, 6, 7]);
    assert_eq!(cached.n_channels(), 2);
    assert_eq!(cached.keys(), KEYS);
    assert_eq!(cached.properties(), &case.properties);
    assert_eq!(
        cached.class_locations(),
        case.properties.class_locations.as_slice()
    );
    let (data, seg) = cached.read_all().unwrap();
    assert_eq!(data, case.data);
    assert_eq!(Some(seg), case.seg);
    assert!(CachedCase::is_current(&path, KEYS));
    assert!(!CachedCase::is_current(
        &path,
        CaseKeys { source: 43, ..KEYS }
    ));
    // 80-byte header, JSON, padding to 64, 2*210 f32, 210 i16.
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len % 2, 0);
    assert!(len >= 80 + 210 * 2 * 4 + 210 * 2);
}

/// nnU-Net `crop_and_pad_nd` on the whole array, written out voxel by voxel.
fn reference_patch<T: Copy>(a: &Array4<T>, lo: [isize; 3], size: [usize; 3], pad: T) -> Array4<T> {
    let (c, nz, ny, nx) = a.dim();
    Array4::from_shape_fn((c, size[0], size[1], size[2]), |(ch, z, y, x)| {
        let g = [lo[0] + z as isize, lo[1] + y as isize, lo[2] + x as isize];
        let inside = (0..3).all(|i| g[i] >= 0)
            && g[0] < nz as isize
            && g[1] < ny as isize
            && g[2] < nx as isize;
        if inside {
            a[[ch, g[0] as usize, g[1] as usize, g[2] as usize]]
        } else {
            pad
        }
    })
}

#[test]
fn patches_equal_slicing_with_padding_at_every_border() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.case");
    let case = sample_case();
    write_case(&path, &case, KEYS).unwrap();
    let cached = CachedCase::open(&path).unwrap();
    let (all_data, all_seg) = cached.read_all().unwrap();
    let boxes: [([isize; 3], [usize; 3]); 6] = [
        ([1, 2, 3], [2, 3, 4]),    // inside
        ([-2, -3, -1], [4, 5, 3]), // low corner
        ([3, 4, 5], [4, 4, 4]),    // high corner
        ([-1, -1, -1], [7, 8, 9]), // larger than the volume
        ([5, 0, 0], [2, 2, 2]),    // entirely outside
        ([-4, 2, 6], [6, 1, 3]),
    ];
    for (lo, size) in boxes {
        let (data, seg) = cached.read_patch(lo, size).unwrap();
        assert_eq!(
            data,
            reference_patch(&all_data, lo, size, 0.0),
            "data {lo:?} {size:?}"
        );
        assert_eq!(
            seg,
            reference_patch(&all_seg, lo, size, -1),
            "seg {lo:?} {size:?}"
        );
    }
}

#[test]
fn damaged_files_are_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.case");
    write_case(&path, &sample_case(), KEYS).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
    let err = CachedCase::open(&path).unwrap_err();
    assert!(matches!(err, CacheError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("c.case"));
    let mut other = bytes.clone();
    other[8] = 9;
    std::fs::write(&path, &other).unwrap();
    let err = CachedCase::open(&path).unwrap_err();
    assert!(
        matches!(err, CacheError::UnsupportedVersion { found: 9, .. }),
        "{err}"
    );
    std::fs::write(&path, [b'x'; 200]).unwrap();
    assert!(matches!(
        CachedCase::open(&path),
        Err(CacheError::NotACaseFile { .. })
    ));
    assert!(!CachedCase::is_current(&path, KEYS));
}

#[test]
fn a_case_without_segmentation_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let mut case = sample_case();
    case.seg = None;
    let err = write_case(&dir.path().join("c.case"), &case, KEYS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "case case_007: the cache holds training cases, and this one has no segmentation"
    );
}

const DATASET_JSON: &str = r#"{"channel_names": {"0": "MRI"},
    "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 3, "file_ending": ".nii.gz"}"#;

/// Three cases of 10 x 12 x 14 (spacing 2, 1, 1; the last at 1.5, 1, 1): a nonzero box with a
/// ramp, label 1 and a few voxels of label 2 inside it.
fn write_dataset(root: &Path) {
    for dir in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("dataset.json"), DATASET_JSON).unwrap();
    for (i, z_spacing) in [2.0, 2.0, 1.5].into_iter().enumerate() {
        let geometry = geometry([10, 12, 14], [z_spacing, 1.0, 1.0]);
        let mut data = Array4::<f32>::zeros((1, 10, 12, 14));
        data.slice_mut(s![0, 1..9, 2..11, 1..13])
            .indexed_iter_mut()
            .for_each(|((z, y, x), v): ((usize, usize, usize), &mut f32)| {
                *v = (1 + z * 7 + y * 3 + x + i) as f32
            });
        let mut labels = Array4::<u16>::zeros((1, 10, 12, 14));
        labels.slice_mut(s![0, 3..6, 4..8, 3..9]).fill(1);
        labels.slice_mut(s![0, 4, 5, 4..6]).fill(2);
        let id = format!("case_{i}");
        let image = Volume {
            data,
            geometry: geometry.clone(),
        };
        write_image(&root.join(format!("imagesTr/{id}_0000.nii.gz")), &image, 1).unwrap();
        let labels = Volume {
            data: labels,
            geometry,
        };
        write_label_map(&root.join(format!("labelsTr/{id}.nii.gz")), &labels, 1).unwrap();
    }
}

fn plans() -> Plans {
    let stats = ForegroundIntensityProperties {
        mean: 50.0,
        median: 50.0,
        std: 20.0,
        min: 1.0,
        max: 120.0,
        percentile_00_5: 2.0,
        percentile_99_5: 110.0,
    };
    let fp = Fingerprint::new(
        vec![[2.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.5, 1.0, 1.0]],
        vec![[8, 9, 12]; 3],
        0.5,
        vec![stats],
    )
    .unwrap();
    let info = crate::parse_dataset_json(DATASET_JSON.as_bytes(), Path::new("dataset.json"))
        .unwrap()
        .dataset_info("Dataset001_Tiny")
        .unwrap();
    plan(&fp, &info, &PlannerSettings::nnunet_default()).unwrap()
}

fn mtimes(dir: &Path) -> Vec<(String, std::time::SystemTime)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".case"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

const SETTINGS: PreprocessSettings = PreprocessSettings {
    max_parallel_cases: 2,
};

/// Preprocesses the 3d_fullres configuration of `plans` into the work folder `work`.
fn preprocess_3d(
    dataset: &Dataset,
    plans: &Plans,
    work: &Path,
) -> Result<PreprocessSummary, PreprocessError> {
    preprocess(
        dataset,
        plans,
        "3d_fullres",
        &WorkLayout::new(work),
        &SETTINGS,
        &(),
    )
}

/// The 3d_fullres cache of the work folder `work`.
fn cache_of(work: &Path) -> std::path::PathBuf {
    WorkLayout::new(work).preprocessed("3d_fullres")
}

#[test]
fn a_run_writes_every_case_and_a_rerun_skips_them() {
    let raw = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write_dataset(raw.path());
    let dataset = Dataset::open(raw.path()).unwrap();
    let plans = plans();
    let first = preprocess_3d(&dataset, &plans, work.path()).unwrap();
    assert_eq!((first.n_cases, first.n_written, first.n_skipped), (3, 3, 0));
    assert!(first.stamp_changed);
    let dir = cache_of(work.path());
    assert_eq!(first.dir, dir);
    let case = CachedCase::open(&case_path(&dir, "case_2")).unwrap();
    // Target spacing (2, 1, 1): case_2's 8 cropped slices at 1.5 mm become round(6.0) = 6.
    assert_eq!(case.shape(), [6, 9, 12]);
    assert_eq!(case.properties().bbox_used_for_cropping.start, [1, 2, 1]);
    let (_, seg) = case.read_all().unwrap();
    assert!(seg.iter().any(|&v| v == 2));
    assert_eq!(case.class_locations().len(), 2);
    let before = mtimes(&dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = preprocess_3d(&dataset, &plans, work.path()).unwrap();
    assert_eq!(
        (second.n_written, second.n_skipped, second.n_removed),
        (0, 3, 0)
    );
    assert!(!second.stamp_changed);
    assert_eq!(mtimes(&dir), before);
}

#[test]
fn stamp_follows_preprocessing_fields_only() {
    let plans = plans();
    let config = plans.resolve("3d_fullres").unwrap();
    let classes = [LocationClass::Label(1), LocationClass::Label(2)];
    let key = StampFields::of(&plans, &config, &classes).key();
    let mut bigger_batch = config.clone();
    bigger_batch.batch_size += 10;
    bigger_batch.patch_size[0] *= 2;
    assert_eq!(StampFields::of(&plans, &bigger_batch, &classes).key(), key);
    let mut finer = config.clone();
    finer.spacing[0] = 1.0;
    assert_ne!(StampFields::of(&plans, &finer, &classes).key(), key);
    let mut resampled = config.clone();
    resampled.resampling_data.order = autoseg_planner::SplineOrder::Linear;
    assert_ne!(StampFields::of(&plans, &resampled, &classes).key(), key);
    // Intensity statistics matter only to CT channels (this one is z-scored).
    let mut other_stats = plans.clone();
    other_stats.foreground_intensity_properties[0].mean = 99.0;
    assert_eq!(StampFields::of(&other_stats, &config, &classes).key(), key);
    assert_ne!(StampFields::of(&plans, &config, &classes[..1]).key(), key);
}

#[test]
fn stamp_round_trips_through_toml() {
    let dir = tempfile::tempdir().unwrap();
    let plans = plans();
    let config = plans.resolve("2d").unwrap();
    let stamp = Stamp::new(StampFields::of(
        &plans,
        &config,
        &[LocationClass::Region(vec![1, 2])],
    ));
    let path = dir.path().join(STAMP_FILE);
    assert_eq!(read_stamp(&path).unwrap(), None);
    write_stamp(&path, &stamp).unwrap();
    assert_eq!(read_stamp(&path).unwrap(), Some(stamp.clone()));
    assert_eq!(stamp.key.len(), 16);
    assert_eq!(stamp.fields.location_classes, ["[1, 2]"]);
}

#[test]
fn edited_plans_invalidate_exactly_when_they_must() {
    let raw = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write_dataset(raw.path());
    let dataset = Dataset::open(raw.path()).unwrap();
    let mut plans = plans();
    preprocess_3d(&dataset, &plans, work.path()).unwrap();
    let entry = plans.configurations.get_mut("3d_fullres").unwrap();
    entry.batch_size = Some(entry.batch_size.unwrap() + 1);
    let same = preprocess_3d(&dataset, &plans, work.path()).unwrap();
    assert_eq!(
        (same.n_written, same.n_skipped, same.stamp_changed),
        (0, 3, false)
    );
    let entry = plans.configurations.get_mut("3d_fullres").unwrap();
    entry.spacing = Some(vec![1.5, 1.0, 1.0]);
    let redone = preprocess_3d(&dataset, &plans, work.path()).unwrap();
    assert_eq!(
        (redone.n_written, redone.n_removed, redone.stamp_changed),
        (3, 3, true)
    );
    let dir = cache_of(work.path());
    // case_0's 8 cropped slices at 2 mm now become round(8 * 2 / 1.5) = 11.
    assert_eq!(
        CachedCase::open(&case_path(&dir, "case_0"))
            .unwrap()
            .shape(),
        [11, 9, 12]
    );
    let stamp = read_stamp(&dir.join(STAMP_FILE)).unwrap().unwrap();
    assert_eq!(stamp.fields.spacing, vec![1.5, 1.0, 1.0]);
}

#[test]
fn an_interrupted_run_resumes_and_cleans_up() {
    let raw = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write_dataset(raw.path());
    let dataset = Dataset::open(raw.path()).unwrap();
    let plans = plans();
    preprocess_3d(&dataset, &plans, work.path()).unwrap();
    let dir = cache_of(work.path());
    // What kill -9 can leave: a finished file missing, a temp file (of a process id Linux never
    // hands out), and a file of a case that was since removed from the dataset. A temp file of
    // a live process (pid 1) is being written by someone else and stays.
    std::fs::remove_file(case_path(&dir, "case_1")).unwrap();
    std::fs::write(dir.join(".case_1.case.tmp.99999999"), b"partial").unwrap();
    let live = dir.join(".case_2.case.tmp.1");
    std::fs::write(&live, b"being written").unwrap();
    std::fs::copy(case_path(&dir, "case_0"), case_path(&dir, "gone")).unwrap();
    // A changed raw file makes its case stale.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let label = raw.path().join("labelsTr/case_2.nii.gz");
    let bytes = std::fs::read(&label).unwrap();
    std::fs::write(&label, bytes).unwrap();
    let resumed = preprocess_3d(&dataset, &plans, work.path()).unwrap();
    assert_eq!(
        (resumed.n_written, resumed.n_skipped, resumed.n_removed),
        (2, 1, 2)
    );
    let names: Vec<String> = mtimes(&dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["case_0.case", "case_1.case", "case_2.case"]);
    let listing: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(
        listing.len(),
        5,
        "three cases, the stamp and the live temp file"
    );
    assert!(live.is_file());
}

#[test]
fn a_failing_case_is_named_and_finished_files_stay() {
    let raw = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    write_dataset(raw.path());
    std::fs::write(raw.path().join("imagesTr/case_1_0000.nii.gz"), b"broken").unwrap();
    let dataset = Dataset::open(raw.path()).unwrap();
    let settings = PreprocessSettings {
        max_parallel_cases: 1,
    };
    let err = preprocess(
        &dataset,
        &plans(),
        "3d_fullres",
        &WorkLayout::new(work.path()),
        &settings,
        &(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("case case_1: cannot read"),
        "{err}"
    );
    let dir = cache_of(work.path());
    assert!(CachedCase::open(&case_path(&dir, "case_0")).is_ok());
}
