//! `preprocess`: every training case of a dataset through the pipeline into the cache, in
//! parallel with a bound on the cases in flight, skipping cases that are still current.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use autoseg_planner::{Plans, WorkLayout};

use super::format::{write_case, CachedCase, CaseKeys};
use super::stamp::{fnv1a, read_stamp, write_stamp, Stamp, StampFields, STAMP_FILE};
use super::CacheError;
use crate::dataset::content_stamp;
use crate::pipeline::{preprocess_case, PreprocessError, PreprocessSpec};
use crate::{Case, Dataset, Progress};

/// File extension of case files.
pub const CASE_EXTENSION: &str = "case";

/// How a preprocessing run uses the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreprocessSettings {
    /// At most this many cases are in memory at once (each needs a few times its voxel count
    /// in bytes); resampling inside a case runs on rayon's pool regardless. At least 1.
    pub max_parallel_cases: usize,
}

impl PreprocessSettings {
    /// One case per rayon thread (nnU-Net runs 4 to 8 processes, `-np`).
    pub fn per_thread() -> PreprocessSettings {
        PreprocessSettings {
            max_parallel_cases: rayon::current_num_threads(),
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreprocessSummary {
    /// Configuration name.
    pub configuration: String,
    /// The cache folder.
    pub dir: PathBuf,
    /// Training cases in the dataset.
    pub n_cases: usize,
    /// Cases preprocessed and written by this run.
    pub n_written: usize,
    /// Cases skipped because their file was current.
    pub n_skipped: usize,
    /// Stale files removed (another plan, cases no longer in the dataset, temp files).
    pub n_removed: usize,
    /// Whether the stamp changed (or was missing), invalidating every earlier file.
    pub stamp_changed: bool,
}

/// `<dir>/<case>.case`.
pub fn case_path(dir: &Path, case_id: &str) -> PathBuf {
    dir.join(format!("{case_id}.{CASE_EXTENSION}"))
}

/// The key of a case's raw files: their paths, sizes and modification times.
///
/// # Errors
/// [`CacheError::Io`] when a file's metadata cannot be read.
pub fn source_key(case: &Case) -> Result<u64, CacheError> {
    let mut text = Vec::new();
    for path in case.images.iter().chain(case.label.iter()) {
        let (size, modified) =
            content_stamp(path).map_err(|e| CacheError::io(path, "cannot stat input file", e))?;
        let mtime = modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        text.extend_from_slice(path.as_os_str().as_encoded_bytes());
        text.extend_from_slice(format!("|{size}|{mtime}\n").as_bytes());
    }
    Ok(fnv1a(&text))
}

/// Preprocesses every training case of `dataset` for configuration `config_name` of `plans`
/// into `layout`'s `preprocessed/<config_name>`, as nnU-Net's `DefaultPreprocessor.run` does.
///
/// Re-runs skip cases whose file is current (same stamp key and unchanged raw files); a plan
/// change that touches a [`StampFields`] field removes every old file first. Files appear
/// atomically, so a killed run leaves only complete files and the next run resumes. Reports
/// one unit of `progress` per case. Stops at the first failing case (finished files stay).
///
/// # Errors
/// [`PreprocessError`]: the configuration does not resolve or cannot be preprocessed, a case
/// has no label or fails (named), or the cache folder cannot be written.
pub fn preprocess(
    dataset: &Dataset,
    plans: &Plans,
    config_name: &str,
    layout: &WorkLayout,
    settings: &PreprocessSettings,
    progress: &dyn Progress,
) -> Result<PreprocessSummary, PreprocessError> {
    let config = plans.resolve(config_name).map_err(PreprocessError::Plan)?;
    let spec = PreprocessSpec::new(plans, &config, &dataset.json.labels)?;
    let fields = StampFields::of(plans, &config, &spec.location_classes);
    let dir = layout.preprocessed(config_name);
    std::fs::create_dir_all(&dir).map_err(|e| CacheError::io(&dir, "cannot create folder", e))?;
    let (stamp_changed, mut n_removed) = refresh_stamp(&dir, &fields)?;
    n_removed += remove_strays(&dir, &dataset.training)?;
    let stamp_key = fields.key();
    progress.start(
        &format!("preprocess {config_name}"),
        dataset.training.len() as u64,
    );
    let result = pending_cases(dataset, &dir, stamp_key).and_then(|pending| {
        let n_skipped = dataset.training.len() - pending.len();
        progress.advance(n_skipped as u64);
        run_cases(&pending, &spec, &dir, settings, progress)?;
        Ok((pending.len(), n_skipped))
    });
    progress.finish();
    let (n_written, n_skipped) = result?;
    tracing::info!(
        configuration = config_name,
        n_written,
        n_skipped,
        n_removed,
        "preprocessed"
    );
    Ok(PreprocessSummary {
        configuration: config_name.to_string(),
        dir,
        n_cases: dataset.training.len(),
        n_written,
        n_skipped,
        n_removed,
        stamp_changed,
    })
}

/// Compares the stored stamp with `fields`; when it differs (or is missing or unreadable),
/// removes every case file and writes the new stamp. Returns `(changed, files removed)`.
fn refresh_stamp(dir: &Path, fields: &StampFields) -> Result<(bool, usize), CacheError> {
    let path = dir.join(STAMP_FILE);
    let stamp = Stamp::new(fields.clone());
    let current = match read_stamp(&path) {
        Ok(Some(old)) => old.key == stamp.key && old.schema_version == stamp.schema_version,
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(error = %err, "unreadable cache stamp; rebuilding the cache");
            false
        }
    };
    if current {
        return Ok((false, 0));
    }
    let removed = remove_files(dir, |name| name.ends_with(&format!(".{CASE_EXTENSION}")))?;
    write_stamp(&path, &stamp)?;
    Ok((true, removed))
}

/// Removes temp files of killed runs (never a live process's) and case files of cases not in
/// `cases`.
fn remove_strays(dir: &Path, cases: &[Case]) -> Result<usize, CacheError> {
    let wanted: std::collections::HashSet<String> = cases
        .iter()
        .map(|c| format!("{}.{CASE_EXTENSION}", c.id))
        .collect();
    let suffix = format!(".{CASE_EXTENSION}");
    remove_files(dir, |name| {
        autoseg_planner::is_orphaned_temp(name)
            || (name.ends_with(&suffix) && !wanted.contains(name))
    })
}

/// Removes the files in `dir` whose name satisfies `doomed`; returns how many.
fn remove_files(dir: &Path, doomed: impl Fn(&str) -> bool) -> Result<usize, CacheError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| CacheError::io(dir, "cannot list folder", e))?;
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io(dir, "cannot list folder", e))?;
        let name = entry.file_name();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && doomed(&name.to_string_lossy()) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|e| CacheError::io(&path, "cannot remove stale file", e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The training cases whose file is missing or not current, with their keys.
fn pending_cases<'a>(
    dataset: &'a Dataset,
    dir: &Path,
    stamp: u64,
) -> Result<Vec<(&'a Case, CaseKeys)>, PreprocessError> {
    let mut pending = Vec::new();
    for case in &dataset.training {
        if case.label.is_none() {
            return Err(PreprocessError::MissingLabel {
                case: case.id.clone(),
            });
        }
        let keys = CaseKeys {
            stamp,
            source: source_key(case)?,
        };
        if !CachedCase::is_current(&case_path(dir, &case.id), keys) {
            pending.push((case, keys));
        }
    }
    Ok(pending)
}

/// Runs `pending` on `settings.max_parallel_cases` worker threads (each holding one case at a
/// time); the first error stops the workers from taking new cases and is returned.
fn run_cases(
    pending: &[(&Case, CaseKeys)],
    spec: &PreprocessSpec,
    dir: &Path,
    settings: &PreprocessSettings,
    progress: &dyn Progress,
) -> Result<(), PreprocessError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<PreprocessError>> = Mutex::new(None);
    let n_workers = settings.max_parallel_cases.clamp(1, pending.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..n_workers {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(&(case, keys)) = pending.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    match process_one(case, keys, spec, dir) {
                        Ok(()) => progress.advance(1),
                        Err(err) => {
                            failed.store(true, Ordering::Relaxed);
                            let mut slot = first_error
                                .lock()
                                .expect("no thread panics while holding the error slot");
                            slot.get_or_insert(err);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("the workers have ended") {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

fn process_one(
    case: &Case,
    keys: CaseKeys,
    spec: &PreprocessSpec,
    dir: &Path,
) -> Result<(), PreprocessError> {
    let preprocessed = preprocess_case(case, spec)?;
    write_case(&case_path(dir, &case.id), &preprocessed, keys)?;
    tracing::debug!(case = %case.id, shape = ?preprocessed.data.dim(), "case preprocessed");
    Ok(())
}
