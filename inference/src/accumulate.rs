//! The sliding window's CPU kernels: where a tile lies in the padded image, and the row loops
//! that add weighted tiles and divide by the weights, rounding every element as libtorch's ops
//! do (arithmetic in float32, the buffers in float16 or float32).

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use tch::kind::Element;

/// Where a tile lies in the padded image, for the CPU loops: images are `[channels, *spatial]`
/// and tiles `[channels, *window]`, both C order.
pub(crate) struct TileLayout {
    /// The padded image's spatial size.
    pub(crate) spatial: [usize; 3],
    /// A tile's extent, `[1, py, px]` for 2D patches.
    pub(crate) window: [usize; 3],
}

impl TileLayout {
    /// Elements in one channel of a tile.
    fn window_len(&self) -> usize {
        self.window.iter().product()
    }

    /// Copies the tile at `start` of `image` (`[c, *spatial]`) into `tile` (`[c, *window]`), in
    /// parallel over the tile's (channel, z) slabs.
    pub(crate) fn copy_tile(&self, image: &[f32], start: [i64; 3], tile: &mut [f32]) {
        let [wz, wy, wx] = self.window;
        let [nz, ny, nx] = self.spatial;
        let [z0, y0, x0] = start.map(|s| s as usize);
        tile.par_chunks_mut(wy * wx)
            .enumerate()
            .for_each(|(idx, slab)| {
                let (channel, z) = (idx / wz, idx % wz);
                for (y, row) in slab.chunks_mut(wx).enumerate() {
                    let at = ((channel * nz + z0 + z) * ny + y0 + y) * nx + x0;
                    row.copy_from_slice(&image[at..at + wx]);
                }
            });
    }

    /// Calls `add(sum_row, tile_row, window_offset)` for every x-row of the tile at `start`:
    /// `sums` is `[c, *spatial]`, `tile` is `[c, *window]`, and `window_offset` is the row's
    /// offset within one channel of a tile (where the Gaussian's row starts). Parallel over the
    /// tile's z; within a z, the channels of a row follow each other (the Gaussian's row is
    /// read once for all of them).
    pub(crate) fn add_tile<A: Buffer>(
        &self,
        sums: &mut [A],
        start: [i64; 3],
        tile: &[f32],
        add: impl Fn(&mut [A], &[f32], usize) + Sync,
    ) {
        let [wz, wy, wx] = self.window;
        let [nz, ny, nx] = self.spatial;
        let [z0, y0, x0] = start.map(|s| s as usize);
        let n_channels = tile.len() / self.window_len();
        // The (channel, z) slabs of the sums that the tile covers, grouped by z.
        let mut slabs: Vec<Vec<&mut [A]>> = (0..wz).map(|_| Vec::new()).collect();
        for channel in sums.chunks_mut(nz * ny * nx) {
            let covered = channel.chunks_mut(ny * nx).skip(z0).take(wz);
            slabs
                .iter_mut()
                .zip(covered)
                .for_each(|(z, slab)| z.push(slab));
        }
        slabs
            .into_par_iter()
            .enumerate()
            .for_each(|(z, mut channels)| {
                for y in 0..wy {
                    let window = (z * wy + y) * wx;
                    for (channel, slab) in channels.iter_mut().enumerate().take(n_channels) {
                        let at = (y0 + y) * nx + x0;
                        let values = &tile[channel * self.window_len() + window..][..wx];
                        add(&mut slab[at..at + wx], values, window);
                    }
                }
            });
    }
}

/// Elements per step of the row loops (a stack buffer of float32).
const CHUNK: usize = 256;

/// `sums[i] = round(sums[i] + (values[i] / n_passes) * gaussian[i])`, each operation in float32
/// (the division only when `n_passes > 1`), as libtorch computes `prediction /= n`,
/// `prediction *= gaussian` and `predicted_logits[sl] += prediction`.
pub(crate) fn add_weighted_row<A: Buffer>(
    sums: &mut [A],
    values: &[f32],
    gaussian: &[f32],
    n_passes: usize,
) {
    let mut wide = [0f32; CHUNK];
    let n = n_passes as f32;
    let chunks = sums
        .chunks_mut(CHUNK)
        .zip(values.chunks(CHUNK))
        .zip(gaussian.chunks(CHUNK));
    for ((sums, values), gaussian) in chunks {
        let wide = &mut wide[..sums.len()];
        A::widen(sums, wide);
        let terms = wide.iter_mut().zip(values).zip(gaussian);
        if n_passes > 1 {
            terms.for_each(|((w, &v), &g)| *w += (v / n) * g);
        } else {
            terms.for_each(|((w, &v), &g)| *w += v * g);
        }
        A::narrow(wide, sums);
    }
}

/// `sums[i] = round(sums[i] + values[i])`, the sum in float32.
pub(crate) fn add_row<A: Buffer>(sums: &mut [A], values: &[f32]) {
    let mut wide = [0f32; CHUNK];
    for (sums, values) in sums.chunks_mut(CHUNK).zip(values.chunks(CHUNK)) {
        let wide = &mut wide[..sums.len()];
        A::widen(sums, wide);
        wide.iter_mut().zip(values).for_each(|(w, &v)| *w += v);
        A::narrow(wide, sums);
    }
}

/// `sums /= weights` for sums `[classes, *spatial]` and weights `[*spatial]`: `round(sum /
/// weight)` in float32, slab by slab in parallel; returns whether any quotient is infinite.
pub(crate) fn divide_slabs<A: Buffer>(sums: &mut [A], weights: &[A]) -> bool {
    let slab = CHUNK.min(weights.len());
    let n_slabs = weights.len().div_ceil(slab);
    sums.par_chunks_mut(weights.len())
        .flat_map(|class| class.par_chunks_mut(slab).enumerate())
        .map(|(idx, sums)| {
            let weights = &weights[(idx % n_slabs) * slab..][..sums.len()];
            divide_row(sums, weights)
        })
        .reduce(|| false, |a, b| a || b)
}

/// `sums[i] = round(sums[i] / weights[i])`, the quotient in float32; whether any is infinite.
fn divide_row<A: Buffer>(sums: &mut [A], weights: &[A]) -> bool {
    let (mut wide_sums, mut wide_weights) = ([0f32; CHUNK], [0f32; CHUNK]);
    let wide_sums = &mut wide_sums[..sums.len()];
    let wide_weights = &mut wide_weights[..sums.len()];
    A::widen(sums, wide_sums);
    A::widen(weights, wide_weights);
    wide_sums
        .iter_mut()
        .zip(wide_weights.iter())
        .for_each(|(s, &w)| *s /= w);
    A::narrow(wide_sums, sums);
    sums.iter().any(|&s| A::is_infinite(s))
}

/// An accumulator element, float16 (nnU-Net's) or float32; arithmetic is done in float32.
pub(crate) trait Buffer: Element + Copy + Send + Sync {
    /// Converts to float32 (exactly).
    fn widen(src: &[Self], dst: &mut [f32]);
    /// Rounds float32 values to this kind, to nearest even (as libtorch casts).
    fn narrow(src: &[f32], dst: &mut [Self]);
    /// Whether a value is ±∞.
    fn is_infinite(self) -> bool;
}

impl Buffer for f16 {
    fn widen(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }

    fn narrow(src: &[f32], dst: &mut [f16]) {
        dst.convert_from_f32_slice(src);
    }

    fn is_infinite(self) -> bool {
        f16::is_infinite(self)
    }
}

impl Buffer for f32 {
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }

    fn narrow(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }

    fn is_infinite(self) -> bool {
        f32::is_infinite(self)
    }
}
