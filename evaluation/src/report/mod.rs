//! The HTML report of one dataset (`autoseg report`): a single self-contained
//! `<work>/<dataset>/report/index.html` (CSS inline, images as base64 data URIs, no JavaScript)
//! with the dataset summary, the plan of every configuration, training curves, the
//! cross-validation metrics of every `summary.json`, the chosen configuration, and overlays of
//! validation cases (image, reference and prediction through the reference's foreground
//! centroid, in three views, drawn by this module's own rasteriser).
//!
//! The report renders whatever exists in the work folder and says plainly what does not (e.g.
//! "no training results yet for 2d"); a missing or unreadable artifact is a note in the page,
//! never an error.

mod cases;
mod html;
mod overlay;
mod raster;
mod results;
mod sections;

use std::path::{Path, PathBuf};

use autoseg_planner::WorkLayout;
use autoseg_preprocessing::{write_atomic, Dataset};

pub use cases::MAX_CASES;
pub use raster::RgbImage;

use crate::error::EvaluationError;
use html::Page;
use sections::Found;

/// Writes `report/index.html` of `layout` atomically and returns its path.
///
/// `dataset_dir` is the dataset in nnU-Net raw layout (images and references of the overlays);
/// `layout` is its work folder, which may hold any subset of the pipeline's artifacts (none at
/// all gives a report that lists them as missing).
///
/// # Errors
/// [`EvaluationError::Io`] when the report folder cannot be created or the file written.
pub fn write_report(dataset_dir: &Path, layout: &WorkLayout) -> Result<PathBuf, EvaluationError> {
    let html = render_report(dataset_dir, layout);
    let dir = layout.report();
    std::fs::create_dir_all(&dir).map_err(|source| EvaluationError::Io {
        path: dir.clone(),
        action: "create folder",
        source,
    })?;
    let path = dir.join("index.html");
    write_atomic(&path, html.as_bytes()).map_err(|source| EvaluationError::Io {
        path: path.clone(),
        action: "write",
        source,
    })?;
    Ok(path)
}

/// The report's HTML text (what [`write_report`] writes).
pub fn render_report(dataset_dir: &Path, layout: &WorkLayout) -> String {
    let dataset = Dataset::open(dataset_dir);
    let name = match &dataset {
        Ok(d) => d.name(),
        Err(_) => folder_name(dataset_dir),
    };
    let mut page = Page::default();
    page.heading(1, &format!("autoseg report: {name}"));
    page.paragraph(&format!(
        "autoseg {}; work folder {}",
        env!("CARGO_PKG_VERSION"),
        layout.root().display()
    ));
    match &dataset {
        Ok(d) => sections::dataset_section(&mut page, d, layout),
        Err(e) => {
            page.heading(2, "Dataset");
            page.missing(&format!("the dataset folder cannot be read: {e}"));
        }
    }
    let plans = sections::read_plans(layout);
    sections::plans_section(&mut page, &plans);
    let planned = match &plans {
        Found::Present(p) => p.configuration_names(),
        _ => Vec::new(),
    };
    let configs = results::configurations(&planned, layout);
    let dataset = dataset.ok();
    let labels = dataset.as_ref().map(|d| &d.json.labels);
    results::training_section(&mut page, &configs, layout);
    results::metrics_section(&mut page, &configs, labels, layout);
    sections::best_section(&mut page, layout);
    cases::cases_section(&mut page, dataset.as_ref(), &configs, layout);
    page.finish(&format!("autoseg report: {name}"))
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

#[cfg(test)]
mod tests;
