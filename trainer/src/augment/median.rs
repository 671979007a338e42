//! Median filter: chosen channels replaced by the median of a cubic window of `s` voxels per
//! axis around each voxel, reflect padding (scipy's `reflect`: the edge voxel repeated), the
//! window spanning offsets `-(s / 2) ..= s - 1 - s / 2` (scipy's origin 0, also for even `s`),
//! and for even window sizes the upper median (rank `n / 2` of the `n` sorted values).
//!
//! nnU-Net: `nnUNetTrainerDA5` → `OneOfTransform([RandomTransform(MedianFilterTransform((2, 8),
//! p_same_for_each_channel=0, p_per_channel=0.5), apply_probability=0.2), <blur>])`;
//! `scipy.ndimage.median_filter(channel, size)`.

use ndarray::{ArrayViewMut3, ArrayViewMut4, Axis};
use rand::Rng;

use super::setup::SpatialMode;

/// Draws [`MedianFilter`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomMedianFilter {
    /// Probability of applying (0.2).
    pub p: f64,
    /// Probability of filtering each channel (0.5).
    pub p_per_channel: f64,
    /// Window sizes drawn per channel from `[size.0, size.1)` (numpy `randint(2, 8)`: 2..=7).
    pub size: (usize, usize),
    /// Axes `(z = 0, y = 1, x = 2)` the window spans (the others: 1 voxel).
    pub axes: Vec<usize>,
}

impl RandomMedianFilter {
    /// DA5's settings for `mode` (2D configurations filter `(y, x)` only).
    pub fn da5(mode: SpatialMode) -> RandomMedianFilter {
        RandomMedianFilter {
            p: 0.2,
            p_per_channel: 0.5,
            size: (2, 8),
            axes: mode.blur_axes().to_vec(),
        }
    }

    /// Draws a window size per channel, then which channels are filtered, or `None` (not
    /// applied).
    pub fn sample<R: Rng>(&self, rng: &mut R, n_channels: usize) -> Option<MedianFilter> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let (lo, hi) = self.size;
        let sizes: Vec<usize> = (0..n_channels)
            .map(|_| if hi > lo { rng.gen_range(lo..hi) } else { lo })
            .collect();
        let channels = sizes
            .into_iter()
            .enumerate()
            .filter(|_| rng.gen::<f64>() < self.p_per_channel)
            .collect();
        Some(MedianFilter {
            channels,
            axes: self.axes.clone(),
        })
    }
}

/// Median-filters the listed channels.
#[derive(Clone, Debug, PartialEq)]
pub struct MedianFilter {
    /// `(channel, window size)` pairs.
    pub channels: Vec<(usize, usize)>,
    /// Axes `(z = 0, y = 1, x = 2)` the window spans.
    pub axes: Vec<usize>,
}

impl MedianFilter {
    /// Filters data `(c, z, y, x)` in place. Windows of size 0 or 1 change nothing.
    pub fn apply(&self, mut data: ArrayViewMut4<'_, f32>) {
        let mut scratch = Scratch::default();
        for &(c, size) in &self.channels {
            if size > 1 && !data.is_empty() {
                let window = std::array::from_fn(|a| if self.axes.contains(&a) { size } else { 1 });
                median_channel(data.index_axis_mut(Axis(0), c), window, &mut scratch);
            }
        }
    }
}

/// Buffers reused across channels.
#[derive(Default)]
struct Scratch {
    /// The channel as [`order_key`]s, reflect-padded by the window.
    padded: Vec<i32>,
    /// The keys of one window, one x slice (the `(z, y)` square at one x) per slot; moving
    /// along x overwrites the slot of the slice that left.
    window: Vec<i32>,
    /// A copy of the window for quickselect (which reorders it).
    select: Vec<i32>,
}

/// An integer whose order is f32's total order (`f32::total_cmp`); its own inverse.
#[inline(always)]
fn order_key(bits: i32) -> i32 {
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// Replaces every voxel of `channel` by the median of its `window` (per axis) neighbourhood:
/// the channel is copied once into a reflect-padded buffer of integer order keys; along each x
/// row the window is updated one x slice at a time, and its median selected in O(window): by
/// quickselect at the start of a row, then with the previous voxel's median as the pivot
/// ([`select_near`]).
fn median_channel(mut channel: ArrayViewMut3<'_, f32>, window: [usize; 3], scratch: &mut Scratch) {
    let shape: [usize; 3] = std::array::from_fn(|a| channel.len_of(Axis(a)));
    let before = window.map(|s| s / 2);
    let padded_shape: [usize; 3] = std::array::from_fn(|a| shape[a] + window[a] - 1);
    let maps: [Vec<usize>; 3] = std::array::from_fn(|a| {
        (0..padded_shape[a])
            .map(|i| reflect_edge(i as isize - before[a] as isize, shape[a]))
            .collect()
    });
    let padded = &mut scratch.padded;
    padded.clear();
    padded.reserve(padded_shape.iter().product());
    for &z in &maps[0] {
        for &y in &maps[1] {
            let row = channel.index_axis(Axis(0), z);
            let row = row.index_axis(Axis(0), y);
            padded.extend(maps[2].iter().map(|&x| order_key(row[x].to_bits() as i32)));
        }
    }
    let slice_len = window[0] * window[1];
    let rank = slice_len * window[2] / 2;
    let values = &mut scratch.window;
    values.clear();
    values.resize(slice_len * window[2], 0);
    let (py, px) = (padded_shape[1], padded_shape[2]);
    // Writes the x slice at padded column `column` of the window of row (z, y) into `slot`.
    let fill = |values: &mut [i32], slot: usize, z: usize, y: usize, column: usize| {
        let into = &mut values[slot * slice_len..(slot + 1) * slice_len];
        for dz in 0..window[0] {
            for dy in 0..window[1] {
                into[dz * window[1] + dy] = padded[((z + dz) * py + y + dy) * px + column];
            }
        }
    };
    let mut previous = 0;
    for ((z, y, x), out) in channel.indexed_iter_mut() {
        let median = if x == 0 {
            for slot in 0..window[2] {
                fill(values, slot, z, y, slot);
            }
            quickselect(values, &mut scratch.select, rank)
        } else {
            fill(values, (x - 1) % window[2], z, y, x + window[2] - 1);
            select_near(values, &mut scratch.select, rank, previous)
        };
        previous = median;
        *out = f32::from_bits(order_key(median) as u32);
    }
}

/// The value of rank `rank` in `values`, by quickselect on a copy (`values` keeps its order).
fn quickselect(values: &[i32], copy: &mut Vec<i32>, rank: usize) -> i32 {
    copy.clear();
    copy.extend_from_slice(values);
    *copy.select_nth_unstable(rank).1
}

/// Largest rank distance from the pivot resolved by a scan; farther ones use quickselect.
const NEAR: usize = 16;

/// The value of rank `rank` in `values` (ascending, 0-based), found with a pivot close to it
/// (the neighbouring window's median): one counting pass places the pivot; when the target
/// lies within [`NEAR`] ranks of it, one more pass keeps the few values nearest the pivot on
/// the target's side; otherwise quickselect. Adjacent windows share most values, so the pivot
/// is usually a few ranks away.
fn select_near(values: &[i32], copy: &mut Vec<i32>, rank: usize, pivot: i32) -> i32 {
    let (mut below, mut equal) = (0usize, 0usize);
    for &v in values.iter() {
        below += usize::from(v < pivot);
        equal += usize::from(v == pivot);
    }
    if (below..below + equal).contains(&rank) {
        return pivot;
    }
    if rank < below && below - rank <= NEAR {
        // The (below - rank)-th largest value under the pivot.
        nearest(
            values.iter().map(|&v| if v < pivot { v } else { i32::MIN }),
            below - rank,
            |a, b| a > b,
        )
    } else if rank >= below + equal && rank + 1 - (below + equal) <= NEAR {
        // The (rank - below - equal + 1)-th smallest value over the pivot.
        let k = rank + 1 - (below + equal);
        let clamped = values.iter().map(|&v| if v > pivot { v } else { i32::MAX });
        nearest(clamped, k, |a, b| a < b)
    } else {
        quickselect(values, copy, rank)
    }
}

/// The `k`-th value (1 ≤ k ≤ [`NEAR`], at most the number of values) in the order `first`
/// (`first(a, b)`: a comes before b), keeping the `k` first seen so far in a small sorted
/// buffer. The caller replaces values off the side of interest by the order's last value
/// (branch-free); at least `k` values remain, so those never decide the result.
fn nearest(values: impl Iterator<Item = i32>, k: usize, first: impl Fn(i32, i32) -> bool) -> i32 {
    let mut kept = [0i32; NEAR];
    let mut n = 0;
    for v in values {
        if n == k {
            // `kept[k - 1]` is the last of the k first: v must come before it to enter.
            if !first(v, kept[k - 1]) {
                continue;
            }
            n -= 1;
        }
        let mut i = n;
        while i > 0 && first(v, kept[i - 1]) {
            kept[i] = kept[i - 1];
            i -= 1;
        }
        kept[i] = v;
        n += 1;
    }
    kept[k - 1]
}

/// scipy's `reflect` padding (`d c b a | a b c d | d c b a`): the edge voxel is repeated.
fn reflect_edge(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - 1 - m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The golden inputs of `scripts/golden_da5.py`.
    fn golden_input(shape: (usize, usize, usize, usize)) -> Array4<f32> {
        Array4::from_shape_fn(shape, |(c, z, y, x)| {
            ((c * 11 + z * 7 + y * 3 + x * 5) % 17) as f32 * 0.25 - 1.0
        })
    }

    #[test]
    fn reflect_repeats_the_edge_voxel() {
        let got: Vec<usize> = (-3..7).map(|i| reflect_edge(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(reflect_edge(-2, 1), 0);
    }

    #[test]
    fn median_of_a_known_neighbourhood() {
        // 1D along x: window 3 -> median of (x-1, x, x+1) with edges repeated; window 2 ->
        // the upper median of (x-1, x); window 4 -> rank 2 of (x-2 .. x+1).
        let values = [5.0f32, 1.0, 4.0, 2.0, 3.0];
        let run = |size| {
            let mut a = Array4::from_shape_fn((1, 1, 1, 5), |(_, _, _, x)| values[x]);
            MedianFilter {
                channels: vec![(0, size)],
                axes: vec![2],
            }
            .apply(a.view_mut());
            a.iter().copied().collect::<Vec<f32>>()
        };
        assert_eq!(run(3), vec![5.0, 4.0, 2.0, 3.0, 3.0]);
        assert_eq!(run(2), vec![5.0, 5.0, 4.0, 4.0, 3.0]);
        assert_eq!(run(4), vec![5.0, 5.0, 4.0, 3.0, 3.0]);
        assert_eq!(run(1), values.to_vec());
    }

    // Golden values: scripts/golden_da5.py (bg2 `MedianFilterTransform._apply_to_image`, i.e.
    // scipy.ndimage.median_filter) on `golden_input((2, 4, 5, 6))`, channel 0 with size 3 and
    // channel 1 with size 4; and on the 2D input `golden_input((1, 1, 5, 6))[:, 0]` with size 2.
    #[test]
    fn median_matches_scipy() {
        let mut a = golden_input((2, 4, 5, 6));
        MedianFilter {
            channels: vec![(0, 3), (1, 4)],
            axes: vec![0, 1, 2],
        }
        .apply(a.view_mut());
        let got0: Vec<f32> = a.slice(ndarray::s![0, 1, .., ..]).iter().copied().collect();
        let got1: Vec<f32> = a.slice(ndarray::s![1, 3, .., ..]).iter().copied().collect();
        assert_eq!(got0, GOLDEN_MEDIAN_3D_C0_Z1.to_vec());
        assert_eq!(got1, GOLDEN_MEDIAN_3D_C1_Z3.to_vec());
        let mut b = golden_input((1, 1, 5, 6));
        MedianFilter {
            channels: vec![(0, 2)],
            axes: vec![1, 2],
        }
        .apply(b.view_mut());
        assert_eq!(
            b.iter().copied().collect::<Vec<f32>>(),
            GOLDEN_MEDIAN_2D.to_vec()
        );
    }

    const GOLDEN_MEDIAN_3D_C0_Z1: [f32; 30] = [
        0.75, 0.75, 1.0, 0.75, 1.0, 1.0, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.25, 1.0, 1.25, 1.0,
        1.0, 1.25, 1.25, 0.75, 1.25, 0.75, 1.25, 1.25, 1.25, 0.75, 0.75, 0.75, 0.75,
    ];
    const GOLDEN_MEDIAN_3D_C1_Z3: [f32; 30] = [
        0.5, 1.0, 1.25, 1.0, 1.25, 1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.25, 0.75, 0.75, 1.0, 1.0, 1.0,
        1.25, 1.25, 0.75, 1.0, 1.0, 1.0, 1.25, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0,
    ];
    const GOLDEN_MEDIAN_2D: [f32; 30] = [
        -1.0, 0.25, 1.5, 2.75, 2.75, 1.0, -0.25, 0.25, 1.5, 2.25, 0.5, 1.0, 0.5, 1.0, 2.25, 2.25,
        0.5, 1.75, 1.25, 1.75, 2.5, 0.75, 1.25, 2.0, 2.0, 2.0, 0.25, 0.75, 2.0, 2.0,
    ];

    #[test]
    fn pivoted_selection_equals_sorting() {
        // Windows of ties (a few distinct values) and of distinct values, every size, against
        // a sort of each window; random data exercises near and far pivots.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for distinct in [3u32, 1000] {
            let data = Array4::from_shape_fn((1, 6, 7, 9), |_| {
                (rng.gen_range(0..distinct) as f32 - 1.5) * 0.5
            });
            for size in 2..8 {
                let mut got = data.clone();
                MedianFilter {
                    channels: vec![(0, size)],
                    axes: vec![0, 1, 2],
                }
                .apply(got.view_mut());
                let before = size / 2;
                for ((_, z, y, x), &v) in got.indexed_iter() {
                    let mut window = Vec::new();
                    for dz in 0..size {
                        for dy in 0..size {
                            for dx in 0..size {
                                let at = |i: usize, d: usize, n: usize| {
                                    reflect_edge(i as isize + d as isize - before as isize, n)
                                };
                                window.push(data[[0, at(z, dz, 6), at(y, dy, 7), at(x, dx, 9)]]);
                            }
                        }
                    }
                    window.sort_by(f32::total_cmp);
                    assert_eq!(v, window[window.len() / 2], "size {size} at {z} {y} {x}");
                }
            }
        }
        // Far pivots fall back to quickselect; near ones scan.
        let values: Vec<i32> = (0..100).rev().collect();
        let mut copy = Vec::new();
        assert_eq!(select_near(&values, &mut copy, 50, 0), 50);
        assert_eq!(select_near(&values, &mut copy, 50, 47), 50);
        assert_eq!(select_near(&values, &mut copy, 50, 53), 50);
        assert_eq!(select_near(&values, &mut copy, 3, 99), 3);
        assert_eq!(nearest([5, 1, 4, 2, 3].into_iter(), 2, |a, b| a < b), 2);
        assert_eq!(nearest([5, 1, 4, 2, 3].into_iter(), 5, |a, b| a > b), 1);
    }

    #[test]
    fn draws_follow_da5s_probabilities() {
        let random = RandomMedianFilter::da5(SpatialMode::Volumetric);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let n = 20_000;
        let draws: Vec<MedianFilter> = (0..n).filter_map(|_| random.sample(&mut rng, 2)).collect();
        assert!((draws.len() as f64 / n as f64 - 0.2).abs() < 0.01);
        let chosen: Vec<(usize, usize)> = draws.iter().flat_map(|d| d.channels.clone()).collect();
        assert!((chosen.len() as f64 / (2 * draws.len()) as f64 - 0.5).abs() < 0.02);
        assert!(chosen.iter().all(|&(c, s)| c < 2 && (2..8).contains(&s)));
        for s in 2..8 {
            let share =
                chosen.iter().filter(|&&(_, v)| v == s).count() as f64 / chosen.len() as f64;
            assert!((share - 1.0 / 6.0).abs() < 0.02, "size {s}: {share}");
        }
        assert_eq!(
            RandomMedianFilter::da5(SpatialMode::Planar).axes,
            vec![1, 2]
        );
    }
}
