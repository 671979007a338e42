//! `predict --dicom-seg`: a DICOM Segmentation object beside the mask of every DICOM series
//! input, written after all masks (so that an ensemble's final masks are the ones encoded).

use anyhow::Context;
use autoseg_inference::discover_input_cases;
use autoseg_planner::LabelValue;
use autoseg_preprocessing::{is_dicom_folder, read_label_map, write_dicom_seg, DatasetJson};

use crate::cli::PredictArgs;

/// Writes `<output>/<case>.seg.dcm` for every DICOM series case of `args.input` whose mask was
/// written; returns how many failed (each reported on stderr).
///
/// # Errors
/// The input holds no DICOM series (a usage error: SEGs refer to a series), or cannot be listed.
pub fn write_all(args: &PredictArgs, dataset: &DatasetJson) -> anyhow::Result<usize> {
    let ending = &dataset.file_ending;
    let series: Vec<_> = discover_input_cases(&args.input, ending)?
        .into_iter()
        .filter(|case| matches!(&case.images[..], [folder] if is_dicom_folder(folder)))
        .collect();
    anyhow::ensure!(
        !series.is_empty(),
        "--dicom-seg: {} holds no DICOM series; a DICOM SEG refers to the series it was predicted from, so give -i a series folder or a folder of series folders",
        args.input.display()
    );
    let segments = segments(dataset);
    let mut n_failed = 0;
    for case in series {
        let mask = args.output.join(format!("{}{ending}", case.id));
        if !mask.is_file() {
            continue; // its prediction failed, and was reported
        }
        let target = args.output.join(format!("{}.seg.dcm", case.id));
        let written = read_label_map(&mask)
            .map_err(anyhow::Error::from)
            .and_then(|labels| {
                Ok(write_dicom_seg(
                    &target,
                    &labels,
                    &case.images[0],
                    &segments,
                )?)
            })
            .with_context(|| format!("case {}: DICOM SEG", case.id));
        match written {
            Ok(()) => tracing::info!(file = %target.display(), "wrote DICOM SEG"),
            Err(err) => {
                eprintln!("autoseg: {}", crate::error_line(&err));
                n_failed += 1;
            }
        }
    }
    Ok(n_failed)
}

/// The segments of a dataset's masks, (value in the mask, name): every foreground label, or
/// for region-based datasets each region with the value `regions_class_order` gives it.
fn segments(dataset: &DatasetJson) -> Vec<(u16, String)> {
    let foreground = dataset
        .labels
        .entries()
        .iter()
        .filter(|e| e.value != LabelValue::Single(0));
    match &dataset.regions_class_order {
        Some(order) if dataset.labels.has_regions() => foreground
            .zip(order)
            .map(|(entry, &value)| (value, entry.name.clone()))
            .collect(),
        _ => foreground
            .filter_map(|entry| match entry.value {
                LabelValue::Single(value) => Some((value, entry.name.clone())),
                LabelValue::Region(_) => None,
            })
            .collect(),
    }
}
