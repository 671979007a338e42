//! `autoseg fingerprint` and `autoseg plan` on a tiny dataset written into a temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use autoseg_planner::{Fingerprint, Plans};

fn autoseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(args)
        .output()
        .expect("the autoseg binary runs")
}

/// An uncompressed NIfTI-1 file of `shape` (z, y, x) at 1 mm (pixdim only, no qform/sform):
/// float32 `values` when `float`, else uint8. Written by hand so this test shares no code with
/// the reader it exercises.
fn nifti_bytes(shape: [usize; 3], values: &[f32], float: bool) -> Vec<u8> {
    let mut header = vec![0u8; 352];
    let put_i16 =
        |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 =
        |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    header[0..4].copy_from_slice(&348i32.to_le_bytes());
    let [nz, ny, nx] = shape;
    for (i, d) in [3, nx, ny, nz, 1, 1, 1, 1].into_iter().enumerate() {
        put_i16(&mut header, 40 + 2 * i, d as i16);
    }
    let (datatype, bitpix) = if float { (16, 32) } else { (2, 8) };
    put_i16(&mut header, 70, datatype);
    put_i16(&mut header, 72, bitpix);
    for i in 0..4 {
        put_f32(&mut header, 76 + 4 * i, 1.0);
    }
    put_f32(&mut header, 108, 352.0);
    header[123] = 2;
    header[344..348].copy_from_slice(b"n+1\0");
    for &v in values {
        if float {
            header.extend_from_slice(&v.to_le_bytes());
        } else {
            header.push(v as u8);
        }
    }
    header
}

/// `Dataset001_Tiny`: two 1-channel MR-like cases of 20 x 28 x 24 voxels at 1 mm; intensity
/// `offset + 10 + x` inside the box z 2..18, y 2..26, x 1..23 (0 outside), label 1 on the
/// block z 6..14, y 8..20, x 6..18.
fn write_tiny_dataset(parent: &Path) -> PathBuf {
    let root = parent.join("Dataset001_Tiny");
    for dir in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    let json = r#"{"channel_names": {"0": "MRI"}, "labels": {"background": 0, "organ": 1},
        "numTraining": 2, "file_ending": ".nii"}"#;
    std::fs::write(root.join("dataset.json"), json).expect("write dataset.json");
    let shape = [20, 28, 24];
    let voxels =
        || (0..20).flat_map(|z| (0..28).flat_map(move |y| (0..24).map(move |x| (z, y, x))));
    for (id, offset) in [("case_000", 0.0f32), ("case_001", 50.0)] {
        let image: Vec<f32> = voxels()
            .map(|(z, y, x)| {
                let inside = (2..18).contains(&z) && (2..26).contains(&y) && (1..23).contains(&x);
                if inside {
                    offset + 10.0 + x as f32
                } else {
                    0.0
                }
            })
            .collect();
        let labels: Vec<f32> = voxels()
            .map(|(z, y, x)| {
                let organ = (6..14).contains(&z) && (8..20).contains(&y) && (6..18).contains(&x);
                f32::from(u8::from(organ))
            })
            .collect();
        let image_path = root.join(format!("imagesTr/{id}_0000.nii"));
        std::fs::write(image_path, nifti_bytes(shape, &image, true)).expect("write");
        let label_path = root.join(format!("labelsTr/{id}.nii"));
        std::fs::write(label_path, nifti_bytes(shape, &labels, false)).expect("write");
    }
    root
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn run_ok(args: &[&str]) -> String {
    let out = autoseg(args);
    assert!(
        out.status.success(),
        "autoseg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plan_writes_fingerprint_and_plans_and_reuses_a_current_fingerprint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dataset = write_tiny_dataset(tmp.path());
    let work = tmp.path().join("work");
    let (ds, wk) = (
        dataset.to_str().expect("utf-8"),
        work.to_str().expect("utf-8"),
    );
    let stdout = run_ok(&["plan", ds, "--work", wk]);
    let dir = work.join("Dataset001_Tiny");
    let fp_path = dir.join("fingerprint.toml");
    let fp = Fingerprint::from_toml_str(&std::fs::read_to_string(&fp_path).expect("read"))
        .expect("fingerprint.toml parses");
    // The nonzero box is 16 x 24 x 22 of 20 x 28 x 24.
    assert_eq!(fp.shapes_after_crop(), [[16, 24, 22], [16, 24, 22]]);
    assert_eq!(fp.median_relative_size_after_cropping(), 8448.0 / 13440.0);
    // Foreground x runs 6..18: intensities 16..27 and 66..77, evenly: the mean is 46.5.
    let stats = fp.foreground_intensity_properties()[0];
    assert!((stats.mean - 46.5).abs() < 0.05, "{stats:?}");
    assert_eq!((stats.min, stats.max), (16.0, 77.0));
    let plans =
        Plans::from_toml_str(&std::fs::read_to_string(dir.join("plans.toml")).expect("read"))
            .expect("plans.toml parses");
    assert_eq!(plans.dataset_name, "Dataset001_Tiny");
    let fullres = plans.resolve("3d_fullres").expect("3d_fullres resolves");
    assert_eq!(fullres.spacing, [1.0, 1.0, 1.0]);
    assert!(plans.resolve("2d").is_ok());
    assert!(
        stdout.contains("[3d_fullres] spacing [1.0, 1.0, 1.0]"),
        "{stdout}"
    );

    // A second plan reuses the fingerprint; touching a raw file makes it extract again.
    let before = modified(&fp_path);
    run_ok(&["plan", ds, "--work", wk, "--planner", "resenc-m"]);
    assert_eq!(modified(&fp_path), before);
    let image = dataset.join("imagesTr/case_001_0000.nii");
    let file = std::fs::File::options()
        .write(true)
        .open(&image)
        .expect("open");
    file.set_modified(SystemTime::now() + Duration::from_secs(3600))
        .expect("set mtime");
    run_ok(&["plan", ds, "--work", wk]);
    assert_ne!(modified(&fp_path), before);
}

#[test]
fn fingerprint_prints_a_summary_and_errors_name_the_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dataset = write_tiny_dataset(tmp.path());
    let work = tmp.path().join("work");
    let stdout = run_ok(&[
        "fingerprint",
        dataset.to_str().expect("utf-8"),
        "--work",
        work.to_str().expect("utf-8"),
    ]);
    assert!(stdout.contains("2 cases"), "{stdout}");
    assert!(
        stdout.contains("median shape after crop (z, y, x): [16.0, 24.0, 22.0]"),
        "{stdout}"
    );
    assert!(work.join("Dataset001_Tiny/fingerprint.toml").is_file());

    let missing = tmp.path().join("no_such_dataset");
    let out = autoseg(&["plan", missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_dataset"), "{stderr}");
}

/// autoseg's planner on `demo3d` against the plans nnU-Net 2.8.1 wrote for the same data (the
/// fixture model, `scripts/make_nnunet_model_fixture.sh`, which only shrank its features): every
/// other number is equal.
#[test]
fn planning_demo3d_gives_the_plans_nnunet_wrote_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = autoseg_fixtures::write("demo3d", &tmp.path().join("raw")).unwrap();
    let work = tmp.path().join("work");
    let out = autoseg(&[
        "plan",
        dataset.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = Plans::read(&work.join("Dataset901_Demo3d/plans.toml")).unwrap();
    let nnunet_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__nnUNetPlans__3d_fullres/plans.json",
    );
    let mut nnunet =
        Plans::from_nnunet_json(&std::fs::read_to_string(nnunet_path).unwrap()).unwrap();
    for (name, entry) in &mut nnunet.configurations {
        let planned = ours.configurations[name].architecture.as_ref().unwrap();
        let architecture = entry.architecture.as_mut().unwrap();
        assert_ne!(architecture.features_per_stage, planned.features_per_stage);
        architecture.features_per_stage = planned.features_per_stage.clone();
    }
    // nnU-Net's medians: the shape's 50.5 rounded half to even as Python's round does.
    assert_same_plans(&ours, &nnunet);
}

/// Plans equal in what nnU-Net plans: configurations, transposition, intensity properties and
/// the medians of spacing and shape.
pub(crate) fn assert_same_plans(ours: &Plans, nnunet: &Plans) {
    assert_eq!(ours.configurations, nnunet.configurations);
    assert_eq!(ours.transpose_forward, nnunet.transpose_forward);
    assert_eq!(
        ours.foreground_intensity_properties,
        nnunet.foreground_intensity_properties
    );
    assert_eq!(
        ours.original_median_spacing_after_transp,
        nnunet.original_median_spacing_after_transp
    );
    assert_eq!(
        ours.original_median_shape_after_transp,
        nnunet.original_median_shape_after_transp
    );
}
