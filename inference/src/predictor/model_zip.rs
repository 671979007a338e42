//! An autoseg model as one file (`autoseg export MODEL -o FILE.zip`): what `predict` needs from
//! a model folder, under the same relative paths (`plans.toml`, `dataset.json`,
//! `results/best.toml`, `results/<config>/fold_<k>/checkpoint_<kind>.{safetensors,toml}`). The
//! checkpoints keep their digests, so a copy damaged on the way is refused when it is loaded.
//!
//! Unpacking takes only those paths, each component checked, so an entry cannot write outside
//! the folder, and checks each entry's declared size before reading it.

use std::path::{Path, PathBuf};

use autoseg_network::checkpoint::{CheckpointKind, CheckpointPaths};
use autoseg_planner::{fold_of_folder, WorkLayout};

use super::error::{io_err, PredictError};
use super::zip_entries::{extract_entry, open_zip, write_zip};

/// `(fold, folder)` of every `fold_<k>/` in the configuration folder `dir`, by folder name.
///
/// # Errors
/// [`PredictError::Io`] when `dir` cannot be listed.
pub(super) fn fold_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, PredictError> {
    let entries = std::fs::read_dir(dir).map_err(io_err(dir, "list"))?;
    let mut folds = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "list"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(fold) = fold_of_folder(&name) {
            folds.push((fold.to_string(), entry.path()));
        }
    }
    folds.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(folds)
}

/// Whether `zip` is an autoseg model export (it holds `plans.toml` at its root).
pub fn is_model_zip(zip: &Path) -> bool {
    open_zip(zip).is_ok_and(|a| a.file_names().any(|n| n == "plans.toml"))
}

/// Writes the model folder `model` into the zip `out` (atomically): its plans, dataset.json,
/// best.toml (when present), and the final and best checkpoints of `configurations`' folds.
/// Returns the files written, relative to the model folder.
///
/// # Errors
/// [`PredictError::MissingCheckpoint`] when a
/// configuration has no final checkpoint; [`PredictError::Io`] when reading or writing fails.
pub fn export_model(
    model: &WorkLayout,
    configurations: &[String],
    out: &Path,
) -> Result<Vec<PathBuf>, PredictError> {
    let mut files = vec![model.plans(), model.dataset_json()];
    if model.best().is_file() {
        files.push(model.best());
    }
    for configuration in configurations {
        let dir = model.configuration(configuration);
        let mut any = false;
        for (_, fold) in fold_dirs(&dir)? {
            for kind in [CheckpointKind::Final, CheckpointKind::Best] {
                let paths = CheckpointPaths::new(&fold, kind);
                if paths.meta.is_file() && paths.weights.is_file() {
                    files.extend([paths.meta, paths.weights]);
                    any |= kind == CheckpointKind::Final;
                }
            }
        }
        if !any {
            return Err(PredictError::MissingCheckpoint {
                path: CheckpointPaths::new(&dir.join("fold_0"), CheckpointKind::Final).meta,
            });
        }
    }
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(model.root()).unwrap_or(f).to_path_buf())
        .collect();
    let entries: Vec<(PathBuf, String)> = files
        .iter()
        .zip(&relative)
        .map(|(path, name)| (path.clone(), name.to_string_lossy().into_owned()))
        .collect();
    write_zip(out, &entries)?;
    Ok(relative)
}

/// Unpacks the autoseg model zip `zip` into `into` (a fresh folder) and returns its layout.
///
/// # Errors
/// As `zip_entries::extract_entry`: [`PredictError::NnUnet`] naming the zip when it is not a
/// zip or an entry's size is not believable; [`PredictError::Io`] when a file cannot be written.
pub fn unpack_model_zip(zip: &Path, into: &Path) -> Result<WorkLayout, PredictError> {
    let mut archive = open_zip(zip)?;
    let names: Vec<String> = archive
        .file_names()
        .filter(|n| is_model_file(n))
        .map(str::to_string)
        .collect();
    for name in names {
        extract_entry(&mut archive, zip, &name, &into.join(&name))?;
    }
    Ok(WorkLayout::new(into))
}

/// The paths a model zip may hold: `plans.toml`, `dataset.json`, `results/best.toml`, and
/// `results/<config>/fold_<k>/checkpoint_<kind>.{safetensors,toml}` with plain names.
fn is_model_file(name: &str) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["plans.toml" | "dataset.json"] | ["results", "best.toml"] => true,
        ["results", config, fold, file] => {
            plain(config)
                && fold_of_folder(fold).is_some_and(plain)
                && ["final", "best", "latest"].iter().any(|k| {
                    *file == format!("checkpoint_{k}.safetensors")
                        || *file == format!("checkpoint_{k}.toml")
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_models_own_paths_are_unpacked() {
        assert!(is_model_file("plans.toml"));
        assert!(is_model_file("results/best.toml"));
        assert!(is_model_file(
            "results/3d_fullres/fold_0/checkpoint_final.safetensors"
        ));
        assert!(is_model_file("results/2d/fold_all/checkpoint_best.toml"));
        assert!(!is_model_file("../plans.toml"));
        assert!(!is_model_file(
            "results/../../etc/fold_0/checkpoint_final.toml"
        ));
        assert!(!is_model_file(
            "results/3d_fullres/fold_0/../checkpoint_final.toml"
        ));
        assert!(!is_model_file("results/3d_fullres/fold_0/train.log"));
        assert!(!is_model_file("/plans.toml"));
        assert!(!is_model_file(
            "results/3d_fullres/notafold/checkpoint_final.toml"
        ));
    }
}
