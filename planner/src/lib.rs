//! `autoseg-planner`: nnU-Net's experiment planning as a pure library.
//!
//! Owns `Fingerprint`, `DatasetInfo`, `Plans`, `Configuration`, the planning rules (target
//! spacing, transpose, patch size, pooling topology, batch size, the low-res/cascade rule,
//! normalization choice) and the VRAM model that sizes networks for a GPU-memory budget.
//!
//! Must not: read or write files beyond (de)serialising its own types, depend on libtorch or
//! rayon, or print. `plan` is a deterministic function of its arguments.

mod spec;

pub use spec::{Dim, NetworkKind, StageSpec, UNetSpec};
