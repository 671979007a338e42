//! `autoseg preprocess DATASET [--work DIR] [-c CONFIG ...]`: runs the planned configurations'
//! preprocessing into `<work>/<dataset>/preprocessed/<config>/`, planning first when there is
//! no `plans.toml`. Re-runs skip cases that are still current.

use std::process::ExitCode;

use anyhow::Context;
use autoseg_planner::{PlannerSettings, Plans, WorkLayout};
use autoseg_preprocessing::{preprocess, Dataset, PreprocessSettings};

use crate::cli::PreprocessArgs;
use crate::commands::fingerprint::open_dataset;
use crate::commands::{lock_work, plan};
use crate::progress::Bar;

/// Runs `autoseg preprocess`.
pub fn run(args: &PreprocessArgs) -> anyhow::Result<ExitCode> {
    let dataset = open_dataset(&args.work.dataset)?;
    let (layout, _lock) = lock_work(&args.work, "preprocess")?;
    let plans = if layout.plans().is_file() {
        Plans::read(&layout.plans())?
    } else {
        let path = layout.plans();
        tracing::info!(path = %path.display(), "no plans yet; planning with the default settings");
        plan::plan_dataset(&dataset, &layout, &PlannerSettings::nnunet_default())?
    };
    let names = configurations(&plans, &args.configurations)?;
    preprocess_and_print(&dataset, &plans, &layout, &names)?;
    Ok(ExitCode::SUCCESS)
}

/// Brings the caches of the configurations `names` up to date, one after another (cases still
/// current are skipped), printing a line for each. Used by `preprocess` and by
/// `plan-and-train --parallel-folds` before its folds start.
pub fn preprocess_and_print(
    dataset: &Dataset,
    plans: &Plans,
    layout: &WorkLayout,
    names: &[String],
) -> anyhow::Result<()> {
    let settings = PreprocessSettings::per_thread();
    for name in names {
        let summary = preprocess(dataset, plans, name, layout, &settings, &Bar::new())
            .with_context(|| format!("{}: cannot preprocess {name}", dataset.name()))?;
        println!(
            "{name}: {} cases ({} preprocessed, {} current{}) -> {}",
            summary.n_cases,
            summary.n_written,
            summary.n_skipped,
            removed_note(summary.n_removed, summary.stamp_changed),
            summary.dir.display()
        );
    }
    Ok(())
}

fn removed_note(n_removed: usize, stamp_changed: bool) -> String {
    match (n_removed, stamp_changed) {
        (0, _) => String::new(),
        (n, true) => format!(", {n} stale files of an earlier plan removed"),
        (n, false) => format!(", {n} stray files removed"),
    }
}

/// The configurations asked for (each must be planned), or every planned one with data of its
/// own (a cascade stage shares the data of the configuration it inherits from).
fn configurations(plans: &Plans, asked: &[String]) -> anyhow::Result<Vec<String>> {
    let planned = plans.configuration_names();
    if asked.is_empty() {
        return Ok(plans.configurations_with_own_data());
    }
    for name in asked {
        anyhow::ensure!(
            planned.contains(name),
            "configuration {name} is not in plans.toml (planned: {})",
            planned.join(", ")
        );
    }
    Ok(asked.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_planner::{
        plan, DatasetInfo, Fingerprint, ForegroundIntensityProperties, LabelEntry, LabelValue,
        PlannerSettings,
    };

    fn plans_with_cascade() -> Plans {
        let stats = ForegroundIntensityProperties {
            mean: 0.0,
            median: 0.0,
            std: 1.0,
            min: -1.0,
            max: 1.0,
            percentile_00_5: -1.0,
            percentile_99_5: 1.0,
        };
        // Large images: nnU-Net plans 3d_lowres and 3d_cascade_fullres.
        let fp = Fingerprint::new(
            vec![[1.0; 3]; 10],
            vec![[400, 400, 400]; 10],
            1.0,
            vec![stats],
        )
        .expect("valid fingerprint");
        let label = |name: &str, v| LabelEntry {
            name: name.into(),
            value: LabelValue::Single(v),
        };
        let labels = vec![label("background", 0), label("organ", 1)];
        let info = DatasetInfo::new("Dataset001_Big", vec!["MRI".into()], labels, 10, ".nii.gz")
            .expect("valid dataset info");
        plan(&fp, &info, &PlannerSettings::nnunet_default()).expect("plannable")
    }

    #[test]
    fn default_configurations_skip_the_cascade_stage_and_unknown_names_fail() {
        let plans = plans_with_cascade();
        assert!(plans.configurations.contains_key("3d_cascade_fullres"));
        let names = configurations(&plans, &[]).unwrap();
        assert_eq!(names, ["2d", "3d_fullres", "3d_lowres"]);
        let asked = configurations(&plans, &["3d_lowres".into()]).unwrap();
        assert_eq!(asked, ["3d_lowres"]);
        let err = configurations(&plans, &["3d_fulres".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration 3d_fulres is not in plans.toml (planned: 2d, 3d_cascade_fullres, \
             3d_fullres, 3d_lowres)"
        );
    }
}
