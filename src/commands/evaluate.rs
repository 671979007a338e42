//! `autoseg evaluate --pred DIR --ref DIR [--dataset-json FILE] [-o summary.json]`: metrics of a
//! folder of predicted masks against the references of the same names, written as nnU-Net's
//! `summary.json` and printed as a table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use autoseg_evaluation::{
    detect_file_ending, evaluate_pairs, format_table, labels_in_references, match_cases,
    settings_from_dataset_json, CasePair, EvaluationSettings, LabelValue, SurfaceSettings,
    DEFAULT_NSD_TOLERANCE_MM,
};
use autoseg_preprocessing::read_dataset_json;

use crate::cli::EvaluateArgs;

/// Runs `autoseg evaluate`.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    let surface = Some(SurfaceSettings {
        nsd_tolerance_mm: DEFAULT_NSD_TOLERANCE_MM,
    });
    let (pairs, settings) = match &args.dataset_json {
        Some(path) => from_dataset_json(args, path, surface)?,
        None => from_references(args, surface)?,
    };
    let summary = evaluate_pairs(&pairs, &settings).with_context(|| {
        format!(
            "evaluating {} against {}",
            args.pred.display(),
            args.reference.display()
        )
    })?;
    let output = output_path(args);
    summary.write(&output)?;
    print!("{}", format_table(&summary));
    println!(
        "{} cases evaluated; NSD tolerance {DEFAULT_NSD_TOLERANCE_MM} mm; wrote {}",
        pairs.len(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `-o`, or `<pred>/summary.json` (nnU-Net's default).
fn output_path(args: &EvaluateArgs) -> PathBuf {
    args.output
        .clone()
        .unwrap_or_else(|| args.pred.join("summary.json"))
}

/// Classes, ignore label and file ending from `dataset.json`.
fn from_dataset_json(
    args: &EvaluateArgs,
    path: &Path,
    surface: Option<SurfaceSettings>,
) -> anyhow::Result<(Vec<CasePair>, EvaluationSettings)> {
    let json = read_dataset_json(path)?;
    let settings = settings_from_dataset_json(&json, surface);
    let pairs = match_cases(&args.pred, &args.reference, &json.file_ending)?;
    Ok((pairs, settings))
}

/// Every foreground label found in the references, no ignore label; the file ending of the
/// predictions.
fn from_references(
    args: &EvaluateArgs,
    surface: Option<SurfaceSettings>,
) -> anyhow::Result<(Vec<CasePair>, EvaluationSettings)> {
    let file_ending = detect_file_ending(&args.pred)?;
    let pairs = match_cases(&args.pred, &args.reference, file_ending)?;
    let labels = labels_in_references(&pairs)?;
    anyhow::ensure!(
        !labels.is_empty(),
        "{}: the references hold no foreground label; give --dataset-json",
        args.reference.display()
    );
    tracing::info!(
        ?labels,
        "no --dataset-json: evaluating the labels found in the references"
    );
    let settings = EvaluationSettings {
        classes: labels.into_iter().map(LabelValue::Single).collect(),
        ignore_label: None,
        surface,
    };
    Ok((pairs, settings))
}
