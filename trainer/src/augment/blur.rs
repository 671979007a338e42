//! Gaussian blur: separable, normalised kernels of 3 to 7 taps, reflect padding, per channel
//! with its own sigma per axis.
//!
//! nnU-Net: `RandomTransform(GaussianBlurTransform(blur_sigma=(0.5, 1.), synchronize_channels=
//! False, synchronize_axes=False, p_per_channel=0.5), apply_probability=0.2)`;
//! `blur_dimension(.., truncate=6)`: kernel size = nearest odd of `round(6σ + 0.5)`. DA5:
//! `GaussianBlurTransform((0.3, 1.5), synchronize_channels=False, synchronize_axes=True,
//! p_per_channel=0.5)` with p 0.2 inside a `OneOfTransform` with the median filter (kernels up
//! to 9 taps).

use ndarray::{ArrayViewMut3, ArrayViewMut4, Axis, Zip};
use rand::Rng;

use super::setup::SpatialMode;
use super::{chosen_channels, uniform};

/// Draws [`GaussianBlur`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomGaussianBlur {
    /// Probability of applying (0.2).
    pub p: f64,
    /// Probability of blurring each channel (0.5).
    pub p_per_channel: f64,
    /// Sigma range, drawn per channel and axis (0.5, 1.0).
    pub sigma: (f64, f64),
    /// Axes `(z = 0, y = 1, x = 2)` that are blurred.
    pub axes: Vec<usize>,
    /// One sigma per channel for all its axes (DA5) rather than one per axis.
    pub synchronize_axes: bool,
}

impl RandomGaussianBlur {
    /// nnU-Net's settings for `mode` (2D configurations blur `(y, x)` only).
    pub fn nnunet(mode: SpatialMode) -> RandomGaussianBlur {
        RandomGaussianBlur {
            p: 0.2,
            p_per_channel: 0.5,
            sigma: (0.5, 1.0),
            axes: mode.blur_axes().to_vec(),
            synchronize_axes: false,
        }
    }

    /// DA5's settings for `mode`: sigma in (0.3, 1.5), one per channel for all axes.
    pub fn da5(mode: SpatialMode) -> RandomGaussianBlur {
        RandomGaussianBlur {
            sigma: (0.3, 1.5),
            synchronize_axes: true,
            ..RandomGaussianBlur::nnunet(mode)
        }
    }

    /// Draws which channels to blur and their sigmas, or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<GaussianBlur> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let chosen = chosen_channels(rng, n_channels, self.p_per_channel);
        let channels = chosen
            .into_iter()
            .map(|channel| {
                let shared = if self.synchronize_axes {
                    Some(uniform(rng, self.sigma.0, self.sigma.1))
                } else {
                    None
                };
                ChannelBlur {
                    channel,
                    sigmas: self
                        .axes
                        .iter()
                        .map(|&axis| {
                            let sigma =
                                shared.unwrap_or_else(|| uniform(rng, self.sigma.0, self.sigma.1));
                            (axis, sigma)
                        })
                        .collect(),
                }
            })
            .collect();
        Some(GaussianBlur { channels })
    }
}

/// The blur of one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelBlur {
    /// Channel index.
    pub channel: usize,
    /// `(axis, sigma)` pairs, applied in order.
    pub sigmas: Vec<(usize, f64)>,
}

/// Blurs the listed channels.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianBlur {
    /// Channels to blur.
    pub channels: Vec<ChannelBlur>,
}

impl GaussianBlur {
    /// Blurs data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        let mut scratch = Vec::new();
        for blur in &self.channels {
            let mut channel = data.index_axis_mut(Axis(0), blur.channel);
            for &(axis, sigma) in &blur.sigmas {
                blur_axis(
                    channel.view_mut(),
                    axis,
                    &gaussian_kernel(sigma),
                    &mut scratch,
                );
            }
        }
    }
}

/// The normalised kernel batchgeneratorsv2 builds for `sigma` with `truncate = 6`.
pub fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let size = round_to_nearest_odd(sigma * 6.0 + 0.5);
    let half = (size as f64 - 1.0) * 0.5;
    let pdf: Vec<f64> = (0..size)
        .map(|i| (-0.5 * ((i as f64 - half) / sigma).powi(2)).exp())
        .collect();
    let sum: f64 = pdf.iter().sum();
    pdf.iter().map(|&v| (v / sum) as f32).collect()
}

/// batchgeneratorsv2 `_round_to_nearest_odd` (Python `round`, half to even).
fn round_to_nearest_odd(n: f64) -> usize {
    let rounded = n.round_ties_even();
    if rounded as i64 % 2 == 1 {
        rounded as usize
    } else if n - rounded >= 0.0 {
        rounded as usize + 1
    } else {
        rounded as usize - 1
    }
}

/// Index of `i` (which may lie outside `[0, n)`) under reflect padding (edge not repeated).
pub(crate) fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

/// Convolves every line of `channel` along `axis` with `kernel`, reflect-padded, in place.
fn blur_axis(channel: ArrayViewMut3<'_, f32>, axis: usize, kernel: &[f32], scratch: &mut Vec<f32>) {
    if axis == 2 {
        blur_rows(channel, kernel, scratch);
    } else {
        blur_slabs(channel, axis, kernel, scratch);
    }
}

/// Blurs along the contiguous x axis, one row at a time.
fn blur_rows(mut channel: ArrayViewMut3<'_, f32>, kernel: &[f32], scratch: &mut Vec<f32>) {
    let n = channel.len_of(Axis(2));
    let half = (kernel.len() / 2) as isize;
    for mut lane in channel.lanes_mut(Axis(2)) {
        scratch.clear();
        scratch.extend((-half..0).map(|i| lane[reflect(i, n)]));
        match lane.as_slice() {
            Some(row) => scratch.extend_from_slice(row),
            None => scratch.extend(lane.iter()),
        }
        scratch.extend((n as isize..n as isize + half).map(|i| lane[reflect(i, n)]));
        for (i, v) in lane.iter_mut().enumerate() {
            *v = kernel
                .iter()
                .zip(&scratch[i..i + kernel.len()])
                .map(|(k, s)| k * s)
                .sum();
        }
    }
}

/// Blurs along `axis` (0 or 1) one `(n_axis, n_x)` slab at a time, so that the inner loop runs
/// over whole contiguous x rows; the scratch holds one padded slab.
fn blur_slabs(
    mut channel: ArrayViewMut3<'_, f32>,
    axis: usize,
    kernel: &[f32],
    scratch: &mut Vec<f32>,
) {
    let n = channel.len_of(Axis(axis));
    let n_x = channel.len_of(Axis(2));
    let half = (kernel.len() / 2) as isize;
    for mut slab in channel.axis_iter_mut(Axis(1 - axis)) {
        scratch.clear();
        for i in -half..n as isize + half {
            scratch.extend(slab.row(reflect(i, n)).iter());
        }
        for (r, mut row) in slab.rows_mut().into_iter().enumerate() {
            row.fill(0.0);
            for (j, &k) in kernel.iter().enumerate() {
                let src = &scratch[(r + j) * n_x..(r + j + 1) * n_x];
                Zip::from(&mut row).and(src).for_each(|o, &s| *o += k * s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn kernel_sizes_are_three_to_seven_taps() {
        // 6σ + 0.5: 3.5 -> round 4 (even, below) -> 3; 5.3 -> 5; 6.5 -> round 6 -> 7.
        assert_eq!(gaussian_kernel(0.5).len(), 3);
        assert_eq!(gaussian_kernel(0.8).len(), 5);
        assert_eq!(gaussian_kernel(1.0).len(), 7);
        let k = gaussian_kernel(0.5);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // exp(-0.5 · 4) = e^-2 relative weight of the side taps.
        let e = (-2.0f64).exp();
        assert!((k[0] as f64 - e / (1.0 + 2.0 * e)).abs() < 1e-7);
    }

    #[test]
    fn every_axis_blurs_alike() {
        // The same 1D signal along z, y or x gives the same blurred signal (reflect borders).
        let signal = [3.0f32, 0.0, 1.0, 7.0, 2.0, 2.0, 5.0];
        let kernel = gaussian_kernel(0.9);
        let h = kernel.len() / 2;
        let want: Vec<f32> = (0..7)
            .map(|i| {
                (0..kernel.len())
                    .map(|j| kernel[j] * signal[reflect(i as isize + j as isize - h as isize, 7)])
                    .sum()
            })
            .collect();
        for axis in 0..3 {
            let mut shape = [2, 2, 2];
            shape[axis] = 7;
            let mut data =
                Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(_, z, y, x)| {
                    signal[[z, y, x][axis]]
                });
            let blur = GaussianBlur {
                channels: vec![ChannelBlur {
                    channel: 0,
                    sigmas: vec![(axis, 0.9)],
                }],
            };
            blur.apply(data.view_mut());
            for (i, w) in want.iter().enumerate() {
                let mut idx = [0, 0, 1, 1];
                idx[axis + 1] = i;
                assert!((data[idx] - w).abs() < 1e-6, "axis {axis} index {i}");
            }
        }
    }

    // Golden values: scripts/golden_da5.py (bg2 `GaussianBlurTransform(synchronize_axes=True)`
    // with sigma 1.3 on every axis of channel 1, 9-tap kernels, of the golden input
    // (2, 6, 7, 8)); slice z = 2 of channel 1.
    #[test]
    fn da5_blur_matches_bg2() {
        let mut data = Array4::from_shape_fn((2, 6, 7, 8), |(c, z, y, x)| {
            ((c * 11 + z * 7 + y * 3 + x * 5) % 17) as f32 * 0.25 - 1.0
        });
        let before = data.clone();
        assert_eq!(gaussian_kernel(1.3).len(), 9);
        GaussianBlur {
            channels: vec![ChannelBlur {
                channel: 1,
                sigmas: vec![(0, 1.3), (1, 1.3), (2, 1.3)],
            }],
        }
        .apply(data.view_mut());
        assert_eq!(data.index_axis(Axis(0), 0), before.index_axis(Axis(0), 0));
        let got = data.slice(ndarray::s![1, 2, .., ..]);
        for (g, w) in got.iter().zip(GOLDEN_BLUR_C1_Z2) {
            assert!((g - w).abs() < 2e-6, "{got:?}");
        }
    }

    const GOLDEN_BLUR_C1_Z2: [f32; 56] = [
        1.0775422, 1.0761636, 1.0694818, 1.0557128, 1.0327411, 1.0078715, 0.98677164, 0.97838914,
        1.0536113, 1.0512341, 1.0424179, 1.0280308, 1.0083761, 0.98932654, 0.97314113, 0.9665433,
        1.0011826, 0.9990837, 0.9920341, 0.98393583, 0.97700346, 0.9731086, 0.9686513, 0.9660522,
        0.97330296, 0.97547466, 0.97907275, 0.9845217, 0.9914638, 0.99801725, 1.0008702, 1.0006907,
        1.0015911, 1.0060796, 1.0146811, 1.0222044, 1.0262351, 1.0250783, 1.021768, 1.0193782,
        1.0532001, 1.0533118, 1.0521772, 1.0451059, 1.0310675, 1.0121481, 0.99616355, 0.98903716,
        1.0766456, 1.0729849, 1.0637556, 1.0467191, 1.0222894, 0.9948577, 0.9732372, 0.9639466,
    ];

    #[test]
    fn da5_draws_one_sigma_per_channel() {
        use rand::SeedableRng;
        let random = RandomGaussianBlur::da5(SpatialMode::Dummy2d);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let draws: Vec<GaussianBlur> = (0..5000)
            .filter_map(|_| random.sample(&mut rng, 2))
            .collect();
        assert!((draws.len() as f64 / 5000.0 - 0.2).abs() < 0.02);
        for blur in draws.iter().flat_map(|d| &d.channels) {
            assert_eq!(blur.sigmas.len(), 3);
            let s = blur.sigmas[0].1;
            assert!((0.3..1.5).contains(&s));
            assert!(blur.sigmas.iter().all(|&(_, t)| t == s));
        }
        assert!(!RandomGaussianBlur::nnunet(SpatialMode::Volumetric).synchronize_axes);
    }

    #[test]
    fn reflect_mirrors_about_the_edge_voxel() {
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(-2, 5), 2);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(6, 5), 2);
        assert_eq!(reflect(-3, 1), 0);
    }

    #[test]
    fn blur_keeps_a_ramp_and_spreads_an_impulse() {
        // A linear ramp along x is unchanged away from the border (symmetric kernel).
        let mut data = Array4::from_shape_fn((1, 3, 3, 12), |(_, _, _, x)| x as f32);
        let blur = GaussianBlur {
            channels: vec![ChannelBlur {
                channel: 0,
                sigmas: vec![(2, 0.9)],
            }],
        };
        blur.apply(data.view_mut());
        for x in 3..9 {
            assert!((data[[0, 1, 1, x]] - x as f32).abs() < 1e-5);
        }
        // An impulse becomes the kernel (σ = 0.5: 3 taps) along the blurred axis only.
        let mut data = Array4::<f32>::zeros((1, 5, 5, 5));
        data[[0, 2, 2, 2]] = 1.0;
        let blur = GaussianBlur {
            channels: vec![ChannelBlur {
                channel: 0,
                sigmas: vec![(0, 0.5)],
            }],
        };
        blur.apply(data.view_mut());
        let k = gaussian_kernel(0.5);
        assert!((data[[0, 1, 2, 2]] - k[0]).abs() < 1e-7);
        assert!((data[[0, 2, 2, 2]] - k[1]).abs() < 1e-7);
        assert_eq!(data[[0, 2, 1, 2]], 0.0);
    }
}
