//! `autoseg-preprocessing`: everything between raw image files and the cache training reads.
//!
//! Owns image I/O with geometry (`Volume`, `Image`, `LabelMap`; NIfTI, NRRD and MetaImage
//! behind one interface chosen by file ending), `Dataset` (dataset.json, case
//! discovery, channels), verification, fingerprint extraction, crop to nonzero, resampling,
//! normalization, the preprocessed cache, the seeded RNG that reproduces nnU-Net's, and the
//! `Progress` trait through which long work reports to the binary.
//!
//! Must not: depend on libtorch, print to the terminal (it logs through `tracing`), or panic on
//! anything read from a user's file.

mod alloc_cap;
pub mod cache;
pub mod crop;
mod dataset;
pub mod fingerprint;
pub mod foreground;
pub mod formats;
mod image_io;
pub mod limits;
mod nifti_io;
pub mod normalize;
pub mod pipeline;
mod progress;
pub mod recycle;
pub mod resample;
pub mod rng;
mod verify;
mod volume;

#[cfg(test)]
mod test_support;

pub use alloc_cap::{with_allocation_cap, CappedAllocator};
pub use autoseg_planner::{write_atomic, write_atomic_with};
pub use cache::{preprocess, CacheError, CachedCase, PreprocessSettings, PreprocessSummary};
pub use dataset::{
    discover_image_cases, parse_dataset_json, read_dataset_json, split_channel_name, Case,
    CaseEntry, CaseId, Dataset, DatasetError, DatasetJson, JsonFault, LabelEntry, LabelValue,
    Labels, NotAFile, PathProblem,
};
pub use image_io::{
    is_dicom_folder, read_image, read_label_map, read_stacked, write_dicom_seg, write_image,
    write_label_map, ImageError, ImageFormat, StackError,
};
pub use nifti_io::{
    read_header, read_image_from_bytes, read_label_map_from_bytes, DataType, NiftiInfo,
    NiftiIoError, Scaling,
};
pub use pipeline::{
    preprocess_arrays, preprocess_case, read_channels, CaseProperties, PreprocessError,
    PreprocessSpec, PreprocessedCase,
};
pub use progress::Progress;
pub use verify::{verify, Fault, Issue, Report};
pub use volume::{
    Affine, Geometry, GeometryDiff, GeometryRecord, HeaderGeometry, Image, ItkGeometry, LabelMap,
    Shape3, SourceGeometry, Spacing, Volume,
};

/// This crate's unit tests run under the allocator the binaries install, so that the DICOM
/// reader's allocation cap is tested as it runs.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;
