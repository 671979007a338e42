//! Blank rectangles: boxes in chosen channels overwritten with their own mean, one box after
//! the other (a box overlapping an earlier one averages the blanked values).
//!
//! nnU-Net: `nnUNetTrainerDA5` → `RandomTransform(BlankRectangleTransform(rectangle_size=[[max(1,
//! p // 10), p // 3] for p in patch_size], rectangle_value=torch.mean, num_rectangles=(1, 5),
//! force_square=False, p_per_channel=0.5), apply_probability=0.4)`; sizes and counts are numpy
//! `randint` ranges (upper bound excluded).

use ndarray::{s, ArrayViewMut4, Axis};
use rand::Rng;

use super::setup::SpatialMode;

/// Draws [`BlankRectangles`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomBlankRectangles {
    /// Probability of applying (0.4).
    pub p: f64,
    /// Probability of blanking boxes in each channel (0.5).
    pub p_per_channel: f64,
    /// Boxes per chosen channel, drawn from `[n.0, n.1)` ((1, 5): 1 to 4).
    pub n_rectangles: (usize, usize),
    /// Box edge per axis `(z, y, x)`, drawn from `[lo, hi)`; `lo` when the range is empty
    /// (numpy would raise there: patch axes shorter than 6 voxels).
    pub sizes: [(usize, usize); 3],
    /// The sample shape `(z, y, x)` the boxes are placed in (the network patch).
    pub shape: [usize; 3],
}

impl RandomBlankRectangles {
    /// DA5's settings for a network `patch` `(z, y, x)`: edges in `[max(1, p / 10), p / 3)`
    /// per axis (2D configurations: one voxel along `z = 1`).
    pub fn da5(patch: [usize; 3], mode: SpatialMode) -> RandomBlankRectangles {
        let sizes = std::array::from_fn(|a| {
            if a == 0 && mode == SpatialMode::Planar {
                (1, 2)
            } else {
                ((patch[a] / 10).max(1), patch[a] / 3)
            }
        });
        RandomBlankRectangles {
            p: 0.4,
            p_per_channel: 0.5,
            n_rectangles: (1, 5),
            sizes,
            shape: patch,
        }
    }

    /// Draws the chosen channels, the number of boxes of every channel, then each box's edges
    /// and lower corner, or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<BlankRectangles> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let range = |rng: &mut R, (lo, hi): (usize, usize)| {
            if hi > lo {
                rng.gen_range(lo..hi)
            } else {
                lo
            }
        };
        let chosen: Vec<bool> = (0..n_channels)
            .map(|_| rng.gen::<f64>() < self.p_per_channel)
            .collect();
        let counts: Vec<usize> = (0..n_channels)
            .map(|_| range(rng, self.n_rectangles))
            .collect();
        let mut rectangles = Vec::new();
        for (channel, (&apply, &count)) in chosen.iter().zip(&counts).enumerate() {
            if !apply {
                continue;
            }
            for _ in 0..count {
                let size: [usize; 3] =
                    std::array::from_fn(|a| range(rng, self.sizes[a]).clamp(1, self.shape[a]));
                let lower: [usize; 3] =
                    std::array::from_fn(|a| rng.gen_range(0..=self.shape[a] - size[a]));
                let upper = std::array::from_fn(|a| lower[a] + size[a]);
                rectangles.push(Rectangle {
                    channel,
                    lower,
                    upper,
                });
            }
        }
        Some(BlankRectangles { rectangles })
    }
}

/// One box `[lower, upper)` `(z, y, x)` of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rectangle {
    /// Channel index.
    pub channel: usize,
    /// Lower corner (included).
    pub lower: [usize; 3],
    /// Upper corner (excluded).
    pub upper: [usize; 3],
}

/// Fills boxes with their mean, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct BlankRectangles {
    /// The boxes, channel by channel.
    pub rectangles: Vec<Rectangle>,
}

impl BlankRectangles {
    /// Blanks the boxes of data `(c, z, y, x)` in place (boxes reaching past the sample are cut
    /// at its border).
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        for r in &self.rectangles {
            let channel = data.index_axis_mut(Axis(0), r.channel);
            let shape = channel.shape().to_vec();
            let lo: [usize; 3] = std::array::from_fn(|a| r.lower[a].min(shape[a]));
            let hi: [usize; 3] = std::array::from_fn(|a| r.upper[a].clamp(lo[a], shape[a]));
            let mut region = channel.slice_move(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]);
            if region.is_empty() {
                continue;
            }
            let mean = region.iter().map(|&v| f64::from(v)).sum::<f64>() / region.len() as f64;
            region.fill(mean as f32);
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
    fn boxes_take_their_current_mean_in_order() {
        // x = 0..6 ramp; box [1, 3) -> mean 1.5; box [2, 5) then sees 1.5, 3, 4 -> 8.5 / 3.
        let mut data = Array4::from_shape_fn((2, 1, 1, 6), |(_, _, _, x)| x as f32);
        let r = |channel, lo, hi| Rectangle {
            channel,
            lower: [0, 0, lo],
            upper: [1, 1, hi],
        };
        BlankRectangles {
            rectangles: vec![r(1, 1, 3), r(1, 2, 5)],
        }
        .apply(data.view_mut());
        let third = 8.5f32 / 3.0;
        let got: Vec<f32> = data.slice(s![1, 0, 0, ..]).to_vec();
        assert_eq!(got, vec![0.0, 1.5, third, third, third, 5.0]);
        assert_eq!(
            data.slice(s![0, 0, 0, ..]).to_vec(),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
    }

    // Golden values: scripts/golden_da5.py (bg2 `BlankRectangleTransform._apply_to_image` with
    // rectangle_value=torch.mean and forced rectangles) on the golden input (1, 4, 5, 6).
    #[test]
    fn rectangles_match_bg2() {
        let mut data = Array4::from_shape_fn((1, 4, 5, 6), |(c, z, y, x)| {
            ((c * 11 + z * 7 + y * 3 + x * 5) % 17) as f32 * 0.25 - 1.0
        });
        BlankRectangles {
            rectangles: vec![
                Rectangle {
                    channel: 0,
                    lower: [0, 1, 2],
                    upper: [2, 4, 5],
                },
                Rectangle {
                    channel: 0,
                    lower: [1, 0, 0],
                    upper: [4, 2, 4],
                },
            ],
        }
        .apply(data.view_mut());
        let sums: Vec<f32> = data.axis_iter(Axis(1)).map(|z| z.sum()).collect();
        for (got, want) in sums.iter().zip(GOLDEN_RECT_SUMS) {
            assert!((got - want).abs() < 1e-4, "{sums:?}");
        }
        assert!((data[[0, 1, 1, 1]] - GOLDEN_RECT_OVERLAP).abs() < 1e-6);
    }

    const GOLDEN_RECT_SUMS: [f32; 4] = [29.5, 26.851852, 25.824074, 34.574074];
    const GOLDEN_RECT_OVERLAP: f32 = 0.9155092;

    #[test]
    fn draws_follow_da5s_ranges() {
        let patch = [20, 64, 48];
        let random = RandomBlankRectangles::da5(patch, SpatialMode::Volumetric);
        assert_eq!(random.sizes, [(2, 6), (6, 21), (4, 16)]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 10_000;
        let draws: Vec<BlankRectangles> =
            (0..n).filter_map(|_| random.sample(&mut rng, 2)).collect();
        assert!((draws.len() as f64 / n as f64 - 0.4).abs() < 0.015);
        let mut per_channel = vec![0usize; 5];
        for d in &draws {
            for c in 0..2 {
                let k = d.rectangles.iter().filter(|r| r.channel == c).count();
                per_channel[k] += 1;
            }
            for r in &d.rectangles {
                for (a, &(lo, hi)) in random.sizes.iter().enumerate() {
                    assert!((lo..hi).contains(&(r.upper[a] - r.lower[a])));
                    assert!(r.upper[a] <= patch[a]);
                }
            }
        }
        // Half the channels get none; the others 1 to 4 boxes, uniformly.
        let total = (2 * draws.len()) as f64;
        assert!((per_channel[0] as f64 / total - 0.5).abs() < 0.02);
        for k in 1..5 {
            assert!(
                (per_channel[k] as f64 / total - 0.125).abs() < 0.015,
                "{per_channel:?}"
            );
        }
        // 2D: one voxel along z; tiny axes fall back to the lower edge.
        let planar = RandomBlankRectangles::da5([1, 4, 40], SpatialMode::Planar);
        assert_eq!(planar.sizes, [(1, 2), (1, 1), (4, 13)]);
        for d in (0..100).filter_map(|_| planar.sample(&mut rng, 1)) {
            assert!(d
                .rectangles
                .iter()
                .all(|r| r.upper[0] == 1 && r.upper[1] - r.lower[1] == 1));
        }
    }
}
