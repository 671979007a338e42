//! `autoseg plan DATASET [--work DIR] [--gpu-memory-gb N] [--planner P] [--target-spacing Z Y X]`:
//! plans the configurations from the fingerprint (reused when current, else extracted) and
//! writes `<work>/<dataset>/plans.toml`, then prints why each number was chosen.
//!
//! `autoseg plan DATASET --plans-from OTHER` plans nothing: it writes another dataset's plans
//! (an autoseg `plans.toml` or dataset work folder, or nnU-Net's `nnUNetPlans.json` / a model's
//! `plans.json`) as this dataset's, nnU-Net's `nnUNetv2_move_plans_between_datasets`
//! ([`autoseg_planner::transfer_plans`] decides; this module reads and writes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use autoseg_planner::{
    nnunet_plans_to_move, plan_with_report, transfer_plans, PlanReport, PlannerPreset,
    PlannerSettings, Plans, WorkLayout,
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
    match &args.plans_from {
        Some(other) => move_plans(&dataset, &layout, other)?,
        None => plan_dataset(&dataset, &layout, &settings)?,
    };
    Ok(ExitCode::SUCCESS)
}

/// Writes the plans at `other` as `dataset`'s `plans.toml` (with a copy of its `dataset.json`)
/// and prints what they hold.
fn move_plans(dataset: &Dataset, layout: &WorkLayout, other: &Path) -> anyhow::Result<Plans> {
    let (source, file) = read_other_plans(other)?;
    let info = dataset
        .dataset_info()
        .with_context(|| format!("{}: cannot use this dataset", dataset.root.display()))?;
    let plans = transfer_plans(&source, &info).with_context(|| {
        format!(
            "{}: cannot use these plans for {}",
            file.display(),
            dataset.name()
        )
    })?;
    plans.write(&layout.plans())?;
    copy_dataset_json(dataset, layout)?;
    println!(
        "plans of {} ({}) used for {}, nothing re-planned -> {}",
        source.dataset_name,
        file.display(),
        plans.dataset_name,
        layout.plans().display()
    );
    print_configurations(&plans)?;
    Ok(plans)
}

/// The plans `--plans-from` names, and the file they were read from: an autoseg `plans.toml`
/// or the dataset work folder holding it, nnU-Net's plans JSON, or an nnU-Net folder holding
/// `plans.json` (a trained model) or `nnUNetPlans.json` (a preprocessed dataset).
fn read_other_plans(other: &Path) -> anyhow::Result<(Plans, PathBuf)> {
    let file = if other.is_dir() {
        let candidates = [
            WorkLayout::new(other).plans(),
            other.join("plans.json"),
            other.join("nnUNetPlans.json"),
        ];
        candidates
            .into_iter()
            .find(|f| f.is_file())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: --plans-from: no plans here; give an autoseg dataset work folder \
                 (<work>/<dataset>, with plans.toml), a plans.toml, nnU-Net's nnUNetPlans.json \
                 or a model folder with plans.json",
                    other.display()
                )
            })?
    } else if other.is_file() {
        other.to_path_buf()
    } else {
        anyhow::bail!("{}: --plans-from: no such file or folder", other.display());
    };
    let plans = if file.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("{}: cannot read", file.display()))?;
        nnunet_plans_to_move(&text).with_context(|| format!("{}: cannot use", file.display()))?
    } else {
        Plans::read(&file)?
    };
    Ok((plans, file))
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
    print_configurations(plans)
}

fn print_configurations(plans: &Plans) -> anyhow::Result<()> {
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
