//! The integration tests of `autoseg-network`: one test binary, one module per area.

mod resenc;
