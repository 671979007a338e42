//! A human-readable account of why the planner chose what it chose.

use crate::configure::ConfigurationReport;
use crate::lowres::LowresDecision;
use crate::rules::TargetSpacing;
use crate::ANISO_THRESHOLD;

/// The reasons behind a [`crate::Plans`]; returned by [`crate::plan_with_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlanReport {
    /// How the 3d_fullres target spacing was chosen.
    pub target_spacing: TargetSpacing,
    /// The axis permutation chosen.
    pub transpose_forward: [usize; 3],
    /// One entry per planned configuration, in planning order (3d_fullres, 3d_lowres, 2d).
    pub configurations: Vec<ConfigurationReport>,
    /// The outcome of the 3d_lowres search.
    pub lowres: LowresDecision,
}

impl PlanReport {
    /// One sentence per decision, for the CLI to print.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.spacing_line()];
        lines.push(format!(
            "transpose_forward {:?}: the coarsest axis first",
            self.transpose_forward
        ));
        lines.extend(self.configurations.iter().map(configuration_line));
        lines.push(self.lowres_line());
        lines
    }

    fn spacing_line(&self) -> String {
        let ts = &self.target_spacing;
        if ts.overridden {
            return format!("target spacing {:?} (z, y, x): set by the user", ts.target);
        }
        match &ts.anisotropy {
            None => format!(
                "target spacing {:?} (z, y, x): median of the case spacings",
                ts.target
            ),
            Some(a) => format!(
                "target spacing {:?} (z, y, x): anisotropic: axis {} spacing {} > {ANISO_THRESHOLD} \
                 x {} with {} voxels x {ANISO_THRESHOLD} fewer than the other axes; axis {} \
                 takes the 10th percentile {} -> {}",
                ts.target,
                a.axis,
                a.median_spacing,
                a.max_other_spacing,
                ts.median_shape[a.axis],
                a.axis,
                a.percentile_10,
                a.chosen
            ),
        }
    }

    fn lowres_line(&self) -> String {
        match &self.lowres {
            LowresDecision::No3d => "no 3D configurations: the median image has one slice".into(),
            LowresDecision::NotNeeded { patch_fraction } => format!(
                "no 3d_lowres: the 3d_fullres patch covers {:.0}% (>= 25%) of the median image",
                patch_fraction * 100.0
            ),
            LowresDecision::Dropped {
                n_steps,
                size_ratio,
            } => format!(
                "3d_lowres dropped after {n_steps} spacing steps: it shrinks the median image \
                 only {size_ratio:.2}x (< 2x)"
            ),
            LowresDecision::Kept {
                n_steps,
                size_ratio,
            } => format!(
                "3d_lowres kept after {n_steps} spacing steps of 3% (median image {size_ratio:.2}x \
                 smaller); 3d_cascade_fullres refines it"
            ),
        }
    }
}

fn configuration_line(r: &ConfigurationReport) -> String {
    let shrink = match r.shrink_steps.last() {
        None => "fits without shrinking".to_string(),
        Some(last) => format!("shrunk {} times to {last:?}", r.shrink_steps.len()),
    };
    format!(
        "{}: initial patch {:?} padded to {:?}, {shrink}; VRAM estimate {} vs reference {:.0}; \
         batch size {} (VRAM allows {}, dataset cap {})",
        r.name,
        r.initial_patch_size,
        r.padded_patch_size,
        r.estimate,
        r.reference,
        r.batch_size,
        r.batch_size_from_vram,
        r.batch_size_cap
    )
}
