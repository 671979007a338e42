//! `autoseg report DATASET [--work DIR]`: writes the self-contained HTML report of a dataset's
//! work folder to `<work>/<dataset>/report/index.html` and prints its path.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::WorkArgs;
use crate::commands::lock_work;

/// Runs `autoseg report`.
pub fn run(args: &WorkArgs) -> anyhow::Result<ExitCode> {
    let dataset = std::fs::canonicalize(&args.dataset)
        .with_context(|| format!("{}: cannot open dataset folder", args.dataset.display()))?;
    let (layout, _lock) = lock_work(args, "report")?;
    let path = autoseg_evaluation::report::write_report(&dataset, &layout)
        .with_context(|| format!("{}: cannot write the report", layout.root().display()))?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
