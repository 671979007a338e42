//! Exact Euclidean distance transform with anisotropic spacing (Felzenszwalb & Huttenlocher,
//! "Distance Transforms of Sampled Functions", 2012).
//!
//! The squared distance is separable: one lower-envelope-of-parabolas pass per axis, each line
//! independent of the others, so every pass runs its lines in parallel with rayon. The result is
//! exact (up to f64 rounding), like `scipy.ndimage.distance_transform_edt(~features,
//! sampling=spacing)`.

use ndarray::{Array3, ArrayView1, ArrayView3, ArrayViewMut1, ArrayViewMut2, Axis, Zip};
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
///
/// The pass along x reads the features directly (the distance to the nearest feature of the
/// row); the passes along y and z work on blocks of [`BLOCK`] neighbouring columns copied into
/// a contiguous scratch buffer, so that strided lines are read a cache line at a time.
pub(crate) fn squared_distance_transform(
    features: ArrayView3<'_, bool>,
    spacing: [f64; 3],
) -> Array3<f64> {
    let mut d2 = Array3::<f64>::zeros(features.raw_dim());
    let weight = spacing[2] * spacing[2];
    Zip::from(d2.lanes_mut(Axis(2)))
        .and(features.lanes(Axis(2)))
        .par_for_each(|row, f| nearest_in_row(f, row, weight));
    // Axis 1: the (y, x) planes, one per z. Axis 0: the (z, x) planes, one per y.
    for (axis, planes) in [(1, 0), (0, 1)] {
        let weight = spacing[axis] * spacing[axis];
        let len = d2.len_of(Axis(axis));
        d2.axis_iter_mut(Axis(planes))
            .into_par_iter()
            .for_each_init(
                || (Envelope::new(len), vec![0.0; len * BLOCK]),
                |(envelope, block), plane| transform_columns(plane, weight, envelope, block),
            );
    }
    d2
}

/// Columns transformed together by the strided passes.
const BLOCK: usize = 16;

/// `row[p] = weight · (p − q)²` for the nearest `q` with `features[q]` (infinite if none):
/// the 1-D transform of a 0/∞ line, bit for bit.
fn nearest_in_row(features: ArrayView1<'_, bool>, mut row: ArrayViewMut1<'_, f64>, weight: f64) {
    // Distance in voxels to the nearest feature at or before, then at or after, each position.
    let mut last = None;
    for (p, (out, &f)) in row.iter_mut().zip(features.iter()).enumerate() {
        if f {
            last = Some(p);
        }
        *out = last.map_or(f64::INFINITY, |q| (p - q) as f64);
    }
    let mut next = None;
    for (p, (out, &f)) in row.iter_mut().zip(features.iter()).enumerate().rev() {
        if f {
            next = Some(p);
        }
        if let Some(q) = next {
            *out = out.min((q - p) as f64);
        }
        if out.is_finite() {
            *out = weight * *out * *out;
        }
    }
}

/// The 1-D transform of every column (axis 0) of a plane whose rows are contiguous, [`BLOCK`]
/// columns at a time through `block`.
fn transform_columns(
    mut plane: ArrayViewMut2<'_, f64>,
    weight: f64,
    envelope: &mut Envelope,
    block: &mut [f64],
) {
    let (n, nx) = plane.dim();
    for x0 in (0..nx).step_by(BLOCK) {
        let width = BLOCK.min(nx - x0);
        for (i, row) in plane.rows().into_iter().enumerate() {
            let row = &row.to_slice().expect("rows of a standard-layout array")[x0..x0 + width];
            for (j, &v) in row.iter().enumerate() {
                block[j * n + i] = v;
            }
        }
        for column in block.chunks_exact_mut(n).take(width) {
            envelope.transform(column, weight);
        }
        for (i, mut row) in plane.rows_mut().into_iter().enumerate() {
            let row =
                &mut row.as_slice_mut().expect("rows of a standard-layout array")[x0..x0 + width];
            for (j, v) in row.iter_mut().enumerate() {
                *v = block[j * n + i];
            }
        }
    }
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
    fn transform(&mut self, line: &mut [f64], weight: f64) {
        self.input.copy_from_slice(line);
        if self.lower_envelope(weight) == 0 {
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
pub(crate) mod tests {
    use super::*;
    use ndarray::Array3;

    /// The transform before blocking and the binary first pass: every pass, x included, runs
    /// the envelope on each lane of a 0/∞ volume. Kept as the reference the fast path must
    /// equal bit for bit.
    pub(crate) fn reference_squared_distance_transform(
        features: ArrayView3<'_, bool>,
        spacing: [f64; 3],
    ) -> Array3<f64> {
        let mut d2 = features.mapv(|f| if f { 0.0 } else { f64::INFINITY });
        for axis in [2, 1, 0] {
            let weight = spacing[axis] * spacing[axis];
            let mut envelope = Envelope::new(d2.len_of(Axis(axis)));
            for mut lane in d2.lanes_mut(Axis(axis)) {
                let mut line = lane.to_vec();
                envelope.transform(&mut line, weight);
                lane.iter_mut().zip(line).for_each(|(o, v)| *o = v);
            }
        }
        d2
    }

    /// A deterministic pseudo-random generator (xorshift64*), for test volumes.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % n
        }
    }

    #[test]
    fn blocked_transform_equals_the_lane_by_lane_reference_bit_for_bit() {
        let mut rng = Rng(0x5EED);
        // Shapes wider than a block and not a multiple of it; sparse, dense, empty and
        // single-voxel feature sets, some on the volume's edges.
        for (shape, density) in [
            ((5, 7, 37), 3),
            ((9, 20, 17), 50),
            ((1, 13, 40), 10),
            ((16, 3, 1), 4),
            ((6, 6, 6), 0),
            ((7, 5, 33), 1000),
        ] {
            let mut features = Array3::from_elem(shape, false);
            for f in features.iter_mut() {
                *f = density > 0 && rng.below(density) == 0;
            }
            if density == 1000 {
                features[[6, 0, 32]] = true; // A single corner voxel.
            }
            let spacing = [2.5, 0.7, 1.3];
            let fast = squared_distance_transform(features.view(), spacing);
            let slow = reference_squared_distance_transform(features.view(), spacing);
            for (a, b) in fast.iter().zip(slow.iter()) {
                assert_eq!(a.to_bits(), b.to_bits(), "{shape:?}: {a} vs {b}");
            }
        }
    }

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
