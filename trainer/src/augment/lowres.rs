//! Simulated low resolution: a channel is downsampled (`nearest-exact`) to `round(shape · s)`
//! and upsampled back (bi/trilinear, `align_corners=False`), one scale for all axes.
//!
//! nnU-Net: `RandomTransform(SimulateLowResolutionTransform(scale=(0.5, 1), synchronize_channels=
//! False, synchronize_axes=True, ignore_axes=(0,) if dummy 2D, p_per_channel=0.5),
//! apply_probability=0.25)`. 2D configurations (`z = 1`) also leave axis 0 alone.

use ndarray::{Array3, ArrayViewMut3, ArrayViewMut4, Axis};
use rand::Rng;

use super::resize::{linear_taps, nearest_exact};
use super::setup::SpatialMode;
use super::{chosen_channels, uniform};

/// Draws [`SimulateLowResolution`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomLowResolution {
    /// Probability of applying (0.25).
    pub p: f64,
    /// Probability per channel (0.5).
    pub p_per_channel: f64,
    /// Scale range (0.5, 1).
    pub scale: (f64, f64),
    /// Whether axis 0 keeps its resolution.
    pub ignore_axis0: bool,
}

impl RandomLowResolution {
    /// nnU-Net's settings for `mode`.
    pub fn nnunet(mode: SpatialMode) -> RandomLowResolution {
        RandomLowResolution {
            p: 0.25,
            p_per_channel: 0.5,
            scale: (0.5, 1.0),
            ignore_axis0: mode.in_plane(),
        }
    }

    /// Draws the channels and their scales, or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<SimulateLowResolution> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let chosen = chosen_channels(rng, n_channels, self.p_per_channel);
        let channels = chosen
            .into_iter()
            .map(|c| {
                // batchgeneratorsv2 keeps the scales in a float32 tensor.
                let s = uniform(rng, self.scale.0, self.scale.1) as f32 as f64;
                let z = if self.ignore_axis0 { 1.0 } else { s };
                (c, [z, s, s])
            })
            .collect();
        Some(SimulateLowResolution { channels })
    }
}

/// Down- and upsamples the listed channels.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateLowResolution {
    /// `(channel, scale (z, y, x))` pairs.
    pub channels: Vec<(usize, [f64; 3])>,
}

impl SimulateLowResolution {
    /// Degrades data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        for &(c, scale) in &self.channels {
            let channel = data.index_axis_mut(Axis(0), c);
            let shape: [usize; 3] = std::array::from_fn(|a| channel.shape()[a]);
            // Python round (half to even); at least one voxel.
            let small: [usize; 3] = std::array::from_fn(|a| {
                ((shape[a] as f64 * scale[a]).round_ties_even() as usize).max(1)
            });
            let low = downsample(channel.view(), small);
            upsample_into(&low, channel);
        }
    }
}

fn downsample(channel: ndarray::ArrayView3<'_, f32>, small: [usize; 3]) -> Array3<f32> {
    let shape = channel.shape();
    let maps: [Vec<usize>; 3] = std::array::from_fn(|a| {
        (0..small[a])
            .map(|d| nearest_exact(d, shape[a], small[a]))
            .collect()
    });
    Array3::from_shape_fn((small[0], small[1], small[2]), |(z, y, x)| {
        channel[[maps[0][z], maps[1][y], maps[2][x]]]
    })
}

/// Trilinear (`align_corners=False`) upsampling of `low` to the shape of `out`.
fn upsample_into(low: &Array3<f32>, mut out: ArrayViewMut3<'_, f32>) {
    let n_in = low.shape();
    let n_out: [usize; 3] = std::array::from_fn(|a| out.shape()[a]);
    let taps: [Vec<(usize, usize, f32)>; 3] = std::array::from_fn(|a| {
        (0..n_out[a])
            .map(|d| linear_taps(d, n_in[a], n_out[a]))
            .collect()
    });
    for ((z, y, x), v) in out.indexed_iter_mut() {
        let (z0, z1, wz) = taps[0][z];
        let (y0, y1, wy) = taps[1][y];
        let (x0, x1, wx) = taps[2][x];
        let line = |zz: usize, yy: usize| (1.0 - wx) * low[[zz, yy, x0]] + wx * low[[zz, yy, x1]];
        let plane = |zz: usize| (1.0 - wy) * line(zz, y0) + wy * line(zz, y1);
        *v = (1.0 - wz) * plane(z0) + wz * plane(z1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn scale_one_is_the_identity_and_half_scale_averages_pairs() {
        let ramp =
            Array4::from_shape_fn((1, 2, 4, 8), |(_, z, y, x)| (z * 100 + y * 10 + x) as f32);
        let mut same = ramp.clone();
        SimulateLowResolution {
            channels: vec![(0, [1.0, 1.0, 1.0])],
        }
        .apply(same.view_mut());
        assert_eq!(same, ramp);
        // x: 8 -> 4 keeps x = 1, 3, 5, 7 (nearest-exact); back to 8 linearly reads the kept
        // samples at max(x / 2 - 0.25, 0), clamped at the last one.
        let mut low = ramp.clone();
        SimulateLowResolution {
            channels: vec![(0, [1.0, 1.0, 0.5])],
        }
        .apply(low.view_mut());
        let row: Vec<f32> = (0..8).map(|x| low[[0, 1, 2, x]] - 120.0).collect();
        assert_eq!(row, vec![1.0, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.0]);
    }
}
