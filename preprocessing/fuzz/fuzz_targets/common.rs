#![allow(dead_code)]
//! Shared by the fuzz targets: one temporary folder per process and a small memory ceiling (so
//! that a declared size the readers accept stays far below libFuzzer's RSS limit).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The process's temporary folder, with the memory ceiling set to 64 MB on first use.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        autoseg_preprocessing::limits::set_volume_ceiling(64 << 20);
        tempfile::tempdir().expect("a temporary folder")
    })
    .path()
}

/// `bytes` written to `name` in the scratch folder (the file the reader is given).
pub fn file_of(bytes: &[u8], name: &str) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("the scratch file");
    path
}
