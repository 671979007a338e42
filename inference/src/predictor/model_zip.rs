//! An autoseg model as one file (`autoseg export MODEL -o FILE.zip`): what `predict` needs from
//! a model folder, under the same relative paths (`plans.toml`, `dataset.json`,
//! `results/best.toml`, `results/<config>/fold_<k>/checkpoint_<kind>.{safetensors,toml}`). The
//! checkpoints keep their digests, so a copy damaged on the way is refused when it is loaded.
//!
//! Unpacking takes only those paths, each component checked, so an entry cannot write outside
//! the folder, and checks each entry's declared size before reading it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use autoseg_network::checkpoint::{CheckpointKind, CheckpointPaths};
use autoseg_planner::{fold_of_folder, write_atomic_with, WorkLayout};
use zip::write::FileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::error::{io_err, PredictError};

/// The largest expansion a deflate stream can achieve (1032:1).
const MAX_DEFLATE_RATIO: u64 = 1032;
/// The largest file taken from a model zip.
const MAX_ENTRY: u64 = 16 << 30;

/// Whether `zip` is an autoseg model export (it holds `plans.toml` at its root).
pub fn is_model_zip(zip: &Path) -> bool {
    File::open(zip)
        .ok()
        .and_then(|f| ZipArchive::new(BufReader::new(f)).ok())
        .is_some_and(|a| a.file_names().any(|n| n == "plans.toml"))
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
        let entries = std::fs::read_dir(&dir).map_err(io_err(&dir, "list"))?;
        let mut folds: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir, "list"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if fold_of_folder(&name).is_some() {
                folds.push(entry.path());
            }
        }
        folds.sort();
        let mut any = false;
        for fold in folds {
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
    write_atomic_with(out, |file| {
        let mut zip = ZipWriter::new(BufWriter::new(file));
        for (path, name) in files.iter().zip(&relative) {
            let size = std::fs::metadata(path)?.len();
            // Tensors barely compress; text does.
            let method = if path.extension().is_some_and(|e| e == "safetensors") {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            };
            let options = FileOptions::default()
                .compression_method(method)
                .large_file(size >= u64::from(u32::MAX));
            zip.start_file(name.to_string_lossy(), options)?;
            std::io::copy(&mut File::open(path)?, &mut zip)?;
        }
        zip.finish()?.flush()
    })
    .map_err(io_err(out, "write"))?;
    Ok(relative)
}

/// Unpacks the autoseg model zip `zip` into `into` (a fresh folder) and returns its layout.
///
/// # Errors
/// [`PredictError::NnUnet`] naming the zip when it is not a zip or an entry's size is not
/// believable; [`PredictError::Io`] when a file cannot be written.
pub fn unpack_model_zip(zip: &Path, into: &Path) -> Result<WorkLayout, PredictError> {
    let fault = |what: String| PredictError::NnUnet {
        path: zip.to_path_buf(),
        what,
    };
    let file = File::open(zip).map_err(io_err(zip, "open"))?;
    let mut archive = ZipArchive::new(BufReader::new(file))
        .map_err(|e| fault(format!("not a zip archive: {e}")))?;
    let names: Vec<String> = archive
        .file_names()
        .filter(|n| is_model_file(n))
        .map(str::to_string)
        .collect();
    for name in names {
        let mut entry = archive
            .by_name(&name)
            .map_err(|e| fault(format!("{name}: {e}")))?;
        let size = entry.size();
        let most = entry
            .compressed_size()
            .saturating_mul(MAX_DEFLATE_RATIO)
            .saturating_add(1024);
        if size > MAX_ENTRY || size > most {
            return Err(fault(format!(
                "{name} declares {size} bytes, more than it can hold"
            )));
        }
        let path = into.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent, "create"))?;
        }
        let mut out = File::create(&path).map_err(io_err(&path, "create"))?;
        std::io::copy(&mut (&mut entry).take(size), &mut out).map_err(io_err(&path, "write"))?;
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
