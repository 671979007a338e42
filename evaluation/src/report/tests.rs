//! Tests of the whole report on a tiny dataset written into a temporary folder: missing parts
//! become notes, plan values reach the plan table, results and overlays are embedded.

use std::path::{Path, PathBuf};

use autoseg_preprocessing::{
    write_image, write_label_map, Geometry, HeaderGeometry, Shape3, Spacing, Volume,
};
use ndarray::{s, Array4};

use super::html::png_data_uri;
use super::*;
use crate::{evaluate_cases, CaseInput, EvaluationSettings, LabelValue};

const SHAPE: [usize; 3] = [6, 10, 12];

/// `plans.toml` as `autoseg plan` writes it for the demo3d fixture, plus a configuration that
/// inherits from 3d_fullres with another batch size.
const PLANS_TOML: &str = r#"schema_version = 1
dataset_name = "Dataset007_Tiny"
planner = "default"
gpu_memory_target_gb = 8.0
transpose_forward = [0, 1, 2]
transpose_backward = [0, 1, 2]

[foreground_intensity_properties.0]
mean = 153.7
median = 152.6
std = 17.3
min = 102.6
max = 276.9
percentile_00_5 = 117.5
percentile_99_5 = 242.7

[configurations.3d_fullres]
spacing = [1.5, 1.0, 1.0]
patch_size = [56, 48, 64]
batch_size = 2
median_image_size_in_voxels = [49.0, 50.5, 55.0]
normalization_schemes = ["ZScoreNormalization"]
use_mask_for_norm = [true]
batch_dice = false

[configurations.3d_fullres.resampling_data]
order = 3
order_z = 0
force_separate_z = "auto"

[configurations.3d_fullres.resampling_seg]
order = 1
order_z = 0
force_separate_z = "auto"

[configurations.3d_fullres.resampling_probabilities]
order = 1
order_z = 0
force_separate_z = "auto"

[configurations.3d_fullres.architecture]
network = "PlainConvUNet"
n_stages = 4
features_per_stage = [32, 64, 128, 256]
kernel_sizes = [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
n_conv_per_stage = [2, 2, 2, 2]
n_conv_per_stage_decoder = [2, 2, 2]

[configurations.3d_bs7]
inherits_from = "3d_fullres"
batch_size = 7
"#;

fn geometry() -> Geometry {
    let header = HeaderGeometry::axis_aligned(Spacing([2.0, 1.0, 1.0]), [0.0; 3]);
    Geometry::new(Shape3(SHAPE), header)
}

fn labels() -> Array4<u16> {
    let mut labels = Array4::<u16>::zeros((1, SHAPE[0], SHAPE[1], SHAPE[2]));
    labels.slice_mut(s![0, 1..5, 2..8, 3..9]).fill(1);
    labels[[0, 3, 5, 6]] = 2;
    labels
}

/// `Dataset007_Tiny`: two 1-channel cases of 6 x 10 x 12 voxels at 2 x 1 x 1 mm, an intensity
/// ramp, organ (1) on a block and a one-voxel lesion (2).
fn write_dataset(parent: &Path) -> PathBuf {
    let root = parent.join("Dataset007_Tiny");
    for dir in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let json = r#"{"channel_names": {"0": "MRI"}, "labels": {"background": 0, "organ": 1,
        "lesion": 2}, "numTraining": 2, "file_ending": ".nii.gz"}"#;
    std::fs::write(root.join("dataset.json"), json).unwrap();
    let image = Volume {
        data: Array4::from_shape_fn((1, SHAPE[0], SHAPE[1], SHAPE[2]), |(_, z, y, x)| {
            (10 * z + y + x) as f32
        }),
        geometry: geometry(),
    };
    let reference = Volume {
        data: labels(),
        geometry: geometry(),
    };
    for id in ["case_000", "case_001"] {
        write_image(&root.join(format!("imagesTr/{id}_0000.nii.gz")), &image, 1).unwrap();
        write_label_map(&root.join(format!("labelsTr/{id}.nii.gz")), &reference, 1).unwrap();
    }
    root
}

/// Fold 0 of 3d_fullres: curves, log, a checkpoint, case_000 predicted perfectly and its
/// summary. Fold 1: case_001 predicted with a wrong shape, nothing else.
fn write_results(work: &Path) -> Vec<u8> {
    let fold0 = work.join("results/3d_fullres/fold_0");
    std::fs::create_dir_all(fold0.join("validation")).unwrap();
    let curve = RgbImage::filled(4, 3, [1, 2, 3]).encode_png();
    std::fs::write(fold0.join("progress.png"), &curve).unwrap();
    let log: String = (0..20)
        .map(|e| format!("epoch {e}: train loss -0.{e}\n"))
        .collect();
    std::fs::write(fold0.join("train.log"), log).unwrap();
    std::fs::write(fold0.join("checkpoint_latest.toml"), "epoch = 19\n").unwrap();
    let prediction = Volume {
        data: labels(),
        geometry: geometry(),
    };
    write_label_map(&fold0.join("validation/case_000.nii.gz"), &prediction, 1).unwrap();
    let reference = labels();
    let case = CaseInput {
        prediction_file: "case_000.nii.gz".into(),
        reference_file: "case_000.nii.gz".into(),
        prediction: reference.slice(s![0, .., .., ..]),
        reference: reference.slice(s![0, .., .., ..]),
        spacing: [2.0, 1.0, 1.0],
    };
    let settings = EvaluationSettings {
        classes: vec![LabelValue::Single(1), LabelValue::Single(2)],
        ignore_label: None,
        surface: None,
    };
    let summary = evaluate_cases(&[case], &settings).unwrap();
    summary
        .write(&fold0.join("validation/summary.json"))
        .unwrap();

    let fold1 = work.join("results/3d_fullres/fold_1/validation");
    std::fs::create_dir_all(&fold1).unwrap();
    let small = Volume {
        data: Array4::<u16>::zeros((1, 2, 2, 2)),
        geometry: Geometry::new(
            Shape3([2, 2, 2]),
            HeaderGeometry::axis_aligned(Spacing([1.0; 3]), [0.0; 3]),
        ),
    };
    write_label_map(&fold1.join("case_001.nii.gz"), &small, 1).unwrap();
    curve
}

#[test]
fn missing_parts_are_noted_rather_than_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = write_dataset(tmp.path());
    let work = tmp.path().join("work/Dataset007_Tiny");
    let path = write_report(&dataset, &WorkLayout::new(&work)).unwrap();
    assert_eq!(path, work.join("report/index.html"));
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<h1>autoseg report: Dataset007_Tiny</h1>"));
    for note in [
        "no fingerprint.toml yet",
        "no plans.toml yet (run `autoseg plan`)",
        "no configurations planned or trained yet",
        "no training results yet, so no metrics",
        "no results/best.toml yet (run `autoseg find-best`)",
        "no training results yet, so no validation cases",
    ] {
        assert!(
            html.contains(&super::html::escape(note)),
            "missing note {note:?}"
        );
    }
    assert!(html.contains("<td>training cases</td><td class=\"num\">2</td>"));
    assert!(html.contains("<td>channels</td><td>0: MRI</td>"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));

    std::fs::write(work.join("plans.toml"), "schema_version = 1\nbogus").unwrap();
    let html = render_report(&dataset, &WorkLayout::new(&work));
    assert!(
        html.contains("plans.toml: cannot parse"),
        "broken plans are named"
    );
    let html = render_report(&tmp.path().join("no_such_dataset"), &WorkLayout::new(&work));
    assert!(html.contains("<h1>autoseg report: no_such_dataset</h1>"));
    assert!(html.contains("the dataset folder cannot be read"));
}

#[test]
fn plan_table_shows_the_values_of_plans_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = write_dataset(tmp.path());
    let work = tmp.path().join("work/Dataset007_Tiny");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("plans.toml"), PLANS_TOML).unwrap();
    let html = render_report(&dataset, &WorkLayout::new(&work));
    let row = |cells: &[&str]| {
        let tds: String = cells.iter().map(|c| format!("<td>{c}</td>")).collect();
        tds
    };
    // Columns are 3d_bs7 then 3d_fullres (sorted names); 3d_bs7 inherits everything else.
    assert!(html.contains("<th>configuration</th><th>3d_bs7</th><th>3d_fullres</th>"));
    for expected in [
        row(&["inherits from", "3d_fullres", "-"]),
        row(&["spacing (z, y, x) mm", "[1.5, 1.0, 1.0]", "[1.5, 1.0, 1.0]"]),
        row(&["patch size", "[56, 48, 64]", "[56, 48, 64]"]),
        row(&["batch size", "7", "2"]),
        row(&["stages", "4", "4"]),
        row(&[
            "features per stage",
            "[32, 64, 128, 256]",
            "[32, 64, 128, 256]",
        ]),
        row(&[
            "strides",
            "[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]",
            "[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]",
        ]),
        row(&[
            "normalization",
            "[&quot;ZScoreNormalization&quot;]",
            "[&quot;ZScoreNormalization&quot;]",
        ]),
        row(&["network", "PlainConvUNet", "PlainConvUNet"]),
    ] {
        assert!(html.contains(&expected), "plan table lacks {expected}");
    }
    assert!(html.contains("no training results yet for 3d_fullres"));
    assert!(html.contains("no training results yet for 3d_bs7"));
}

#[test]
fn results_curves_metrics_and_overlays_are_embedded() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = write_dataset(tmp.path());
    let work = tmp.path().join("work/Dataset007_Tiny");
    let curve = write_results(&work);
    let html = render_report(&dataset, &WorkLayout::new(&work));
    assert!(
        html.contains(&png_data_uri(&curve)),
        "progress.png is inlined"
    );
    assert!(html.contains("3d_fullres, fold 0: checkpoints: latest"));
    assert!(html.contains("epoch 19: train loss -0.19</pre>"));
    assert!(!html.contains("epoch 7:"), "only the log's tail is shown");
    assert!(html.contains("3d_fullres, fold 1: no progress.png yet"));
    assert!(html.contains("3d_fullres, cross-validation (all folds): no summary.json yet"));
    assert!(html.contains("3d_fullres, fold 1: no summary.json yet"));
    // A perfect prediction: Dice 1 for both classes, with their dataset.json names.
    assert!(html.contains("<td>1 (organ)</td><td class=\"num\">1.0000 ± 0.0000</td>"));
    assert!(html.contains("<td>2 (lesion)</td><td class=\"num\">1.0000 ± 0.0000</td>"));
    assert!(html.contains("<td>foreground mean</td><td class=\"num\">1.0000</td>"));
    // case_000: 3 views x 3 panels; case_001: its prediction has the wrong shape, so 3 x 2.
    assert_eq!(html.matches("<img class=\"panel\"").count(), 15);
    assert!(html.contains(
        "<h4>case_000 (3d_fullres, fold 0)</h4>\n<p>Dice (fold summary.json): 1 (organ) 1.0000, \
         2 (lesion) 1.0000</p>"
    ));
    // Fold 1 has no summary.json, so no Dice line; the table says why the prediction is absent.
    assert!(html.contains("<h4>case_001 (3d_fullres, fold 1)</h4>\n<table>"));
    assert!(html.contains("shape [2, 2, 2] differs from the image&#39;s [6, 10, 12]"));
    // The foreground is the block z 1..5, y 2..8, x 3..9: centroid (2.5, 4.5, 5.5) rounds to
    // (3, 5, 6).
    assert!(html.contains("<td>axial (slice 3)</td>"));
    assert!(html.contains("<td>coronal (slice 5)</td>"));
    assert!(html.contains("<td>sagittal (slice 6)</td>"));
    assert!(
        html.contains("rgb(230,25,75)\"></span>organ"),
        "the legend shows label colours"
    );
}
