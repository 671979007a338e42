//! `autoseg plan-and-train DATASET`: verify → fingerprint → plan → preprocess → train every fold
//! of the chosen configurations → final validation → find-best. Every stage skips what is
//! already done, so re-running after an interruption (even `kill -9`) continues where it stopped.
//!
//! The order is the plan's ([`Plans::training_order`]: a cascade stage after its previous stage,
//! whatever their names); each stage is a library call. With `--parallel-folds` the folds train
//! at the same time instead, each in an `autoseg train` process (`parallel_folds`).

use std::process::ExitCode;

use autoseg_planner::{Plans, WorkLayout};
use autoseg_preprocessing::Dataset;
use autoseg_trainer::train::{resume_checkpoint, Start, StopRequest};

use crate::cli::PlanAndTrainArgs;
use crate::commands::fingerprint::open_dataset;
use crate::commands::parallel_folds::{self, Trained};
use crate::commands::{find_best, lock_work, plan, train, verify, EXIT_FAILURE};

/// Runs the whole pipeline with `threads` worker threads (0: all cores).
pub fn run(args: &PlanAndTrainArgs, threads: usize) -> anyhow::Result<ExitCode> {
    stage("verify");
    if !verify::check_and_print(&args.work.dataset, threads) {
        eprintln!("autoseg: the dataset has errors (listed above); fix them and run again");
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    let dataset = open_dataset(&args.work.dataset)?;
    let (layout, lock) = lock_work(&args.work, "plan-and-train")?;
    let plans = if layout.plans().is_file() {
        stage("plan: keeping the existing plans.toml (delete it to plan again)");
        Plans::read(&layout.plans())?
    } else {
        stage("fingerprint and plan");
        let settings = plan::planner_settings(&args.planner, None)?;
        plan::plan_dataset(&dataset, &layout, &settings)?
    };
    let configurations = chosen_configurations(args, &plans)?;
    let stop = crate::signals::stop_on_signals()?;
    let job = FoldsJob {
        args,
        dataset: &dataset,
        layout: &layout,
        plans: &plans,
        configurations: &configurations,
        threads,
    };
    // Held (exclusively) for find-best; --parallel-folds lets go of it while its folds train.
    let _lock = match &args.parallel_folds {
        Some(devices) => match parallel_folds::train_in_parallel(&job, devices, lock, &stop)? {
            Trained::Locked(lock) => lock,
            Trained::Stopped(code) => return Ok(code),
        },
        None => {
            if let Some(code) = train_in_order(&job, &stop)? {
                return Ok(code);
            }
            lock
        }
    };
    if let Some(code) = stop.requested() {
        eprintln!(
            "autoseg: stopped on request after the last fold's validation; run the same \
             plan-and-train again to choose the best configuration"
        );
        return Ok(ExitCode::from(code));
    }
    stage("find the best configuration");
    let folds: Vec<String> = args.folds.iter().map(|f| f.to_string()).collect();
    let outcome = find_best::choose(&dataset, &layout, &plans, &folds)?;
    find_best::print_outcome(&outcome);
    Ok(ExitCode::SUCCESS)
}

/// The folds to train: every fold of `args.folds` of every configuration, with the flags.
pub struct FoldsJob<'a> {
    /// The command's arguments (folds, training flags, `--parallel-folds`).
    pub args: &'a PlanAndTrainArgs,
    /// The dataset.
    pub dataset: &'a Dataset,
    /// Its work folder.
    pub layout: &'a WorkLayout,
    /// Its plans.
    pub plans: &'a Plans,
    /// The configurations to train, in the plan's training order.
    pub configurations: &'a [String],
    /// `--threads` (0: all cores).
    pub threads: usize,
}

/// Trains every fold of every configuration one after another in this process; the exit code
/// when a signal stopped it.
fn train_in_order(job: &FoldsJob<'_>, stop: &StopRequest) -> anyhow::Result<Option<ExitCode>> {
    let args = job.args;
    for config in job.configurations {
        for fold in &args.folds {
            stage(&format!("train {config} fold {fold}"));
            let fold_dir = job.layout.fold(config, fold);
            let start = match resume_checkpoint(&fold_dir)? {
                Some(_) => Start::Resume,
                None => Start::Fresh,
            };
            let run = train::run_options(&args.training, start, 0, job.threads, stop);
            let trained = train::train_and_validate(
                job.dataset,
                job.layout,
                job.plans,
                config,
                *fold,
                &args.training,
                &run,
            );
            let resume = "run the same plan-and-train again to go on from there";
            if let Some(code) = train::stopped(&trained, resume) {
                return Ok(Some(code));
            }
            trained?;
        }
    }
    Ok(None)
}

/// `-c` as given (each must be planned), else every planned configuration (nnU-Net's `2d`,
/// `3d_fullres`, and `3d_lowres` + `3d_cascade_fullres` when planned), in the plan's training
/// order, so every fold of a cascade's first stage (whose validation writes the next stage's
/// inputs) is done before the next stage starts.
fn chosen_configurations(args: &PlanAndTrainArgs, plans: &Plans) -> anyhow::Result<Vec<String>> {
    let chosen = if args.configurations.is_empty() {
        plans.all_in_training_order()?
    } else {
        plans.training_order(&args.configurations)?
    };
    for c in &chosen {
        let previous = plans.resolve(c)?.previous_stage;
        if let Some(previous) = previous.filter(|p| !chosen.contains(p)) {
            tracing::info!(
                configuration = c.as_str(),
                previous = previous.as_str(),
                "the previous stage is not trained in this run: its predicted_next_stage files must exist"
            );
        }
    }
    Ok(chosen)
}

/// Prints the heading of a stage.
pub fn stage(what: &str) {
    println!("\n== {what}");
}
