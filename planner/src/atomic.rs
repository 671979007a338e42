//! Artifact files: atomic writes (a temporary file in the same folder, synced, then renamed over
//! the target, so a crash or a full disk never leaves a half-written artifact behind), and the
//! read and write every planner artifact (`plans.toml`, `fingerprint.toml`) goes through.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::PlanError;

/// Writes `bytes` to `path` atomically (temp file beside it, fsync, rename).
///
/// # Errors
/// Any I/O error of creating, writing, syncing or renaming; the temp file is removed on failure
/// and an existing file at `path` is left untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Like [`write_atomic`], but the content is produced by `write` into the open temp file.
///
/// # Errors
/// As [`write_atomic`], plus whatever `write` returns.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The text of an artifact, or [`PlanError::MissingArtifact`] with `hint` when it does not exist.
pub(crate) fn read_artifact(path: &Path, hint: &'static str) -> Result<String, PlanError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PlanError::MissingArtifact {
            path: path.to_path_buf(),
            hint,
        }),
        Err(source) => Err(PlanError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        }),
    }
}

/// Writes an artifact's text atomically, creating its folder.
pub(crate) fn write_artifact(path: &Path, text: &str) -> Result<(), PlanError> {
    let io = |action| {
        move |source| PlanError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("create the folder of"))?;
    }
    write_atomic(path, text.as_bytes()).map_err(io("write"))
}

/// `dir/.name.tmp.<pid>`: hidden, unique per process, in the target's folder (same filesystem).
/// Every atomic write of the project goes through a name of this form, so that stale-temp
/// clean-up can tell whose it is ([`is_orphaned_temp`]).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Whether the file `name` is a [`temp_path`] whose writing process is gone (a run killed
/// mid-write): only those may be removed; another live process's temp file is being written.
pub fn is_orphaned_temp(name: &str) -> bool {
    let Some((_, pid)) = name.rsplit_once(".tmp.") else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    name.starts_with('.')
        && pid != std::process::id()
        && !Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.toml");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failing_writer_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.toml");
        write_atomic(&path, b"good").unwrap();
        let err = write_atomic_with(&path, |_| Err(io::Error::other("disk full"))).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), b"good");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
