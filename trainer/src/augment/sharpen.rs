//! Sharpening: chosen channels get `strength` times their negated Laplacian added,
//! `x' = x + s · (2d · x - Σ neighbours)` over the `d` filtered axes (the 6- or 4-neighbour
//! stencil), edges replicated.
//!
//! nnU-Net: `nnUNetTrainerDA5` → `RandomTransform(SharpeningTransform(strength=(0.1, 1),
//! p_same_for_each_channel=0, p_per_channel=0.5), apply_probability=0.2)` (bg2 convolves with
//! the kernel `6` / `-1` in 3D, `4` / `-1` in 2D, `replicate` padding, and adds
//! `laplace · strength` to the channel).

use ndarray::{ArrayViewMut3, ArrayViewMut4, Axis};
use rand::Rng;

use super::setup::SpatialMode;
use super::uniform;

/// Draws [`Sharpening`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomSharpening {
    /// Probability of applying (0.2).
    pub p: f64,
    /// Probability of sharpening each channel (0.5).
    pub p_per_channel: f64,
    /// Strength range, drawn per channel (0.1, 1).
    pub strength: (f64, f64),
    /// Axes `(z = 0, y = 1, x = 2)` of the stencil (2D configurations: `y`, `x`).
    pub axes: Vec<usize>,
}

impl RandomSharpening {
    /// DA5's settings for `mode`.
    pub fn da5(mode: SpatialMode) -> RandomSharpening {
        RandomSharpening {
            p: 0.2,
            p_per_channel: 0.5,
            strength: (0.1, 1.0),
            axes: mode.blur_axes().to_vec(),
        }
    }

    /// Draws a strength for every channel, then which channels are sharpened, or `None` (not
    /// applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<Sharpening> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let strengths: Vec<f32> = (0..n_channels)
            .map(|_| uniform(rng, self.strength.0, self.strength.1) as f32)
            .collect();
        let channels = strengths
            .into_iter()
            .enumerate()
            .filter(|_| rng.gen::<f64>() < self.p_per_channel)
            .collect();
        Some(Sharpening {
            channels,
            axes: self.axes.clone(),
        })
    }
}

/// Sharpens the listed channels.
#[derive(Clone, Debug, PartialEq)]
pub struct Sharpening {
    /// `(channel, strength)` pairs.
    pub channels: Vec<(usize, f32)>,
    /// Axes `(z = 0, y = 1, x = 2)` of the stencil.
    pub axes: Vec<usize>,
}

impl Sharpening {
    /// Sharpens data `(c, z, y, x)` in place.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        let use_axis: [bool; 3] = std::array::from_fn(|a| self.axes.contains(&a));
        let mut planes = Planes::default();
        for &(c, strength) in &self.channels {
            sharpen_channel(
                data.index_axis_mut(Axis(0), c),
                strength,
                use_axis,
                &mut planes,
            );
        }
    }
}

/// Copies of the original values of the previous and the current z plane.
#[derive(Default)]
struct Planes {
    previous: Vec<f32>,
    current: Vec<f32>,
}

/// Sharpens one channel plane by plane; the stencil reads original values from two plane
/// copies and from the not yet written next plane.
fn sharpen_channel(
    mut channel: ArrayViewMut3<'_, f32>,
    strength: f32,
    use_axis: [bool; 3],
    planes: &mut Planes,
) {
    if channel.is_empty() {
        return;
    }
    let [nz, ny, nx] = std::array::from_fn(|a| channel.len_of(Axis(a)));
    let centre = 2.0 * use_axis.iter().filter(|&&u| u).count() as f32;
    let copy = |channel: &ArrayViewMut3<'_, f32>, z: usize, into: &mut Vec<f32>| {
        into.clear();
        into.extend(channel.index_axis(Axis(0), z).iter());
    };
    copy(&channel, 0, &mut planes.current);
    planes.previous.clone_from(&planes.current);
    for z in 0..nz {
        let (below, at) = (&planes.previous, &planes.current);
        let next = z + 1 < nz;
        for y in 0..ny {
            let ym = y.saturating_sub(1);
            let yp = (y + 1).min(ny - 1);
            for x in 0..nx {
                let xm = x.saturating_sub(1);
                let xp = (x + 1).min(nx - 1);
                let v = at[y * nx + x];
                let mut neighbours = 0.0f32;
                if use_axis[0] {
                    let above = if next { channel[[z + 1, y, x]] } else { v };
                    neighbours += below[y * nx + x] + above;
                }
                if use_axis[1] {
                    neighbours += at[ym * nx + x] + at[yp * nx + x];
                }
                if use_axis[2] {
                    neighbours += at[y * nx + xm] + at[y * nx + xp];
                }
                let laplace = centre * v - neighbours;
                channel[[z, y, x]] = laplace * strength + v;
            }
        }
        if next {
            std::mem::swap(&mut planes.previous, &mut planes.current);
            copy(&channel, z + 1, &mut planes.current);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn linear_ramps_stay_and_a_peak_grows() {
        // The Laplacian of a linear ramp is 0 away from the (replicated) edges.
        let mut ramp =
            Array4::from_shape_fn((1, 4, 5, 6), |(_, z, y, x)| (z * 3 + y * 2 + x) as f32);
        let before = ramp.clone();
        Sharpening {
            channels: vec![(0, 0.7)],
            axes: vec![0, 1, 2],
        }
        .apply(ramp.view_mut());
        for z in 1..3 {
            for y in 1..4 {
                for x in 1..5 {
                    assert_eq!(ramp[[0, z, y, x]], before[[0, z, y, x]]);
                }
            }
        }
        // A single peak of 1: the centre becomes 1 + 6s, its 6 neighbours -s.
        let mut peak = Array4::<f32>::zeros((1, 3, 3, 3));
        peak[[0, 1, 1, 1]] = 1.0;
        Sharpening {
            channels: vec![(0, 0.5)],
            axes: vec![0, 1, 2],
        }
        .apply(peak.view_mut());
        assert_eq!(peak[[0, 1, 1, 1]], 4.0);
        assert_eq!(
            (peak[[0, 0, 1, 1]], peak[[0, 1, 2, 1]], peak[[0, 1, 1, 0]]),
            (-0.5, -0.5, -0.5)
        );
        assert_eq!(peak[[0, 0, 0, 0]], 0.0);
    }

    // Golden values: scripts/golden_da5.py (bg2 `SharpeningTransform._apply_to_image`) on the
    // golden input (2, 4, 5, 6) with strength 0.6 on channel 1, and on the 2D input
    // (1, 5, 6) with strength 0.35.
    #[test]
    fn sharpening_matches_bg2() {
        let input = |shape| {
            Array4::from_shape_fn(shape, |(c, z, y, x)| {
                ((c * 11 + z * 7 + y * 3 + x * 5) % 17) as f32 * 0.25 - 1.0
            })
        };
        let mut a = input((2, 4, 5, 6));
        let before = a.clone();
        Sharpening {
            channels: vec![(1, 0.6)],
            axes: vec![0, 1, 2],
        }
        .apply(a.view_mut());
        assert_eq!(a.index_axis(Axis(0), 0), before.index_axis(Axis(0), 0));
        let got: Vec<f32> = a.slice(ndarray::s![1, 3, .., ..]).iter().copied().collect();
        for (g, w) in got.iter().zip(GOLDEN_SHARPEN_3D_C1_Z3) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        let mut b = input((1, 1, 5, 6));
        Sharpening {
            channels: vec![(0, 0.35)],
            axes: vec![1, 2],
        }
        .apply(b.view_mut());
        for (g, w) in b.iter().zip(GOLDEN_SHARPEN_2D) {
            assert!((g - w).abs() < 1e-6, "{b:?}");
        }
    }

    const GOLDEN_SHARPEN_3D_C1_Z3: [f32; 30] = [
        7.7000003,
        -4.75,
        1.6,
        5.4,
        -5.25,
        -0.70000005,
        -5.55,
        -1.0,
        2.8000002,
        9.15,
        -4.05,
        3.0500002,
        -2.25,
        2.3000002,
        8.65,
        -7.1000004,
        1.8000001,
        3.8000002,
        1.05,
        5.6000004,
        -7.6000004,
        -1.25,
        2.5500002,
        7.1000004,
        2.25,
        6.8,
        -3.8500001,
        2.5,
        6.3,
        -6.15,
    ];
    const GOLDEN_SHARPEN_2D: [f32; 30] = [
        -1.7,
        -0.012499988,
        1.2375,
        5.4624996,
        -2.0,
        1.175,
        -0.6875,
        1.0,
        3.7375,
        -3.725,
        0.5,
        2.1875,
        0.0625,
        1.75,
        5.975,
        -1.4875,
        1.25,
        4.425,
        0.8125,
        5.475,
        -3.475,
        0.75,
        3.4875,
        -3.5375,
        3.3125,
        -3.7124999,
        0.5125,
        1.7625,
        4.5,
        -1.0374999,
    ];

    #[test]
    fn draws_follow_da5s_ranges() {
        let random = RandomSharpening::da5(SpatialMode::Planar);
        assert_eq!(random.axes, vec![1, 2]);
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let n = 20_000;
        let draws: Vec<Sharpening> = (0..n).filter_map(|_| random.sample(&mut rng, 2)).collect();
        assert!((draws.len() as f64 / n as f64 - 0.2).abs() < 0.01);
        let chosen: Vec<(usize, f32)> = draws.iter().flat_map(|d| d.channels.clone()).collect();
        assert!((chosen.len() as f64 / (2 * draws.len()) as f64 - 0.5).abs() < 0.02);
        assert!(chosen.iter().all(|&(_, s)| (0.1..1.0).contains(&s)));
    }
}
