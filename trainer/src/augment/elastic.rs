//! Elastic deformation fields: per displacement axis a white-noise field over the patch,
//! smoothed by a periodic Gaussian, scaled to the drawn magnitude and centred.
//!
//! batchgeneratorsv2 `SpatialTransform.get_parameters` with `p_elastic_deform > 0`: for each
//! spatial axis `d` (`(y, x)` only for in-plane modes) a scale `U(elastic_deform_scale)` gives
//! `sigma_d = scale_d · patch_d` voxels and a magnitude `m_d ~ U(elastic_deform_magnitude)` is
//! drawn (in voxels: bg2's "magnitude must be given in pixels"). Component `d` is `N(0, 1)` noise
//! over the whole patch, filtered by `scipy.ndimage.fourier_gaussian(fftn(.), sigma_d)` (an
//! isotropic Gaussian with periodic borders), then divided by `max|.| / m_d`. The deformed grid
//! is re-centred on its mean (`center_deformation=True`), which is the same as subtracting the
//! field's mean before the matrix. nnU-Net's default pipeline uses `p_elastic_deform = 0`.

use ndarray::{Array3, Array4, ArrayViewMut3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;

use super::noise::fill_standard_normal;
use super::uniform;

/// The drawn parameters of one elastic deformation; [`ElasticDeformation::field`] makes the
/// displacement deterministically from them.
#[derive(Clone, Debug, PartialEq)]
pub struct ElasticDeformation {
    /// Gaussian sigma (voxels) of each displacement component `(z, y, x)`.
    pub sigmas: [f64; 3],
    /// Largest absolute displacement (voxels) of each component before centring.
    pub magnitudes: [f64; 3],
    /// Whether the field lies in the `(y, x)` plane (one field for every slice, no `z` part).
    pub in_plane: bool,
    /// Seed of the white noise.
    pub seed: u64,
}

impl ElasticDeformation {
    /// Draws bg2's parameters for `patch`: per deformed axis a scale in `scale` (fraction of
    /// the patch edge) and a magnitude in `magnitude` (voxels), then the noise seed.
    pub fn sample<R: Rng>(
        rng: &mut R,
        patch: [usize; 3],
        in_plane: bool,
        scale: (f64, f64),
        magnitude: (f64, f64),
    ) -> ElasticDeformation {
        let first = usize::from(in_plane);
        let mut sigmas = [0.0; 3];
        for a in first..3 {
            sigmas[a] = uniform(rng, scale.0, scale.1) * patch[a] as f64;
        }
        let mut magnitudes = [0.0; 3];
        for m in &mut magnitudes[first..] {
            *m = uniform(rng, magnitude.0, magnitude.1);
        }
        ElasticDeformation {
            sigmas,
            magnitudes,
            in_plane,
            seed: rng.gen(),
        }
    }

    /// The displacement `(3, z, y, x)` over `patch` (`(3, 1, y, x)` in plane), ready for
    /// [`Spatial::with_elastic`](super::Spatial::with_elastic).
    pub fn field(&self, patch: [usize; 3]) -> Array4<f32> {
        let extent = [if self.in_plane { 1 } else { patch[0] }, patch[1], patch[2]];
        let mut field = Array4::<f32>::zeros((3, extent[0], extent[1], extent[2]));
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let first = usize::from(self.in_plane);
        for a in first..3 {
            let mut component = Array3::<f64>::zeros(extent);
            let mut noise = vec![0.0f32; component.len()];
            fill_standard_normal(&mut rng, &mut noise);
            component
                .iter_mut()
                .zip(&noise)
                .for_each(|(c, &n)| *c = n as f64);
            for axis in first..3 {
                periodic_gaussian(component.view_mut(), axis, self.sigmas[a]);
            }
            normalise_and_centre(&mut component, self.magnitudes[a]);
            field
                .index_axis_mut(Axis(0), a)
                .iter_mut()
                .zip(&component)
                .for_each(|(f, &c)| *f = c as f32);
        }
        field
    }
}

/// Scales `component` to `max |.| = magnitude`, then subtracts its mean.
fn normalise_and_centre(component: &mut Array3<f64>, magnitude: f64) {
    let max = component.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let factor = if max > 0.0 { magnitude / max } else { 0.0 };
    component.mapv_inplace(|v| v * factor);
    let mean = component.sum() / component.len() as f64;
    component.mapv_inplace(|v| v - mean);
}

/// `fourier_gaussian` along one axis: every line is transformed, multiplied by
/// `exp(-2 π² σ² k² / n²)` (k the signed frequency) and transformed back. Applied to each axis
/// in turn this equals scipy's `ifftn(fourier_gaussian(fftn(x), sigma)).real`.
fn periodic_gaussian(mut volume: ArrayViewMut3<'_, f64>, axis: usize, sigma: f64) {
    let n = volume.len_of(Axis(axis));
    if n < 2 || sigma <= 0.0 {
        return;
    }
    let mut planner = FftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n);
    let inverse = planner.plan_fft_inverse(n);
    let factors: Vec<f64> = (0..n)
        .map(|i| {
            let k = if i < n.div_ceil(2) {
                i as f64
            } else {
                i as f64 - n as f64
            };
            (-2.0 * std::f64::consts::PI.powi(2) * sigma * sigma * k * k / (n * n) as f64).exp()
                / n as f64
        })
        .collect();
    let mut line = vec![Complex64::default(); n];
    for mut lane in volume.lanes_mut(Axis(axis)) {
        line.iter_mut()
            .zip(lane.iter())
            .for_each(|(c, &v)| *c = Complex64::new(v, 0.0));
        forward.process(&mut line);
        line.iter_mut().zip(&factors).for_each(|(c, &f)| *c *= f);
        inverse.process(&mut line);
        lane.iter_mut().zip(&line).for_each(|(v, c)| *v = c.re);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deformation(sigma: f64, magnitude: f64, in_plane: bool) -> ElasticDeformation {
        ElasticDeformation {
            sigmas: [sigma; 3],
            magnitudes: [magnitude; 3],
            in_plane,
            seed: 3,
        }
    }

    /// Correlation of a component with itself shifted by `lag` along x (periodic).
    fn autocorrelation(field: &Array4<f32>, component: usize, lag: usize) -> f64 {
        let c = field.index_axis(Axis(0), component);
        let n_x = c.shape()[2];
        let (mut num, mut den) = (0.0, 0.0);
        for ((z, y, x), &v) in c.indexed_iter() {
            num += v as f64 * c[[z, y, (x + lag) % n_x]] as f64;
            den += (v as f64).powi(2);
        }
        num / den
    }

    #[test]
    fn field_has_the_drawn_magnitude_and_zero_mean() {
        let field = deformation(3.0, 5.0, false).field([24, 28, 32]);
        assert_eq!(field.shape(), &[3, 24, 28, 32]);
        for a in 0..3 {
            let c = field.index_axis(Axis(0), a);
            let mean = c.iter().map(|&v| v as f64).sum::<f64>() / c.len() as f64;
            assert!(mean.abs() < 1e-5, "component {a}: mean {mean}");
            // Before centring the largest |value| was 5: undo the shift `s` that centring
            // applied (the extreme value was either the max or the min).
            let (lo, hi) = c.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| {
                (lo.min(v as f64), hi.max(v as f64))
            });
            let undone = [5.0 - hi, -5.0 - lo].into_iter().any(|s| {
                let max = c.iter().fold(0.0f64, |m, &v| m.max((v as f64 + s).abs()));
                (max - 5.0).abs() < 1e-4
            });
            assert!(undone, "component {a}: range [{lo}, {hi}]");
        }
    }

    #[test]
    fn normalising_scales_to_the_magnitude_then_centres() {
        // [1, -4, 2] · (2 / 4) = [0.5, -2, 1], mean -1/6.
        let mut c = Array3::from_shape_vec((1, 1, 3), vec![1.0, -4.0, 2.0]).unwrap();
        normalise_and_centre(&mut c, 2.0);
        let want = [0.5 + 1.0 / 6.0, -2.0 + 1.0 / 6.0, 1.0 + 1.0 / 6.0];
        for (got, want) in c.iter().zip(want) {
            assert!((got - want).abs() < 1e-12);
        }
    }

    #[test]
    fn smoothness_follows_sigma() {
        // Gaussian-filtered white noise has the autocorrelation exp(-lag² / (4 σ²)).
        // 64 voxels per axis keep the estimate's sampling error near 0.02.
        for (sigma, lags) in [(1.5, [1usize, 3]), (3.0, [3, 6])] {
            let field = deformation(sigma, 1.0, false).field([64, 64, 64]);
            for lag in lags {
                let want = (-((lag * lag) as f64) / (4.0 * sigma * sigma)).exp();
                for a in 0..3 {
                    let got = autocorrelation(&field, a, lag);
                    assert!(
                        (got - want).abs() < 0.05,
                        "sigma {sigma} lag {lag} component {a}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn in_plane_fields_leave_z_alone() {
        let field = deformation(2.0, 3.0, true).field([5, 20, 24]);
        assert_eq!(field.shape(), &[3, 1, 20, 24]);
        assert!(field.index_axis(Axis(0), 0).iter().all(|&v| v == 0.0));
        assert!(field.index_axis(Axis(0), 2).iter().any(|&v| v != 0.0));
    }

    #[test]
    fn sampling_scales_sigma_by_the_patch() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let d =
                ElasticDeformation::sample(&mut rng, [10, 40, 80], false, (0.0, 0.2), (1.0, 2.0));
            for a in 0..3 {
                let edge = [10.0, 40.0, 80.0][a];
                assert!((0.0..=0.2 * edge).contains(&d.sigmas[a]));
                assert!((1.0..2.0).contains(&d.magnitudes[a]));
            }
        }
        let d = ElasticDeformation::sample(&mut rng, [10, 40, 80], true, (0.1, 0.2), (1.0, 2.0));
        assert_eq!((d.sigmas[0], d.magnitudes[0]), (0.0, 0.0));
    }

    #[test]
    fn zero_magnitude_gives_a_zero_field() {
        let field = deformation(3.0, 0.0, false).field([8, 8, 8]);
        assert!(field.iter().all(|&v| v == 0.0));
    }
}
