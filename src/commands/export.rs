//! `autoseg export MODEL -o FILE.zip [-c CONFIG ...] [--format autoseg|nnunet]`: a model folder
//! as one file that `predict -m FILE.zip` runs (`autoseg_inference::export_model`), or as
//! nnU-Net v2 model folders (`autoseg_inference::export_nnunet`).

use std::process::ExitCode;

use anyhow::Context;
use autoseg_evaluation::read_best;
use autoseg_inference::{export_model, export_nnunet};
use autoseg_planner::WorkLayout;

use crate::cli::{ExportArgs, ExportFormat};

/// Runs `autoseg export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let model = WorkLayout::new(&args.model);
    anyhow::ensure!(
        model.plans().is_file(),
        "{}: not an autoseg model folder (no plans.toml)",
        args.model.display()
    );
    let configurations = if args.configurations.is_empty() {
        match read_best(&model.best())? {
            Some(best) if !best.ensemble.is_empty() => best.ensemble,
            _ => trained_configurations(&model)?,
        }
    } else {
        args.configurations.clone()
    };
    let files = match args.format {
        ExportFormat::Autoseg => export_model(&model, &configurations, &args.output),
        ExportFormat::Nnunet => export_nnunet(&model, &configurations, &args.output),
    }
    .with_context(|| format!("{}: cannot export", args.model.display()))?;
    println!(
        "{} ({}, {} files) -> {}",
        args.model.display(),
        configurations.join(", "),
        files.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Every configuration with a `results/<config>/` folder, sorted.
fn trained_configurations(model: &WorkLayout) -> anyhow::Result<Vec<String>> {
    let results = model.results();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&results)
        .with_context(|| format!("{}: cannot list", results.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", results.display()))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.retain(|n| n != "ensembles");
    names.sort();
    anyhow::ensure!(
        !names.is_empty(),
        "{}: no trained configuration",
        results.display()
    );
    Ok(names)
}
