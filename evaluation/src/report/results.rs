//! The report's sections about training results: which configurations and folds exist, their
//! curves (`progress.png`), checkpoints and log tails, and the cross-validation metrics of every
//! `summary.json`.

use std::path::{Path, PathBuf};

use autoseg_planner::{fold_of_folder, LabelValue, WorkLayout, SUMMARY_JSON};
use autoseg_preprocessing::Labels;

use super::html::{Cell, Page};
use super::sections::{read_artifact, Found};
use crate::metrics::Metric;
use crate::summary::{number, Summary};

/// Lines of `train.log` shown per fold.
const LOG_TAIL_LINES: usize = 12;

/// The PNG signature.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Metrics shown in the tables, when a summary has them.
const SHOWN_METRICS: [Metric; 8] = [
    Metric::Dice,
    Metric::IoU,
    Metric::Sensitivity,
    Metric::Precision,
    Metric::VolumeDifference,
    Metric::Hd95,
    Metric::Assd,
    Metric::Nsd,
];

/// One configuration: its name and, when `results/<name>/` exists, its fold folders.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConfigResults {
    /// Configuration name, e.g. `3d_fullres`.
    pub name: String,
    /// `results/<name>/`.
    pub dir: PathBuf,
    /// Whether `results/<name>/` exists.
    pub trained: bool,
    /// The fold of each `fold_<k>` folder, in numeric order, `all` last.
    pub folds: Vec<String>,
}

/// The configurations to report: those planned, then any others found under `results/`.
pub(crate) fn configurations(planned: &[String], layout: &WorkLayout) -> Vec<ConfigResults> {
    let results = layout.results();
    let mut names: Vec<String> = planned.to_vec();
    let mut found = sorted_subfolders(&results);
    found.retain(|n| !names.contains(n));
    names.extend(found);
    names
        .into_iter()
        .map(|name| {
            let dir = layout.configuration(&name);
            let folds = sorted_subfolders(&dir)
                .into_iter()
                .filter_map(|f| fold_of_folder(&f).map(str::to_string))
                .collect::<Vec<_>>();
            ConfigResults {
                trained: dir.is_dir(),
                name,
                dir,
                folds: sort_folds(folds),
            }
        })
        .collect()
}

/// Names of the subfolders of `dir` (none when it cannot be listed), sorted.
fn sorted_subfolders(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Numeric folds in order, then the others (`all`) by name.
fn sort_folds(mut folds: Vec<String>) -> Vec<String> {
    folds.sort_by_key(|k| (k.parse::<u32>().map_or(u32::MAX, |n| n), k.clone()));
    folds
}

/// Training curves, checkpoints and log tails of every fold.
pub(crate) fn training_section(page: &mut Page, configs: &[ConfigResults], layout: &WorkLayout) {
    page.heading(2, "Training");
    if configs.is_empty() {
        return page.missing("no configurations planned or trained yet");
    }
    for config in configs {
        page.heading(3, &config.name);
        if !config.trained {
            page.missing(&format!("no training results yet for {}", config.name));
        } else if config.folds.is_empty() {
            page.missing(&format!("no folds trained yet for {}", config.name));
        }
        for fold in &config.folds {
            fold_training(page, &config.name, fold, layout);
        }
    }
}

fn fold_training(page: &mut Page, config: &str, fold: &str, layout: &WorkLayout) {
    let dir = layout.fold(config, fold);
    page.paragraph(&format!(
        "{config}, fold {fold}: {}",
        checkpoint_summary(&dir)
    ));
    let curve = layout.progress_plot(config, fold);
    match std::fs::read(&curve) {
        Ok(bytes) if bytes.starts_with(PNG_SIGNATURE) => {
            page.image(
                &bytes,
                "curve",
                &format!("training curves of {config} fold {fold}"),
            );
        }
        Ok(_) => page.missing(&format!("{}: not a PNG file", curve.display())),
        Err(_) => page.missing(&format!("{config}, fold {fold}: no progress.png yet")),
    }
    match std::fs::read_to_string(layout.train_log(config, fold)) {
        Ok(log) => page.preformatted(&tail(&log, LOG_TAIL_LINES)),
        Err(_) => page.missing(&format!("{config}, fold {fold}: no train.log yet")),
    }
}

/// Which of the `latest`, `best` and `final` checkpoints exist (by their `.toml` metadata).
fn checkpoint_summary(dir: &Path) -> String {
    let present: Vec<&str> = ["latest", "best", "final"]
        .into_iter()
        .filter(|k| dir.join(format!("checkpoint_{k}.toml")).is_file())
        .collect();
    if present.is_empty() {
        "no checkpoints yet".to_string()
    } else {
        format!("checkpoints: {}", present.join(", "))
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Cross-validation metrics: the merged `crossval/summary.json` and each fold's
/// `validation/summary.json`, one table each.
pub(crate) fn metrics_section(
    page: &mut Page,
    configs: &[ConfigResults],
    labels: Option<&Labels>,
    layout: &WorkLayout,
) {
    page.heading(2, "Cross-validation metrics");
    let mut any = false;
    for config in configs.iter().filter(|c| c.trained) {
        any = true;
        page.heading(3, &config.name);
        let crossval = layout.crossval(&config.name).join(SUMMARY_JSON);
        let title = format!("{}, cross-validation (all folds)", config.name);
        summary_part(page, &crossval, &title, labels);
        for fold in &config.folds {
            let path = layout.validation(&config.name, fold).join(SUMMARY_JSON);
            summary_part(
                page,
                &path,
                &format!("{}, fold {fold}", config.name),
                labels,
            );
        }
    }
    if !any {
        page.missing("no training results yet, so no metrics");
    }
}

fn summary_part(page: &mut Page, path: &Path, title: &str, labels: Option<&Labels>) {
    match read_artifact(path, |text| {
        Summary::from_json(text, &path.display().to_string())
    }) {
        Found::Missing => page.missing(&format!("{title}: no summary.json yet")),
        Found::Broken(why) => page.missing(&why),
        Found::Present(summary) => {
            page.paragraph(&format!("{title}: {} cases", summary.metric_per_case.len()));
            let (header, rows) = summary_table(&summary, labels);
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            page.table(&header, &rows);
        }
    }
}

/// A summary as a table: one row per class with `mean ± std` over cases (NaN cases left out,
/// distances in mm), then the foreground mean.
pub(crate) fn summary_table(
    summary: &Summary,
    labels: Option<&Labels>,
) -> (Vec<String>, Vec<Vec<Cell>>) {
    let shown: Vec<Metric> = SHOWN_METRICS
        .into_iter()
        .filter(|m| summary.foreground_mean.contains_key(m))
        .collect();
    let mut header = vec!["class".to_string()];
    header.extend(shown.iter().map(|m| match m {
        Metric::Hd95 | Metric::Assd => format!("{} (mm)", m.name()),
        _ => m.name().to_string(),
    }));
    let mut rows: Vec<Vec<Cell>> = summary
        .mean
        .iter()
        .map(|(class, means)| {
            let mut row = vec![Cell::Text(class_name(class, labels))];
            row.extend(shown.iter().map(|&m| {
                let std = nanstd(&case_values(summary, class, m));
                let mean = means.get(&m).copied().unwrap_or(f64::NAN);
                Cell::Number(format!("{} ± {}", number(mean), number(std)))
            }));
            row
        })
        .collect();
    let mut foreground = vec![Cell::Text("foreground mean".into())];
    foreground.extend(
        shown
            .iter()
            .map(|m| Cell::Number(number(summary.foreground_mean[m]))),
    );
    rows.push(foreground);
    (header, rows)
}

/// The class's key with its `dataset.json` name, e.g. `1 (organ)`.
pub(crate) fn class_name(class: &LabelValue, labels: Option<&Labels>) -> String {
    let name = labels.and_then(|l| {
        l.entries()
            .iter()
            .find(|e| e.value.values() == class.values())
            .map(|e| e.name.clone())
    });
    match name {
        Some(name) => format!("{} ({name})", class.key()),
        None => class.key(),
    }
}

fn case_values(summary: &Summary, class: &LabelValue, metric: Metric) -> Vec<f64> {
    summary
        .metric_per_case
        .iter()
        .filter_map(|case| case.get(class).and_then(|m| m.get(metric)))
        .collect()
}

/// numpy's `nanstd` (population): NaN when no value is left.
fn nanstd(values: &[f64]) -> f64 {
    let kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    let mean = kept.iter().sum::<f64>() / kept.len() as f64;
    let var = kept.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / kept.len() as f64;
    var.sqrt()
}
