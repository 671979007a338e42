//! The report's validation cases: for each configuration, up to [`MAX_CASES`] cases of its
//! folds' `validation/` folders, each shown in three views through the reference's foreground
//! centroid as three panels: the image, the reference overlaid, the prediction overlaid.

use std::path::{Path, PathBuf};

use autoseg_planner::{WorkLayout, SUMMARY_JSON};
use autoseg_preprocessing::{read_image, read_label_map, Case, Dataset};
use ndarray::{Array3, Axis};

use super::html::{image_html, swatch_html, Cell, Page};
use super::overlay::{cuts_through, foreground_centroid, label_colour, CaseCanvas, Window};
use super::results::{class_name, ConfigResults};
use crate::metrics::Metric;
use crate::summary::Summary;

/// Validation cases shown per configuration.
pub const MAX_CASES: usize = 10;

/// A prediction in a fold's `validation/` folder.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ValidationCase {
    fold: String,
    id: String,
    prediction: PathBuf,
}

/// A case read for display: the image's first channel, its spacing, the reference, and the
/// prediction or why it cannot be shown.
struct LoadedCase {
    image: Array3<f32>,
    spacing: [f64; 3],
    reference: Array3<u16>,
    prediction: Result<Array3<u16>, String>,
}

/// The overlays of every trained configuration's validation cases.
pub(crate) fn cases_section(
    page: &mut Page,
    dataset: Option<&Dataset>,
    configs: &[ConfigResults],
    layout: &WorkLayout,
) {
    page.heading(2, "Validation cases");
    let Some(dataset) = dataset else {
        return page.missing("the dataset folder cannot be read, so no case overlays");
    };
    page.raw(&legend_html(dataset));
    let mut any = false;
    for config in configs.iter().filter(|c| c.trained) {
        any = true;
        page.heading(3, &config.name);
        let cases = validation_cases(config, &dataset.json.file_ending, layout);
        if cases.is_empty() {
            page.missing(&format!(
                "no validation predictions yet for {}",
                config.name
            ));
        } else if cases.len() > MAX_CASES {
            page.paragraph(&format!(
                "the first {MAX_CASES} of {} validation cases",
                cases.len()
            ));
        }
        for case in cases.iter().take(MAX_CASES) {
            case_part(page, dataset, &config.name, case);
        }
    }
    if !any {
        page.missing("no training results yet, so no validation cases");
    }
}

fn legend_html(dataset: &Dataset) -> String {
    let swatches: Vec<String> = dataset
        .json
        .labels
        .entries()
        .iter()
        .filter_map(|e| match e.value.values() {
            [v] if *v != 0 => Some(swatch_html(label_colour(*v), &e.name)),
            _ => None,
        })
        .collect();
    format!(
        "<p>Each view cuts through the reference's foreground centroid; labels are filled at \
         half opacity and outlined in full colour: {}</p>\n",
        swatches.join(" &nbsp; ")
    )
}

/// Predictions (`<case><file_ending>`) in each fold's `validation/`, by fold then case.
fn validation_cases(
    config: &ConfigResults,
    file_ending: &str,
    layout: &WorkLayout,
) -> Vec<ValidationCase> {
    let mut cases = Vec::new();
    for fold in &config.folds {
        let Ok(entries) = std::fs::read_dir(layout.validation(&config.name, fold)) else {
            continue;
        };
        let mut found: Vec<ValidationCase> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(file_ending).filter(|id| !id.is_empty())?;
                Some(ValidationCase {
                    fold: fold.clone(),
                    id: id.to_string(),
                    prediction: e.path(),
                })
            })
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        cases.extend(found);
    }
    cases
}

fn case_part(page: &mut Page, dataset: &Dataset, config: &str, case: &ValidationCase) {
    page.heading(4, &format!("{} ({config}, fold {})", case.id, case.fold));
    let Some(entry) = dataset.training.iter().find(|c| c.id == case.id) else {
        return page.missing(&format!(
            "case {}: not a training case of the dataset",
            case.id
        ));
    };
    if let Some(line) = case_dice(case, &dataset.json.labels) {
        page.paragraph(&line);
    }
    match load_case(entry, &case.prediction) {
        Err(why) => page.missing(&why),
        Ok(loaded) => render_case(page, &loaded, dataset.json.labels.ignore_label()),
    }
}

/// The case's Dice per class from its fold's `validation/summary.json`, when listed there.
fn case_dice(case: &ValidationCase, labels: &autoseg_preprocessing::Labels) -> Option<String> {
    let summary = Summary::read(&case.prediction.parent()?.join(SUMMARY_JSON)).ok()?;
    let file_name = case.prediction.file_name()?.to_string_lossy().into_owned();
    let metrics = summary
        .metric_per_case
        .iter()
        .find(|m| Path::new(&m.prediction_file).file_name() == Some(file_name.as_ref()))?;
    let parts: Vec<String> = metrics
        .metrics
        .iter()
        .filter_map(|(class, m)| {
            let dice = m.get(Metric::Dice)?;
            Some(format!("{} {dice:.4}", class_name(class, Some(labels))))
        })
        .collect();
    Some(format!("Dice (fold summary.json): {}", parts.join(", ")))
}

fn load_case(entry: &Case, prediction: &Path) -> Result<LoadedCase, String> {
    let image_path = entry
        .images
        .first()
        .ok_or_else(|| format!("case {}: no image file", entry.id))?;
    let image = read_image(image_path).map_err(|e| e.to_string())?;
    let label_path = entry
        .label
        .as_ref()
        .ok_or_else(|| format!("case {}: no label file", entry.id))?;
    let reference = read_label_map(label_path).map_err(|e| e.to_string())?;
    let shape = image.data_shape();
    if reference.data_shape() != shape {
        return Err(format!(
            "{}: shape {:?} differs from the image's {:?}",
            label_path.display(),
            reference.data_shape().0,
            shape.0
        ));
    }
    let prediction = read_label_map(prediction)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            if p.data_shape() == shape {
                Ok(p.data.index_axis_move(Axis(0), 0))
            } else {
                let (found, expected) = (p.data_shape().0, shape.0);
                Err(format!(
                    "{}: shape {found:?} differs from the image's {expected:?}",
                    prediction.display()
                ))
            }
        });
    Ok(LoadedCase {
        spacing: image.geometry.spacing().0,
        image: image.data.index_axis_move(Axis(0), 0),
        reference: reference.data.index_axis_move(Axis(0), 0),
        prediction,
    })
}

fn render_case(page: &mut Page, case: &LoadedCase, ignore_label: Option<u16>) {
    let Some(window) = Window::from_percentiles(case.image.view()) else {
        return page.missing("the image has no finite values");
    };
    let canvas = CaseCanvas {
        image: case.image.view(),
        spacing: case.spacing,
        window,
        ignore_label,
    };
    let shape: [usize; 3] = case.image.dim().into();
    let prediction = case.prediction.as_ref().ok();
    let centre = foreground_centroid(case.reference.view(), ignore_label)
        .or_else(|| prediction.and_then(|p| foreground_centroid(p.view(), ignore_label)))
        .unwrap_or(shape.map(|n| n / 2));
    let mut rows = Vec::new();
    for cut in cuts_through(centre)
        .into_iter()
        .filter(|c| c.view.is_visible(shape))
    {
        let name = cut.view.name();
        let panel = |labels: Option<&Array3<u16>>, what: &str| {
            let png = canvas.render(labels.map(Array3::view), cut).encode_png();
            Cell::Html(image_html(&png, "panel", &format!("{name} {what}")))
        };
        let predicted = match &case.prediction {
            Ok(p) => panel(Some(p), "prediction"),
            Err(why) => Cell::Text(why.clone()),
        };
        rows.push(vec![
            Cell::Text(format!("{name} (slice {})", cut.index)),
            panel(None, "image"),
            panel(Some(&case.reference), "reference"),
            predicted,
        ]);
    }
    page.table(&["view", "image", "reference", "prediction"], &rows);
}
