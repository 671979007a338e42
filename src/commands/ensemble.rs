//! `autoseg ensemble -i DIR DIR ... -o OUT`: averages the probability files (`<case>.npz` with
//! `<case>.props.toml`) of several prediction folders and writes one mask per case.

use std::process::ExitCode;

use anyhow::Context;
use autoseg_evaluation::ensemble_folders;

use crate::cli::EnsembleArgs;

/// Runs `autoseg ensemble`.
pub fn run(args: &EnsembleArgs) -> anyhow::Result<ExitCode> {
    let written = ensemble_folders(&args.inputs, &args.output, None).with_context(|| {
        format!(
            "ensembling {} folders into {}",
            args.inputs.len(),
            args.output.display()
        )
    })?;
    println!(
        "ensembled {} cases from {} folders into {}",
        written.len(),
        args.inputs.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
