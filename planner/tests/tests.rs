//! The planner's integration tests: one binary, one module per area.

mod nnunet_plans;
mod nnunet_vectors;
mod pickle;
mod plans_file;
