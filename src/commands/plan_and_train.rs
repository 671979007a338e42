//! `autoseg plan-and-train DATASET`: verify → fingerprint → plan → preprocess → train every fold
//! of the chosen configurations → final validation → find-best. Every stage skips what is
//! already done, so re-running after an interruption (even `kill -9`) continues where it stopped.

use std::process::ExitCode;

use anyhow::Context;
use autoseg_planner::Plans;
use autoseg_trainer::train::resume_checkpoint;

use crate::cli::{PlanAndTrainArgs, PlanArgs, TrainArgs, WorkArgs};
use crate::commands::{dataset_work_dir, find_best, plan, train, verify, EXIT_FAILURE};

/// Runs the whole pipeline.
pub fn run(args: &PlanAndTrainArgs) -> anyhow::Result<ExitCode> {
    stage("verify");
    let verified = verify::run(&crate::cli::VerifyArgs {
        dataset: args.work.dataset.clone(),
    })?;
    if verified != ExitCode::SUCCESS {
        eprintln!("autoseg: the dataset has errors (listed above); fix them and run again");
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    let dir = dataset_work_dir(&args.work)?;
    let plans_path = dir.join("plans.toml");
    if plans_path.is_file() {
        stage("plan: keeping the existing plans.toml (delete it to plan again)");
    } else {
        stage("fingerprint and plan");
        plan::run(&PlanArgs {
            work: work_args(&args.work),
            planner: crate::cli::PlannerArgs {
                gpu_memory_gb: args.planner.gpu_memory_gb,
                planner: args.planner.planner,
            },
            target_spacing: None,
        })?;
    }
    let text = std::fs::read_to_string(&plans_path)
        .with_context(|| format!("{}: cannot read", plans_path.display()))?;
    let plans = Plans::from_toml_str(&text)
        .with_context(|| format!("{}: cannot use these plans", plans_path.display()))?;
    let configurations = chosen_configurations(args, &plans)?;
    for config in &configurations {
        for fold in &args.folds {
            stage(&format!("train {config} fold {fold}"));
            let fold_dir = dir
                .join("results")
                .join(config)
                .join(format!("fold_{fold}"));
            let has_checkpoint = resume_checkpoint(&fold_dir)?.is_some();
            train::train_and_validate(
                &TrainArgs {
                    work: work_args(&args.work),
                    configuration: config.clone(),
                    fold: *fold,
                    training: crate::cli::TrainingArgs {
                        device: args.training.device,
                        epochs: args.training.epochs,
                        iters_per_epoch: args.training.iters_per_epoch,
                    },
                    resume: false,
                    seed: 0,
                },
                has_checkpoint,
            )?;
        }
    }
    stage("find the best configuration");
    let folds: Vec<String> = args.folds.iter().map(|f| f.to_string()).collect();
    let outcome = find_best::choose(&args.work, &folds)?;
    find_best::print_outcome(&outcome);
    Ok(ExitCode::SUCCESS)
}

fn work_args(work: &WorkArgs) -> WorkArgs {
    WorkArgs {
        dataset: work.dataset.clone(),
        work: work.work.clone(),
    }
}

/// `-c` as given (each must be planned), else what nnU-Net trains by default: `2d`,
/// `3d_fullres`, and `3d_lowres` + `3d_cascade_fullres` when planned. Configurations are
/// trained in this order, so every fold of `3d_lowres` (whose validation writes the cascade's
/// inputs) is done before `3d_cascade_fullres` starts.
fn chosen_configurations(args: &PlanAndTrainArgs, plans: &Plans) -> anyhow::Result<Vec<String>> {
    let planned = plans.configuration_names();
    let chosen: Vec<String> = if args.configurations.is_empty() {
        DEFAULT_ORDER
            .iter()
            .filter(|c| planned.iter().any(|p| p == *c))
            .map(|c| c.to_string())
            .collect()
    } else {
        for c in &args.configurations {
            anyhow::ensure!(
                planned.contains(c),
                "configuration {c} is not planned (planned: {})",
                planned.join(", ")
            );
        }
        let mut chosen = args.configurations.clone();
        // A stage's previous stage trains first, whatever order they were given in.
        chosen.sort_by_key(|c| DEFAULT_ORDER.iter().position(|d| d == c).unwrap_or(0));
        chosen
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

/// nnU-Net's configurations in training order (a cascade's previous stage first).
const DEFAULT_ORDER: [&str; 4] = ["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"];

fn stage(what: &str) {
    println!("\n== {what}");
}
