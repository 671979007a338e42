//! `autoseg verify DATASET`: every problem of a dataset at once, each with its file.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::VerifyArgs;
use crate::commands::EXIT_FAILURE;

/// Prints every error and warning; exit 1 when there is any error, 0 otherwise.
pub fn run(args: &VerifyArgs, threads: usize) -> anyhow::Result<ExitCode> {
    Ok(if check_and_print(&args.dataset, threads) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

/// Verifies `dataset` with `threads` threads (0: all cores), prints every problem and a
/// summary line; true when there is no error.
pub fn check_and_print(dataset: &Path, threads: usize) -> bool {
    let report = autoseg_preprocessing::verify(dataset, threads);
    for issue in &report.warnings {
        println!("warning: {issue}");
    }
    for issue in &report.errors {
        println!("error: {issue}");
    }
    let (n_err, n_warn) = (report.errors.len(), report.warnings.len());
    if report.is_ok() {
        println!("{}: dataset OK ({n_warn} warning(s))", dataset.display());
    } else {
        println!(
            "{}: {n_err} error(s), {n_warn} warning(s)",
            dataset.display()
        );
    }
    report.is_ok()
}
