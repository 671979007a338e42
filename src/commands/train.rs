//! `autoseg train DATASET CONFIG FOLD [--work DIR] [--device cpu|cuda[:N]] [--trainer NAME]
//! [--epochs N] [--iters-per-epoch N] [--patience N] [--resume | --pretrained-weights FILE]
//! [--seed N]`:
//! trains one configuration on one fold from the preprocessed cache (brought up to date first) into
//! `<work>/<dataset>/results/<config>/fold_<k>/`, then validates it as nnU-Net does at the end of
//! training (`fold_<k>/validation/`). A fresh run may start from pretrained weights (every
//! parameter but the segmentation heads, nnU-Net's `-pretrained_weights`).
//!
//! The work is `autoseg_trainer::train::train_fold`'s (which caches, which store, the final
//! validation); this module turns the plan's `training` table, the `--trainer` name and the
//! flags into its settings and prints what it did.

use std::process::ExitCode;

use anyhow::Context;
use autoseg_planner::{nnunet_trainer, Plans, Training, TrainingEntry, WorkLayout, WorkLock};
use autoseg_preprocessing::Dataset;
use autoseg_preprocessing::Progress;
use autoseg_trainer::distributed::{ProcessGroup, Rendezvous};
use autoseg_trainer::splits::Fold;
use autoseg_trainer::train::{
    default_device, set_torch_threads, train_fold, DataParallel, Device, FoldJob, RunOptions,
    Start, StopRequest, TrainError,
};
use std::time::Duration;

use crate::cli::{Backend, DeviceArg, TrainArgs, TrainingArgs};
use crate::commands::fingerprint::open_dataset;
use crate::commands::{dataset_name, warn_if_unguarded};
use crate::progress::Bar;

/// Runs `autoseg train` with `threads` loader and libtorch threads (0: all cores), as one
/// process, as a rank of a data-parallel group (torchrun's variables), or as the launcher of
/// `--nproc` ranks.
pub fn run(args: &TrainArgs, threads: usize) -> anyhow::Result<ExitCode> {
    let dist = &args.distributed;
    anyhow::ensure!(
        dist.backend == Backend::Gloo,
        "--backend nccl: libtorch's ProcessGroupNCCL is not built into this autoseg yet; \
         --backend gloo runs the collectives on CUDA tensors too"
    );
    let rendezvous = Rendezvous::from_env(Duration::from_secs(dist.dist_timeout))?;
    if let Some(n) = dist.nproc.filter(|_| !crate::launch::is_child()) {
        anyhow::ensure!(
            rendezvous.is_none(),
            "--nproc starts the ranks itself: under torchrun or srun (WORLD_SIZE is set) leave \
             it out"
        );
        if n > 1 {
            return crate::launch::run_ranks(n);
        }
    }
    let dataset = open_dataset(&args.work.dataset)?;
    // Shared with the other folds' runs, exclusive for this fold: folds train in parallel. In a
    // data-parallel group, rank 0 holds the fold's lock and the others read under the shared
    // one.
    let layout = WorkLayout::new(args.work.work.join(dataset_name(&args.work.dataset)?));
    let _folder_lock = WorkLock::acquire_shared(&layout, "train")?;
    let _fold_lock = match rendezvous.as_ref().map_or(0, |r| r.rank) {
        0 => {
            let lock = WorkLock::acquire_fold(&layout, &args.configuration, args.fold, "train")?;
            warn_if_unguarded(&lock);
            Some(lock)
        }
        _ => None,
    };
    let plans = Plans::read(&layout.plans())?;
    let start = match (&args.pretrained_weights, args.resume) {
        (Some(file), _) => Start::Pretrained(file.clone()),
        (None, true) => Start::Resume,
        (None, false) => Start::Fresh,
    };
    let stop = crate::signals::stop_on_signals()?;
    let run = match &rendezvous {
        None => run_options(&args.training, start, args.seed, threads, &stop),
        Some(r) => rank_options(&args.training, start, args.seed, threads, &stop, r)?,
    };
    let trained = train_and_validate(
        &dataset,
        &layout,
        &plans,
        &args.configuration,
        args.fold,
        &args.training,
        &run,
    );
    // In a data-parallel group rank 0 speaks for all.
    let resume = "run the same command with --resume to go on";
    let code = match &rendezvous {
        Some(r) if r.rank != 0 => stop_code(&trained).map(|(code, _)| ExitCode::from(code)),
        _ => stopped(&trained, resume),
    };
    if let Some(code) = code {
        return Ok(code);
    }
    trained?;
    if let Some(code) = stop.requested() {
        // The signal came during the final validation, which ran to its end.
        eprintln!("autoseg: stopped on request after the fold finished training and validation");
        return Ok(ExitCode::from(code));
    }
    if let Start::Pretrained(file) = &run.start {
        println!(
            "{} fold {}: started from the pretrained weights {} (segmentation heads freshly \
             initialised)",
            args.configuration,
            args.fold,
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Trains (continuing from the fold's checkpoint when `run.resume`) and validates one fold,
/// printing what was done. Used by `train` and `plan-and-train`.
pub fn train_and_validate(
    dataset: &Dataset,
    layout: &WorkLayout,
    plans: &Plans,
    configuration: &str,
    fold: Fold,
    training: &TrainingArgs,
    run: &RunOptions,
) -> anyhow::Result<()> {
    let settings = train_settings(plans, configuration, training)?;
    let job = FoldJob {
        dataset,
        layout,
        plans,
        configuration,
        fold,
        settings: &settings,
        run,
    };
    let rank = run.group.as_ref().map_or(0, |g| g.rank());
    let progress: &dyn Progress = if rank == 0 { &Bar::new() } else { &() };
    let outcome = train_fold(&job, progress).with_context(|| match &run.group {
        None => format!(
            "{}: training {configuration} fold {fold} failed",
            dataset.name()
        ),
        Some(g) => format!(
            "{}: training {configuration} fold {fold} failed on rank {rank} of {}",
            dataset.name(),
            g.world_size()
        ),
    })?;
    if rank != 0 {
        // Rank 0 reports for the group.
        return Ok(());
    }
    for (config, n) in &outcome.preprocessed {
        println!("{config}: preprocessed {n} cases");
    }
    let trained = &outcome.trained;
    let best = trained
        .best_ema
        .map_or_else(|| "none".to_string(), |b| format!("{b:.4}"));
    println!(
        "{configuration} fold {fold}: {} epochs{}, best EMA pseudo Dice {best} -> {}",
        trained.epochs_done,
        if trained.stopped_early {
            " (stopped early: --patience)"
        } else {
            ""
        },
        trained.fold_dir.display()
    );
    match outcome.validation_dice {
        None => println!("{configuration} fold {fold}: validation is up to date"),
        Some(dice) => println!(
            "{configuration} fold {fold}: validation foreground Dice {dice:.4} ({} cases) -> {}",
            trained.val_cases.len(),
            outcome.summary.display()
        ),
    }
    Ok(())
}

/// The run's settings: the configuration's `training` table, then the `--trainer` name's keys,
/// then the flags.
fn train_settings(
    plans: &Plans,
    configuration: &str,
    training: &TrainingArgs,
) -> anyhow::Result<Training> {
    let trainer = match &training.trainer {
        Some(name) => nnunet_trainer(name)?,
        None => TrainingEntry::default(),
    };
    let flags = TrainingEntry {
        epochs: training.epochs,
        iterations_per_epoch: training.iters_per_epoch,
        val_iterations_per_epoch: training.iters_per_epoch.map(val_iters),
        patience: training.patience.map(|p| p as usize),
        ..TrainingEntry::default()
    };
    let settings = plans.training(configuration, &trainer.overlaid_with(flags))?;
    Ok(settings)
}

/// Validation iterations per epoch: nnU-Net's 50 for its 250 training iterations, and the same
/// 1:5 ratio (at least 1) when `--iters-per-epoch` shortens epochs.
fn val_iters(iters_per_epoch: usize) -> usize {
    iters_per_epoch.div_ceil(5).clamp(1, 50)
}

/// When `result` is a stop asked for by a signal: prints where it stopped and `resume`, and
/// gives the exit code the signal asks for (130 or 143).
pub fn stopped(result: &anyhow::Result<()>, resume: &str) -> Option<ExitCode> {
    let (exit_code, text) = stop_code(result)?;
    eprintln!("autoseg: {text}; {resume}");
    Some(ExitCode::from(exit_code))
}

/// The exit code and message of a stop asked for by a signal, when `result` is one.
fn stop_code(result: &anyhow::Result<()>) -> Option<(u8, String)> {
    let err = result.as_ref().err()?;
    err.chain().find_map(|cause| match cause.downcast_ref() {
        Some(stop @ TrainError::Stopped { exit_code, .. }) => Some((*exit_code, stop.to_string())),
        _ => None,
    })
}

/// [`run_options`] for rank `r.rank` of a data-parallel group: joins the group; on CUDA (the
/// default where usable, or `--device cuda`) the rank trains on `cuda:LOCAL_RANK`; the
/// machine's `threads` (0: all cores) are shared by its `LOCAL_WORLD_SIZE` ranks.
fn rank_options(
    training: &TrainingArgs,
    start: Start,
    seed: u64,
    threads: usize,
    stop: &StopRequest,
    r: &Rendezvous,
) -> anyhow::Result<RunOptions> {
    let local_world: usize = std::env::var("LOCAL_WORLD_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(r.world_size)
        .max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = if threads == 0 { cores } else { threads };
    let mut run = run_options(training, start, seed, (total / local_world).max(1), stop);
    if run.device.is_cuda() {
        run.device = Device::Cuda(r.local_rank);
    }
    let group = ProcessGroup::join(r)?;
    run.group = Some(DataParallel(group));
    Ok(run)
}

/// Device, seed and start from the flags; `threads` (0: all cores) sizes libtorch's pool and
/// the loader; `stop` is watched between iterations.
pub fn run_options(
    training: &TrainingArgs,
    start: Start,
    seed: u64,
    threads: usize,
    stop: &StopRequest,
) -> RunOptions {
    let device = match training.device {
        None => default_device(),
        Some(DeviceArg::Cpu) => Device::Cpu,
        Some(DeviceArg::Cuda(idx)) => Device::Cuda(idx),
    };
    let mut run = RunOptions {
        start,
        stop: stop.clone(),
        ..RunOptions::new(device, seed)
    };
    if threads > 0 {
        set_torch_threads(threads);
        run.n_loader_workers = threads;
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(trainer: Option<&str>, epochs: Option<usize>) -> TrainingArgs {
        TrainingArgs {
            device: None,
            trainer: trainer.map(str::to_string),
            epochs,
            iters_per_epoch: None,
            patience: None,
        }
    }

    #[test]
    fn settings_come_from_the_plan_then_the_trainer_then_the_flags() {
        let mut plans = autoseg_planner::plan(
            &autoseg_planner::Fingerprint::new(
                vec![[1.0; 3]; 4],
                vec![[40, 48, 40]; 4],
                1.0,
                vec![autoseg_planner::ForegroundIntensityProperties {
                    mean: 0.0,
                    median: 0.0,
                    std: 1.0,
                    min: -1.0,
                    max: 1.0,
                    percentile_00_5: -1.0,
                    percentile_99_5: 1.0,
                }],
            )
            .unwrap(),
            &autoseg_planner::DatasetInfo::new(
                "Dataset001_T",
                vec!["MRI".into()],
                vec![
                    autoseg_planner::LabelEntry {
                        name: "background".into(),
                        value: autoseg_planner::LabelValue::Single(0),
                    },
                    autoseg_planner::LabelEntry {
                        name: "a".into(),
                        value: autoseg_planner::LabelValue::Single(1),
                    },
                ],
                4,
                ".nii.gz",
            )
            .unwrap(),
            &autoseg_planner::PlannerSettings::nnunet_default(),
        )
        .unwrap();
        let get = |plans: &Plans, trainer, epochs| {
            train_settings(plans, "3d_fullres", &args(trainer, epochs)).unwrap()
        };
        assert_eq!(get(&plans, None, None), Training::nnunet_default());
        plans.configurations.get_mut("3d_fullres").unwrap().training = Some(TrainingEntry {
            epochs: Some(300),
            momentum: Some(0.95),
            ..TrainingEntry::default()
        });
        let plan_only = get(&plans, None, None);
        assert_eq!((plan_only.epochs, plan_only.momentum), (300, 0.95));
        let with_trainer = get(&plans, Some("nnUNetTrainer_250epochs"), None);
        assert_eq!((with_trainer.epochs, with_trainer.momentum), (250, 0.95));
        let with_flag = get(&plans, Some("nnUNetTrainer_250epochs"), Some(7));
        assert_eq!(with_flag.epochs, 7);
        let err = train_settings(&plans, "3d_fullres", &args(Some("nnUNetTrainerX"), None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nnUNetTrainer_250epochs"), "{err}");
    }

    #[test]
    fn validation_iterations_keep_nnunets_ratio() {
        assert_eq!(val_iters(250), 50);
        assert_eq!(val_iters(1000), 50);
        assert_eq!(val_iters(25), 5);
        assert_eq!(val_iters(2), 1);
    }
}
