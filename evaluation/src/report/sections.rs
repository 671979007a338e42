//! The report's sections about the dataset and its plans: `dataset.json`, the fingerprint, the
//! plan of every configuration and the chosen configuration (`results/best.toml`).

use std::fmt::Display;
use std::path::Path;

use autoseg_planner::{Configuration, Fingerprint, PlanError, Plans, WorkLayout};
use autoseg_preprocessing::{Dataset, LabelValue};

use super::html::{swatch_html, Cell, Page};
use super::overlay::label_colour;

/// What looking for one artifact found.
pub(crate) enum Found<T> {
    /// The file does not exist.
    Missing,
    /// The file exists but cannot be read or parsed; the text says why.
    Broken(String),
    /// The parsed artifact.
    Present(T),
}

/// Reads and parses `path`, telling a missing file from a broken one.
pub(crate) fn read_artifact<T, E: Display>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Found<T> {
    if !path.exists() {
        return Found::Missing;
    }
    match std::fs::read_to_string(path) {
        Err(e) => Found::Broken(format!("{}: cannot read: {e}", path.display())),
        Ok(text) => match parse(&text) {
            Ok(value) => Found::Present(value),
            Err(e) => Found::Broken(format!("{}: cannot parse: {e}", path.display())),
        },
    }
}

/// The dataset summary: name, cases, channels, labels (with their overlay colours) and, when
/// present, the fingerprint's median spacing and shape.
pub(crate) fn dataset_section(page: &mut Page, dataset: &Dataset, layout: &WorkLayout) {
    page.heading(2, "Dataset");
    let json = &dataset.json;
    let channels: Vec<String> = json
        .channel_names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{i}: {name}"))
        .collect();
    let rows = vec![
        text_row("name", &dataset.name()),
        text_row("folder", &dataset.root.display().to_string()),
        number_row("training cases", dataset.training.len()),
        number_row("test cases", dataset.test.len()),
        text_row("channels", &channels.join(", ")),
        vec![
            Cell::Text("labels".into()),
            Cell::Html(labels_html(dataset)),
        ],
        text_row("file ending", &json.file_ending),
    ];
    page.table(&["", "value"], &rows);
    fingerprint_part(page, layout);
}

fn text_row(name: &str, value: &str) -> Vec<Cell> {
    vec![Cell::Text(name.into()), Cell::Text(value.into())]
}

fn number_row(name: &str, value: impl Display) -> Vec<Cell> {
    vec![Cell::Text(name.into()), Cell::Number(value.to_string())]
}

/// Each label with its value and overlay colour swatch; the ignore label is marked undrawn.
fn labels_html(dataset: &Dataset) -> String {
    let labels = &dataset.json.labels;
    let mut parts: Vec<String> = labels
        .entries()
        .iter()
        .map(|entry| match &entry.value {
            LabelValue::Single(0) => format!("{} = 0", super::html::escape(&entry.name)),
            LabelValue::Single(v) => {
                swatch_html(label_colour(*v), &format!("{} = {v}", entry.name))
            }
            LabelValue::Region(vs) => {
                super::html::escape(&format!("{} = region {vs:?}", entry.name))
            }
        })
        .collect();
    if let Some(ignore) = labels.ignore_label() {
        parts.push(format!("ignore = {ignore} (not drawn)"));
    }
    parts.join("<br>")
}

fn fingerprint_part(page: &mut Page, layout: &WorkLayout) {
    match found(Fingerprint::read(&layout.fingerprint())) {
        Found::Missing => {
            page.missing("no fingerprint.toml yet (run `autoseg fingerprint` or `autoseg plan`)")
        }
        Found::Broken(why) => page.missing(&why),
        Found::Present(fp) => {
            let shapes: Vec<[f64; 3]> = fp
                .shapes_after_crop()
                .iter()
                .map(|s| s.map(|v| v as f64))
                .collect();
            page.table(
                &["fingerprint", "value"],
                &[
                    number_row("cases", fp.n_cases()),
                    text_row(
                        "median spacing (z, y, x) mm",
                        &format!("{:?}", median_per_axis(fp.spacings())),
                    ),
                    text_row(
                        "median shape after crop (z, y, x)",
                        &format!("{:?}", median_per_axis(&shapes)),
                    ),
                ],
            );
        }
    }
}

/// Per-axis median (numpy `np.median(.., axis=0)`); NaN for no rows.
fn median_per_axis(rows: &[[f64; 3]]) -> [f64; 3] {
    std::array::from_fn(|axis| {
        let mut column: Vec<f64> = rows.iter().map(|r| r[axis]).collect();
        column.sort_unstable_by(f64::total_cmp);
        match column.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => column[n / 2],
            n => (column[n / 2 - 1] + column[n / 2]) / 2.0,
        }
    })
}

/// Reads `plans.toml` from the work folder.
pub(crate) fn read_plans(layout: &WorkLayout) -> Found<Plans> {
    found(Plans::read(&layout.plans()))
}

/// A planner artifact as the report shows it: missing, broken (naming the file and the
/// fault), or present.
fn found<T>(read: Result<T, PlanError>) -> Found<T> {
    match read {
        Ok(value) => Found::Present(value),
        Err(PlanError::MissingArtifact { .. }) => Found::Missing,
        Err(PlanError::InFile { path, source }) => {
            Found::Broken(format!("{}: cannot parse: {source}", path.display()))
        }
        Err(e) => Found::Broken(match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        }),
    }
}

/// One row of the plan table: its name and how to show a resolved configuration's value.
type PlanRow = (&'static str, fn(&Configuration) -> String);

const PLAN_ROWS: [PlanRow; 13] = [
    ("network", |c| format!("{:?}", c.network.kind)),
    ("spacing (z, y, x) mm", |c| format!("{:?}", c.spacing)),
    ("patch size", |c| format!("{:?}", c.patch_size)),
    ("batch size", |c| c.batch_size.to_string()),
    ("median image size (voxels)", |c| {
        format!("{:?}", c.median_image_size_in_voxels)
    }),
    ("stages", |c| c.network.stages.len().to_string()),
    ("features per stage", |c| {
        list(c.network.stages.iter().map(|s| s.features))
    }),
    ("kernel sizes", |c| {
        list(c.network.stages.iter().map(|s| s.kernel.clone()))
    }),
    ("strides", |c| {
        list(c.network.stages.iter().map(|s| s.stride.clone()))
    }),
    ("convolutions per stage (encoder)", |c| {
        list(c.network.stages.iter().map(|s| s.n_convs))
    }),
    ("normalization", |c| {
        list(c.normalization_schemes.iter().map(normalization_name))
    }),
    ("use mask for normalization", |c| {
        format!("{:?}", c.use_mask_for_norm)
    }),
    ("batch Dice", |c| c.batch_dice.to_string()),
];

fn list<T: std::fmt::Debug>(items: impl Iterator<Item = T>) -> String {
    format!("{:?}", items.collect::<Vec<T>>())
}

/// The scheme as `plans.toml` spells it (nnU-Net's class name).
fn normalization_name(scheme: &autoseg_planner::NormalizationScheme) -> String {
    match serde_json::to_value(scheme) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{scheme:?}"),
    }
}

/// The plans section: planner settings, then one column per configuration (a configuration
/// that does not resolve shows why).
pub(crate) fn plans_section(page: &mut Page, plans: &Found<Plans>) {
    page.heading(2, "Plans");
    let plans = match plans {
        Found::Missing => return page.missing("no plans.toml yet (run `autoseg plan`)"),
        Found::Broken(why) => return page.missing(why),
        Found::Present(plans) => plans,
    };
    page.paragraph(&format!(
        "planner {}, GPU memory target {} GB, transpose forward {:?}",
        plans.planner, plans.gpu_memory_target_gb, plans.transpose_forward
    ));
    let names = plans.configuration_names();
    if names.is_empty() {
        return page.missing("plans.toml has no configurations");
    }
    let resolved: Vec<Result<Configuration, String>> = names
        .iter()
        .map(|n| plans.resolve(n).map_err(|e| e.to_string()))
        .collect();
    let mut header = vec!["configuration"];
    header.extend(names.iter().map(String::as_str));
    let mut rows = vec![inherits_row(plans, &names)];
    for (name, show) in PLAN_ROWS {
        let mut row = vec![Cell::Text(name.into())];
        row.extend(resolved.iter().map(|c| match c {
            Ok(config) => Cell::Text(show(config)),
            Err(why) => Cell::Text(format!("cannot resolve: {why}")),
        }));
        rows.push(row);
    }
    page.table(&header, &rows);
}

fn inherits_row(plans: &Plans, names: &[String]) -> Vec<Cell> {
    let mut row = vec![Cell::Text("inherits from".into())];
    row.extend(names.iter().map(|n| {
        let parent = plans.configurations[n].inherits_from.clone();
        Cell::Text(parent.unwrap_or_else(|| "-".into()))
    }));
    row
}

/// The chosen configuration: `results/best.toml` as written by `autoseg find-best`.
pub(crate) fn best_section(page: &mut Page, layout: &WorkLayout) {
    page.heading(2, "Chosen configuration");
    let path = layout.best();
    match read_artifact(&path, |text| {
        Ok::<_, std::convert::Infallible>(text.to_string())
    }) {
        Found::Missing => page.missing("no results/best.toml yet (run `autoseg find-best`)"),
        Found::Broken(why) => page.missing(&why),
        Found::Present(text) => page.preformatted(&text),
    }
}
