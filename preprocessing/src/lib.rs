//! `autoseg-preprocessing`: everything between raw NIfTI files and the cache training reads.
//!
//! Owns NIfTI I/O with geometry (`Volume`, `Image`, `LabelMap`), `Dataset` (dataset.json, case
//! discovery, channels), verification, fingerprint extraction, crop to nonzero, resampling,
//! normalization, the preprocessed cache, the seeded RNG that reproduces nnU-Net's, and the
//! `Progress` trait through which long work reports to the binary.
//!
//! Must not: depend on libtorch, print to the terminal (it logs through `tracing`), or panic on
//! anything read from a user's file.

mod progress;

pub use progress::Progress;
