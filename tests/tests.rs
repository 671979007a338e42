//! The `autoseg` crate's integration tests: architecture invariants, tidy rules, and the binary's
//! command contract.

mod architecture;
mod cascade;
mod cli;
mod hostile;
mod nnunet;
mod pipeline;
mod plan;
mod pretrained;
mod report;
mod signals;
mod tidy;
mod training_settings;
