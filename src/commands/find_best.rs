//! `autoseg find-best DATASET [--work DIR]`: picks the best configuration (or pair ensemble) from
//! cross-validation, decides its postprocessing and writes `results/best.toml`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use autoseg_evaluation::{find_best, BestOutcome, FindBestJob};
use autoseg_planner::Plans;

use crate::cli::WorkArgs;
use crate::commands::dataset_work_dir;
use crate::commands::fingerprint::open_dataset;

/// nnU-Net's folds: find-best requires the validation of each of them.
pub const ALL_FOLDS: [&str; 5] = ["0", "1", "2", "3", "4"];

/// Runs `autoseg find-best` over nnU-Net's five folds.
pub fn run(args: &WorkArgs) -> anyhow::Result<ExitCode> {
    let folds: Vec<String> = ALL_FOLDS.iter().map(|f| f.to_string()).collect();
    let outcome = choose(args, &folds)?;
    print_outcome(&outcome);
    Ok(ExitCode::SUCCESS)
}

/// Finds the best of every planned configuration over `folds`.
pub fn choose(args: &WorkArgs, folds: &[String]) -> anyhow::Result<BestOutcome> {
    let dataset = open_dataset(&args.dataset)?;
    let dir = dataset_work_dir(args)?;
    let configurations = planned_configurations(&dir.join("plans.toml"))?;
    let labels_dir = dataset.root.join("labelsTr");
    let job = FindBestJob {
        work_dataset_dir: &dir,
        labels_dir: &labels_dir,
        dataset: &dataset.json,
        configurations: &configurations,
        folds,
        ensembles: true,
    };
    find_best(&job)
        .with_context(|| format!("{}: cannot choose the best configuration", dir.display()))
}

fn planned_configurations(plans_path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(plans_path).with_context(|| {
        format!(
            "{}: cannot read (run `autoseg plan` first)",
            plans_path.display()
        )
    })?;
    let plans = Plans::from_toml_str(&text)
        .with_context(|| format!("{}: cannot use these plans", plans_path.display()))?;
    // nnU-Net's candidate order; anything else planned (hand-added configurations) after.
    let order = ["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"];
    let mut names = plans.configuration_names();
    names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(order.len()));
    Ok(names)
}

/// Prints the candidates, the winner and where best.toml is.
pub fn print_outcome(outcome: &BestOutcome) {
    println!("cross-validation foreground Dice:");
    for (i, c) in outcome.candidates.iter().enumerate() {
        let mark = if i == outcome.best { "  <- best" } else { "" };
        println!("  {:<32} {:.4}{mark}", c.name, c.foreground_dice);
    }
    let steps = outcome.postprocessing.steps.len();
    println!(
        "postprocessing: {} (foreground Dice after: {:.4})",
        if steps == 0 {
            "none".to_string()
        } else {
            format!("{steps} step(s) keeping the largest component")
        },
        outcome.dice_after_postprocessing
    );
    println!("wrote {}", outcome.best_toml.display());
}
