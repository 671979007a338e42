//! Cascade inputs: the previous stage's segmentation joins the image as one 0/1 channel per
//! foreground label, and training corrupts those channels with random binary morphology and
//! by removing random connected components, so that the network learns not to trust them
//! blindly.
//!
//! The morphology is exact for skimage's `ball`/`disk` (also for the non-integer radii nnU-Net
//! draws) and placed as bg2's `fft_conv(padding='same')` places it, but computed as three
//! separable min-plus passes over squared grid coordinates instead of an FFT.
//!
//! nnU-Net: `MoveSegAsOneHotToDataTransform(source_channel_idx=1, all_labels=foreground_labels)`,
//! `RandomTransform(ApplyRandomBinaryOperatorTransform(strel_size=(1, 8), p_per_label=0.5),
//! 0.4)`, `RandomTransform(RemoveRandomConnectedComponentFromOneHotEncodingTransform(
//! fill_with_other_class_p=0, dont_do_if_covers_more_than_x_percent=0.15, p_per_label=0.5),
//! 0.2)` (batchgeneratorsv2 `transforms/nnunet/`).

use autoseg_evaluation::{label_mask, Components};
use ndarray::{ArrayView3, ArrayViewMut3, ArrayViewMut4, Axis, Zip};
use rand::seq::SliceRandom;
use rand::Rng;

use super::uniform;

/// A binary morphological operator of bg2's `ApplyRandomBinaryOperatorTransform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOperator {
    /// Dilation.
    Dilation,
    /// Erosion (the outside of the patch counts as foreground, as in bg2).
    Erosion,
    /// Erosion after dilation.
    Closing,
    /// Dilation after erosion.
    Opening,
}

impl BinaryOperator {
    /// The operators nnU-Net draws from, in bg2's order.
    pub const ALL: [BinaryOperator; 4] = [
        BinaryOperator::Dilation,
        BinaryOperator::Erosion,
        BinaryOperator::Closing,
        BinaryOperator::Opening,
    ];

    fn apply(self, mask: &[bool], shape: [usize; 3], strel: &Strel) -> Vec<bool> {
        match self {
            BinaryOperator::Dilation => dilate(mask, shape, strel),
            BinaryOperator::Erosion => erode(mask, shape, strel),
            BinaryOperator::Closing => erode(&dilate(mask, shape, strel), shape, strel),
            BinaryOperator::Opening => dilate(&erode(mask, shape, strel), shape, strel),
        }
    }
}

/// Draws [`BinaryOperators`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomBinaryOperator {
    /// Probability that the step runs at all.
    pub probability: f64,
    /// Probability for each channel to be changed when it runs.
    pub p_per_label: f64,
    /// Range of the structuring element's radius, drawn uniformly (not rounded, as in bg2).
    pub radius: (f64, f64),
}

impl RandomBinaryOperator {
    /// nnU-Net's cascade setting: p 0.4, p_per_label 0.5, radius `U(1, 8)`.
    pub fn nnunet() -> RandomBinaryOperator {
        RandomBinaryOperator {
            probability: 0.4,
            p_per_label: 0.5,
            radius: (1.0, 8.0),
        }
    }

    /// Draws the operations on `n_labels` cascade channels: the channels in random order, each
    /// kept with `p_per_label`, each with a random operator and radius. `None`: the step does
    /// not run.
    pub fn sample<R: Rng>(&self, rng: &mut R, n_labels: usize) -> Option<BinaryOperators> {
        if rng.gen::<f64>() >= self.probability {
            return None;
        }
        let channels = shuffled_subset(rng, n_labels, self.p_per_label);
        let steps = channels
            .into_iter()
            .map(|channel| Morphology {
                channel,
                operator: *BinaryOperator::ALL
                    .choose(rng)
                    .expect("the operator list is not empty"),
                radius: uniform(rng, self.radius.0, self.radius.1),
            })
            .collect();
        Some(BinaryOperators { steps })
    }
}

/// One drawn morphological operation on one cascade channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Morphology {
    /// Index among the cascade channels.
    pub channel: usize,
    /// The operator.
    pub operator: BinaryOperator,
    /// Radius of skimage's `ball` (3D patches) or `disk` (2D patches, `z = 1`).
    pub radius: f64,
}

/// Morphological operations applied one after the other to the cascade channels.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryOperators {
    /// The operations, in order.
    pub steps: Vec<Morphology>,
}

impl BinaryOperators {
    /// Applies the operations to the cascade channels `(n_labels, z, y, x)` in place; voxels an
    /// operation adds to its channel are cleared in all other channels (the channels stay a
    /// one-hot encoding). Steps naming a channel beyond `n_labels` are skipped.
    pub fn apply(&self, mut channels: ArrayViewMut4<'_, f32>) {
        let (n_labels, z, y, x) = channels.dim();
        let shape = [z, y, x];
        for step in self.steps.iter().filter(|s| s.channel < n_labels) {
            let strel = Strel::for_patch(step.radius, z);
            let before = to_mask(channels.index_axis(Axis(0), step.channel));
            let after = step.operator.apply(&before, shape, &strel);
            for (c, mut channel) in channels.axis_iter_mut(Axis(0)).enumerate() {
                if c == step.channel {
                    write_mask(channel.view_mut(), &after);
                } else {
                    clear_added(channel.view_mut(), &before, &after);
                }
            }
        }
    }
}

/// Draws [`ComponentRemoval`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomComponentRemoval {
    /// Probability that the step runs at all.
    pub probability: f64,
    /// Probability for each channel to lose a component when it runs.
    pub p_per_label: f64,
    /// Components covering this fraction of the patch or more are never removed.
    pub max_fraction: f64,
}

impl RandomComponentRemoval {
    /// nnU-Net's cascade setting: p 0.2, p_per_label 0.5, components under 15 % of the patch.
    pub fn nnunet() -> RandomComponentRemoval {
        RandomComponentRemoval {
            probability: 0.2,
            p_per_label: 0.5,
            max_fraction: 0.15,
        }
    }

    /// Draws the channels (in random order, each with `p_per_label`) and for each a uniform
    /// number in `[0, 1)` that picks the component. `None`: the step does not run.
    pub fn sample<R: Rng>(&self, rng: &mut R, n_labels: usize) -> Option<ComponentRemoval> {
        if rng.gen::<f64>() >= self.probability {
            return None;
        }
        let steps = shuffled_subset(rng, n_labels, self.p_per_label)
            .into_iter()
            .map(|channel| ComponentPick {
                channel,
                pick: rng.gen::<f64>(),
            })
            .collect();
        Some(ComponentRemoval {
            steps,
            max_fraction: self.max_fraction,
        })
    }
}

/// Which component one cascade channel loses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComponentPick {
    /// Index among the cascade channels.
    pub channel: usize,
    /// Uniform in `[0, 1)`: component `floor(pick · n)` of the `n` eligible ones (raster order
    /// of their first voxel).
    pub pick: f64,
}

/// Removes one random connected component (26-connected; 8-connected in-plane for 2D
/// patches) from each listed cascade channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentRemoval {
    /// The channels, in order, and their picks.
    pub steps: Vec<ComponentPick>,
    /// Only components smaller than this fraction of the patch are eligible.
    pub max_fraction: f64,
}

impl ComponentRemoval {
    /// Applies the removals to the cascade channels `(n_labels, z, y, x)` in place. A channel
    /// without an eligible component is left alone; steps naming a channel beyond `n_labels`
    /// are skipped.
    pub fn apply(&self, mut channels: ArrayViewMut4<'_, f32>) {
        let (n_labels, z, y, x) = channels.dim();
        let n_voxels = (z * y * x) as f64;
        for step in self.steps.iter().filter(|s| s.channel < n_labels) {
            let mut channel = channels.index_axis_mut(Axis(0), step.channel);
            let Components { ids, sizes } = label_mask(channel.mapv(|v| v != 0.0).view());
            let eligible: Vec<u32> = (1..=sizes.len() as u32)
                .filter(|&id| (sizes[id as usize - 1] as f64) < n_voxels * self.max_fraction)
                .collect();
            if eligible.is_empty() {
                continue;
            }
            let k = ((step.pick * eligible.len() as f64) as usize).min(eligible.len() - 1);
            let removed = eligible[k];
            Zip::from(channel.view_mut()).and(&ids).for_each(|v, &id| {
                if id == removed {
                    *v = 0.0;
                }
            });
        }
    }
}

/// bg2's channel draw: the channels `0..n` in random order, each kept with probability `p`.
fn shuffled_subset<R: Rng>(rng: &mut R, n: usize, p: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order.into_iter().filter(|_| rng.gen::<f64>() < p).collect()
}

/// Nonzero voxels of a channel, flat in standard order.
fn to_mask(channel: ArrayView3<'_, f32>) -> Vec<bool> {
    channel.iter().map(|&v| v != 0.0).collect()
}

fn write_mask(channel: ArrayViewMut3<'_, f32>, mask: &[bool]) {
    channel
        .into_iter()
        .zip(mask)
        .for_each(|(v, &m)| *v = f32::from(u8::from(m)));
}

/// Clears the voxels that `after` has and `before` had not.
fn clear_added(channel: ArrayViewMut3<'_, f32>, before: &[bool], after: &[bool]) {
    for ((v, &b), &a) in channel.into_iter().zip(before).zip(after) {
        if a && !b {
            *v = 0.0;
        }
    }
}

/// A structuring element as skimage builds it and bg2's `fft_conv(padding='same')` places it.
///
/// Along every axis, kernel index `j` covers the offset `j - lo` and has the squared grid
/// coordinate `terms[j]`; the element holds `(jz, jy, jx)` iff
/// `(terms[jx] + terms[jy]) + terms[jz] <= limit` in `f64`, skimage's expression evaluated in
/// skimage's order (`jz` absent for a disk), so its rounding is reproduced too.
#[derive(Clone, Debug, PartialEq)]
struct Strel {
    terms: Vec<f64>,
    lo: usize,
    limit: f64,
    planar: bool,
}

impl Strel {
    /// skimage's `disk(radius)` in-plane for 2D patches (`z == 1`), `ball(radius)` otherwise.
    fn for_patch(radius: f64, z: usize) -> Strel {
        if z == 1 {
            Strel::disk(radius)
        } else {
            Strel::ball(radius)
        }
    }

    /// skimage's `ball(radius)`: `np.mgrid[-r:r:(2r+1)j]` per axis (`floor(2r + 1)` points),
    /// `X² + Y² + Z² <= r·r`.
    fn ball(radius: f64) -> Strel {
        let n = (2.0 * radius + 1.0) as usize;
        let step = if n == 1 {
            1.0
        } else {
            (radius + radius) / (n - 1) as f64
        };
        let terms = (0..n).map(|j| (j as f64 * step - radius).powi(2)).collect();
        Strel::placed(terms, radius * radius, false)
    }

    /// skimage's `disk(radius)`: `np.arange(-r, r + 1)` per axis (numpy's fill: start,
    /// start + 1, then `start + i·delta`), `X² + Y² <= r²`.
    fn disk(radius: f64) -> Strel {
        let n = ((radius + 1.0) + radius).ceil() as usize;
        let second = -radius + 1.0;
        let delta = second + radius;
        let terms = (0..n)
            .map(|i| match i {
                0 => -radius,
                1 => second,
                _ => -radius + i as f64 * delta,
            })
            .map(|v| v * v)
            .collect();
        Strel::placed(terms, radius * radius, true)
    }

    fn placed(terms: Vec<f64>, limit: f64, planar: bool) -> Strel {
        let lo = (terms.len() - 1) / 2;
        Strel {
            terms,
            lo,
            limit,
            planar,
        }
    }
}

/// Binary dilation of `mask` (flat, shape `(z, y, x)`) as bg2 computes it: a voxel is set iff
/// some element offset from it lands on a set voxel inside the patch.
fn dilate(mask: &[bool], shape: [usize; 3], strel: &Strel) -> Vec<bool> {
    on_bounding_box(mask, shape, strel, dilate_box)
}

/// Binary erosion as bg2 computes it, `!dilate(!mask)`: the outside of the patch counts as
/// foreground.
fn erode(mask: &[bool], shape: [usize; 3], strel: &Strel) -> Vec<bool> {
    on_bounding_box(mask, shape, strel, erode_box)
}

/// Runs `op` (a dilation or an erosion) only on the box around `mask`'s set voxels grown by
/// the element's reach, clamped to the patch. Both results are empty outside that box (the
/// element holds its centre, so erosion never leaves the mask), and inside it they do not
/// depend on voxels beyond it.
fn on_bounding_box(
    mask: &[bool],
    shape: [usize; 3],
    strel: &Strel,
    op: fn(&[bool], [usize; 3], &Strel) -> Vec<bool>,
) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    let Some((lo, hi)) = bounding_box(mask, shape) else {
        return out;
    };
    let reach = strel.terms.len() - strel.lo;
    let lo: [usize; 3] = std::array::from_fn(|a| lo[a].saturating_sub(reach));
    let hi: [usize; 3] = std::array::from_fn(|a| (hi[a] + reach).min(shape[a]));
    let sub = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
    let index =
        |z: usize, y: usize, x: usize| ((lo[0] + z) * shape[1] + lo[1] + y) * shape[2] + lo[2] + x;
    let mut crop = Vec::with_capacity(sub.iter().product());
    for z in 0..sub[0] {
        for y in 0..sub[1] {
            let row = index(z, y, 0);
            crop.extend_from_slice(&mask[row..row + sub[2]]);
        }
    }
    let result = op(&crop, sub, strel);
    for (i, row) in result.chunks_exact(sub[2]).enumerate() {
        let start = index(i / sub[1], i % sub[1], 0);
        out[start..start + sub[2]].copy_from_slice(row);
    }
    out
}

/// Lower (inclusive) and upper (exclusive) corner of the set voxels; `None` if there are none.
fn bounding_box(mask: &[bool], shape: [usize; 3]) -> Option<([usize; 3], [usize; 3])> {
    let [_, ny, nx] = shape;
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
        let p = [i / (ny * nx), i / nx % ny, i % nx];
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a] + 1);
        }
    }
    (lo[0] != usize::MAX).then_some((lo, hi))
}

/// [`dilate`] over the whole of `mask`.
///
/// Separable: along x, the smallest `terms[jx]` whose offset hits the mask; along y and z,
/// `min_j terms[j] + previous` (rounded addition is monotone, so the minimum of the rounded
/// sums is reached by the same element as skimage's test); then `<= limit`.
fn dilate_box(mask: &[bool], shape: [usize; 3], strel: &Strel) -> Vec<bool> {
    let [z, y, x] = shape;
    let mut a: Vec<f64> = mask
        .iter()
        .map(|&m| if m { 0.0 } else { f64::INFINITY })
        .collect();
    let mut b = vec![f64::INFINITY; a.len()];
    min_plus_pass(&a, &mut b, x, 1, strel);
    min_plus_pass(&b, &mut a, y, x, strel);
    if strel.planar {
        return a.iter().map(|&d| d <= strel.limit).collect();
    }
    min_plus_pass(&a, &mut b, z, y * x, strel);
    b.iter().map(|&d| d <= strel.limit).collect()
}

/// [`erode`] over the whole of `mask`.
fn erode_box(mask: &[bool], shape: [usize; 3], strel: &Strel) -> Vec<bool> {
    let inverted: Vec<bool> = mask.iter().map(|&m| !m).collect();
    dilate_box(&inverted, shape, strel)
        .into_iter()
        .map(|m| !m)
        .collect()
}

/// `out[.., p, ..] = min_j terms[j] + src[.., p + j - lo, ..]` along an axis of extent `n` whose
/// elements are `inner` apart (the array seen as `(outer, n, inner)`), over in-bounds `p + j - lo`.
fn min_plus_pass(src: &[f64], out: &mut [f64], n: usize, inner: usize, strel: &Strel) {
    out.fill(f64::INFINITY);
    let slab = n * inner;
    for (src, out) in src.chunks_exact(slab).zip(out.chunks_exact_mut(slab)) {
        for (j, &term) in strel.terms.iter().enumerate() {
            let d = j as isize - strel.lo as isize;
            let p0 = (-d).max(0) as usize;
            let p1 = (n as isize - d).clamp(0, n as isize) as usize;
            if p0 >= p1 {
                continue;
            }
            let from = (p0 as isize + d) as usize * inner;
            let len = (p1 - p0) * inner;
            let dst = &mut out[p0 * inner..p0 * inner + len];
            for (o, &v) in dst.iter_mut().zip(&src[from..from + len]) {
                *o = o.min(term + v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3, Array4};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The element's voxel offsets `(dz, dy, dx)`, by brute force over the kernel box.
    fn offsets(strel: &Strel) -> Vec<[isize; 3]> {
        let n = strel.terms.len();
        let lo = strel.lo as isize;
        let z_range = if strel.planar {
            strel.lo..strel.lo + 1
        } else {
            0..n
        };
        let mut out = Vec::new();
        for jz in z_range {
            for jy in 0..n {
                for jx in 0..n {
                    let sum = strel.terms[jx] + strel.terms[jy];
                    let sum = if strel.planar {
                        sum
                    } else {
                        sum + strel.terms[jz]
                    };
                    if sum <= strel.limit {
                        out.push([jz as isize - lo, jy as isize - lo, jx as isize - lo]);
                    }
                }
            }
        }
        if strel.planar {
            out.iter_mut().for_each(|o| o[0] = 0);
        }
        out
    }

    /// bg2's dilation by definition: any element offset from the voxel hits the mask.
    fn brute_dilate(mask: &Array3<bool>, strel: &Strel) -> Array3<bool> {
        let offs = offsets(strel);
        let dim = mask.dim();
        Array3::from_shape_fn(dim, |(z, y, x)| {
            offs.iter().any(|o| {
                let q = [z as isize + o[0], y as isize + o[1], x as isize + o[2]];
                let inside = q[0] >= 0
                    && q[1] >= 0
                    && q[2] >= 0
                    && (q[0] as usize) < dim.0
                    && (q[1] as usize) < dim.1
                    && (q[2] as usize) < dim.2;
                inside && mask[[q[0] as usize, q[1] as usize, q[2] as usize]]
            })
        })
    }

    fn shape_of(a: &Array3<bool>) -> [usize; 3] {
        let (z, y, x) = a.dim();
        [z, y, x]
    }

    fn flat(a: &Array3<bool>) -> Vec<bool> {
        a.iter().copied().collect()
    }

    /// Number of set voxels and the sum of their flat indices.
    fn fingerprint(mask: &[bool]) -> (usize, usize) {
        let set = mask.iter().enumerate().filter(|(_, &m)| m);
        set.fold((0, 0), |(n, s), (i, _)| (n + 1, s + i))
    }

    #[test]
    fn elements_match_skimage_counts() {
        // skimage 0.26, `[(int(f(r).sum()), f(r).shape[0]) for r in (1, 2, 3, 8, 3.7, 2.5, 7.5)]`
        // for f = ball and f = disk.
        let balls = [
            (1.0, 7, 3),
            (2.0, 33, 5),
            (3.0, 123, 7),
            (8.0, 2109, 17),
            (3.7, 160, 8),
            (2.5, 56, 6),
            (7.5, 1736, 16),
        ];
        for (r, count, width) in balls {
            let b = Strel::ball(r);
            assert_eq!(
                (offsets(&b).len(), b.terms.len()),
                (count, width),
                "ball {r}"
            );
        }
        let disks = [
            (1.0, 5, 3),
            (2.0, 13, 5),
            (3.0, 29, 7),
            (8.0, 197, 17),
            (3.7, 41, 9),
            (2.5, 16, 6),
            (7.5, 172, 16),
        ];
        for (r, count, width) in disks {
            let d = Strel::disk(r);
            assert_eq!(
                (offsets(&d).len(), d.terms.len()),
                (count, width),
                "disk {r}"
            );
        }
    }

    #[test]
    fn integer_ball_is_the_lattice_ball() {
        for r in 1..=8 {
            let b = Strel::ball(r as f64);
            let r2 = r * r;
            let lattice = (-r..=r)
                .flat_map(|z| (-r..=r).flat_map(move |y| (-r..=r).map(move |x| [z, y, x])))
                .filter(|o| o.iter().map(|v| v * v).sum::<isize>() <= r2)
                .count();
            assert_eq!(offsets(&b).len(), lattice, "r {r}");
        }
    }

    #[test]
    fn dilating_a_voxel_gives_the_ball_and_eroding_the_ball_gives_the_voxel() {
        for r in [1.0, 3.0, 5.0, 3.7] {
            let strel = Strel::ball(r);
            let mut mask = Array3::from_elem((21, 21, 21), false);
            mask[[10, 10, 10]] = true;
            let grown = dilate(&flat(&mask), [21; 3], &strel);
            assert_eq!(
                grown.iter().filter(|&&m| m).count(),
                offsets(&strel).len(),
                "r {r}"
            );
            if r.fract() == 0.0 {
                // A symmetric element: eroding its own shape leaves its centre alone.
                let back = erode(&grown, [21; 3], &strel);
                assert_eq!(fingerprint(&back), (1, 10 * 441 + 10 * 21 + 10), "r {r}");
            }
        }
    }

    #[test]
    fn fast_morphology_equals_the_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (shape, radius) in [([7, 9, 8], 1.0), ([9, 6, 10], 2.5), ([8, 11, 9], 3.3)] {
            let mask =
                Array3::from_shape_fn((shape[0], shape[1], shape[2]), |_| rng.gen::<f64>() < 0.08);
            let strel = Strel::ball(radius);
            let want = brute_dilate(&mask, &strel);
            assert_eq!(dilate(&flat(&mask), shape, &strel), flat(&want), "{radius}");
            let inverted = mask.mapv(|m| !m);
            let want_eroded = brute_dilate(&inverted, &strel).mapv(|m| !m);
            assert_eq!(erode(&flat(&mask), shape, &strel), flat(&want_eroded));
        }
        let plane = Array3::from_shape_fn((1, 13, 12), |(_, y, x)| (y * 5 + x * 3) % 7 == 0);
        let strel = Strel::disk(3.7);
        assert_eq!(
            dilate(&flat(&plane), shape_of(&plane), &strel),
            flat(&brute_dilate(&plane, &strel))
        );
    }

    #[test]
    fn bounding_box_shortcut_equals_the_definition() {
        // Small objects near a corner, an edge and the centre of a larger patch.
        let mut mask = Array3::from_elem((16, 18, 20), false);
        mask[[0, 1, 1]] = true;
        mask[[1, 2, 2]] = true;
        mask.slice_mut(s![7..10, 8..11, 17..20]).fill(true);
        let strel = Strel::ball(3.7);
        let shape = shape_of(&mask);
        let want = brute_dilate(&mask, &strel);
        assert_eq!(dilate(&flat(&mask), shape, &strel), flat(&want));
        assert_eq!(dilate_box(&flat(&mask), shape, &strel), flat(&want));
        let want_eroded = brute_dilate(&mask.mapv(|m| !m), &strel).mapv(|m| !m);
        assert_eq!(erode(&flat(&mask), shape, &strel), flat(&want_eroded));
        let big = Strel::ball(2.0);
        let eroded = erode_box(&flat(&mask), shape, &big);
        assert_eq!(erode(&flat(&mask), shape, &big), eroded);
        assert_eq!(fingerprint(&eroded).0, 0);
        let empty = vec![false; 16 * 18 * 20];
        assert_eq!(dilate(&empty, shape, &strel), empty);
        assert_eq!(erode(&empty, shape, &strel), empty);
    }

    fn golden_3d() -> Array3<bool> {
        Array3::from_shape_fn((9, 10, 11), |(z, y, x)| {
            (z * 31 + y * 17 + x * 7) % 23 == 0
                || ((2..7).contains(&z) && (3..9).contains(&y) && (1..8).contains(&x))
        })
    }

    fn golden_2d() -> Array3<bool> {
        Array3::from_shape_fn((1, 12, 13), |(_, y, x)| {
            (y * 17 + x * 7) % 19 == 0 || ((2..9).contains(&y) && (4..12).contains(&x))
        })
    }

    /// A mask, an element, and (count, index sum) after dilation, erosion, closing, opening.
    type Golden = (Array3<bool>, Strel, [(usize, usize); 4]);

    #[test]
    fn operators_match_bg2() {
        // bg2's binary_*_torch with fft_conv(padding='same') emulated in numpy, on skimage 0.26's
        // ball/disk; (count, sum of flat indices) per operator. Script:
        //   def same(x, k):  # pad floor/ceil((n-1)/2), correlate via rfftn, crop
        //       p = [(n - 1) / 2 for n in k.shape]
        //       sp = np.pad(x.astype(float), [(floor(q), ceil(q)) for q in p])
        //       kp = np.zeros(sp.shape); kp[tuple(slice(0, n) for n in k.shape)] = k
        //       o = np.fft.irfftn(np.fft.rfftn(sp) * np.conj(np.fft.rfftn(kp)), s=sp.shape)
        //       return o[tuple(slice(0, sp.shape[i] - k.shape[i] + 1) for i in range(x.ndim))]
        //   dil = lambda x, k: np.round(same(x, k)) > 0; ero = lambda x, k: ~dil(~x, k)
        //   y = op(x, ball(r)); print(y.sum(), np.flatnonzero(y).sum())
        // with x the masks of golden_3d / golden_2d (2D as (12, 13) with disk(r)).
        let cases: [Golden; 6] = [
            (
                golden_3d(),
                Strel::ball(1.0),
                [(586, 293258), (65, 32805), (306, 155070), (166, 84192)],
            ),
            (
                golden_3d(),
                Strel::ball(2.5),
                [(938, 457413), (24, 10644), (533, 206470), (202, 77265)],
            ),
            (
                golden_3d(),
                Strel::ball(3.7),
                [(989, 489545), (0, 0), (962, 486528), (0, 0)],
            ),
            (
                golden_2d(),
                Strel::disk(1.0),
                [(101, 7369), (32, 2350), (69, 5122), (54, 3959)],
            ),
            (
                golden_2d(),
                Strel::disk(2.5),
                [(134, 9527), (20, 1310), (99, 6429), (56, 3276)],
            ),
            (
                golden_2d(),
                Strel::disk(3.7),
                [(153, 11751), (2, 145), (113, 8422), (48, 3565)],
            ),
        ];
        for (mask, strel, want) in cases {
            for (op, want) in BinaryOperator::ALL.iter().zip(want) {
                let got = op.apply(&flat(&mask), shape_of(&mask), &strel);
                assert_eq!(fingerprint(&got), want, "{op:?} {strel:?}");
            }
        }
    }

    #[test]
    fn opening_removes_a_component_smaller_than_the_element() {
        let mut mask = Array3::from_elem((20, 20, 20), false);
        mask.slice_mut(s![2..4, 2..4, 2..4]).fill(true);
        mask.slice_mut(s![8..18, 8..18, 8..18]).fill(true);
        let opened = BinaryOperator::Opening.apply(&flat(&mask), [20; 3], &Strel::ball(2.0));
        let opened = Array3::from_shape_vec((20, 20, 20), opened).unwrap();
        // The 2³ cube holds no radius-2 ball: gone. Opening only removes voxels.
        assert!(!opened.slice(s![0..6, 0..6, 0..6]).iter().any(|&m| m));
        assert!(opened.iter().zip(&mask).all(|(&o, &m)| m || !o));
        // The 10³ cube keeps the 6³ core where the ball fits (its erosion), every face centre
        // (2 from the core), and loses its corners (squared distance 12 > 4 from the core).
        assert!(opened.slice(s![10..16, 10..16, 10..16]).iter().all(|&m| m));
        assert!(opened[[8, 13, 13]] && opened[[17, 12, 12]] && opened[[13, 13, 8]]);
        assert!(!opened[[8, 8, 8]] && !opened[[17, 17, 17]]);
    }

    #[test]
    fn dilation_takes_voxels_from_the_other_channels() {
        // Channel 0: one voxel at the centre; channel 1: everything else.
        let mut channels = Array4::<f32>::zeros((2, 5, 5, 5));
        channels.index_axis_mut(Axis(0), 1).fill(1.0);
        channels[[0, 2, 2, 2]] = 1.0;
        channels[[1, 2, 2, 2]] = 0.0;
        let ops = BinaryOperators {
            steps: vec![Morphology {
                channel: 0,
                operator: BinaryOperator::Dilation,
                radius: 1.0,
            }],
        };
        ops.apply(channels.view_mut());
        assert_eq!(channels.index_axis(Axis(0), 0).sum(), 7.0);
        assert_eq!(channels.index_axis(Axis(0), 1).sum(), 125.0 - 7.0);
        assert_eq!(channels[[1, 2, 2, 3]], 0.0);
        // An erosion adds nothing, so the other channel keeps its voxels.
        let ops = BinaryOperators {
            steps: vec![Morphology {
                channel: 0,
                operator: BinaryOperator::Erosion,
                radius: 1.0,
            }],
        };
        ops.apply(channels.view_mut());
        assert_eq!(channels.index_axis(Axis(0), 0).sum(), 1.0);
        assert_eq!(channels.index_axis(Axis(0), 1).sum(), 118.0);
    }

    fn three_blobs() -> Array4<f32> {
        // 10³ patch (1000 voxels, 15 % = 150): blobs of 8 and 27 voxels, a slab of 180, and
        // two voxels touching only at a corner (one 26-connected component of 2).
        let mut ch = Array4::<f32>::zeros((1, 10, 10, 10));
        ch.slice_mut(s![0, 0..2, 0..2, 0..2]).fill(1.0);
        ch.slice_mut(s![0, 6..9, 0..3, 0..3]).fill(1.0);
        ch.slice_mut(s![0, 0..3, 4..10, 0..10]).fill(1.0);
        ch[[0, 5, 6, 0]] = 1.0;
        ch[[0, 6, 7, 1]] = 1.0;
        ch
    }

    #[test]
    fn components_are_26_connected_in_raster_order() {
        let ch = three_blobs();
        let Components { ids, sizes } =
            label_mask(ch.index_axis(Axis(0), 0).mapv(|v| v != 0.0).view());
        assert_eq!(sizes, vec![8, 180, 2, 27]);
        assert_eq!(ids[[0, 0, 0]], 1);
        assert_eq!(ids[[5, 6, 0]], ids[[6, 7, 1]]);
    }

    #[test]
    fn removal_takes_exactly_one_small_component() {
        // Eligible (< 150 voxels): 8, 2, 27 in raster order; the 180-voxel slab never goes.
        let sizes_left = |pick: f64| {
            let mut ch = three_blobs();
            ComponentRemoval {
                steps: vec![ComponentPick { channel: 0, pick }],
                max_fraction: 0.15,
            }
            .apply(ch.view_mut());
            label_mask(ch.index_axis(Axis(0), 0).mapv(|v| v != 0.0).view()).sizes
        };
        assert_eq!(sizes_left(0.0), vec![180, 2, 27]);
        assert_eq!(sizes_left(0.5), vec![8, 180, 27]);
        assert_eq!(sizes_left(0.999), vec![8, 180, 2]);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..50 {
            let left = sizes_left(rng.gen());
            assert_eq!(left.len(), 3);
            assert!(left.contains(&180));
        }
        // With only large components nothing is removed.
        let mut big = Array4::<f32>::zeros((1, 10, 10, 10));
        big.slice_mut(s![0, 0..2, .., ..]).fill(1.0);
        let before = big.clone();
        ComponentRemoval {
            steps: vec![ComponentPick {
                channel: 0,
                pick: 0.3,
            }],
            max_fraction: 0.15,
        }
        .apply(big.view_mut());
        assert_eq!(big, before);
    }

    #[test]
    fn draws_follow_the_probabilities() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let ops = RandomBinaryOperator::nnunet();
        let n = 20_000;
        let draws: Vec<_> = (0..n).map(|_| ops.sample(&mut rng, 2)).collect();
        let fired = draws.iter().flatten().count() as f64 / n as f64;
        assert!((fired - 0.4).abs() < 0.015, "{fired}");
        let steps: Vec<&Morphology> = draws.iter().flatten().flat_map(|d| &d.steps).collect();
        let per_draw = steps.len() as f64 / draws.iter().flatten().count() as f64;
        assert!((per_draw - 1.0).abs() < 0.03, "{per_draw}");
        assert!(steps
            .iter()
            .all(|s| (1.0..8.0).contains(&s.radius) && s.channel < 2));
        let removal = RandomComponentRemoval::nnunet();
        let fired = (0..n).filter_map(|_| removal.sample(&mut rng, 3)).count() as f64 / n as f64;
        assert!((fired - 0.2).abs() < 0.012, "{fired}");
    }
}
