//! The `autoseg` crate's integration tests: architecture invariants, tidy rules, and the binary's
//! command contract.

mod architecture;
mod cli;
mod pipeline;
mod plan;
mod report;
mod tidy;
