//! One module per command: each turns parsed arguments into library calls and prints results.

mod ensemble;
mod evaluate;
mod export;
mod find_best;
mod fingerprint;
mod fixtures;
mod import_nnunet;
mod parallel_folds;
mod plan;
mod plan_and_train;
mod predict;
mod preprocess;
mod report;
mod train;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use autoseg_planner::{WorkLayout, WorkLock};

use crate::cli::{Command, WorkArgs};

/// Exit code for a usage error, and for a command whose stage does not exist yet.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure or for problems found (e.g. by `verify`).
pub const EXIT_FAILURE: u8 = 1;

/// Runs one command with `threads` worker threads for the stages that size their own pools
/// (`--threads`; 0 = all cores); errors are printed by the caller with their whole cause chain.
pub fn run(command: Command, threads: usize) -> anyhow::Result<ExitCode> {
    match command {
        Command::Fingerprint(args) => fingerprint::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Preprocess(args) => preprocess::run(&args),
        Command::Verify(args) => verify::run(&args, threads),
        Command::Fixtures(args) => fixtures::run(&args),
        Command::ImportNnunet(args) => import_nnunet::run(&args),
        Command::Export(args) => export::run(&args),
        Command::FindBest(args) => find_best::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Ensemble(args) => ensemble::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Train(args) => train::run(&args, threads),
        Command::PlanAndTrain(args) => plan_and_train::run(&args, threads),
    }
}

/// `<work>/<dataset folder name>`, where every artifact of this dataset goes, locked for
/// `command` as long as the returned lock lives: a second run writing into the same folder
/// stops at once with an error naming this one.
pub fn lock_work(args: &WorkArgs, command: &str) -> anyhow::Result<(WorkLayout, WorkLock)> {
    let name = dataset_name(&args.dataset)?;
    let layout = WorkLayout::new(args.work.join(name));
    let lock = WorkLock::acquire(&layout, command)?;
    warn_if_unguarded(&lock);
    Ok((layout, lock))
}

/// Says so when the work folder's filesystem has no file locks and `lock` guards nothing.
pub fn warn_if_unguarded(lock: &WorkLock) {
    if !lock.is_held() {
        tracing::warn!(
            lock = %lock.path().display(),
            "this filesystem supports no file locks: running without the one-writer guard; do \
             not start a second command on this work folder (other than other folds' `train`) \
             until this one ends"
        );
    }
}

/// The dataset's folder name (the last component of its path, after resolving `.` and `..`).
pub fn dataset_name(dataset: &Path) -> anyhow::Result<String> {
    let resolved = std::fs::canonicalize(dataset)
        .map_err(|e| anyhow::anyhow!("{}: cannot open dataset folder: {e}", dataset.display()))?;
    resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("{}: a dataset folder needs a name", dataset.display()))
}
