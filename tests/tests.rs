//! The `autoseg` crate's integration tests: architecture invariants, tidy rules, and the binary's
//! command contract.

mod architecture;
mod cascade;
mod cli;
mod distributed;
mod formats;
mod hostile;
mod nnunet;
mod parallel_folds;
mod pipeline;
mod plan;
mod pretrained;
mod report;
mod signals;
mod tidy;
mod training_settings;
