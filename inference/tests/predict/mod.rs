//! The predictor end to end on the CPU: model folders written here with a UNet whose top head
//! has zero weights and a bias (a model that predicts one class everywhere, exactly), NIfTI
//! inputs with oblique and anisotropic geometry, export to the input's grid, fold ensembles,
//! the final validation of a fold, and the files around them.

use std::path::{Path, PathBuf};

use autoseg_evaluation::{read_best, FindBestError};
use autoseg_inference::{
    case_id_of, discover_input_cases, validate_fold, PredictError, PredictOptions, Predictor,
    ValidationJob,
};
use autoseg_network::checkpoint::{
    load_checkpoint, save_checkpoint, CheckpointKind, CheckpointMeta, FileDigest, LossScalerState,
    TrainLog, CHECKPOINT_SCHEMA_VERSION,
};
use autoseg_network::UNet;
use autoseg_planner::{plan, DatasetInfo, Fingerprint, ForegroundIntensityProperties, Plans};
use autoseg_planner::{ConfigurationEntry, LabelEntry, LabelValue, PlannerSettings, WorkLayout};
use autoseg_preprocessing::cache::{case_path, prev_stage_path, read_prev_stage_seg, CachedCase};
use autoseg_preprocessing::{
    read_dataset_json, read_image, read_label_map, write_image, write_label_map, Dataset, Geometry,
    HeaderGeometry, Image, LabelMap, PreprocessSettings, Shape3,
};
use ndarray::{s, Array4};
use tch::{nn, Device, Kind, Tensor};

const CONFIG: &str = "3d_fullres";

/// Plans for a one-channel dataset with labels 0, 1, 2 at 1 mm, its 3d_fullres patch cut to
/// 16³ (4 stages, strides 2: still divisible) so that the CPU tests stay fast.
fn tiny_plans(transpose: [usize; 3]) -> Plans {
    let stats = ForegroundIntensityProperties {
        mean: 100.0,
        median: 98.0,
        std: 20.0,
        min: 0.0,
        max: 400.0,
        percentile_00_5: 10.0,
        percentile_99_5: 300.0,
    };
    let fingerprint =
        Fingerprint::new(vec![[1.0; 3]; 20], vec![[36, 50, 35]; 20], 1.0, vec![stats]).unwrap();
    let label = |name: &str, v| LabelEntry {
        name: name.into(),
        value: LabelValue::Single(v),
    };
    let labels = vec![label("background", 0), label("a", 1), label("b", 2)];
    let info =
        DatasetInfo::new("Dataset001_Tiny", vec!["MRI".into()], labels, 20, ".nii.gz").unwrap();
    let mut plans = plan(&fingerprint, &info, &PlannerSettings::nnunet_default()).unwrap();
    let entry = plans.configurations.get_mut(CONFIG).unwrap();
    entry.patch_size = Some(vec![16, 16, 16]);
    let mut backward = [0; 3];
    for (i, &axis) in transpose.iter().enumerate() {
        backward[axis] = i;
    }
    plans.transpose_forward = transpose;
    plans.transpose_backward = backward;
    plans
}

const DATASET_JSON: &str = r#"{"channel_names": {"0": "MRI"},
 "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 2, "file_ending": ".nii.gz"}"#;

/// Writes fold `fold` of a model whose logits are `bias` everywhere: the top head's weights
/// are zero (every other parameter keeps its random initialisation).
fn write_constant_fold(model_dir: &WorkLayout, plans: &Plans, fold: &str, bias: [f64; 3]) {
    write_constant_fold_of(model_dir, plans, CONFIG, 1, fold, bias);
}

/// [`write_constant_fold`] for configuration `name` of a network taking `in_channels`.
fn write_constant_fold_of(
    model_dir: &WorkLayout,
    plans: &Plans,
    name: &str,
    in_channels: usize,
    fold: &str,
    bias: [f64; 3],
) {
    let config = plans.resolve(name).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    UNet::new(&vs.root(), config.unet_spec(), in_channels as i64, 3).unwrap();
    let top = config.unet_spec().stages.len() - 2;
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tch::no_grad(|| {
        for (name, t) in &mut named {
            if *name == format!("decoder.seg_layers.{top}.weight") {
                let _ = t.zero_();
            } else if *name == format!("decoder.seg_layers.{top}.bias") {
                t.copy_(&Tensor::from_slice(&bias).to_kind(Kind::Float));
            }
        }
    });
    let dir = model_dir.fold(name, fold);
    std::fs::create_dir_all(&dir).unwrap();
    let placeholder = FileDigest::of(&[]);
    let meta = CheckpointMeta {
        schema_version: CHECKPOINT_SCHEMA_VERSION,
        configuration: name.to_string(),
        fold: fold.to_string(),
        epochs_done: 1,
        total_epochs: 1,
        seed: "0".into(),
        in_channels,
        n_classes: 3,
        ignore_label: None,
        best_ema: None,
        scaler: LossScalerState {
            scale: 1.0,
            growth_tracker: 0,
        },
        weights: placeholder.clone(),
        optimizer: placeholder,
        log: TrainLog::default(),
        mirror_axes: None,
        training: None,
        interrupted: None,
        plans: plans.clone(),
    };
    save_checkpoint(&dir, CheckpointKind::Final, &named, &[], meta).unwrap();
}

/// An oblique header: rotated 30° about z and 20° about x, voxel sizes `(sz, sy, sx)`, an
/// offset; sform only (qform unset), so the sform is the affine.
fn oblique_header(spacing: [f64; 3]) -> HeaderGeometry {
    let [sz, sy, sx] = spacing;
    let (a, b) = (30f64.to_radians(), 20f64.to_radians());
    let rz = [
        [a.cos(), -a.sin(), 0.0],
        [a.sin(), a.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, b.cos(), -b.sin()],
        [0.0, b.sin(), b.cos()],
    ];
    let vox = [sx, sy, sz];
    let offset = [-12.5, 40.25, 7.0];
    let srow = std::array::from_fn(|r| {
        let mut row = [0.0; 4];
        for (c, v) in vox.iter().enumerate() {
            let rot: f64 = (0..3).map(|k| rz[r][k] * rx[k][c]).sum();
            // NIfTI-1 stores f32: round here so the header round-trips exactly.
            row[c] = f64::from((rot * v) as f32);
        }
        row[3] = offset[r];
        row
    });
    HeaderGeometry {
        pixdim: [1.0, sx, sy, sz, 0.0, 0.0, 0.0, 0.0],
        xyzt_units: 2,
        qform_code: 0,
        sform_code: 1,
        quatern: [0.0; 3],
        qoffset: [0.0; 3],
        srow,
    }
}

/// Writes an image of `shape` that is nonzero exactly in `inside` (z, y, x ranges).
fn write_case_image(
    path: &Path,
    shape: [usize; 3],
    header: HeaderGeometry,
    inside: [std::ops::Range<usize>; 3],
) -> Image {
    let mut data = Array4::<f32>::zeros((1, shape[0], shape[1], shape[2]));
    let [z, y, x] = inside;
    data.slice_mut(s![0, z, y, x]).indexed_iter_mut().for_each(
        |((a, b, c), v): ((usize, usize, usize), &mut f32)| *v = 50.0 + (7 * a + 3 * b + c) as f32,
    );
    let image = Image {
        data,
        geometry: Geometry::new(Shape3(shape), header),
    };
    write_image(path, &image, 1).unwrap();
    image
}

/// Half-open `(z, y, x)` ranges of a box.
type Box3 = [std::ops::Range<usize>; 3];

fn inside(ranges: &Box3, z: usize, y: usize, x: usize) -> bool {
    ranges[0].contains(&z) && ranges[1].contains(&y) && ranges[2].contains(&x)
}

fn folds(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn constant_class_exports_the_inputs_grid_for_oblique_anisotropic_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = WorkLayout::new(dir.path().join("model"));
    // Transposed axes exercise the transpose and its inverse.
    let plans = tiny_plans([2, 0, 1]);
    write_constant_fold(&model, &plans, "0", [0.0, 1.0, 5.0]);
    let predictor = Predictor::load(&model, CONFIG, &folds(&["0"]), Device::Cpu).unwrap();
    // Anisotropic (3 mm along z, resampled to 1 mm) and oblique; and an isotropic oblique one
    // whose nonzero region leaves a border (zeros outside the crop).
    let cases: [([usize; 3], [f64; 3], Box3); 2] = [
        ([7, 20, 18], [3.0, 0.75, 0.75], [0..7, 0..20, 0..18]),
        ([12, 14, 17], [1.0, 1.0, 1.0], [2..9, 3..14, 1..12]),
    ];
    for (i, (shape, spacing, ranges)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case{i}_0000.nii.gz"));
        let image = write_case_image(&path, shape, oblique_header(spacing), ranges.clone());
        let prediction = predictor.predict_case(&[path]).unwrap();
        assert_eq!(prediction.case, format!("case{i}"));
        assert_eq!(prediction.labels.geometry, image.geometry);
        assert_eq!(
            prediction.labels.data.dim(),
            (1, shape[0], shape[1], shape[2])
        );
        for ((_, z, y, x), &label) in prediction.labels.data.indexed_iter() {
            let expected = if inside(&ranges, z, y, x) { 2 } else { 0 };
            assert_eq!(label, expected, "case {i} voxel {:?}", (z, y, x));
        }
        // Written and read back: the input's exact affine and header.
        let out = dir.path().join("out");
        let files = predictor.write_prediction(prediction, &out, None).unwrap();
        assert_eq!(files, vec![out.join(format!("case{i}.nii.gz"))]);
        let back = read_label_map(&files[0]).unwrap();
        assert_eq!(back.geometry.affine(), image.geometry.affine());
        assert_eq!(back.geometry.header(), image.geometry.header());
        assert_eq!(back.geometry.shape(), image.geometry.shape());
    }
}

#[test]
fn a_failed_checkpoint_save_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = WorkLayout::new(dir.path().join("model"));
    write_constant_fold(&model, &tiny_plans([0, 1, 2]), "0", [0.0, 1.0, 0.0]);
    let saved = load_checkpoint(&model.fold(CONFIG, "0"), CheckpointKind::Final).unwrap();
    // The metadata's place is taken by a non-empty folder: the last rename fails after both
    // tensor files and the metadata were written to temporary files.
    let target = dir.path().join("target");
    std::fs::create_dir_all(target.join("checkpoint_final.toml/keep")).unwrap();
    let kind = CheckpointKind::Final;
    let err = save_checkpoint(&target, kind, &saved.weights, &saved.buffers, saved.meta);
    assert!(err.is_err());
    let mut names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // The tensor files were renamed into place (the set is torn; the digest check refuses
    // it), but nothing temporary is left.
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
}

#[test]
fn logits_beyond_float16_need_the_float32_accumulator() {
    let dir = tempfile::tempdir().unwrap();
    let model = WorkLayout::new(dir.path().join("model"));
    let plans = tiny_plans([0, 1, 2]);
    // 1e5 is past float16's largest finite value (65504).
    write_constant_fold(&model, &plans, "0", [0.0, 1e5, 0.0]);
    let path = dir.path().join("c_0000.nii.gz");
    write_case_image(
        &path,
        [9, 10, 11],
        oblique_header([1.0; 3]),
        [0..9, 0..10, 0..11],
    );
    let mut predictor = Predictor::load(&model, CONFIG, &folds(&["0"]), Device::Cpu).unwrap();
    let err = predictor
        .predict_case(std::slice::from_ref(&path))
        .unwrap_err();
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    assert!(
        text.contains("float16 overflow") && text.contains("--accumulate-fp32"),
        "{text}"
    );
    predictor
        .set_options(PredictOptions {
            accumulate_fp32: true,
            ..PredictOptions::nnunet()
        })
        .unwrap();
    let prediction = predictor.predict_case(&[path]).unwrap();
    assert!(prediction.labels.data.iter().all(|&l| l == 1));
}

#[test]
fn fold_ensembles_average_logits_and_probabilities_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = WorkLayout::new(dir.path().join("model"));
    let plans = tiny_plans([0, 1, 2]);
    // Powers of two and small integers: the float16 window blends them exactly.
    write_constant_fold(&model, &plans, "0", [0.0, 1.0, 4.0]);
    write_constant_fold(&model, &plans, "1", [0.0, 1.0, 4.0]);
    write_constant_fold(&model, &plans, "2", [0.0, 8.0, 0.0]);
    std::fs::write(model.dataset_json(), DATASET_JSON).unwrap();
    let path = dir.path().join("c_0000.nii.gz");
    let ranges = [1..9, 2..10, 0..11];
    write_case_image(
        &path,
        [10, 12, 11],
        oblique_header([1.0; 3]),
        ranges.clone(),
    );
    let load = |f: &[&str]| {
        let mut p = Predictor::load(&model, CONFIG, &folds(f), Device::Cpu).unwrap();
        p.set_options(PredictOptions {
            use_mirroring: false,
            save_probabilities: true,
            ..PredictOptions::nnunet()
        })
        .unwrap();
        p.predict_case(std::slice::from_ref(&path)).unwrap()
    };
    let one = load(&["0"]);
    // An ensemble of one fold equals that fold; of two identical folds, too (mean of equal
    // float16 logits is exact).
    assert_eq!(load(&["0", "1"]), one);
    // Folds 0 and 2: mean logits (0, 4.5, 2): class 1 inside the crop.
    let mixed = load(&["0", "2"]);
    let p = one.probabilities.as_ref().unwrap();
    let e = [1.0f64, 1f64.exp(), 4f64.exp()];
    let softmax_2 = (e[2] / e.iter().sum::<f64>()) as f32;
    for ((_, z, y, x), &label) in mixed.labels.data.indexed_iter() {
        let fg = inside(&ranges, z, y, x);
        assert_eq!(label, if fg { 1 } else { 0 });
        assert_eq!(one.labels.data[[0, z, y, x]], if fg { 2 } else { 0 });
        // Outside the crop: background probability 1.
        let expected = if fg {
            [None, None, Some(softmax_2)]
        } else {
            [Some(1.0), Some(0.0), Some(0.0)]
        };
        for (c, e) in expected.iter().enumerate() {
            if let Some(e) = e {
                assert!((p[[c, z, y, x]] - e).abs() < 1e-6, "{c} {:?}", (z, y, x));
            }
        }
    }
    let out = dir.path().join("out");
    let files = Predictor::load(&model, CONFIG, &folds(&["0"]), Device::Cpu)
        .unwrap()
        .write_prediction(one.clone(), &out, None)
        .unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["c.nii.gz", "c.npz", "c.props.toml"]);
    let read = autoseg_evaluation::read_probabilities(&files[1]).unwrap();
    assert_eq!(&read, one.probabilities.as_ref().unwrap());
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = WorkLayout::new(dir.path().join("model"));
    let plans = tiny_plans([0, 1, 2]);
    write_constant_fold(&model, &plans, "0", [0.0, 0.0, 1.0]);
    let missing = Predictor::load(&model, CONFIG, &folds(&["0", "3"]), Device::Cpu);
    let expected = model.fold(CONFIG, "3").join("checkpoint_final.toml");
    assert!(matches!(&missing, Err(PredictError::MissingCheckpoint { path }) if *path == expected));
    assert!(matches!(
        Predictor::load(&model, CONFIG, &[], Device::Cpu),
        Err(PredictError::NoFolds)
    ));
    // Weights that do not fit the network.
    let weights = model.fold(CONFIG, "0").join("checkpoint_final.safetensors");
    let one = [(
        "x".to_string(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    )];
    Tensor::write_safetensors(&one, &weights).unwrap();
    let err = Predictor::load(&model, CONFIG, &folds(&["0"]), Device::Cpu)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("checkpoint_final.safetensors"),
        "{err}"
    );
    // A flipped byte in the weights: refused by the checkpoint's digest, naming the file.
    write_constant_fold(&model, &plans, "0", [0.0, 0.0, 1.0]);
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let err = Predictor::load(&model, CONFIG, &folds(&["0"]), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("checkpoint_final.safetensors") && err.contains("does not match its metadata"),
        "{err}"
    );
    write_constant_fold(&model, &plans, "0", [0.0, 0.0, 1.0]);
    let mut predictor = Predictor::load(&model, CONFIG, &folds(&["0"]), Device::Cpu).unwrap();
    let bad_step = predictor.set_options(PredictOptions {
        step: 1.5,
        ..PredictOptions::nnunet()
    });
    assert!(matches!(bad_step, Err(PredictError::Options(_))));
}

#[test]
fn input_cases_and_best_choice_are_read_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "b_0001.nii.gz",
        "b_0000.nii.gz",
        "a_0000.nii.gz",
        "notes.txt",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let cases = discover_input_cases(dir.path(), ".nii.gz").unwrap();
    let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b"]);
    let b: Vec<PathBuf> = ["b_0000.nii.gz", "b_0001.nii.gz"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    assert_eq!(cases[1].images, b);
    std::fs::write(dir.path().join("bad.nii.gz"), b"").unwrap();
    assert!(matches!(
        discover_input_cases(dir.path(), ".nii.gz"),
        Err(PredictError::Misnamed { path, .. }) if path.ends_with("bad.nii.gz")
    ));
    assert_eq!(
        case_id_of(Path::new("/x/liver_7_0000.nii.gz"), ".nii.gz"),
        "liver_7"
    );
    assert_eq!(case_id_of(Path::new("liver.nii.gz"), ".nii.gz"), "liver");

    let best = WorkLayout::new(dir.path()).best();
    assert_eq!(read_best(&best).unwrap(), None);
    std::fs::create_dir_all(dir.path().join("results")).unwrap();
    std::fs::write(
        &best,
        "configuration = \"3d_fullres\"\n[postprocessing]\nsteps = [{ keep_largest_component_of = [1, 2] }]\n",
    )
    .unwrap();
    let choice = read_best(&best).unwrap().unwrap();
    assert_eq!(choice.configuration.as_deref(), Some("3d_fullres"));
    assert_eq!(
        choice.postprocessing.steps[0].keep_largest_component_of,
        vec![1, 2]
    );
    assert_eq!(choice.ensemble, vec!["3d_fullres".to_string()]);
    std::fs::write(&best, "ensemble = [\"2d\", \"3d_fullres\"]\n").unwrap();
    let choice = read_best(&best).unwrap().unwrap();
    assert_eq!((choice.configuration, choice.ensemble.len()), (None, 2));
    std::fs::write(&best, "[postprocessing]\nsteps = 3\n").unwrap();
    assert!(matches!(
        read_best(&best),
        Err(FindBestError::BestToml { .. })
    ));
}

/// A raw dataset of two 8 × 10 × 12 cases (spacing 2, 1, 1, oblique) nonzero in `ranges`, with
/// label 2 on the nonzero region except one slab (z = 1) of label 1.
fn write_tiny_raw(raw: &Path, ranges: &Box3) {
    std::fs::create_dir_all(raw.join("imagesTr")).unwrap();
    std::fs::create_dir_all(raw.join("labelsTr")).unwrap();
    std::fs::write(raw.join("dataset.json"), DATASET_JSON).unwrap();
    for case in ["t_001", "t_002"] {
        let header = oblique_header([2.0, 1.0, 1.0]);
        let image = write_case_image(
            &raw.join(format!("imagesTr/{case}_0000.nii.gz")),
            [8, 10, 12],
            header,
            ranges.clone(),
        );
        // Reference: label 2 on the nonzero region except one slab of label 1.
        let mut labels = image.data.mapv(|v| if v != 0.0 { 2u16 } else { 0 });
        labels
            .slice_mut(s![0, 1..2, .., ..])
            .mapv_inplace(|v| v.min(1));
        let labels = LabelMap {
            data: labels,
            geometry: image.geometry.clone(),
        };
        write_label_map(&raw.join(format!("labelsTr/{case}.nii.gz")), &labels, 1).unwrap();
    }
}

#[test]
fn final_validation_predicts_the_cache_and_writes_summary_json() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("Dataset001_Tiny");
    let work = WorkLayout::new(dir.path().join("work"));
    let ranges = [1..7, 2..9, 1..10];
    write_tiny_raw(&raw, &ranges);
    let dataset = Dataset::open(&raw).unwrap();
    let plans = tiny_plans([0, 1, 2]);
    let settings = PreprocessSettings::per_thread();
    autoseg_preprocessing::preprocess(&dataset, &plans, CONFIG, &work, &settings, &()).unwrap();
    write_constant_fold(&work, &plans, "0", [0.0, 1.0, 5.0]);
    let json = read_dataset_json(&raw.join("dataset.json")).unwrap();
    let cases = vec!["t_001".to_string(), "t_002".to_string()];
    let summary = validate_fold(&ValidationJob {
        layout: &work,
        configuration: CONFIG,
        fold: "0",
        cases: &cases,
        labels_dir: &raw.join("labelsTr"),
        dataset: &json,
        device: Device::Cpu,
    })
    .unwrap();
    let validation = work.validation(CONFIG, "0");
    for name in [
        "t_001.nii.gz",
        "t_001.npz",
        "t_001.props.toml",
        "summary.json",
    ] {
        assert!(validation.join(name).is_file(), "{name}");
    }
    // Prediction: label 2 on the whole nonzero region (6 x 7 x 9 = 378 voxels), of which the
    // reference labels one slab (7 x 9 = 63) as 1: label 2 Dice = 2*315 / (378 + 315).
    let dice_2 = 2.0 * 315.0 / (378.0 + 315.0);
    let fg = summary.foreground_dice();
    assert!((fg - (0.0 + dice_2) / 2.0).abs() < 1e-12, "{fg}");
    let written = read_image(&validation.join("t_002.nii.gz")).unwrap();
    let source = read_image(&raw.join("imagesTr/t_002_0000.nii.gz")).unwrap();
    assert_eq!(written.geometry, source.geometry);
}

/// [`tiny_plans`] with a `3d_lowres` stage at 2 mm and the `3d_cascade_fullres` stage after it,
/// laid out as nnU-Net writes them.
fn cascade_plans() -> Plans {
    let mut plans = tiny_plans([0, 1, 2]);
    let lowres = ConfigurationEntry {
        inherits_from: Some(CONFIG.into()),
        spacing: Some(vec![2.0; 3]),
        next_stage: Some(CASCADE.into()),
        ..ConfigurationEntry::default()
    };
    let cascade = ConfigurationEntry {
        inherits_from: Some(CONFIG.into()),
        previous_stage: Some(LOWRES.into()),
        ..ConfigurationEntry::default()
    };
    plans.configurations.insert(LOWRES.into(), lowres);
    plans.configurations.insert(CASCADE.into(), cascade);
    plans
}

const LOWRES: &str = "3d_lowres";
const CASCADE: &str = "3d_cascade_fullres";

#[test]
fn the_cascade_validates_and_predicts_from_the_first_stages_segmentation() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("Dataset001_Tiny");
    let work = WorkLayout::new(dir.path().join("work"));
    let ranges = [1..7, 2..9, 1..10];
    write_tiny_raw(&raw, &ranges);
    let dataset = Dataset::open(&raw).unwrap();
    let plans = cascade_plans();
    let settings = PreprocessSettings::per_thread();
    for config in [CONFIG, LOWRES] {
        autoseg_preprocessing::preprocess(&dataset, &plans, config, &work, &settings, &()).unwrap();
    }
    // The first stage predicts class 2 everywhere; the cascade (1 image + 2 one-hot channels)
    // class 1 everywhere.
    write_constant_fold_of(&work, &plans, LOWRES, 1, "0", [0.0, 1.0, 5.0]);
    write_constant_fold_of(&work, &plans, CASCADE, 3, "0", [0.0, 5.0, 1.0]);
    let json = read_dataset_json(&raw.join("dataset.json")).unwrap();
    let cases = vec!["t_001".to_string(), "t_002".to_string()];
    let labels_dir = raw.join("labelsTr");
    let job = |configuration| ValidationJob {
        layout: &work,
        configuration,
        fold: "0",
        cases: &cases,
        labels_dir: &labels_dir,
        dataset: &json,
        device: Device::Cpu,
    };

    // The cascade cannot validate before the first stage wrote its segmentations.
    let missing = validate_fold(&job(CASCADE)).unwrap_err().to_string();
    assert!(
        missing.contains("predicted_next_stage") && missing.contains("t_001.nii.gz"),
        "{missing}"
    );

    validate_fold(&job(LOWRES)).unwrap();
    let next_dir = work.predicted_next_stage(LOWRES, CASCADE);
    for case in &cases {
        let fullres = CachedCase::open(&case_path(&work.preprocessed(CONFIG), case)).unwrap();
        let seg = read_prev_stage_seg(&prev_stage_path(&next_dir, case), fullres.shape()).unwrap();
        assert!(
            seg.iter().all(|&v| v == 2),
            "{case}: the lowres class everywhere"
        );
    }

    // Validation of the cascade: class 1 on the whole nonzero region (378 voxels) against a
    // reference with 63 voxels of label 1 and none of the prediction's label 2.
    let summary = validate_fold(&job(CASCADE)).unwrap();
    let dice_1 = 2.0 * 63.0 / (378.0 + 63.0);
    let fg = summary.foreground_dice();
    assert!((fg - dice_1 / 2.0).abs() < 1e-12, "{fg}");

    // Prediction from raw files runs both stages and writes the input's grid.
    let predictor = Predictor::load(&work, CASCADE, &folds(&["0"]), Device::Cpu).unwrap();
    let image = raw.join("imagesTr/t_002_0000.nii.gz");
    let prediction = predictor
        .predict_case(std::slice::from_ref(&image))
        .unwrap();
    let source = read_image(&image).unwrap();
    assert_eq!(prediction.labels.geometry, source.geometry);
    for ((_, z, y, x), &v) in prediction.labels.data.indexed_iter() {
        assert_eq!(v, u16::from(inside(&ranges, z, y, x)), "({z}, {y}, {x})");
    }

    // Without the first stage's folds the cascade cannot load.
    std::fs::remove_dir_all(work.fold(LOWRES, "0")).unwrap();
    let err = Predictor::load(&work, CASCADE, &folds(&["0"]), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("3d_lowres") && err.contains("checkpoint"),
        "{err}"
    );
}
