//! `autoseg verify DATASET`: every problem of a dataset at once, each with its file.

use std::process::ExitCode;

use crate::cli::VerifyArgs;
use crate::commands::{threads, EXIT_FAILURE};

/// Prints every error and warning; exit 1 when there is any error, 0 otherwise.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let report = autoseg_preprocessing::verify(&args.dataset, threads());
    for issue in &report.warnings {
        println!("warning: {issue}");
    }
    for issue in &report.errors {
        println!("error: {issue}");
    }
    let (n_err, n_warn) = (report.errors.len(), report.warnings.len());
    if report.is_ok() {
        println!(
            "{}: dataset OK ({n_warn} warning(s))",
            args.dataset.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{}: {n_err} error(s), {n_warn} warning(s)",
            args.dataset.display()
        );
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}
