//! Exact Euclidean distance transform with anisotropic spacing (Felzenszwalb & Huttenlocher,
//! "Distance Transforms of Sampled Functions", 2012).
//!
//! The squared distance is separable: one lower-envelope-of-parabolas pass per axis, each line
//! independent of the others, so every pass runs its lines in parallel with rayon. The result is
//! exact (up to f64 rounding), like `scipy.ndimage.distance_transform_edt(~features,
//! sampling=spacing)`.

use ndarray::{Array3, ArrayView3, ArrayViewMut1, Axis, Zip};
use rayon::prelude::*;

/// Distance in mm from every voxel to the nearest `true` voxel of `features`; `f64::INFINITY`
/// everywhere when `features` has no `true` voxel.
///
/// `spacing` is the voxel size per axis, `(z, y, x)`, in mm, and must be positive.
///
/// # Shapes
/// `features`: `(z, y, x)`; returns the same shape.
pub fn euclidean_distance_transform(
    features: ArrayView3<'_, bool>,
    spacing: [f64; 3],
) -> Array3<f64> {
    let mut distance = squared_distance_transform(features, spacing);
    distance.par_mapv_inplace(f64::sqrt);
    distance
}

/// Squared distance in mm² from every voxel to the nearest `true` voxel (infinite if none).
pub(crate) fn squared_distance_transform(
    features: ArrayView3<'_, bool>,
    spacing: [f64; 3],
) -> Array3<f64> {
    let mut d2 = features.mapv(|f| if f { 0.0 } else { f64::INFINITY });
    for axis in [2, 1, 0] {
        let weight = spacing[axis] * spacing[axis];
        let len = d2.len_of(Axis(axis));
        Zip::from(d2.lanes_mut(Axis(axis)))
            .into_par_iter()
            .for_each_init(
                || Envelope::new(len),
                |envelope, (lane,)| envelope.transform(lane, weight),
            );
    }
    d2
}

/// Per-thread scratch for the 1-D transform of one line.
struct Envelope {
    input: Vec<f64>,
    /// Positions of the parabolas in the lower envelope.
    vertex: Vec<usize>,
    /// Boundaries between consecutive envelope parabolas (`boundary[k]..boundary[k + 1]`).
    boundary: Vec<f64>,
}

impl Envelope {
    fn new(len: usize) -> Envelope {
        Envelope {
            input: vec![0.0; len],
            vertex: vec![0; len],
            boundary: vec![0.0; len + 1],
        }
    }

    /// Replaces `line[p]` by `min_q line[q] + weight (p − q)²` (infinite samples are no sites).
    fn transform(&mut self, mut line: ArrayViewMut1<'_, f64>, weight: f64) {
        self.input
            .iter_mut()
            .zip(line.iter())
            .for_each(|(i, &v)| *i = v);
        let n_sites = self.lower_envelope(weight);
        if n_sites == 0 {
            return; // No finite sample: the line stays infinite.
        }
        let mut k = 0;
        for (p, out) in line.iter_mut().enumerate() {
            while self.boundary[k + 1] < p as f64 {
                k += 1;
            }
            let q = self.vertex[k];
            let dp = p as f64 - q as f64;
            *out = weight * dp * dp + self.input[q];
        }
    }

    /// Builds the lower envelope of the parabolas rooted at the finite samples; returns how many
    /// parabolas it holds.
    fn lower_envelope(&mut self, weight: f64) -> usize {
        let f = &self.input;
        let mut n_sites = 0usize;
        for q in 0..f.len() {
            if !f[q].is_finite() {
                continue;
            }
            let fq = f[q] + weight * (q * q) as f64;
            loop {
                if n_sites == 0 {
                    self.vertex[0] = q;
                    self.boundary[0] = f64::NEG_INFINITY;
                    self.boundary[1] = f64::INFINITY;
                    n_sites = 1;
                    break;
                }
                let v = self.vertex[n_sites - 1];
                let fv = f[v] + weight * (v * v) as f64;
                let s = (fq - fv) / (2.0 * weight * (q - v) as f64);
                if s <= self.boundary[n_sites - 1] {
                    n_sites -= 1;
                    continue;
                }
                self.vertex[n_sites] = q;
                self.boundary[n_sites] = s;
                self.boundary[n_sites + 1] = f64::INFINITY;
                n_sites += 1;
                break;
            }
        }
        n_sites
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    /// Brute force: minimum over all features of the anisotropic Euclidean distance.
    fn brute_force(features: &Array3<bool>, spacing: [f64; 3]) -> Array3<f64> {
        let points: Vec<(usize, usize, usize)> = features
            .indexed_iter()
            .filter(|(_, &f)| f)
            .map(|(i, _)| i)
            .collect();
        Array3::from_shape_fn(features.raw_dim(), |(z, y, x)| {
            points
                .iter()
                .map(|&(a, b, c)| {
                    let dz = (z as f64 - a as f64) * spacing[0];
                    let dy = (y as f64 - b as f64) * spacing[1];
                    let dx = (x as f64 - c as f64) * spacing[2];
                    (dz * dz + dy * dy + dx * dx).sqrt()
                })
                .fold(f64::INFINITY, f64::min)
        })
    }

    #[test]
    fn matches_brute_force_with_anisotropic_spacing() {
        let mut features = Array3::from_elem((7, 9, 11), false);
        // A deterministic scatter of feature voxels.
        for (i, f) in features.iter_mut().enumerate() {
            *f = (i * 37 + 11) % 53 == 0;
        }
        let spacing = [2.5, 0.7, 1.3];
        let fast = euclidean_distance_transform(features.view(), spacing);
        let slow = brute_force(&features, spacing);
        for (a, b) in fast.iter().zip(slow.iter()) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn single_feature_gives_analytic_distances() {
        let mut features = Array3::from_elem((3, 4, 5), false);
        features[[0, 0, 0]] = true;
        let d = euclidean_distance_transform(features.view(), [3.0, 2.0, 1.0]);
        assert_eq!(d[[0, 0, 4]], 4.0);
        assert_eq!(d[[0, 3, 0]], 6.0);
        assert_eq!(d[[2, 0, 0]], 6.0);
        assert_eq!(d[[1, 2, 0]], 5.0);
    }

    #[test]
    fn no_feature_is_infinitely_far() {
        let features = Array3::from_elem((2, 2, 2), false);
        let d = euclidean_distance_transform(features.view(), [1.0, 1.0, 1.0]);
        assert!(d.iter().all(|v| v.is_infinite()));
    }
}
