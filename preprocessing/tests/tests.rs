//! Integration tests of `autoseg-preprocessing`: one module per area, one test binary.

mod nifti;
