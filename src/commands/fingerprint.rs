//! `autoseg fingerprint DATASET [--work DIR]`: extracts the dataset fingerprint and writes
//! `<work>/<dataset>/fingerprint.toml` (with the stamp of the raw files), then prints a summary.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use autoseg_planner::{Fingerprint, WorkLayout};
use autoseg_preprocessing::{fingerprint, Dataset};

use crate::cli::FingerprintArgs;
use crate::commands::lock_work;
use crate::progress::Bar;

/// Runs `autoseg fingerprint`.
pub fn run(args: &FingerprintArgs) -> anyhow::Result<ExitCode> {
    let dataset = open_dataset(&args.work.dataset)?;
    let (layout, _lock) = lock_work(&args.work, "fingerprint")?;
    let fp = extract_and_write(&dataset, &layout)?;
    print_summary(&dataset, &fp, &layout.fingerprint());
    Ok(ExitCode::SUCCESS)
}

/// Opens the dataset folder under its resolved path, so its name is the folder's real name even
/// when given as `.` or through `..`.
pub fn open_dataset(path: &Path) -> anyhow::Result<Dataset> {
    let root = std::fs::canonicalize(path)
        .with_context(|| format!("{}: cannot open dataset folder", path.display()))?;
    Ok(Dataset::open(&root)?)
}

/// Extracts the fingerprint (with a progress bar) and writes it atomically.
pub fn extract_and_write(dataset: &Dataset, layout: &WorkLayout) -> anyhow::Result<Fingerprint> {
    let fp = fingerprint::extract(dataset, &Bar::new())
        .with_context(|| format!("{}: cannot extract the fingerprint", dataset.root.display()))?;
    fp.write(&layout.fingerprint())?;
    Ok(fp)
}

/// Loads `fingerprint.toml` if it exists and its stamp matches the raw files; otherwise
/// extracts and writes a fresh one.
pub fn current_or_fresh(dataset: &Dataset, layout: &WorkLayout) -> anyhow::Result<Fingerprint> {
    let path = layout.fingerprint();
    if path.is_file() {
        let fp = Fingerprint::read(&path)
            .context("fix the fingerprint or delete it to extract it again")?;
        if fingerprint::fingerprint_is_current(&fp, dataset) {
            tracing::info!(path = %path.display(), "using the current fingerprint");
            return Ok(fp);
        }
        tracing::info!(path = %path.display(), "the raw files changed; extracting the fingerprint again");
    }
    extract_and_write(dataset, layout)
}

/// Per-axis median (numpy `np.median(.., axis=0)`), for display.
fn median_per_axis(rows: &[[f64; 3]]) -> [f64; 3] {
    std::array::from_fn(|axis| {
        let mut column: Vec<f64> = rows.iter().map(|r| r[axis]).collect();
        column.sort_unstable_by(f64::total_cmp);
        let n = column.len();
        if n % 2 == 1 {
            column[n / 2]
        } else {
            (column[n / 2 - 1] + column[n / 2]) / 2.0
        }
    })
}

fn print_summary(dataset: &Dataset, fp: &Fingerprint, path: &Path) {
    let shapes: Vec<[f64; 3]> = fp
        .shapes_after_crop()
        .iter()
        .map(|s| s.map(|v| v as f64))
        .collect();
    println!(
        "fingerprint of {}: {} cases -> {}",
        dataset.name(),
        fp.n_cases(),
        path.display()
    );
    println!(
        "  median spacing (z, y, x): {:?} mm",
        median_per_axis(fp.spacings())
    );
    println!(
        "  median shape after crop (z, y, x): {:?}",
        median_per_axis(&shapes)
    );
    println!(
        "  median relative size after cropping: {}",
        fp.median_relative_size_after_cropping()
    );
    let names = &dataset.json.channel_names;
    for (idx, stats) in fp.foreground_intensity_properties().iter().enumerate() {
        let name = names.get(idx).map(String::as_str).unwrap_or("?");
        println!(
            "  channel {idx} ({name}): foreground mean {:.6}, std {:.6}, percentiles 0.5/99.5 {:.6} / {:.6}",
            stats.mean, stats.std, stats.percentile_00_5, stats.percentile_99_5
        );
    }
}
