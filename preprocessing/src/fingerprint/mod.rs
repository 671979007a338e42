//! Fingerprint extraction: from a dataset's training cases to [`Fingerprint`] (per-case
//! spacings and shapes after cropping, per-channel foreground intensity statistics), the input
//! of the planner.
//!
//! nnU-Net: `experiment_planning/dataset_fingerprint/fingerprint_extractor.py`
//! (`reference/nnunet.md` §2). Per case: read the channels and the label map, crop to the
//! nonzero region, and draw `int(10e7 // n_cases)` foreground intensities per channel with
//! `RandomState(1234).choice(.., replace=True)` (one generator per case, shared by its
//! channels). Then pool the draws in case order and take numpy's mean, median, population std,
//! min, max and 0.5/99.5 percentiles, bit for bit (see `stats`).
//!
//! Cases run in parallel on the rayon pool; each worker holds one case's volumes at a time, so
//! memory is bounded by the thread count times one case, plus the pooled samples (at most 10^8
//! float32 per channel, as in nnU-Net).

mod case;
mod stamp;
mod stats;

use std::path::PathBuf;

use autoseg_planner::{Fingerprint, PlanError};
use rayon::prelude::*;

use crate::{CaseId, Dataset, ImageError, Progress, StackError};
use case::{analyze_case, CaseFingerprint};
use stats::{channel_statistics, median_f64, Precision};

pub use stamp::{fingerprint_is_current, raw_file_stamp};

/// nnU-Net's budget of sampled foreground voxels for the whole dataset
/// (`num_foreground_voxels_for_intensitystats = 10e7`), split evenly over the cases.
pub const NNUNET_FOREGROUND_SAMPLES: usize = 100_000_000;

/// Why a fingerprint cannot be extracted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The dataset has no training cases.
    #[error("{}: the dataset has no training cases in imagesTr/", root.display())]
    NoCases {
        /// The dataset folder.
        root: PathBuf,
    },
    /// A case's channel files cannot be read and stacked into dataset.json's channels (one
    /// unreadable, on another grid, holding NaN (nnU-Net refuses these too), or holding
    /// another number of channels).
    #[error("case {case}: cannot read its channels (dataset.json declares {n_channels})")]
    Channels {
        /// The case.
        case: CaseId,
        /// Channels declared.
        n_channels: usize,
        /// What went wrong, naming the file.
        #[source]
        source: Box<StackError>,
    },
    /// A case has no label file path.
    #[error("case {case}: no label file")]
    MissingLabel {
        /// The case.
        case: CaseId,
    },
    /// A channel or label file cannot be read.
    #[error("case {case}")]
    Read {
        /// The case.
        case: CaseId,
        /// The reader's error, naming the file and the fault.
        #[source]
        source: ImageError,
    },
    /// A channel or the label map has another shape than the case's first channel.
    #[error("{}: shape {found:?} differs from the first channel's {expected:?} (z, y, x) in case {case}", path.display())]
    ShapeMismatch {
        /// The case.
        case: CaseId,
        /// The file with the other shape.
        path: PathBuf,
        /// The first channel's shape.
        expected: [usize; 3],
        /// This file's shape.
        found: [usize; 3],
    },
    /// A raw file's size or modification time cannot be read for the stamp.
    #[error("{}: cannot read file metadata for the fingerprint stamp", path.display())]
    Stamp {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The measured values do not form a valid fingerprint (e.g. a zero spacing in a header).
    #[error("{}: the measured fingerprint is invalid", root.display())]
    Invalid {
        /// The dataset folder.
        root: PathBuf,
        /// The planner's reason (boxed: it is large and this path is rare).
        #[source]
        source: Box<PlanError>,
    },
}

/// Extracts the fingerprint of `dataset`'s training cases exactly as nnU-Net 2.8.1 does, with
/// the stamp of the raw files attached. Reports one unit of `progress` per case.
///
/// # Errors
/// [`FingerprintError`] naming the case and file: unreadable or NaN images, wrong channel
/// counts, mismatched shapes, no training cases, unreadable file metadata.
pub fn extract(
    dataset: &Dataset,
    progress: &dyn Progress,
) -> Result<Fingerprint, FingerprintError> {
    extract_with_budget(dataset, NNUNET_FOREGROUND_SAMPLES, progress)
}

/// [`extract`] with another total budget of sampled foreground intensities per channel
/// (nnU-Net: [`NNUNET_FOREGROUND_SAMPLES`]); each case draws `total_samples / n_cases`.
///
/// # Errors
/// As [`extract`].
pub fn extract_with_budget(
    dataset: &Dataset,
    total_samples: usize,
    progress: &dyn Progress,
) -> Result<Fingerprint, FingerprintError> {
    let n_cases = dataset.training.len();
    if n_cases == 0 {
        return Err(FingerprintError::NoCases {
            root: dataset.root.clone(),
        });
    }
    let stamp = raw_file_stamp(dataset)?;
    let n_channels = dataset.json.n_channels();
    let n_samples = total_samples / n_cases;
    // One pool per channel, written in place by the cases (case i owns samples
    // i * n_samples .. (i + 1) * n_samples), so the samples are never held twice.
    let mut pools: Vec<Vec<f32>> = (0..n_channels)
        .map(|_| vec![0.0; n_cases * n_samples])
        .collect();
    let slots = case_slots(&mut pools, n_cases, n_samples);
    progress.start("fingerprint", n_cases as u64);
    let cases: Result<Vec<CaseFingerprint>, FingerprintError> = dataset
        .training
        .par_iter()
        .zip(slots)
        .map(|(case, mut slots)| {
            let res = analyze_case(case, n_channels, &mut slots);
            progress.advance(1);
            res
        })
        .collect();
    progress.finish();
    let fingerprint =
        aggregate(&cases?, pools, n_samples).map_err(|source| FingerprintError::Invalid {
            root: dataset.root.clone(),
            source: Box::new(source),
        })?;
    Ok(fingerprint.with_stamp(stamp))
}

/// Splits every channel's pool into consecutive `n_samples`-long slots, grouped per case.
fn case_slots(pools: &mut [Vec<f32>], n_cases: usize, n_samples: usize) -> Vec<Vec<&mut [f32]>> {
    let mut per_case: Vec<Vec<&mut [f32]>> = (0..n_cases)
        .map(|_| Vec::with_capacity(pools.len()))
        .collect();
    for pool in pools.iter_mut() {
        let mut rest: &mut [f32] = pool;
        for slots in per_case.iter_mut() {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n_samples);
            slots.push(head);
            rest = tail;
        }
    }
    per_case
}

/// nnU-Net `run`'s aggregation, in case order: spacings, shapes, the median relative size, and
/// per channel the statistics of the pooled samples (each pool freed once summarised).
fn aggregate(
    cases: &[CaseFingerprint],
    pools: Vec<Vec<f32>>,
    n_samples: usize,
) -> Result<Fingerprint, PlanError> {
    let spacings = cases.iter().map(|c| c.spacing).collect();
    let shapes = cases.iter().map(|c| c.shape_after_crop).collect();
    let relative_sizes: Vec<f64> = cases.iter().map(|c| c.relative_size).collect();
    let has_foreground: Vec<bool> = cases.iter().map(|c| c.has_foreground).collect();
    // numpy computes in float64 when a case contributed nothing: nnU-Net concatenates an empty
    // Python list, which numpy makes float64.
    let precision = if has_foreground.iter().all(|&fg| fg) {
        Precision::F32
    } else {
        Precision::F64
    };
    let intensities = pools
        .into_iter()
        .map(|mut pool| {
            drop_cases_without_foreground(&mut pool, &has_foreground, n_samples);
            channel_statistics(&mut pool, precision)
        })
        .collect();
    Fingerprint::new(spacings, shapes, median_f64(&relative_sizes), intensities)
}

/// Removes the (untouched) slots of cases without foreground, keeping case order.
fn drop_cases_without_foreground(pool: &mut Vec<f32>, has_foreground: &[bool], n_samples: usize) {
    let mut kept = 0;
    for (case_idx, _) in has_foreground.iter().enumerate().filter(|(_, &fg)| fg) {
        let start = case_idx * n_samples;
        pool.copy_within(start..start + n_samples, kept);
        kept += n_samples;
    }
    pool.truncate(kept);
}

#[cfg(test)]
mod tests;
