//! `autoseg-trainer`: training one configuration and fold.
//!
//! Owns patch sampling, augmentation, the data-loader threads, losses, the optimiser and its
//! schedule, the training loop, k-fold splits, checkpoints and resume, logs, curves and the final
//! validation (through `autoseg-inference`).
//!
//! Must not: change a plan, or hold the whole dataset in memory.

pub mod augment;
pub mod distributed;
pub mod loader;
pub mod loss;
pub mod optim;
pub mod sampling;
pub mod schedule;
pub mod splits;
pub mod train;
pub mod validation;
