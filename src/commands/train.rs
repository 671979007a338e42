//! `autoseg train DATASET CONFIG FOLD [--work DIR] [--device cpu|cuda[:N]] [--epochs N]
//! [--iters-per-epoch N] [--resume] [--seed N]`: trains one configuration on one fold from the
//! preprocessed cache (brought up to date first) into `<work>/<dataset>/results/<config>/fold_<k>/`.
//!
//! A cascade stage (`3d_cascade_fullres`, whose plan names a `previous_stage`) trains on the cache
//! of the configuration it inherits from (nnU-Net shares its `data_identifier`) with the previous
//! stage's segmentations as extra inputs; a dataset declaring regions trains one sigmoid head per
//! region.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use autoseg_inference::{validate_fold, ValidationJob};
use autoseg_planner::Plans;
use autoseg_preprocessing::cache::prev_stage_dir;
use autoseg_preprocessing::{preprocess, Dataset, Labels, PreprocessSettings};
use autoseg_trainer::schedule::TrainSettings;
use autoseg_trainer::train::{
    default_device, set_torch_threads, train, CacheStore, CascadeStore, CaseStore, Device,
    RunOptions, TrainJob,
};

use crate::cli::{DeviceArg, TrainArgs};
use crate::commands::fingerprint::open_dataset;
use crate::commands::{dataset_work_dir, threads};
use crate::progress::Bar;

/// Runs `autoseg train`: trains the fold, then validates it as nnU-Net does at the end of
/// training (`fold_<k>/validation/` with `summary.json`).
pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    train_and_validate(args, args.resume)?;
    Ok(ExitCode::SUCCESS)
}

/// Trains (continuing from the fold's checkpoint when `resume`), then runs the final validation
/// unless it is already newer than the final weights. Used by `train` and `plan-and-train`.
pub fn train_and_validate(args: &TrainArgs, resume: bool) -> anyhow::Result<()> {
    let dataset = open_dataset(&args.work.dataset)?;
    let dir = dataset_work_dir(&args.work)?;
    let run = RunOptions {
        resume,
        ..run_options(args)
    };
    let trained = train_fold(args, &dataset, &dir, &run)?;
    let summary_path = trained.fold_dir.join("validation").join("summary.json");
    if is_newer(&summary_path, &trained.final_weights) {
        println!(
            "{} fold {}: validation is up to date",
            args.configuration, args.fold
        );
        return Ok(());
    }
    // A 3d_lowres fold's validation writes the next stage's inputs on that stage's grid.
    let plans = read_plans(&dir, &args.work.dataset)?;
    if let Some(next) = plans.resolve(&args.configuration)?.next_stage {
        ensure_cache(&dataset, &plans, plans.data_configuration(&next), &dir)?;
    }
    let labels_dir = dataset.root.join("labelsTr");
    let fold = args.fold.to_string();
    let job = ValidationJob {
        dataset_dir: &dir,
        configuration: &args.configuration,
        fold: &fold,
        cases: &trained.val_cases,
        labels_dir: &labels_dir,
        dataset: &dataset.json,
        device: run.device,
    };
    let summary = validate_fold(&job).with_context(|| {
        format!(
            "{}: final validation of {} fold {fold} failed",
            dataset.name(),
            args.configuration
        )
    })?;
    println!(
        "{} fold {fold}: validation foreground Dice {:.4} ({} cases) -> {}",
        args.configuration,
        summary.foreground_dice(),
        trained.val_cases.len(),
        summary_path.display()
    );
    Ok(())
}

/// Validation iterations per epoch: nnU-Net's 50 for its 250 training iterations, and the same
/// 1:5 ratio (at least 1) when `--iters-per-epoch` shortens epochs.
fn val_iters(iters_per_epoch: usize) -> usize {
    iters_per_epoch.div_ceil(5).clamp(1, 50)
}

/// True when `a` exists and was modified after `b` (or `b` is missing).
fn is_newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(a), modified(b)) {
        (Some(ta), Some(tb)) => ta > tb,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Trains one fold and returns where it is and which cases validate it.
fn train_fold(
    args: &TrainArgs,
    dataset: &Dataset,
    dir: &Path,
    run: &RunOptions,
) -> anyhow::Result<autoseg_trainer::train::TrainedFold> {
    let plans = read_plans(dir, &args.work.dataset)?;
    let config = &args.configuration;
    let labels = &dataset.json.labels;
    let resolved = plans.resolve(config).with_context(|| {
        format!(
            "{}: configuration {config}",
            dir.join("plans.toml").display()
        )
    })?;
    let regions = labels.regions().map(|r| regions_i16(&r)).transpose()?;
    let (store, cascade_labels): (Box<dyn CaseStore>, Option<Vec<i16>>) =
        match &resolved.previous_stage {
            Some(previous) => {
                let data_config = plans.data_configuration(config);
                let cache_dir = ensure_cache(dataset, &plans, data_config, dir)?;
                let prev_dir = prev_stage_dir(dir, previous, config);
                let store = CascadeStore::open(&cache_dir, &prev_dir)?;
                (Box::new(store), Some(cascade_labels(labels)?))
            }
            None => {
                let cache_dir = ensure_cache(dataset, &plans, config, dir)?;
                (Box::new(CacheStore::open(&cache_dir)?), None)
            }
        };
    let settings = TrainSettings {
        epochs: args.training.epochs,
        iters_per_epoch: args.training.iters_per_epoch,
        val_iters_per_epoch: val_iters(args.training.iters_per_epoch),
        ..TrainSettings::nnunet_default()
    };
    let job = TrainJob {
        plans: &plans,
        configuration: config,
        fold: args.fold,
        dataset_dir: dir,
        n_classes: labels.num_segmentation_heads(),
        ignore_label: labels.ignore_label().map(i64::from),
        regions: regions.as_deref(),
        cascade_labels: cascade_labels.as_deref(),
    };
    let trained = train(&job, store.as_ref(), &settings, run, &Bar::new()).with_context(|| {
        format!(
            "{}: training {config} fold {} failed",
            dataset.name(),
            args.fold
        )
    })?;
    let best = trained
        .best_ema
        .map_or_else(|| "none".to_string(), |b| format!("{b:.4}"));
    println!(
        "{config} fold {}: {} epochs, best EMA pseudo Dice {best} -> {}",
        args.fold,
        trained.epochs_done,
        trained.fold_dir.display()
    );
    Ok(trained)
}

/// The foreground labels a cascade one-hot encodes the previous stage's segmentation over:
/// every label but background and the ignore label, ascending (nnU-Net:
/// `LabelManager.foreground_labels`).
fn cascade_labels(labels: &Labels) -> anyhow::Result<Vec<i16>> {
    labels
        .foreground_labels()
        .into_iter()
        .map(label_i16)
        .collect()
}

/// The dataset's regions with the cache's `i16` label values.
fn regions_i16(regions: &[Vec<u16>]) -> anyhow::Result<Vec<Vec<i16>>> {
    regions
        .iter()
        .map(|region| region.iter().copied().map(label_i16).collect())
        .collect()
}

fn label_i16(label: u16) -> anyhow::Result<i16> {
    i16::try_from(label).with_context(|| {
        format!("label {label} is above 32767, the largest the preprocessed cache holds")
    })
}

/// `<dir>/plans.toml`, or an error saying which command makes it.
fn read_plans(dir: &Path, dataset: &Path) -> anyhow::Result<Plans> {
    let path = dir.join("plans.toml");
    anyhow::ensure!(
        path.is_file(),
        "{}: no plans; run `autoseg plan {}` (or `autoseg preprocess`) first",
        path.display(),
        dataset.display()
    );
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Plans::from_toml_str(&text)
        .with_context(|| format!("{}: cannot use these plans", path.display()))
}

/// Brings `preprocessed/<config>` up to date (current cases are skipped) and returns it.
fn ensure_cache(
    dataset: &Dataset,
    plans: &Plans,
    config: &str,
    dir: &Path,
) -> anyhow::Result<std::path::PathBuf> {
    let settings = PreprocessSettings::per_thread();
    let summary = preprocess(dataset, plans, config, dir, &settings, &Bar::new())
        .with_context(|| format!("{}: cannot preprocess {config}", dataset.name()))?;
    if summary.n_written > 0 {
        println!("{config}: preprocessed {} cases", summary.n_written);
    }
    Ok(summary.dir)
}

fn run_options(args: &TrainArgs) -> RunOptions {
    let device = match args.training.device {
        None => default_device(),
        Some(DeviceArg::Cpu) => Device::Cpu,
        Some(DeviceArg::Cuda(idx)) => Device::Cuda(idx),
    };
    let mut run = RunOptions {
        resume: args.resume,
        ..RunOptions::new(device, args.seed)
    };
    let n_threads = threads();
    if n_threads > 0 {
        set_torch_threads(n_threads);
        run.n_loader_workers = n_threads;
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_preprocessing::parse_dataset_json;

    fn labels(json_labels: &str) -> Labels {
        let text = format!(
            r#"{{"channel_names": {{"0": "CT"}}, "labels": {json_labels},
                "numTraining": 2, "file_ending": ".nii.gz"}}"#
        );
        parse_dataset_json(text.as_bytes(), Path::new("dataset.json"))
            .unwrap()
            .labels
    }

    #[test]
    fn cascade_inputs_are_the_foreground_labels_without_the_ignore_label() {
        let l = labels(r#"{"background": 0, "liver": 1, "tumour": 2, "ignore": 3}"#);
        assert_eq!(cascade_labels(&l).unwrap(), vec![1, 2]);
        assert_eq!(
            regions_i16(&[vec![1, 2], vec![2]]).unwrap(),
            vec![vec![1, 2], vec![2]]
        );
        let err = regions_i16(&[vec![40_000]]).unwrap_err().to_string();
        assert!(err.contains("label 40000"), "{err}");
    }

    #[test]
    fn validation_iterations_keep_nnunets_ratio() {
        assert_eq!(val_iters(250), 50);
        assert_eq!(val_iters(1000), 50);
        assert_eq!(val_iters(25), 5);
        assert_eq!(val_iters(2), 1);
    }
}
