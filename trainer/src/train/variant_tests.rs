//! Tests of the `training` table's options in the training loop (issue 20): a table of
//! nnU-Net's values trains as the defaults do, Adam resumes bitwise, deep supervision off
//! trains the top head alone, cosine and warm-up schedules reach the optimiser, the loss
//! trainers' losses train, and mirroring off / no augmentation are recorded for inference.

use std::collections::BTreeMap;

use autoseg_network::checkpoint::{read_checkpoint_meta, CheckpointKind};
use autoseg_planner::{
    AugmentationPreset, LossKind, LrScheduleKind, OptimizerKind, Training, TrainingEntry,
    WorkLayout,
};

use super::tests::{
    assert_resumes_bitwise, cpu_run, disk_store, entry, job, read_weights, settings, tiny_plans,
};
use super::{train, FoldData, TargetOptions};
use crate::schedule::LrSchedule;
use crate::splits::Fold;

/// The data side of fold `all` of `store` with settings `s`.
fn fold_data(
    store: &super::InMemoryStore,
    layout: &WorkLayout,
    config: &autoseg_planner::Configuration,
    s: &Training,
) -> FoldData {
    let ids = super::CaseStore::case_ids(store);
    let split = super::fold_split(&layout.splits(), &ids, Fold::All).unwrap();
    let targets = TargetOptions::default();
    FoldData::new(store, &split, Fold::All, config, &targets, s, &cpu_run(1)).unwrap()
}

fn weights_equal(a: &std::path::Path, b: &std::path::Path) -> bool {
    let (a, b) = (read_weights(a), read_weights(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
}

/// A `training` table that spells out nnU-Net's values reaches the same settings and trains to
/// bitwise the same weights as the defaults (the settings every earlier run used).
#[test]
fn a_table_of_nnunets_values_trains_bitwise_as_the_defaults() {
    let mut plans = tiny_plans();
    let text = "epochs = 2\niterations_per_epoch = 3\nval_iterations_per_epoch = 1\n\
                initial_lr = 0.01\nweight_decay = 3e-5\nmomentum = 0.99\noptimizer = \"sgd\"\n\
                amsgrad = false\nlr_schedule = \"poly\"\nwarmup_epochs = 0\nloss = \"dice_ce\"\n\
                deep_supervision = true\naugmentation = \"default\"\nmirroring = true\n\
                mirror_axes = [0, 1]\noversample_foreground = 0.33\n";
    let table: TrainingEntry = toml::from_str(text).unwrap();
    plans.configurations.get_mut("2d").unwrap().training = Some(table);
    let from_plan = plans.training("2d", &TrainingEntry::default()).unwrap();
    let defaults = settings(2, 3, 1);
    assert_eq!(
        Training {
            loss: None,
            mirror_axes: None,
            ..from_plan.clone()
        },
        defaults,
        "only the explicit loss and mirror axes are spelt differently"
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let run = |s: &Training, dir: &tempfile::TempDir| {
        let layout = WorkLayout::new(dir.path());
        train(
            &job(&plans, "2d", &layout),
            &disk_store(),
            s,
            &cpu_run(7),
            &(),
        )
        .unwrap()
    };
    let (a, b) = (run(&defaults, &dirs[0]), run(&from_plan, &dirs[1]));
    assert!(weights_equal(&a.final_weights, &b.final_weights));
    assert_eq!(a.log.train_losses, b.log.train_losses);
}

#[test]
fn an_adam_run_resumes_bitwise() {
    for (optimizer, amsgrad) in [(OptimizerKind::Adamw, true), (OptimizerKind::Adam, false)] {
        assert_resumes_bitwise(&Training {
            optimizer,
            amsgrad,
            initial_lr: 1e-3,
            ..settings(3, 3, 1)
        });
    }
}

#[test]
fn the_optimizer_state_of_one_optimizer_is_refused_by_another() {
    let plans = tiny_plans();
    let dir = tempfile::tempdir().unwrap();
    let layout = WorkLayout::new(dir.path());
    let j = job(&plans, "2d", &layout);
    train(&j, &disk_store(), &settings(1, 1, 0), &cpu_run(2), &()).unwrap();
    let adam = Training {
        optimizer: OptimizerKind::Adam,
        ..settings(2, 1, 0)
    };
    let run = super::RunOptions {
        start: super::Start::Resume,
        ..cpu_run(2)
    };
    let err = train(&j, &disk_store(), &adam, &run, &()).unwrap_err();
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(text.contains("training.optimizer"), "{text}");
}

/// Deep supervision on, the lowest output has weight 0 and the middle one learns; off, only the
/// top head does (nnU-Net's `enable_deep_supervision = False`: the others get no gradient).
#[test]
fn without_deep_supervision_only_the_top_head_learns() {
    let mut plans = tiny_plans();
    // Four stages: heads on 8 (top), 16 and 32 (lowest) features.
    let deep = entry(
        &[32, 32],
        &[8, 16, 32, 32],
        &[&[1, 1], &[2, 2], &[2, 2], &[2, 2]],
    );
    plans.configurations.insert("2d_deep".into(), deep);
    let trained = |deep_supervision: bool, epochs: usize| {
        let dir = tempfile::tempdir().unwrap();
        let s = Training {
            deep_supervision,
            ..settings(epochs, 2, 0)
        };
        let layout = WorkLayout::new(dir.path());
        let fold = train(
            &job(&plans, "2d_deep", &layout),
            &disk_store(),
            &s,
            &cpu_run(4),
            &(),
        )
        .unwrap();
        let heads: BTreeMap<i64, tch::Tensor> = read_weights(&fold.final_weights)
            .into_iter()
            .filter(|(name, _)| name.starts_with("decoder.seg_layers.") && name.ends_with("weight"))
            .map(|(_, t)| (t.size()[1], t))
            .collect();
        heads
    };
    let fresh = trained(true, 0);
    let on = trained(true, 1);
    let off = trained(false, 1);
    let changed = |heads: &BTreeMap<i64, tch::Tensor>, features: i64| {
        !heads[&features].equal(&fresh[&features])
    };
    assert!(changed(&on, 8) && changed(&on, 16) && !changed(&on, 32));
    assert!(changed(&off, 8) && !changed(&off, 16) && !changed(&off, 32));
}

#[test]
fn cosine_and_warm_up_schedules_set_each_epochs_learning_rate() {
    let plans = tiny_plans();
    for (lr_schedule, warmup_epochs) in [(LrScheduleKind::Cosine, 0), (LrScheduleKind::Poly, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let s = Training {
            lr_schedule,
            warmup_epochs,
            ..settings(4, 1, 0)
        };
        let layout = WorkLayout::new(dir.path());
        let fold = train(
            &job(&plans, "2d", &layout),
            &disk_store(),
            &s,
            &cpu_run(1),
            &(),
        )
        .unwrap();
        let want: Vec<f64> = (0..4).map(|e| LrSchedule::of(&s).lr(e)).collect();
        assert_eq!(fold.log.lrs, want);
    }
    // cos(pi / 4) schedule by hand: 0.01 (1 + cos(pi e / 4)) / 2; warm-up 0.005, 0.01, then poly.
    let cosine = LrSchedule::of(&Training {
        lr_schedule: LrScheduleKind::Cosine,
        ..settings(4, 1, 0)
    });
    assert!((cosine.lr(2) - 0.005).abs() < 1e-15);
    let warm = LrSchedule::of(&Training {
        warmup_epochs: 2,
        ..settings(4, 1, 0)
    });
    assert_eq!([warm.lr(0), warm.lr(1), warm.lr(2)], [0.005, 0.01, 0.01]);
}

#[test]
fn the_loss_trainers_losses_train() {
    let plans = tiny_plans();
    for loss in [LossKind::Ce, LossKind::Topk, LossKind::Dice] {
        let dir = tempfile::tempdir().unwrap();
        let s = Training {
            loss: Some(loss),
            ..settings(2, 3, 1)
        };
        let layout = WorkLayout::new(dir.path());
        let fold = train(
            &job(&plans, "2d", &layout),
            &disk_store(),
            &s,
            &cpu_run(6),
            &(),
        )
        .unwrap();
        let losses = &fold.log.train_losses;
        assert!(losses.iter().all(|l| l.is_finite()), "{loss:?}: {losses:?}");
        match loss {
            // Cross-entropy terms are positive; Dice alone is a negative Dice.
            LossKind::Dice => assert!(losses.iter().all(|&l| (-1.0..=0.0).contains(&l))),
            _ => assert!(losses.iter().all(|&l| l > 0.0), "{loss:?}: {losses:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = WorkLayout::new(dir.path());
    let regions = [vec![1i16]];
    let region_job = super::TrainJob {
        regions: Some(&regions),
        n_classes: 1,
        ..job(&plans, "2d", &layout)
    };
    let s = Training {
        loss: Some(LossKind::Ce),
        ..settings(1, 1, 0)
    };
    let err = train(&region_job, &disk_store(), &s, &cpu_run(6), &()).unwrap_err();
    assert!(err.to_string().contains("needs label maps"), "{err}");
}

/// Mirroring off and no augmentation: the checkpoint tells inference to mirror no axis, and
/// records the settings; no augmentation samples training patches at the network's patch.
#[test]
fn mirroring_off_and_no_augmentation_reach_the_loader_and_the_checkpoint() {
    let plans = tiny_plans();
    for (mirroring, augmentation) in [
        (Some(false), AugmentationPreset::Default),
        (None, AugmentationPreset::None),
        (None, AugmentationPreset::Default),
    ] {
        let table = TrainingEntry {
            mirroring,
            augmentation: Some(augmentation),
            epochs: Some(1),
            iterations_per_epoch: Some(1),
            val_iterations_per_epoch: Some(0),
            ..TrainingEntry::default()
        };
        let s = table.resolve(autoseg_planner::Dim::Two).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layout = WorkLayout::new(dir.path());
        let j = job(&plans, "2d", &layout);
        train(&j, &disk_store(), &s, &cpu_run(8), &()).unwrap();
        let meta = read_checkpoint_meta(&j.fold_dir(), CheckpointKind::Final)
            .unwrap()
            .unwrap();
        let off = mirroring == Some(false) || augmentation == AugmentationPreset::None;
        assert_eq!(meta.mirror_axes, off.then(Vec::new));
        assert_eq!(meta.training.as_ref(), Some(&s));

        let config = plans.resolve("2d").unwrap();
        let store = disk_store();
        let data = fold_data(&store, &layout, &config, &s);
        let crop = data.train_crop();
        let enlarged = crop != [1, 32, 32];
        assert_eq!(enlarged, augmentation == AugmentationPreset::Default);
    }
}

/// The augmentation presets reach the loader: DA5 and its variants crop DA5's larger patch
/// (its scaling reaches 0.7), `ord0` keeps the default crop, and every preset trains.
#[test]
fn every_augmentation_preset_trains_with_its_crop() {
    let plans = tiny_plans();
    let config = plans.resolve("3d_fullres").unwrap();
    let default_crop = crate::augment::DaSetup::nnunet(&config.patch_size)
        .unwrap()
        .crop;
    let da5_crop = crate::augment::DaSetup::da5(&config.patch_size)
        .unwrap()
        .crop;
    assert_ne!(default_crop, da5_crop);
    for preset in [
        AugmentationPreset::Ord0,
        AugmentationPreset::Da5,
        AugmentationPreset::Da5Ord0,
        AugmentationPreset::Da5SegOrd0,
    ] {
        let s = Training {
            augmentation: preset,
            ..settings(1, 2, 1)
        };
        let store = super::tests::ball_store();
        let dir = tempfile::tempdir().unwrap();
        let layout = WorkLayout::new(dir.path());
        let fold = train(
            &job(&plans, "3d_fullres", &layout),
            &store,
            &s,
            &cpu_run(2),
            &(),
        )
        .unwrap();
        assert!(
            fold.log.train_losses.iter().all(|l| l.is_finite()),
            "{preset:?}"
        );
        let data = fold_data(&store, &layout, &config, &s);
        let want = if preset == AugmentationPreset::Ord0 {
            default_crop
        } else {
            da5_crop
        };
        assert_eq!(data.train_crop(), want, "{preset:?}");
    }
}
