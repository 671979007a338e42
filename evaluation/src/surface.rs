//! Surface-distance metrics in mm: HD95, average symmetric surface distance and normalized
//! surface Dice, following medpy's definitions (`medpy.metric.binary.hd95` / `assd`).
//!
//! Conventions:
//! - **Surface** of a mask: its voxels with at least one face (6-connected) neighbour outside
//!   the mask, a neighbour beyond the volume's edge counting as outside. This is medpy's
//!   `mask ^ binary_erosion(mask, generate_binary_structure(3, 1))` (erosion's border value is
//!   0). An axis of length 1 (a 2D image stored as `(1, y, x)`) has no neighbours along it, so
//!   a 2D mask gets its 4-connected 2D border, as medpy does on a 2D array.
//! - **Distance** of a surface voxel of A to B: the exact Euclidean distance in mm (voxel centres,
//!   anisotropic spacing) to the nearest surface voxel of B (0 if it is one).
//! - **HD95**: numpy's linear 95th percentile over the union of both directed distance sets.
//! - **ASSD**: the mean over the union of both directed distance sets (medpy 0.5's `assd`,
//!   MONAI's symmetric average surface distance; older medpy averaged the two directed means).
//! - **NSD** at tolerance τ: (surface voxels of A within τ of B + those of B within τ of A) /
//!   (surface voxels of A + of B), voxel-counted as MONAI's `compute_surface_dice`.
//! - **Empty masks**: both empty gives NaN for all three; exactly one empty gives HD95 = ASSD =
//!   +∞ and NSD = 0 (MONAI's conventions; medpy raises an error instead).

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

use crate::edt::squared_distance_transform;

/// Surface metrics of one class in one case, in mm (see the module docs for conventions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SurfaceMetrics {
    /// 95th percentile of the symmetric surface distances (medpy `hd95`).
    pub hd95: f64,
    /// Average symmetric surface distance (medpy `assd`).
    pub assd: f64,
    /// Normalized surface Dice at the tolerance of the settings.
    pub nsd: f64,
}

/// A voxel index `(z, y, x)`.
type Voxel = [usize; 3];

/// Surface metrics between two binary masks of the same shape.
///
/// `spacing` is the voxel size `(z, y, x)` in mm (positive); `nsd_tolerance_mm` the NSD
/// tolerance τ in mm. The caller checks shapes and spacing.
///
/// # Shapes
/// `reference`, `prediction`: `(z, y, x)`, equal.
pub fn surface_metrics(
    reference: ArrayView3<'_, bool>,
    prediction: ArrayView3<'_, bool>,
    spacing: [f64; 3],
    nsd_tolerance_mm: f64,
) -> SurfaceMetrics {
    let (nz, ny, nx) = reference.dim();
    let axes = [nz > 1, ny > 1, nx > 1];
    surface_metrics_on_axes(reference, prediction, spacing, nsd_tolerance_mm, axes)
}

/// [`surface_metrics`] on masks that may be a crop of a larger volume: `axes[i]` says whether
/// the full volume has neighbours along axis `i` (its length is > 1). Outside the crop is
/// background, so a crop that holds every `true` voxel of both masks gives the full answer.
pub(crate) fn surface_metrics_on_axes(
    reference: ArrayView3<'_, bool>,
    prediction: ArrayView3<'_, bool>,
    spacing: [f64; 3],
    nsd_tolerance_mm: f64,
    axes: [bool; 3],
) -> SurfaceMetrics {
    let reference_surface = surface_voxels(reference, axes);
    let prediction_surface = surface_voxels(prediction, axes);
    match (reference_surface.is_empty(), prediction_surface.is_empty()) {
        (true, true) => {
            return SurfaceMetrics {
                hd95: f64::NAN,
                assd: f64::NAN,
                nsd: f64::NAN,
            }
        }
        (true, false) | (false, true) => {
            return SurfaceMetrics {
                hd95: f64::INFINITY,
                assd: f64::INFINITY,
                nsd: 0.0,
            }
        }
        (false, false) => {}
    }
    let pred_to_ref = directed_distances(&prediction_surface, &reference_surface, spacing);
    let ref_to_pred = directed_distances(&reference_surface, &prediction_surface, spacing);
    metrics_from_distances(pred_to_ref, ref_to_pred, nsd_tolerance_mm)
}

/// HD95, ASSD and NSD from both directed distance sets (each non-empty).
fn metrics_from_distances(
    pred_to_ref: Vec<f64>,
    ref_to_pred: Vec<f64>,
    nsd_tolerance_mm: f64,
) -> SurfaceMetrics {
    let within = |d: &[f64]| d.iter().filter(|&&v| v <= nsd_tolerance_mm).count();
    let n_surface = pred_to_ref.len() + ref_to_pred.len();
    let nsd = (within(&pred_to_ref) + within(&ref_to_pred)) as f64 / n_surface as f64;
    let mut pooled = pred_to_ref;
    pooled.extend_from_slice(&ref_to_pred);
    let assd = pooled.iter().sum::<f64>() / pooled.len() as f64;
    SurfaceMetrics {
        hd95: percentile_linear(&mut pooled, 95.0),
        assd,
        nsd,
    }
}

/// numpy's default (`method="linear"`) percentile of a non-empty sample; sorts `values`.
pub(crate) fn percentile_linear(values: &mut [f64], q: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let position = (values.len() - 1) as f64 * q / 100.0;
    let below = position.floor() as usize;
    let above = (below + 1).min(values.len() - 1);
    let t = position - below as f64;
    let (a, b) = (values[below], values[above]);
    // numpy's `_lerp`, which interpolates from the nearer end for accuracy.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// The surface voxels of a mask, in raster order (see the module docs for the definition);
/// only axes with `axes[i]` have neighbours.
pub(crate) fn surface_voxels(mask: ArrayView3<'_, bool>, axes: [bool; 3]) -> Vec<Voxel> {
    let shape = [mask.dim().0, mask.dim().1, mask.dim().2];
    (0..shape[0])
        .into_par_iter()
        .flat_map_iter(|z| {
            let mask = &mask;
            (0..shape[1]).flat_map(move |y| {
                (0..shape[2])
                    .map(move |x| [z, y, x])
                    .filter(move |&v| mask[v] && on_surface(mask, shape, axes, v))
            })
        })
        .collect()
}

/// Whether a mask voxel has a face neighbour outside the mask (or beyond the edge) along one
/// of `axes`.
fn on_surface(mask: &ArrayView3<'_, bool>, shape: [usize; 3], axes: [bool; 3], v: Voxel) -> bool {
    (0..3).filter(|&axis| axes[axis]).any(|axis| {
        let mut lower = v;
        let mut upper = v;
        if v[axis] == 0 || v[axis] + 1 == shape[axis] {
            return true;
        }
        lower[axis] -= 1;
        upper[axis] += 1;
        !mask[lower] || !mask[upper]
    })
}

/// Distance in mm from each voxel of `from` to the nearest voxel of `to` (both non-empty).
///
/// The transform runs on the bounding box of both sets only: every feature and every query
/// lies inside it, and the separable transform is exact on any box holding all features.
fn directed_distances(from: &[Voxel], to: &[Voxel], spacing: [f64; 3]) -> Vec<f64> {
    let (low, high) = bounding_box(from.iter().chain(to));
    let dim = (
        high[0] - low[0] + 1,
        high[1] - low[1] + 1,
        high[2] - low[2] + 1,
    );
    let mut features = Array3::from_elem(dim, false);
    for v in to {
        features[[v[0] - low[0], v[1] - low[1], v[2] - low[2]]] = true;
    }
    let d2 = squared_distance_transform(features.view(), spacing);
    from.iter()
        .map(|v| d2[[v[0] - low[0], v[1] - low[1], v[2] - low[2]]].sqrt())
        .collect()
}

/// Inclusive lower and upper corners of a non-empty set of voxels.
fn bounding_box<'a>(voxels: impl Iterator<Item = &'a Voxel>) -> (Voxel, Voxel) {
    let mut low = [usize::MAX; 3];
    let mut high = [0; 3];
    for v in voxels {
        for axis in 0..3 {
            low[axis] = low[axis].min(v[axis]);
            high[axis] = high[axis].max(v[axis]);
        }
    }
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::class_contains;
    use crate::edt::tests::{reference_squared_distance_transform, Rng};
    use crate::{evaluate_case, CaseInput, EvaluationSettings, LabelValue, SurfaceSettings};
    use ndarray::s;

    /// The distances of the old path: a transform of the whole volume, not of a box.
    fn full_volume_distances(
        from: &[Voxel],
        to: &[Voxel],
        shape: (usize, usize, usize),
        spacing: [f64; 3],
    ) -> Vec<f64> {
        let mut features = Array3::from_elem(shape, false);
        to.iter().for_each(|&v| features[v] = true);
        let d2 = reference_squared_distance_transform(features.view(), spacing);
        from.iter().map(|&v| d2[v].sqrt()).collect()
    }

    /// A map of `0..n_values` painted as random boxes (some touching the volume's edges).
    fn random_labels(rng: &mut Rng, shape: (usize, usize, usize), n_values: u64) -> Array3<u16> {
        let dims = [shape.0, shape.1, shape.2];
        let mut labels = Array3::zeros(shape);
        for _ in 0..6 {
            let value = rng.below(n_values) as u16;
            let mut range = [(0, 0); 3];
            for (axis, r) in range.iter_mut().enumerate() {
                let a = rng.below(dims[axis] as u64) as usize;
                let b = rng.below(dims[axis] as u64) as usize;
                *r = (a.min(b), a.max(b) + 1);
            }
            let (z, y, x) = (range[0], range[1], range[2]);
            labels
                .slice_mut(s![z.0..z.1, y.0..y.1, x.0..x.1])
                .fill(value);
        }
        labels
    }

    const SHAPES: [(usize, usize, usize); 4] = [(9, 14, 23), (1, 20, 31), (12, 5, 40), (3, 3, 3)];

    #[test]
    fn box_transform_equals_the_full_volume_transform() {
        let mut rng = Rng(0xB0C5);
        let spacing = [2.5, 0.7, 1.3];
        for round in 0..40 {
            let shape = SHAPES[round % SHAPES.len()];
            let axes = [shape.0 > 1, shape.1 > 1, shape.2 > 1];
            let a = random_labels(&mut rng, shape, 3).mapv(|v| v == 1);
            let mut b = random_labels(&mut rng, shape, 3).mapv(|v| v == 1);
            if round % 5 == 0 {
                b.fill(false);
                b[[shape.0 - 1, 0, shape.2 - 1]] = true; // A single voxel in a corner.
            }
            let (a, b) = (
                surface_voxels(a.view(), axes),
                surface_voxels(b.view(), axes),
            );
            if a.is_empty() || b.is_empty() {
                continue;
            }
            for (from, to) in [(&a, &b), (&b, &a)] {
                let boxed = directed_distances(from, to, spacing);
                let full = full_volume_distances(from, to, shape, spacing);
                for (x, y) in boxed.iter().zip(&full) {
                    assert!((x - y).abs() <= 1e-12 * y.max(1.0), "{x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn evaluated_surface_metrics_equal_the_full_volume_path() {
        let mut rng = Rng(0xE7A1);
        let spacing = [1.7, 0.9, 0.6];
        let ignore = 4;
        let classes = [
            LabelValue::Single(1),
            LabelValue::Single(2),
            LabelValue::Region(vec![1, 3]),
            LabelValue::Single(7), // Never present: both masks empty.
        ];
        let settings = EvaluationSettings {
            classes: classes.to_vec(),
            ignore_label: Some(ignore),
            surface: Some(SurfaceSettings {
                nsd_tolerance_mm: 1.0,
            }),
        };
        for round in 0..24 {
            let shape = SHAPES[round % SHAPES.len()];
            let axes = [shape.0 > 1, shape.1 > 1, shape.2 > 1];
            let reference = random_labels(&mut rng, shape, 5);
            let prediction = random_labels(&mut rng, shape, 4);
            let case = CaseInput {
                prediction_file: "p".into(),
                reference_file: "r".into(),
                prediction: prediction.view(),
                reference: reference.view(),
                spacing,
            };
            let evaluated = evaluate_case(&case, &settings).unwrap();
            for (class, metrics) in &evaluated.metrics {
                let mask = |labels: &Array3<u16>| {
                    ndarray::Zip::from(labels)
                        .and(&reference)
                        .map_collect(|&v, &r| class_contains(class, v.into()) && r != ignore)
                };
                let r = surface_voxels(mask(&reference).view(), axes);
                let p = surface_voxels(mask(&prediction).view(), axes);
                let got = metrics.surface.unwrap();
                if r.is_empty() || p.is_empty() {
                    let want = surface_metrics(
                        mask(&reference).view(),
                        mask(&prediction).view(),
                        spacing,
                        1.0,
                    );
                    assert_eq!(format!("{got:?}"), format!("{want:?}"));
                    continue;
                }
                let want = metrics_from_distances(
                    full_volume_distances(&p, &r, shape, spacing),
                    full_volume_distances(&r, &p, shape, spacing),
                    1.0,
                );
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y.abs().max(1.0);
                assert!(close(got.hd95, want.hd95), "{class:?}: {got:?} vs {want:?}");
                assert!(close(got.assd, want.assd), "{class:?}: {got:?} vs {want:?}");
                assert_eq!(got.nsd, want.nsd, "{class:?}");
            }
        }
    }

    #[test]
    fn surface_of_a_solid_cube_is_its_shell() {
        let mut mask = Array3::from_elem((12, 12, 12), false);
        mask.slice_mut(s![2..10, 2..10, 2..10]).fill(true);
        assert_eq!(
            surface_voxels(mask.view(), [true; 3]).len(),
            8 * 8 * 8 - 6 * 6 * 6
        );
    }

    #[test]
    fn voxels_on_the_volume_edge_are_surface() {
        let mask = Array3::from_elem((3, 3, 3), true);
        // Only the centre voxel has all six neighbours inside.
        assert_eq!(surface_voxels(mask.view(), [true; 3]).len(), 26);
    }

    #[test]
    fn a_2d_image_has_a_2d_border() {
        let mut mask = Array3::from_elem((1, 6, 6), false);
        mask.slice_mut(s![.., 1..5, 1..5]).fill(true);
        assert_eq!(
            surface_voxels(mask.view(), [false, true, true]).len(),
            16 - 4
        );
        // As a crop of a thicker volume, every voxel of the one-voxel slab is surface.
        assert_eq!(surface_voxels(mask.view(), [true; 3]).len(), 16);
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        // np.percentile([1, 2, 3, 4, 10], 95) == 8.8; np.percentile([0, 1], 95) == 0.95
        assert!((percentile_linear(&mut [10.0, 2.0, 1.0, 4.0, 3.0], 95.0) - 8.8).abs() < 1e-12);
        assert!((percentile_linear(&mut [1.0, 0.0], 95.0) - 0.95).abs() < 1e-12);
        assert_eq!(percentile_linear(&mut [7.0], 95.0), 7.0);
    }

    #[test]
    fn empty_masks_follow_the_documented_conventions() {
        let empty = Array3::from_elem((4, 4, 4), false);
        let mut one = empty.clone();
        one[[1, 1, 1]] = true;
        let both = surface_metrics(empty.view(), empty.view(), [1.0; 3], 1.0);
        assert!(both.hd95.is_nan() && both.assd.is_nan() && both.nsd.is_nan());
        let missing = surface_metrics(one.view(), empty.view(), [1.0; 3], 1.0);
        assert_eq!(missing.hd95, f64::INFINITY);
        assert_eq!(missing.assd, f64::INFINITY);
        assert_eq!(missing.nsd, 0.0);
    }
}
