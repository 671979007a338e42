//! `autoseg plan DATASET [--work DIR] [--gpu-memory-gb N] [--planner P] [--target-spacing Z Y X]`:
//! plans the configurations from the fingerprint (reused when current, else extracted) and
//! writes `<work>/<dataset>/plans.toml`, then prints why each number was chosen.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use autoseg_planner::{
    plan_with_report, PlanReport, PlannerPreset, PlannerSettings, Plans, WorkLayout,
};
use autoseg_preprocessing::{write_atomic, Dataset};

use crate::cli::{self, PlanArgs, PlannerArgs};
use crate::commands::fingerprint::{current_or_fresh, open_dataset};
use crate::commands::lock_work;

/// Runs `autoseg plan`.
pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let settings = planner_settings(&args.planner, args.target_spacing.as_deref())?;
    let dataset = open_dataset(&args.work.dataset)?;
    let (layout, _lock) = lock_work(&args.work, "plan")?;
    plan_dataset(&dataset, &layout, &settings)?;
    Ok(ExitCode::SUCCESS)
}

/// Fingerprints `dataset` (reusing a current fingerprint), plans it with `settings`, writes
/// `plans.toml` and a copy of `dataset.json`, and prints why each number was chosen.
pub fn plan_dataset(
    dataset: &Dataset,
    layout: &WorkLayout,
    settings: &PlannerSettings,
) -> anyhow::Result<Plans> {
    let fingerprint = current_or_fresh(dataset, layout)?;
    let info = dataset
        .dataset_info()
        .with_context(|| format!("{}: cannot plan this dataset", dataset.root.display()))?;
    let (plans, report) = plan_with_report(&fingerprint, &info, settings)
        .with_context(|| format!("{}: planning failed", dataset.name()))?;
    plans.write(&layout.plans())?;
    copy_dataset_json(dataset, layout)?;
    print_summary(&plans, &report, &layout.plans())?;
    Ok(plans)
}

/// Keeps a copy of `dataset.json` beside the plans, as nnU-Net does, so a model folder
/// (`<work>/<dataset>`) is self-contained for `predict`.
fn copy_dataset_json(dataset: &Dataset, layout: &WorkLayout) -> anyhow::Result<()> {
    let source = dataset.root.join("dataset.json");
    let bytes =
        std::fs::read(&source).with_context(|| format!("{}: cannot read", source.display()))?;
    let target = layout.dataset_json();
    write_atomic(&target, &bytes).with_context(|| format!("{}: cannot write", target.display()))
}

/// The planner settings the flags ask for: preset, GPU memory target and an optional target
/// spacing override (array order `z y x`).
pub fn planner_settings(
    args: &PlannerArgs,
    target_spacing: Option<&[f64]>,
) -> anyhow::Result<PlannerSettings> {
    let target_spacing_override = match target_spacing {
        None => None,
        Some(values) => Some(<[f64; 3]>::try_from(values).map_err(|_| {
            anyhow::anyhow!(
                "--target-spacing needs 3 values (z y x), got {}",
                values.len()
            )
        })?),
    };
    let preset = preset(args.planner);
    Ok(PlannerSettings {
        gpu_memory_target_gb: args.gpu_memory_gb.unwrap_or(preset.native_gpu_memory_gb()),
        preset,
        target_spacing_override,
    })
}

fn preset(arg: cli::PlannerPreset) -> PlannerPreset {
    match arg {
        cli::PlannerPreset::Default => PlannerPreset::Default,
        cli::PlannerPreset::ResencM => PlannerPreset::ResEncM,
        cli::PlannerPreset::ResencL => PlannerPreset::ResEncL,
        cli::PlannerPreset::ResencXl => PlannerPreset::ResEncXL,
    }
}

fn print_summary(plans: &Plans, report: &PlanReport, path: &Path) -> anyhow::Result<()> {
    println!(
        "plans for {} ({} planner, {} GB) -> {}",
        plans.dataset_name,
        plans.planner,
        plans.gpu_memory_target_gb,
        path.display()
    );
    for line in report.lines() {
        println!("  {line}");
    }
    for name in plans.configuration_names() {
        let config = plans.resolve(&name)?;
        let strides: Vec<&Vec<usize>> = config.network.stages.iter().map(|s| &s.stride).collect();
        println!(
            "  [{name}] spacing {:?}, patch {:?}, batch size {}, {} stages, strides {:?}",
            config.spacing,
            config.patch_size,
            config.batch_size,
            config.network.stages.len(),
            strides
        );
    }
    Ok(())
}
