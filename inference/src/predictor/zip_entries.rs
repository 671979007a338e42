//! Reading the zips `predict -m` accepts (an autoseg model export, an nnU-Net model export):
//! opening one, and copying one entry to a file after checking the size it declares, so that
//! a forged entry cannot make us write more than its compressed bytes can hold; and writing
//! one from files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use autoseg_planner::write_atomic_with;
use zip::write::FileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::error::{io_err, PredictError};

/// The largest expansion a deflate stream can achieve (1032:1).
const MAX_DEFLATE_RATIO: u64 = 1032;
/// The largest file taken from a model zip (a ResEnc-XL checkpoint is about 1.5 GB).
const MAX_ENTRY: u64 = 16 << 30;

/// An opened zip.
pub(super) type Zip = ZipArchive<BufReader<File>>;

/// Opens `zip`.
///
/// # Errors
/// [`PredictError::Io`] when it cannot be opened; [`PredictError::NnUnet`] when it is not a zip.
pub(super) fn open_zip(zip: &Path) -> Result<Zip, PredictError> {
    let file = File::open(zip).map_err(io_err(zip, "open"))?;
    ZipArchive::new(BufReader::new(file)).map_err(|e| PredictError::NnUnet {
        path: zip.to_path_buf(),
        what: format!("not a zip archive: {e}"),
    })
}

/// Copies entry `name` of `archive` (the file `zip`) to `path`, creating its folder.
///
/// # Errors
/// [`PredictError::NnUnet`] naming the zip and entry when the entry is unreadable or declares
/// more bytes than its compressed size can hold; [`PredictError::Io`] when writing fails.
pub(super) fn extract_entry(
    archive: &mut Zip,
    zip: &Path,
    name: &str,
    path: &Path,
) -> Result<(), PredictError> {
    let fault = |what: String| PredictError::NnUnet {
        path: zip.to_path_buf(),
        what,
    };
    let mut entry = archive
        .by_name(name)
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
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent, "create"))?;
    }
    let mut out = File::create(path).map_err(io_err(path, "create"))?;
    std::io::copy(&mut (&mut entry).take(size), &mut out).map_err(io_err(path, "write"))?;
    Ok(())
}

/// Writes the zip `out` (atomically) holding each `(file, name)` of `entries` under `name`:
/// tensor files (`.safetensors`, `.pth`, which barely compress) stored, the rest deflated.
///
/// # Errors
/// [`PredictError::Io`] when a file cannot be read or the zip written.
pub(super) fn write_zip(out: &Path, entries: &[(PathBuf, String)]) -> Result<(), PredictError> {
    write_atomic_with(out, |file| {
        let mut zip = ZipWriter::new(BufWriter::new(file));
        for (path, name) in entries {
            let size = std::fs::metadata(path)?.len();
            let stored = path
                .extension()
                .is_some_and(|e| e == "safetensors" || e == "pth");
            let method = if stored {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            };
            let options = FileOptions::default()
                .compression_method(method)
                .large_file(size >= u64::from(u32::MAX));
            zip.start_file(name.as_str(), options)?;
            std::io::copy(&mut File::open(path)?, &mut zip)?;
        }
        zip.finish()?.flush()
    })
    .map_err(io_err(out, "write"))
}
