//! Every image format through the pipeline (issue 18): the same scans give the same fingerprint
//! and plans in NIfTI, NRRD and MetaImage; an NRRD dataset and a PNG dataset go through
//! `plan-and-train` and `predict`, with masks written in their inputs' format and geometry.

use std::path::{Path, PathBuf};

use autoseg_planner::Plans;
use autoseg_preprocessing::formats;
use autoseg_preprocessing::{read_image, read_label_map, write_image, write_label_map};

use crate::pipeline::autoseg;

/// Copies the dataset at `dataset` to `out/<its name>` with every image and label file read and
/// written again in the format of `ending` (as a user converts with SimpleITK), dataset.json's
/// `file_ending` changed to match.
fn convert(dataset: &Path, out: &Path, ending: &str) -> PathBuf {
    let root = out.join(dataset.file_name().unwrap());
    for sub in ["imagesTr", "labelsTr", "imagesTs", "labelsTs"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
        for entry in std::fs::read_dir(dataset.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            let stem = name.strip_suffix(".nii.gz").unwrap();
            let target = root.join(sub).join(format!("{stem}{ending}"));
            if sub.starts_with("images") {
                write_image(&target, &read_image(&path).unwrap(), 1).unwrap();
            } else {
                write_label_map(&target, &read_label_map(&path).unwrap(), 1).unwrap();
            }
        }
    }
    let json = std::fs::read_to_string(dataset.join("dataset.json")).unwrap();
    let json = json.replace(
        "\"file_ending\": \".nii.gz\"",
        &format!("\"file_ending\": \"{ending}\""),
    );
    assert!(json.contains(ending), "{json}");
    std::fs::write(root.join("dataset.json"), json).unwrap();
    root
}

/// `plan-and-train` of the 2d configuration, fold 0, on a tiny budget; returns its stdout.
fn train_2d(dataset: &Path, work: &Path) -> String {
    let out = autoseg(&[
        "plan-and-train",
        dataset.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
        "-c",
        "2d",
        "--folds",
        "0",
        "--epochs",
        "1",
        "--iters-per-epoch",
        "2",
        "--device",
        "cpu",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `predict` of `input` into `output` with fold 0 of `model`, without test-time mirroring, and
/// `extra` arguments.
fn predict(input: &Path, output: &Path, model: &Path, extra: &[&str]) {
    let mut args = vec![
        "predict",
        "-i",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "--folds",
        "0",
        "--no-tta",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    autoseg(&args);
}

/// Each test case of `images_ts` (its `_0000` file; a TIFF stack's sidecar is not one) with
/// the mask `predict` wrote for it into `pred`: (case, input, mask). Never empty.
fn predicted_cases(images_ts: &Path, pred: &Path, ending: &str) -> Vec<(String, PathBuf, PathBuf)> {
    let mut cases: Vec<(String, PathBuf, PathBuf)> = std::fs::read_dir(images_ts)
        .unwrap()
        .filter_map(|entry| {
            let input = entry.unwrap().path();
            let file = input.file_name()?.to_str()?.to_string();
            let case = file.strip_suffix(&format!("_0000{ending}"))?.to_string();
            let mask = pred.join(format!("{case}{ending}"));
            Some((case, input, mask))
        })
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "{}: no test case", images_ts.display());
    cases
}

/// `fingerprint.toml` without its file stamps (sizes and times of the raw files), and
/// `plans.toml`, as `autoseg plan` writes them for `dataset`, every float rounded to 12
/// significant digits: NRRD stores no spacing, only axis vectors, whose lengths SimpleITK (and
/// autoseg) take as the spacing, so 0.800000011920929 from a NIfTI file's `pixdim` comes back
/// from NRRD as 0.8000000119209288.
fn plan(dataset: &Path, work: &Path) -> (toml::Value, toml::Value) {
    autoseg(&[
        "plan",
        dataset.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]);
    let dir = work.join(dataset.file_name().unwrap());
    let read = |name: &str| -> toml::Value {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        rounded(text.parse().unwrap())
    };
    let mut fingerprint = read("fingerprint.toml");
    fingerprint.as_table_mut().unwrap().remove("stamp");
    (fingerprint, read("plans.toml"))
}

/// `value` with every float rounded to 12 significant digits.
fn rounded(value: toml::Value) -> toml::Value {
    use toml::Value;
    match value {
        Value::Float(x) => Value::Float(format!("{x:.11e}").parse().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(rounded).collect()),
        Value::Table(table) => {
            Value::Table(table.into_iter().map(|(k, v)| (k, rounded(v))).collect())
        }
        other => other,
    }
}

#[test]
fn the_same_scans_give_the_same_fingerprint_and_plans_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let nifti = autoseg_fixtures::write("ct3d", &tmp.path().join("nifti")).unwrap();
    let (fingerprint, plans) = plan(&nifti, &tmp.path().join("work-nifti"));
    for ending in [".nrrd", ".nhdr", ".mha", ".mhd"] {
        let name = ending.trim_start_matches('.');
        let dataset = convert(&nifti, &tmp.path().join(name), ending);
        let (f, p) = plan(&dataset, &tmp.path().join(format!("work-{name}")));
        assert_eq!(f, fingerprint, "{ending}: fingerprint");
        assert_eq!(p, plans, "{ending}: plans");
    }
}

#[test]
fn an_nrrd_dataset_trains_and_predicts_masks_in_its_inputs_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let nifti = autoseg_fixtures::write("ct3d", &tmp.path().join("nifti")).unwrap();
    let dataset = convert(&nifti, &tmp.path().join("nrrd"), ".nrrd");
    let work = tmp.path().join("work");
    train_2d(&dataset, &work);
    let pred = tmp.path().join("pred");
    let images_ts = dataset.join("imagesTs");
    predict(
        &images_ts,
        &pred,
        &work.join(dataset.file_name().unwrap()),
        &[],
    );
    // DICOM series in: a folder of series folders, a mask per series in the model's format
    // with the series' geometry (as SimpleITK's series reader gives it).
    let dicom = tmp.path().join("dicom");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/data/dicom");
    for series in ["ct_int16", "oblique"] {
        std::fs::create_dir_all(dicom.join(series)).unwrap();
        for entry in std::fs::read_dir(fixtures.join(series)).unwrap() {
            let file = entry.unwrap().path();
            std::fs::copy(&file, dicom.join(series).join(file.file_name().unwrap())).unwrap();
        }
    }
    let pred_dicom = tmp.path().join("pred-dicom");
    let model = work.join(dataset.file_name().unwrap());
    predict(&dicom, &pred_dicom, &model, &["--dicom-seg"]);
    for series in ["ct_int16", "oblique"] {
        let source = formats::read_dicom_series(&dicom.join(series))
            .unwrap()
            .image;
        let mask = formats::read_image(&pred_dicom.join(format!("{series}.nrrd"))).unwrap();
        assert_eq!(mask.dims, source.dims, "{series}");
        assert_eq!(mask.spacing, source.spacing, "{series}");
        assert_eq!(mask.origin, source.origin, "{series}");
        assert_eq!(mask.direction, source.direction, "{series}");
        // --dicom-seg: a Segmentation object beside the mask, referring to the source series.
        let seg = std::fs::read(pred_dicom.join(format!("{series}.seg.dcm"))).unwrap();
        assert_eq!(&seg[128..132], b"DICM", "{series}");
        let info = formats::read_dicom_series(&dicom.join(series))
            .unwrap()
            .info;
        for uid in [
            "1.2.840.10008.5.1.4.1.1.66.4",
            info.series_instance_uid.as_str(),
            info.frame_of_reference_uid.as_str(),
        ] {
            let found = seg.windows(uid.len()).any(|w| w == uid.as_bytes());
            assert!(found, "{series}: the SEG does not hold {uid}");
        }
    }

    for (case, input, mask) in predicted_cases(&images_ts, &pred, ".nrrd") {
        let source = formats::read_image(&input).unwrap();
        let mask = formats::read_image(&mask).unwrap();
        // What SimpleITK would report: the input's size, spacing, origin and direction, exactly.
        assert_eq!(mask.dims, source.dims, "{case}");
        assert_eq!(mask.spacing, source.spacing, "{case}");
        assert_eq!(mask.origin, source.origin, "{case}");
        assert_eq!(mask.direction, source.direction, "{case}");
        assert_eq!(mask.element, formats::ElementType::U8, "{case}");
    }
    let out = autoseg(&[
        "evaluate",
        "--pred",
        pred.to_str().unwrap(),
        "--ref",
        dataset.join("labelsTs").to_str().unwrap(),
        "--dataset-json",
        dataset.join("dataset.json").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Dice"));
    assert!(pred.join("summary.json").is_file());
}

#[test]
fn a_png_dataset_trains_and_predicts_png_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = autoseg_fixtures::write_as("demo2d", &tmp.path().join("raw"), ".png").unwrap();
    let work = tmp.path().join("work");
    assert!(train_2d(&dataset, &work).contains("cross-validation"));
    let pred = tmp.path().join("pred");
    let images_ts = dataset.join("imagesTs");
    predict(
        &images_ts,
        &pred,
        &work.join(dataset.file_name().unwrap()),
        &[],
    );
    for (case, input, mask) in predicted_cases(&images_ts, &pred, ".png") {
        let source = formats::read_natural(&input).unwrap();
        let mask = formats::read_natural(&mask).unwrap();
        assert_eq!(mask.dims, source.dims, "{case}");
        assert_eq!(
            (mask.components, mask.element),
            (1, formats::ElementType::U8)
        );
    }
}

/// autoseg's planner on `demo2d` stored as PNG against the plans nnU-Net 2.8.1 made of the same
/// files (`scripts/make_nnunet_png_plans.sh`, NaturalImage2DIO): every number equal, the
/// network's features included (nothing was edited).
#[test]
fn a_png_dataset_plans_as_nnunet_plans_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = autoseg_fixtures::write_as("demo2d", &tmp.path().join("raw"), ".png").unwrap();
    let work = tmp.path().join("work");
    autoseg(&[
        "plan",
        dataset.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]);
    let ours = Plans::read(&work.join(dataset.file_name().unwrap()).join("plans.toml")).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/data/nnunet/png_plans/nnUNetPlans.json");
    let nnunet = Plans::from_nnunet_json(&std::fs::read_to_string(golden).unwrap()).unwrap();
    let names: Vec<&String> = ours.configurations.keys().collect();
    assert_eq!(
        names,
        ["2d"],
        "nnU-Net plans no 3-D configuration for 2-D images"
    );
    crate::plan::assert_same_plans(&ours, &nnunet);
}

#[test]
fn every_other_format_goes_through_plan_and_train_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    for (fixture, ending) in [
        // `.nii` is every other test's format; `.nhdr`/`.mhd` (a header and a data file) on
        // the small 2-D fixture.
        ("ct3d", ".mha"),
        ("ct3d", ".gipl"),
        ("demo2d", ".nhdr"),
        ("demo2d", ".mhd"),
        ("demo2d", ".bmp"),
        ("demo2d", ".tif"),
        ("demo3d", ".tiff"),
    ] {
        let name = ending.trim_start_matches('.');
        let raw = tmp.path().join(format!("raw-{name}"));
        let dataset = autoseg_fixtures::write_as(fixture, &raw, ending).unwrap();
        let work = tmp.path().join(format!("work-{name}"));
        train_2d(&dataset, &work);
        let pred = tmp.path().join(format!("pred-{name}"));
        let images_ts = dataset.join("imagesTs");
        predict(
            &images_ts,
            &pred,
            &work.join(dataset.file_name().unwrap()),
            &[],
        );
        for (case, input, mask) in predicted_cases(&images_ts, &pred, ending) {
            let source = read_image(&input).unwrap();
            let mask = read_label_map(&mask).unwrap();
            assert_eq!(mask.data_shape(), source.data_shape(), "{ending}: {case}");
            assert_eq!(
                mask.geometry.spacing(),
                source.geometry.spacing(),
                "{ending}: {case}"
            );
            assert!(
                mask.geometry.compare(&source.geometry).is_match(),
                "{ending}: {case}"
            );
        }
    }
}

/// Copies the folder tree at `from` into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A dataset whose images are DICOM series folders (`imagesTr/<case>_0000/`) and whose labels
/// are NIfTI files SimpleITK wrote on each series' grid (`scripts/make_dicom_dataset.py`):
/// verify accepts it (autoseg's series geometry is SimpleITK's), plan-and-train trains on it,
/// and predict of `imagesTs`' series folders writes NIfTI masks with each series' geometry
/// (that of SimpleITK's labels).
#[test]
fn a_dataset_of_dicom_series_folders_trains_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("raw/Dataset950_DicomCt");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/data/dicom_dataset/Dataset950_DicomCt"),
        &root,
    );
    let verify = autoseg(&["verify", root.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("dataset OK (0 warning(s))"), "{report}");
    let work = tmp.path().join("work");
    assert!(train_2d(&root, &work).contains("cross-validation"));
    let pred = tmp.path().join("pred");
    let images_ts = root.join("imagesTs");
    predict(&images_ts, &pred, &work.join("Dataset950_DicomCt"), &[]);
    for name in ["ct_008", "ct_009"] {
        let series = read_image(&images_ts.join(format!("{name}_0000"))).unwrap();
        let mask = read_label_map(&pred.join(format!("{name}.nii.gz"))).unwrap();
        let reference = read_label_map(&root.join(format!("labelsTs/{name}.nii.gz"))).unwrap();
        assert_eq!(mask.data_shape(), series.data_shape(), "{name}");
        assert!(mask.geometry.compare(&series.geometry).is_match(), "{name}");
        assert!(
            mask.geometry.compare(&reference.geometry).is_match(),
            "{name}"
        );
    }
}
