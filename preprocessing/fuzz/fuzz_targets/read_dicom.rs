//! Fuzz target: arbitrary bytes as the one file of a DICOM series folder (after the 128-byte
//! preamble and `DICM`, so that the data set parser is reached). Reading must never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use autoseg_preprocessing::formats::read_dicom_series;
use libfuzzer_sys::fuzz_target;

/// As in the `autoseg` binary: the allocation cap the DICOM reader sets takes effect.
#[global_allocator]
static ALLOCATOR: autoseg_preprocessing::CappedAllocator = autoseg_preprocessing::CappedAllocator;

fuzz_target!(|bytes: &[u8]| {
    let folder = common::scratch().join("series");
    std::fs::create_dir_all(&folder).expect("the series folder");
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    file.extend_from_slice(bytes);
    std::fs::write(folder.join("IM1.dcm"), file).expect("the scratch file");
    let _ = read_dicom_series(&folder);
});
