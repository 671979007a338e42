//! `autoseg find-best DATASET [--work DIR]`: picks the best configuration (or pair ensemble) from
//! cross-validation, decides its postprocessing and writes `results/best.toml`.

use std::process::ExitCode;

use anyhow::Context;
use autoseg_evaluation::{find_best, BestOutcome, FindBestJob};
use autoseg_planner::{Plans, WorkLayout};
use autoseg_preprocessing::Dataset;

use crate::cli::WorkArgs;
use crate::commands::fingerprint::open_dataset;
use crate::commands::lock_work;

/// nnU-Net's folds: find-best requires the validation of each of them.
pub const ALL_FOLDS: [&str; 5] = ["0", "1", "2", "3", "4"];

/// Runs `autoseg find-best` over nnU-Net's five folds.
pub fn run(args: &WorkArgs) -> anyhow::Result<ExitCode> {
    let folds: Vec<String> = ALL_FOLDS.iter().map(|f| f.to_string()).collect();
    let dataset = open_dataset(&args.dataset)?;
    let (layout, _lock) = lock_work(args, "find-best")?;
    let plans = Plans::read(&layout.plans())?;
    let outcome = choose(&dataset, &layout, &plans, &folds)?;
    print_outcome(&outcome);
    Ok(ExitCode::SUCCESS)
}

/// Finds the best of every planned configuration over `folds` (candidates in the plan's
/// training order, nnU-Net's candidate order for its configurations).
pub fn choose(
    dataset: &Dataset,
    layout: &WorkLayout,
    plans: &Plans,
    folds: &[String],
) -> anyhow::Result<BestOutcome> {
    let configurations = plans.all_in_training_order()?;
    let labels_dir = dataset.root.join("labelsTr");
    let job = FindBestJob {
        layout,
        labels_dir: &labels_dir,
        dataset: &dataset.json,
        configurations: &configurations,
        folds,
        ensembles: true,
    };
    find_best(&job).with_context(|| {
        format!(
            "{}: cannot choose the best configuration",
            layout.root().display()
        )
    })
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
