//! Tests of the training loop on tiny synthetic datasets on the CPU: overfitting a 2D and a 3D
//! plan, checkpoints, resume equality, the learning rate per epoch, the splits file, a cascade
//! stage on a preprocessed cache with previous-stage segmentations, region-based training,
//! pretrained weights, and the data-wait measurement.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use autoseg_network::checkpoint::{
    is_segmentation_head, load_weights, read_checkpoint_meta, CheckpointKind, CheckpointPaths,
};
use autoseg_network::UNet;
use autoseg_planner::{
    ArchitectureEntry, ConfigurationEntry, ForegroundIntensityProperties, NetworkKind,
    NormalizationScheme, PlannerPreset, Plans, ResamplingSettings, WorkLayout,
    PLANS_SCHEMA_VERSION,
};
use autoseg_preprocessing::cache::{
    case_path, prev_stage_path, write_case, write_prev_stage_seg, CaseKeys,
};
use autoseg_preprocessing::crop::BoundingBox;
use autoseg_preprocessing::foreground::{sample_class_locations, LocationClass};
use autoseg_preprocessing::{
    CaseProperties, Geometry, HeaderGeometry, PreprocessedCase, Shape3, Spacing,
};
use ndarray::{Array4, Axis};
use tch::{nn, Device, Kind, Tensor};

use super::epoch::DataWait;
use super::*;
use crate::sampling::InMemoryCase;
use crate::splits::Splits;

/// A PlainConvUNet configuration: 2 convs per stage, kernel 3, batch size 2.
pub(super) fn entry(
    patch: &[usize],
    features: &[usize],
    strides: &[&[usize]],
) -> ConfigurationEntry {
    let n = features.len();
    let architecture = ArchitectureEntry {
        network: NetworkKind::PlainConvUNet,
        n_stages: n,
        features_per_stage: features.to_vec(),
        kernel_sizes: vec![vec![3; patch.len()]; n],
        strides: strides.iter().map(|s| s.to_vec()).collect(),
        n_conv_per_stage: Some(vec![2; n]),
        n_blocks_per_stage: None,
        n_conv_per_stage_decoder: vec![2; n - 1],
    };
    ConfigurationEntry {
        spacing: Some(vec![1.0; patch.len()]),
        patch_size: Some(patch.to_vec()),
        batch_size: Some(2),
        median_image_size_in_voxels: Some(patch.iter().map(|&p| p as f64).collect()),
        normalization_schemes: Some(vec![NormalizationScheme::ZScoreNormalization]),
        use_mask_for_norm: Some(vec![false]),
        batch_dice: Some(false),
        resampling_data: Some(ResamplingSettings::nnunet_data()),
        resampling_seg: Some(ResamplingSettings::nnunet_seg()),
        resampling_probabilities: Some(ResamplingSettings::nnunet_probabilities()),
        architecture: Some(architecture),
        ..ConfigurationEntry::default()
    }
}

/// Plans with a tiny `2d` (patch 32x32) and `3d_fullres` (patch 16x32x32), 3 stages each, and
/// a `3d_cascade_fullres` inheriting `3d_fullres` after `3d_lowres`.
pub(super) fn tiny_plans() -> Plans {
    let stats = ForegroundIntensityProperties {
        mean: 0.0,
        median: 0.0,
        std: 1.0,
        min: -1.0,
        max: 1.0,
        percentile_00_5: -1.0,
        percentile_99_5: 1.0,
    };
    let cascade = ConfigurationEntry {
        inherits_from: Some("3d_fullres".to_string()),
        previous_stage: Some("3d_lowres".to_string()),
        ..ConfigurationEntry::default()
    };
    let configurations = BTreeMap::from([
        ("3d_cascade_fullres".to_string(), cascade),
        (
            "2d".to_string(),
            entry(&[32, 32], &[8, 16, 32], &[&[1, 1], &[2, 2], &[2, 2]]),
        ),
        (
            "3d_fullres".to_string(),
            entry(
                &[16, 32, 32],
                &[8, 16, 32],
                &[&[1, 1, 1], &[2, 2, 2], &[2, 2, 2]],
            ),
        ),
    ]);
    Plans {
        schema_version: PLANS_SCHEMA_VERSION,
        dataset_name: "Dataset999_Tiny".to_string(),
        planner: PlannerPreset::Default,
        gpu_memory_target_gb: 8.0,
        transpose_forward: [0, 1, 2],
        transpose_backward: [0, 1, 2],
        original_median_spacing_after_transp: None,
        original_median_shape_after_transp: None,
        foreground_intensity_properties: vec![stats],
        configurations,
    }
}

/// A deterministic value in [-0.5, 0.5) per voxel (an integer hash).
fn noise(i: usize) -> f32 {
    let mut h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

/// A case `(1, z, y, x)` labelled 1 where `inside` holds; the image is the mask scaled to
/// [-0.5, 1] plus noise.
fn case_from_mask(
    name: &str,
    shape: [usize; 3],
    inside: impl Fn([usize; 3]) -> bool,
) -> InMemoryCase {
    let [z, y, x] = shape;
    let seg = Array4::from_shape_fn((1, z, y, x), |(_, a, b, c)| i16::from(inside([a, b, c])));
    let data = Array4::from_shape_fn((1, z, y, x), |(_, a, b, c)| {
        f32::from(seg[[0, a, b, c]]) * 1.5 - 0.5 + 0.6 * noise((a * y + b) * x + c)
    });
    InMemoryCase::new(name, data, seg)
}

/// 2D data: volumes of 4 slices of 48x48, each slice holding the same disk of radius 9.
pub(super) fn disk_store() -> InMemoryStore {
    let disk = |name: &str, cy: f64, cx: f64| {
        case_from_mask(name, [4, 48, 48], |[_, y, x]| {
            (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2) <= 81.0
        })
    };
    InMemoryStore {
        cases: vec![disk("disk_a", 20.0, 24.0), disk("disk_b", 28.0, 20.0)],
    }
}

/// 3D data: two 24x40x40 volumes with a ball of radius 7.
pub(super) fn ball_store() -> InMemoryStore {
    let ball = |name: &str, c: [f64; 3]| {
        case_from_mask(name, [24, 40, 40], |[z, y, x]| {
            let d2 =
                (z as f64 - c[0]).powi(2) + (y as f64 - c[1]).powi(2) + (x as f64 - c[2]).powi(2);
            d2 <= 49.0
        })
    };
    InMemoryStore {
        cases: vec![
            ball("ball_a", [11.0, 18.0, 20.0]),
            ball("ball_b", [13.0, 22.0, 17.0]),
        ],
    }
}

pub(super) fn job<'a>(
    plans: &'a Plans,
    configuration: &'a str,
    layout: &'a WorkLayout,
) -> TrainJob<'a> {
    TrainJob {
        plans,
        configuration,
        fold: Fold::All,
        layout,
        n_classes: 2,
        ignore_label: None,
        regions: None,
        cascade_labels: None,
    }
}

pub(super) fn settings(epochs: usize, iters: usize, val_iters: usize) -> Training {
    Training {
        epochs,
        iterations_per_epoch: iters,
        val_iterations_per_epoch: val_iters,
        ..Training::nnunet_default()
    }
}

pub(super) fn cpu_run(seed: u64) -> RunOptions {
    RunOptions {
        n_loader_workers: 1,
        ..RunOptions::new(Device::Cpu, seed)
    }
}

/// Loads the weights of the fold's final checkpoint (digest, names and shapes checked).
fn load_final(vs: &nn::VarStore, fold_dir: &Path) -> Result<(), autoseg_network::NetworkError> {
    let meta = read_checkpoint_meta(fold_dir, CheckpointKind::Final)?.expect("a final checkpoint");
    load_weights(vs, fold_dir, CheckpointKind::Final, &meta)
}

/// Foreground Dice of the final checkpoint on the whole of `case` (one forward pass; 2D
/// configurations take the slices as the batch).
fn final_dice(plans: &Plans, configuration: &str, fold: &TrainedFold, case: &InMemoryCase) -> f64 {
    let config = plans.resolve(configuration).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(&vs.root(), config.unet_spec(), 1, 2).unwrap();
    load_final(&vs, &fold.fold_dir).unwrap();
    let data = Tensor::try_from(&case.data).unwrap();
    let input = if config.patch_size.len() == 2 {
        data.permute([1, 0, 2, 3])
    } else {
        data.unsqueeze(0)
    };
    let _no_grad = tch::no_grad_guard();
    let pred = net.forward(&input).unwrap().argmax(1, false);
    let pred = if config.patch_size.len() == 2 {
        pred
    } else {
        pred.squeeze_dim(0)
    };
    let truth = Tensor::try_from(&case.seg)
        .unwrap()
        .squeeze_dim(0)
        .to_kind(Kind::Int64);
    let p = pred.eq(1).to_kind(Kind::Double);
    let t = truth.eq(1).to_kind(Kind::Double);
    let tp = (&p * &t).sum(Kind::Double).double_value(&[]);
    let total = (p.sum(Kind::Double) + t.sum(Kind::Double)).double_value(&[]);
    2.0 * tp / total
}

/// Trains `configuration` on `store` (2D: 10 epochs, seed 1; 3D: 6 epochs, seed 2; 25
/// iterations each) and asserts a foreground Dice of at least 0.9 on every case.
fn assert_overfits(
    plans: &Plans,
    configuration: &str,
    store: &InMemoryStore,
    dir: &Path,
) -> TrainedFold {
    let (epochs, seed) = if configuration == "2d" {
        (10, 1)
    } else {
        (6, 2)
    };
    let fold = train(
        &job(plans, configuration, &WorkLayout::new(dir)),
        store,
        &settings(epochs, 25, 2),
        &cpu_run(seed),
        &(),
    )
    .unwrap();
    for case in &store.cases {
        let dice = final_dice(plans, configuration, &fold, case);
        assert!(
            dice >= 0.9,
            "{configuration} {}: foreground Dice {dice}",
            case.name
        );
    }
    fold
}

#[test]
fn overfits_a_2d_plan() {
    let dir = tempfile::tempdir().unwrap();
    let fold = assert_overfits(&tiny_plans(), "2d", &disk_store(), dir.path());
    assert_eq!(fold.epochs_done, 10);
    let fold_dir = fold.fold_dir.clone();
    assert!(fold_dir.ends_with("results/2d/fold_all"));
    for file in [
        "train.log",
        "progress.png",
        "checkpoint_best.toml",
        "checkpoint_final.safetensors",
    ] {
        assert!(fold_dir.join(file).is_file(), "{file} missing");
    }
    let log = std::fs::read_to_string(fold_dir.join("train.log")).unwrap();
    assert_eq!(log.matches(": Epoch time: ").count(), 10);
    assert!(log.contains(": Epoch 9\n"));
    assert!(log.contains("Yayy! New best EMA pseudo Dice"));
}

#[test]
fn overfits_a_2d_residual_encoder_plan() {
    // nnU-Net's ResEnc presets: residual blocks per encoder stage, a stem, one decoder conv.
    let mut plans = tiny_plans();
    let config = plans.configurations.get_mut("2d").unwrap();
    let architecture = config.architecture.as_mut().unwrap();
    architecture.network = NetworkKind::ResidualEncoderUNet;
    architecture.n_conv_per_stage = None;
    architecture.n_blocks_per_stage = Some(vec![1, 2, 2]);
    architecture.n_conv_per_stage_decoder = vec![1, 1];
    let dir = tempfile::tempdir().unwrap();
    let fold = assert_overfits(&plans, "2d", &disk_store(), dir.path());
    let names: Vec<String> = read_weights(&fold.fold_dir.join("checkpoint_final.safetensors"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(names.contains(&"encoder.stem.convs.0.conv.weight".to_string()));
    assert!(names.contains(&"encoder.stages.1.blocks.0.skip.1.conv.weight".to_string()));
}

#[test]
fn overfits_a_3d_plan() {
    let dir = tempfile::tempdir().unwrap();
    assert_overfits(&tiny_plans(), "3d_fullres", &ball_store(), dir.path());
}

/// Copies `checkpoint_latest.*` away when the third epoch starts: what a run killed during
/// that epoch leaves behind.
struct SnapshotAtEpoch2<'a> {
    fold_dir: &'a Path,
    backup: &'a Path,
}

impl Progress for SnapshotAtEpoch2<'_> {
    fn start(&self, what: &str, _total: u64) {
        if what == "epoch 2" {
            for ext in ["safetensors", "optim.safetensors", "toml"] {
                let name = format!("checkpoint_latest.{ext}");
                std::fs::copy(self.fold_dir.join(&name), self.backup.join(&name)).unwrap();
            }
        }
    }
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

pub(super) fn read_weights(path: &Path) -> Vec<(String, Tensor)> {
    let mut w = Tensor::read_safetensors(path).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

#[test]
fn resuming_an_interrupted_run_gives_the_same_weights() {
    assert_resumes_bitwise(&settings(3, 3, 1));
}

/// Trains the tiny 2d plan for `s.epochs` (3) epochs straight, and again killed during epoch 2
/// then resumed: the final weights, losses and learning rates are bitwise equal.
pub(super) fn assert_resumes_bitwise(s: &Training) {
    let plans = tiny_plans();
    let store = disk_store();
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = train(
        &job(&plans, "2d", &WorkLayout::new(straight_dir.path())),
        &store,
        s,
        &cpu_run(5),
        &(),
    )
    .unwrap();

    let resumed_dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let resumed_layout = WorkLayout::new(resumed_dir.path());
    let resumed_job = job(&plans, "2d", &resumed_layout);
    let fold_dir = resumed_job.fold_dir();
    let snapshot = SnapshotAtEpoch2 {
        fold_dir: &fold_dir,
        backup: backup.path(),
    };
    train(&resumed_job, &store, s, &cpu_run(5), &snapshot).unwrap();
    // Roll the fold back to "killed during epoch 2": latest after 2 epochs, no final.
    for ext in ["safetensors", "optim.safetensors", "toml"] {
        let name = format!("checkpoint_latest.{ext}");
        std::fs::copy(backup.path().join(&name), fold_dir.join(&name)).unwrap();
        std::fs::remove_file(fold_dir.join(format!("checkpoint_final.{ext}"))).unwrap();
    }
    let run = RunOptions {
        start: Start::Resume,
        ..cpu_run(5)
    };
    let resumed = train(&resumed_job, &store, s, &run, &()).unwrap();
    assert_eq!(resumed.epochs_done, 3);
    let a = read_weights(&straight.final_weights);
    let b = read_weights(&resumed.final_weights);
    assert_eq!(a.len(), b.len());
    for ((name_a, ta), (name_b, tb)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert!(ta.equal(tb), "{name_a} differs after resume");
    }
    assert_eq!(straight.log.train_losses, resumed.log.train_losses);
    assert_eq!(straight.log.lrs, resumed.log.lrs);
}

#[test]
fn checkpoints_round_trip_and_torn_files_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tiny_plans();
    let store = disk_store();
    let layout = WorkLayout::new(dir.path());
    let j = job(&plans, "2d", &layout);
    let fold = train(&j, &store, &settings(1, 2, 1), &cpu_run(3), &()).unwrap();
    let meta = read_checkpoint_meta(&fold.fold_dir, CheckpointKind::Final)
        .unwrap()
        .unwrap();
    assert_eq!(meta.epochs_done, 1);
    assert_eq!(meta.configuration, "2d");
    assert_eq!(meta.fold, "all");
    assert_eq!(meta.seed, "3");
    assert_eq!((meta.in_channels, meta.n_classes), (1, 2));
    assert_eq!(meta.plans, plans);
    assert_eq!(meta.log, fold.log);
    // After a step every parameter has a momentum buffer except the lowest-resolution head
    // `decoder.seg_layers.0`, whose deep-supervision weight is 0 (no gradient, as in nnU-Net).
    let paths = CheckpointPaths::new(&fold.fold_dir, CheckpointKind::Final);
    let weights = read_weights(&paths.weights);
    let buffers = read_weights(&paths.optimizer);
    let buffer_names: Vec<&String> = buffers.iter().map(|(n, _)| n).collect();
    let expected: Vec<&String> = weights
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !n.starts_with("decoder.seg_layers.0."))
        .collect();
    assert_eq!(buffer_names, expected);
    assert_eq!(weights.len(), expected.len() + 2);
    assert!(weights
        .iter()
        .any(|(n, _)| n == "decoder.seg_layers.1.weight"));
    // Weights loaded into a fresh network are bitwise the saved ones.
    let vs = nn::VarStore::new(Device::Cpu);
    let config = plans.resolve("2d").unwrap();
    let _net = UNet::new(&vs.root(), config.unet_spec(), 1, 2).unwrap();
    load_final(&vs, &fold.fold_dir).unwrap();
    let vars = vs.variables();
    for (name, t) in &weights {
        assert!(vars[name].equal(t), "{name}");
    }
    // A flipped byte in a tensor file stops a resume with a message naming the file.
    let mut bytes = std::fs::read(&paths.weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&paths.weights, &bytes).unwrap();
    let run = RunOptions {
        start: Start::Resume,
        ..cpu_run(3)
    };
    let err = train(&j, &store, &settings(2, 2, 1), &run, &()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("checkpoint_final.safetensors"), "{text}");
    assert!(text.contains("interrupted"), "{text}");
}

#[test]
fn learning_rate_per_epoch_is_poly_and_extension_uses_the_new_total() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tiny_plans();
    let store = disk_store();
    let layout = WorkLayout::new(dir.path());
    let j = job(&plans, "2d", &layout);
    let fold = train(&j, &store, &settings(2, 1, 0), &cpu_run(4), &()).unwrap();
    // python: [0.01 * (1 - e / 2) ** 0.9 for e in (0, 1)] -> [0.01, 0.005358867312681466]
    assert_eq!(fold.log.lrs.len(), 2);
    assert_eq!(fold.log.lrs[0], 0.01);
    assert!((fold.log.lrs[1] - 0.005_358_867_312_681_466).abs() < 1e-15);
    // Without validation steps there is no pseudo Dice, so never a best checkpoint.
    assert!(fold.log.mean_fg_dice.iter().all(|d| d.is_nan()));
    assert_eq!(fold.best_ema, None);
    let run = RunOptions {
        start: Start::Resume,
        ..cpu_run(4)
    };
    let extended = train(&j, &store, &settings(4, 1, 0), &run, &()).unwrap();
    // python: [0.01 * (1 - e / 4) ** 0.9 for e in (2, 3)]
    //   -> [0.005358867312681466, 0.0028717458874925874]
    assert_eq!(extended.epochs_done, 4);
    assert_eq!(&extended.log.lrs[..2], &fold.log.lrs[..]);
    assert!((extended.log.lrs[2] - 0.005_358_867_312_681_466).abs() < 1e-15);
    assert!((extended.log.lrs[3] - 0.002_871_745_887_492_587_4).abs() < 1e-15);
}

/// `Start::Pretrained`: before any epoch (0 epochs trained), a fold started from another
/// fold's final checkpoint holds that fold's weights bit for bit except the segmentation heads,
/// which are the seed's fresh initialisation (those of a fresh run with the same seed);
/// `train.log` names the file. A file that cannot be read stops the run naming it.
#[test]
fn a_run_from_pretrained_weights_starts_from_them_but_the_heads() {
    let plans = tiny_plans();
    let store = disk_store();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let layouts: Vec<_> = dirs.iter().map(|d| WorkLayout::new(d.path())).collect();
    let source = train(
        &job(&plans, "2d", &layouts[0]),
        &store,
        &settings(1, 2, 1),
        &cpu_run(3),
        &(),
    )
    .unwrap();
    let fresh = train(
        &job(&plans, "2d", &layouts[1]),
        &store,
        &settings(0, 1, 0),
        &cpu_run(9),
        &(),
    )
    .unwrap();
    let run = RunOptions {
        start: Start::Pretrained(source.final_weights.clone()),
        ..cpu_run(9)
    };
    let pretrained = train(
        &job(&plans, "2d", &layouts[2]),
        &store,
        &settings(0, 1, 0),
        &run,
        &(),
    )
    .unwrap();
    let [a, f, p] = [&source, &fresh, &pretrained].map(|t| read_weights(&t.final_weights));
    let mut n_heads = 0;
    for (((name, tp), (_, ta)), (_, tf)) in p.iter().zip(&a).zip(&f) {
        if is_segmentation_head(name) {
            n_heads += 1;
            assert!(tp.equal(tf), "head {name} is not the fresh initialisation");
        } else {
            assert!(tp.equal(ta), "{name} is not the pretrained weight");
        }
    }
    assert_eq!(n_heads, 4);
    let conv = "encoder.stages.0.0.convs.0.conv.weight";
    let index = |w: &[(String, Tensor)]| w.iter().position(|(n, _)| n == conv).unwrap();
    assert!(
        !a[index(&a)].1.equal(&f[index(&f)].1),
        "seeds 3 and 9 give other weights"
    );
    let log = std::fs::read_to_string(layouts[2].train_log("2d", Fold::All)).unwrap();
    let line = format!(
        "Loaded pretrained weights from {}",
        source.final_weights.display()
    );
    assert!(log.contains(&line), "{log}");

    let missing = dirs[0].path().join("checkpoint_best.toml");
    let run = RunOptions {
        start: Start::Pretrained(missing.clone()),
        ..cpu_run(9)
    };
    let err = train(
        &job(&plans, "2d", &layouts[2]),
        &store,
        &settings(0, 1, 0),
        &run,
        &(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TrainError::Pretrained { file, .. } if *file == missing),
        "{err}"
    );
}

/// nnU-Net's `--c` on a fold killed before its first checkpoint: a new run (warned in
/// train.log), the same as a fresh one.
#[test]
fn resume_without_checkpoint_starts_a_new_run() {
    let plans = tiny_plans();
    let s = settings(1, 1, 0);
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = train(
        &job(&plans, "2d", &WorkLayout::new(fresh_dir.path())),
        &disk_store(),
        &s,
        &cpu_run(0),
        &(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = WorkLayout::new(dir.path());
    let resumed_job = job(&plans, "2d", &layout);
    let run = RunOptions {
        start: Start::Resume,
        ..cpu_run(0)
    };
    let resumed = train(&resumed_job, &disk_store(), &s, &run, &()).unwrap();
    assert_eq!(resumed.epochs_done, 1);
    let (a, b) = (
        read_weights(&fresh.final_weights),
        read_weights(&resumed.final_weights),
    );
    assert_eq!(a.len(), b.len());
    for ((name, ta), (_, tb)) in a.iter().zip(&b) {
        assert!(ta.equal(tb), "{name} differs from a fresh run");
    }
    let log = std::fs::read_to_string(resumed_job.fold_dir().join("train.log")).unwrap();
    assert!(
        log.contains("WARNING") && log.contains("starting a new training"),
        "{log}"
    );
}

#[test]
fn splits_file_is_made_once_then_read() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("case_{i:03}")).collect();
    let path = WorkLayout::new(dir.path()).splits();
    let split = fold_split(&path, &ids, Fold::Index(0)).unwrap();
    // reference §6.3, n = 20: fold 0 validates cases [3, 8, 13, 16].
    let expected: Vec<String> = [3, 8, 13, 16]
        .iter()
        .map(|i| format!("case_{i:03}"))
        .collect();
    assert_eq!(split.val, expected);
    assert_eq!(split.train.len(), 16);
    // A user's edit is respected.
    let mut splits = Splits::from_toml_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    splits.folds[0].val = vec!["case_000".to_string()];
    std::fs::write(&path, splits.to_toml_string().unwrap()).unwrap();
    let edited = fold_split(&path, &ids, Fold::Index(0)).unwrap();
    assert_eq!(edited.val, vec!["case_000".to_string()]);
    // A case the dataset does not have is an error naming the file.
    splits.folds[1].val = vec!["case_999".to_string()];
    std::fs::write(&path, splits.to_toml_string().unwrap()).unwrap();
    let err = fold_split(&path, &ids, Fold::Index(0)).unwrap_err();
    assert!(err.to_string().contains("splits.toml"), "{err}");
    // The `all` fold needs no file.
    let all = fold_split(Path::new("/nonexistent"), &ids, Fold::All).unwrap();
    assert_eq!((all.train.len(), all.val.len()), (20, 20));
}

/// Early stopping: the run ends at the first epoch boundary where `patience` epochs have passed
/// without a new best EMA (replayed from the run's own log), writes checkpoint_final there and
/// records the stop in train.log; resuming it with the same patience stops again at once.
#[test]
fn early_stopping_ends_the_run_after_patience_epochs_without_a_new_best() {
    let plans = tiny_plans();
    let dir = tempfile::tempdir().unwrap();
    let layout = WorkLayout::new(dir.path());
    let job = job(&plans, "2d", &layout);
    // No learning (lr 0): the pseudo Dice only follows the validation batches, so the EMA
    // soon stops setting new bests.
    let s = Training {
        initial_lr: 0.0,
        patience: Some(2),
        ..settings(40, 1, 1)
    };
    let trained = train(&job, &disk_store(), &s, &cpu_run(3), &()).unwrap();
    assert!(trained.stopped_early, "40 epochs without a stop");
    assert!(trained.epochs_done < 40);
    // The stop is the first epoch boundary where the rule holds.
    let mut state = TrainState::new(3);
    for n in 1..=trained.epochs_done {
        state.log.ema_fg_dice = trained.log.ema_fg_dice[..n].to_vec();
        let since = state.epochs_since_best();
        assert_eq!(
            since >= 2,
            n == trained.epochs_done,
            "after {n} epochs: {since}"
        );
    }
    assert!(trained.final_weights.is_file());
    let text = std::fs::read_to_string(job.fold_dir().join("train.log")).unwrap();
    assert!(text.contains("Early stopping after epoch"), "{text}");

    let run = RunOptions {
        start: Start::Resume,
        ..cpu_run(3)
    };
    let again = train(&job, &disk_store(), &s, &run, &()).unwrap();
    assert!(again.stopped_early);
    assert_eq!(again.epochs_done, trained.epochs_done);
}

#[test]
fn epoch_seeds_differ_by_epoch_and_stream() {
    let a = epoch_seed(0, 0, 0);
    assert_ne!(a, epoch_seed(0, 1, 0));
    assert_ne!(a, epoch_seed(0, 0, 1));
    assert_ne!(a, epoch_seed(1, 0, 0));
    assert_eq!(a, epoch_seed(0, 0, 0));
}

/// Two 24x40x40 cases with labels 1 (a ball of radius 7) and 2 (a box inside it).
fn two_label_cases() -> Vec<InMemoryCase> {
    let mut cases = ball_store().cases;
    for case in &mut cases {
        let first = case.locations[0].voxels[case.locations[0].voxels.len() / 2];
        for z in first[0]..first[0] + 2 {
            for y in first[1]..first[1] + 2 {
                case.seg[[0, z, y, first[2]]] = 2;
            }
        }
        *case = InMemoryCase::new(&case.name, case.data.clone(), case.seg.clone());
    }
    cases
}

/// Writes `cases` as a preprocessed cache in `dir` (spacing 1, no crop, labels 1 and 2).
fn write_cache(dir: &Path, cases: &[InMemoryCase]) {
    std::fs::create_dir_all(dir).unwrap();
    for case in cases {
        let s = case.data.shape();
        let shape = [s[1], s[2], s[3]];
        let classes = [LocationClass::Label(1), LocationClass::Label(2)];
        let properties = CaseProperties {
            case: case.name.as_str().into(),
            spacing: [1.0; 3],
            shape_before_cropping: shape,
            bbox_used_for_cropping: BoundingBox {
                start: [0; 3],
                end: shape,
            },
            shape_after_cropping_and_before_resampling: shape,
            spacing_after_resampling: [1.0; 3],
            class_locations: sample_class_locations(case.seg.index_axis(Axis(0), 0), &classes),
            source_geometry: Geometry::new(
                Shape3(shape),
                HeaderGeometry::axis_aligned(Spacing([1.0; 3]), [0.0; 3]),
            ),
        };
        let preprocessed = PreprocessedCase {
            data: case.data.clone(),
            seg: Some(case.seg.clone()),
            properties,
        };
        let keys = CaseKeys {
            stamp: 0,
            source: 0,
        };
        write_case(&case_path(dir, &case.name), &preprocessed, keys).unwrap();
    }
}

#[test]
fn a_cascade_stage_trains_with_one_input_per_previous_stage_label() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tiny_plans();
    let cases = two_label_cases();
    let layout = WorkLayout::new(dir.path());
    let cache_dir = layout.preprocessed("3d_fullres");
    write_cache(&cache_dir, &cases);
    let prev_dir = layout.predicted_next_stage("3d_lowres", "3d_cascade_fullres");
    std::fs::create_dir_all(&prev_dir).unwrap();
    for case in &cases {
        // The previous stage "predicted" the truth.
        let seg = case.seg.index_axis(Axis(0), 0).mapv(|v| v.max(0) as u16);
        write_prev_stage_seg(&prev_stage_path(&prev_dir, &case.name), seg.view()).unwrap();
    }
    let store = CascadeStore::open(&cache_dir, &prev_dir).unwrap();
    let foreground = [1i16, 2];
    let job = TrainJob {
        n_classes: 3,
        cascade_labels: Some(&foreground),
        ..job(&plans, "3d_cascade_fullres", &layout)
    };
    let fold = train(&job, &store, &settings(1, 2, 1), &cpu_run(6), &()).unwrap();
    assert!(fold
        .fold_dir
        .ends_with("results/3d_cascade_fullres/fold_all"));
    let meta = read_checkpoint_meta(&fold.fold_dir, CheckpointKind::Final)
        .unwrap()
        .unwrap();
    // 1 image channel + one-hot channels of labels 1 and 2.
    assert_eq!((meta.in_channels, meta.n_classes), (3, 3));
    // The weights are those of a 3-input network: they load into one, not into a 1-input one.
    let config = plans.resolve("3d_cascade_fullres").unwrap();
    let load_into = |in_channels: i64| {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = UNet::new(&vs.root(), config.unet_spec(), in_channels, 3).unwrap();
        load_final(&vs, &fold.fold_dir)
    };
    load_into(3).unwrap();
    assert!(load_into(1).is_err());
    // Validation counted both foreground labels.
    assert_eq!(fold.log.dice_per_class[0].len(), 2);
}

#[test]
fn a_cascade_stage_without_previous_stage_files_stops_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tiny_plans();
    let layout = WorkLayout::new(dir.path());
    let cache_dir = layout.preprocessed("3d_fullres");
    write_cache(&cache_dir, &two_label_cases());
    let prev_dir = layout.predicted_next_stage("3d_lowres", "3d_cascade_fullres");
    let store = CascadeStore::open(&cache_dir, &prev_dir).unwrap();
    let foreground = [1i16, 2];
    let job = TrainJob {
        n_classes: 3,
        cascade_labels: Some(&foreground),
        ..job(&plans, "3d_cascade_fullres", &layout)
    };
    let err = train(&job, &store, &settings(1, 1, 0), &cpu_run(0), &()).unwrap_err();
    let chain = anyhow_like(&err);
    assert!(chain.contains("ball_a.nii.gz"), "{chain}");
    assert!(
        chain.contains("train and validate every fold of 3d_lowres first"),
        "{chain}"
    );
    assert!(!job.fold_dir().join("checkpoint_final.toml").exists());
}

/// The error and its sources, as the binary prints them.
fn anyhow_like(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[test]
fn a_region_based_configuration_trains_one_head_per_region() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tiny_plans();
    let store = InMemoryStore {
        cases: two_label_cases(),
    };
    // nnU-Net's BraTS-style regions: the whole object (1 or 2) and its core (2).
    let regions = [vec![1i16, 2], vec![2]];
    let layout = WorkLayout::new(dir.path());
    let job = TrainJob {
        n_classes: 2,
        regions: Some(&regions),
        ..job(&plans, "3d_fullres", &layout)
    };
    let fold = train(&job, &store, &settings(1, 2, 1), &cpu_run(7), &()).unwrap();
    assert_eq!(fold.epochs_done, 1);
    assert!(fold.log.train_losses[0].is_finite());
    // One pseudo Dice per region.
    assert_eq!(fold.log.dice_per_class[0].len(), 2);
    let meta = read_checkpoint_meta(&fold.fold_dir, CheckpointKind::Final)
        .unwrap()
        .unwrap();
    assert_eq!((meta.in_channels, meta.n_classes), (1, 2));
    // Heads and regions must agree.
    let bad = TrainJob {
        n_classes: 3,
        ..job
    };
    let err = train(&bad, &store, &settings(1, 1, 0), &cpu_run(7), &()).unwrap_err();
    assert!(
        err.to_string()
            .contains("3 segmentation head(s) for 2 region(s)"),
        "{err}"
    );
}

#[test]
fn every_epoch_reports_its_data_wait() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tiny_plans();
    let fold = train(
        &job(&plans, "2d", &WorkLayout::new(dir.path())),
        &disk_store(),
        &settings(2, 3, 1),
        &cpu_run(8),
        &(),
    )
    .unwrap();
    assert_eq!(fold.data_wait_percent.len(), 2);
    let log = std::fs::read_to_string(fold.fold_dir.join("train.log")).unwrap();
    let logged: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split_once(": Data wait: "))
        .map(|(_, rest)| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(logged.len(), 2, "{log}");
    for (value, exact) in logged.iter().zip(&fold.data_wait_percent) {
        assert!((0.0..=100.0).contains(value), "{log}");
        assert!((value - exact).abs() <= 0.005, "{value} vs {exact}");
    }
}

#[test]
fn data_wait_is_the_share_of_the_training_loop_spent_waiting() {
    let wait = |waiting_ms: u64, total_ms: u64| {
        DataWait {
            waiting: Duration::from_millis(waiting_ms),
            total: Duration::from_millis(total_ms),
        }
        .percent()
    };
    assert_eq!(wait(1_000, 4_000), 25.0);
    assert_eq!(wait(0, 4_000), 0.0);
    assert_eq!(wait(8, 400), 2.0);
    assert!(wait(0, 0).is_nan());
}

/// Asks `stop` to stop after `after` steps of epoch `epoch` (a signal arriving then).
struct StopDuring {
    stop: StopRequest,
    epoch: &'static str,
    after: u64,
    exit_code: u8,
    in_epoch: std::sync::Mutex<Option<u64>>,
}

impl Progress for StopDuring {
    fn start(&self, what: &str, _total: u64) {
        *self.in_epoch.lock().unwrap() = (what == self.epoch).then_some(0);
    }
    fn advance(&self, n: u64) {
        let mut count = self.in_epoch.lock().unwrap();
        if let Some(done) = count.as_mut() {
            *done += n;
            if *done == self.after {
                self.stop.request(self.exit_code);
            }
        }
    }
    fn finish(&self) {}
}

/// A stop during an epoch: the iteration finishes, checkpoint_latest records the epoch's
/// progress, and the resumed run ends with bitwise the weights, losses and learning rates of
/// an uninterrupted one (two loader workers, so the loader's position matters).
#[test]
fn a_run_stopped_inside_an_epoch_resumes_bitwise() {
    let plans = tiny_plans();
    let store = disk_store();
    let s = settings(3, 4, 1);
    let run = |start| RunOptions {
        start,
        n_loader_workers: 2,
        ..cpu_run(5)
    };
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = train(
        &job(&plans, "2d", &WorkLayout::new(straight_dir.path())),
        &store,
        &s,
        &run(Start::Fresh),
        &(),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let layout = WorkLayout::new(dir.path());
    let j = job(&plans, "2d", &layout);
    let first = run(Start::Fresh);
    let stopper = StopDuring {
        stop: first.stop.clone(),
        epoch: "epoch 1",
        after: 2,
        exit_code: 143,
        in_epoch: std::sync::Mutex::new(None),
    };
    let err = train(&j, &store, &s, &first, &stopper).unwrap_err();
    match &err {
        TrainError::Stopped {
            exit_code, where_, ..
        } => {
            assert_eq!(*exit_code, 143);
            assert_eq!(where_, "after iteration 1 of epoch 1");
        }
        other => panic!("not a stop: {other}"),
    }
    let meta = read_checkpoint_meta(&j.fold_dir(), CheckpointKind::Latest)
        .unwrap()
        .unwrap();
    assert_eq!(meta.epochs_done, 1);
    let interrupted = meta.interrupted.expect("the epoch's progress is recorded");
    assert_eq!(interrupted.iterations_done, 2);
    assert_eq!(interrupted.loader_word_positions.len(), 2);
    let log = std::fs::read_to_string(layout.train_log("2d", Fold::All)).unwrap();
    assert!(
        log.contains("Stopped on request after iteration 1 of epoch 1"),
        "{log}"
    );

    let resumed = train(&j, &store, &s, &run(Start::Resume), &()).unwrap();
    assert_eq!(resumed.epochs_done, 3);
    let (a, b) = (
        read_weights(&straight.final_weights),
        read_weights(&resumed.final_weights),
    );
    for ((name, ta), (_, tb)) in a.iter().zip(&b) {
        assert!(ta.equal(tb), "{name} differs after a stop inside an epoch");
    }
    assert_eq!(straight.log.train_losses, resumed.log.train_losses);
    assert_eq!(straight.log.val_losses, resumed.log.val_losses);
    assert_eq!(straight.log.lrs, resumed.log.lrs);
    let final_meta = read_checkpoint_meta(&j.fold_dir(), CheckpointKind::Final)
        .unwrap()
        .unwrap();
    assert_eq!(final_meta.interrupted, None);

    // Resuming with another number of loader workers cannot continue the epoch exactly.
    let other_dir = tempfile::tempdir().unwrap();
    let other_layout = WorkLayout::new(other_dir.path());
    let other = job(&plans, "2d", &other_layout);
    let first = run(Start::Fresh);
    let stopper = StopDuring {
        stop: first.stop.clone(),
        ..stopper
    };
    train(&other, &store, &s, &first, &stopper).unwrap_err();
    let one_worker = RunOptions {
        n_loader_workers: 1,
        ..run(Start::Resume)
    };
    let err = train(&other, &store, &s, &one_worker, &()).unwrap_err();
    assert!(err.to_string().contains("--threads 2"), "{err}");
}

#[test]
fn a_stop_before_the_first_epoch_trains_nothing() {
    let plans = tiny_plans();
    let dir = tempfile::tempdir().unwrap();
    let layout = WorkLayout::new(dir.path());
    let j = job(&plans, "2d", &layout);
    let run = cpu_run(1);
    run.stop.request(130);
    let err = train(&j, &disk_store(), &settings(2, 1, 0), &run, &()).unwrap_err();
    assert!(
        matches!(&err, TrainError::Stopped { exit_code: 130, where_, .. } if where_.contains("before its first epoch")),
        "{err}"
    );
    assert!(!CheckpointPaths::new(&j.fold_dir(), CheckpointKind::Latest)
        .meta
        .exists());
}
