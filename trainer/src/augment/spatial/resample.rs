//! The spatial transform's resampler: the input coordinates of every output row, and
//! trilinear sampling of image channels and label votes of seg channels at those points (the
//! fast interior path 8 voxels at a time with AVX2 where the CPU has it, in `resample/avx2.rs`,
//! bit-identical to the scalar path), and nearest-neighbour sampling of images or label maps.

use ndarray::{Array4, ArrayView4};

#[cfg(target_arch = "x86_64")]
mod avx2;

/// The 8 trilinear neighbours of a point: flat spatial offsets and weights (0 for neighbours
/// outside the volume), and whether the point lies inside `[0, S - 1]` on every axis.
struct Neighbours {
    offsets: [usize; 8],
    weights: [f32; 8],
    inside: bool,
}

fn neighbours(q: [f64; 3], shape: [usize; 3]) -> Neighbours {
    let mut lo = [0isize; 3];
    let mut frac = [0f32; 3];
    let mut inside = true;
    let mut interior = true;
    for a in 0..3 {
        let f = q[a].floor();
        lo[a] = f as isize;
        frac[a] = (q[a] - f) as f32;
        inside &= q[a] >= 0.0 && q[a] <= (shape[a] - 1) as f64;
        interior &= lo[a] >= 0 && lo[a] + 1 < shape[a] as isize;
    }
    if interior {
        let base = (lo[0] as usize * shape[1] + lo[1] as usize) * shape[2] + lo[2] as usize;
        let row = shape[2];
        let plane = shape[1] * row;
        return Neighbours {
            offsets: [
                0,
                1,
                row,
                row + 1,
                plane,
                plane + 1,
                plane + row,
                plane + row + 1,
            ]
            .map(|o| base + o),
            weights: corner_weights(frac[0], frac[1], frac[2]),
            inside: true,
        };
    }
    let mut n = Neighbours {
        offsets: [0; 8],
        weights: [0.0; 8],
        inside,
    };
    for k in 0..8 {
        let mut w = 1.0f32;
        let mut offset = 0usize;
        let mut valid = true;
        for a in 0..3 {
            let upper = (k >> (2 - a)) & 1 == 1;
            let idx = lo[a] + upper as isize;
            w *= if upper { frac[a] } else { 1.0 - frac[a] };
            valid &= idx >= 0 && (idx as usize) < shape[a];
            offset = offset * shape[a] + idx.max(0) as usize;
        }
        if valid && w != 0.0 {
            n.offsets[k] = offset;
            n.weights[k] = w;
        }
    }
    n
}

/// The label whose summed weight is largest among neighbours of non-zero weight; ties go to
/// the lowest label. When all 8 labels agree (zero-weight neighbours included) that label.
fn vote(labels: &[i16; 8], weights: &[f32; 8]) -> i16 {
    let first = labels[0];
    if labels.iter().all(|&l| l == first) {
        return first;
    }
    let mut seen = [0i16; 8];
    let mut sums = [0f32; 8];
    let mut n_seen = 0;
    for k in 0..8 {
        if weights[k] == 0.0 {
            continue;
        }
        match seen[..n_seen].iter().position(|&l| l == labels[k]) {
            Some(i) => sums[i] += weights[k],
            None => {
                seen[n_seen] = labels[k];
                sums[n_seen] = weights[k];
                n_seen += 1;
            }
        }
    }
    let mut best = 0;
    for i in 1..n_seen {
        if sums[i] > sums[best] || (sums[i] == sums[best] && seen[i] < seen[best]) {
            best = i;
        }
    }
    seen[best]
}

/// Trilinear weights of the 8 corners of a cell, in [`Neighbours`] order, from the fractional
/// position `(fz, fy, fx)` inside it.
#[inline(always)]
fn corner_weights(fz: f32, fy: f32, fx: f32) -> [f32; 8] {
    let (gz, gy, gx) = (1.0 - fz, 1.0 - fy, 1.0 - fx);
    [
        gz * gy * gx,
        gz * gy * fx,
        gz * fy * gx,
        gz * fy * fx,
        fz * gy * gx,
        fz * gy * fx,
        fz * fy * gx,
        fz * fy * fx,
    ]
}

/// The contiguous input of one resampling pass.
struct Source<'a> {
    data: &'a [f32],
    seg: &'a [i16],
    n_channels: usize,
    n_seg_channels: usize,
    shape: [usize; 3],
    channel_len: usize,
    /// `S - 1` per axis: `q` is interior (all 8 neighbours inside) when `0 <= q < S - 1`.
    last: [f64; 3],
    /// Whether rows go through the AVX2 kernel.
    simd: bool,
}

impl Source<'_> {
    /// Samples every channel at the points of `row` into the output voxels from `row_start`,
    /// 8 at a time with AVX2 where the CPU has it (bit-identical to the scalar path).
    fn sample_row(&self, row: &Row, out: &mut Target<'_>, row_start: usize) {
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            // SAFETY: `simd` is set only when AVX2 was detected and channel offsets fit the
            // i32 lanes of the kernel's gathers (`simd_available`, in `resample_with`).
            unsafe { avx2::sample_row(self, row, out, row_start) };
            return;
        }
        for ox in 0..row.len() {
            self.sample_into(row.point(ox), out, row_start + ox);
        }
    }

    /// Samples every data and seg channel at `q` into output voxel `voxel`.
    #[inline(always)]
    fn sample_into(&self, q: [f64; 3], out: &mut Target<'_>, voxel: usize) {
        let [qz, qy, qx] = q;
        let [lz, ly, lx] = self.last;
        if qz >= 0.0 && qz < lz && qy >= 0.0 && qy < ly && qx >= 0.0 && qx < lx {
            self.sample_interior(q, out, voxel);
        } else {
            self.sample_border(q, out, voxel);
        }
    }

    /// The fast path: all 8 neighbours lie inside (`0 <= q < S - 1` on every axis).
    #[inline(always)]
    fn sample_interior(&self, q: [f64; 3], out: &mut Target<'_>, voxel: usize) {
        // `0 <= q < S - 1`: truncation is `floor`, and i32 conversions are cheap.
        let (lz, ly, lx) = (q[0] as i32, q[1] as i32, q[2] as i32);
        let fz = (q[0] - f64::from(lz)) as f32;
        let fy = (q[1] - f64::from(ly)) as f32;
        let fx = (q[2] - f64::from(lx)) as f32;
        let w = corner_weights(fz, fy, fx);
        let (row, plane) = (self.shape[2], self.shape[1] * self.shape[2]);
        let base = (lz as usize * self.shape[1] + ly as usize) * row + lx as usize;
        let (r1, p0, p1) = (row + 1, plane + row, plane + row + 1);
        for c in 0..self.n_channels {
            let v = &self.data[c * self.channel_len + base..][..p1 + 1];
            // The same products and summation order as the border path.
            let sum = w[0] * v[0]
                + w[1] * v[1]
                + w[2] * v[row]
                + w[3] * v[r1]
                + w[4] * v[plane]
                + w[5] * v[plane + 1]
                + w[6] * v[p0]
                + w[7] * v[p1];
            out.data[c * out.len + voxel] = sum;
        }
        for c in 0..self.n_seg_channels {
            let l = &self.seg[c * self.channel_len + base..][..p1 + 1];
            let first = l[0];
            let uniform = (l[1] == first) & (l[row] == first) & (l[r1] == first);
            let uniform = uniform & (l[plane] == first) & (l[plane + 1] == first);
            out.seg[c * out.len + voxel] = if uniform & (l[p0] == first) & (l[p1] == first) {
                first
            } else {
                let labels = [
                    l[0],
                    l[1],
                    l[row],
                    l[r1],
                    l[plane],
                    l[plane + 1],
                    l[p0],
                    l[p1],
                ];
                vote(&labels, &w)
            };
        }
    }

    /// Points near or beyond the border: missing neighbours weigh 0 (zero padding for the
    /// image); seg channels get -1 unless `q` lies inside `[0, S - 1]` on every axis.
    fn sample_border(&self, q: [f64; 3], out: &mut Target<'_>, voxel: usize) {
        let n = neighbours(q, self.shape);
        for c in 0..self.n_channels {
            let channel = &self.data[c * self.channel_len..(c + 1) * self.channel_len];
            let mut sum = 0.0f32;
            for k in 0..8 {
                sum += n.weights[k] * channel[n.offsets[k]];
            }
            out.data[c * out.len + voxel] = sum;
        }
        for c in 0..self.n_seg_channels {
            let channel = &self.seg[c * self.channel_len..(c + 1) * self.channel_len];
            out.seg[c * out.len + voxel] = if n.inside {
                vote(&n.offsets.map(|o| channel[o]), &n.weights)
            } else {
                -1
            };
        }
    }
}

/// The output buffers of one resampling pass, `len` voxels per channel.
struct Target<'a> {
    data: &'a mut [f32],
    seg: &'a mut [i16],
    len: usize,
}

/// The input coordinates of one output row, one array per axis.
struct Row {
    z: Vec<f64>,
    y: Vec<f64>,
    x: Vec<f64>,
}

impl Row {
    fn new(len: usize) -> Row {
        Row {
            z: vec![0.0; len],
            y: vec![0.0; len],
            x: vec![0.0; len],
        }
    }

    fn len(&self) -> usize {
        self.x.len()
    }

    /// The point of output voxel `ox`.
    #[inline(always)]
    fn point(&self, ox: usize) -> [f64; 3] {
        [self.z[ox], self.y[ox], self.x[ox]]
    }
}

/// Input coordinates `q = M · (o - (P - 1) / 2 + d(o)) + (S - 1) / 2` of every voxel of one
/// output row, where `d` is the displacement (zero without one).
struct Grid<'a> {
    m: [[f64; 3]; 3],
    c_in: [f64; 3],
    c_out: [f64; 3],
    displacement: Option<&'a Array4<f32>>,
}

impl Grid<'_> {
    fn row(&self, oz: usize, oy: usize, row: &mut Row) {
        let m = &self.m;
        let axes = [&mut row.z, &mut row.y, &mut row.x];
        match self.displacement {
            None => {
                let p = [
                    oz as f64 - self.c_out[0],
                    oy as f64 - self.c_out[1],
                    -self.c_out[2],
                ];
                for (i, axis) in axes.into_iter().enumerate() {
                    let base = self.c_in[i] + (0..3).map(|k| m[i][k] * p[k]).sum::<f64>();
                    for (ox, q) in axis.iter_mut().enumerate() {
                        *q = base + m[i][2] * ox as f64;
                    }
                }
            }
            Some(d) => {
                let dz = if d.shape()[1] == 1 { 0 } else { oz };
                for ox in 0..axes[0].len() {
                    let p = [
                        oz as f64 - self.c_out[0] + d[[0, dz, oy, ox]] as f64,
                        oy as f64 - self.c_out[1] + d[[1, dz, oy, ox]] as f64,
                        ox as f64 - self.c_out[2] + d[[2, dz, oy, ox]] as f64,
                    ];
                    for i in 0..3 {
                        axes[i][ox] = self.c_in[i] + (0..3).map(|k| m[i][k] * p[k]).sum::<f64>();
                    }
                }
            }
        }
    }
}

/// Whether the AVX2 kernel can run: the CPU has AVX2 and every in-channel offset fits an i32.
fn simd_available(channel_len: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return channel_len <= i32::MAX as usize && std::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Nearest-neighbour resampling of every channel of `array` through `matrix` and
/// `displacement` onto a `patch`: output voxel `o` takes the voxel at `round(q)` (half to even,
/// as torch's `grid_sample(mode='nearest')`), or `pad` when that voxel lies outside.
pub(super) fn resample_nearest<T: Copy>(
    matrix: [[f64; 3]; 3],
    displacement: Option<&Array4<f32>>,
    patch: [usize; 3],
    array: ArrayView4<'_, T>,
    pad: T,
) -> Array4<T> {
    let array = array.as_standard_layout();
    let src = array.as_slice().expect("standard layout is contiguous");
    let shape: [usize; 3] = std::array::from_fn(|a| array.shape()[a + 1]);
    let n_channels = array.shape()[0];
    let channel_len: usize = shape.iter().product();
    let out_len: usize = patch.iter().product();
    let mut out = Array4::from_elem((n_channels, patch[0], patch[1], patch[2]), pad);
    let dst = out.as_slice_mut().expect("fresh array is contiguous");
    let grid = Grid {
        m: matrix,
        c_in: shape.map(|s| (s as f64 - 1.0) / 2.0),
        c_out: patch.map(|s| (s as f64 - 1.0) / 2.0),
        displacement,
    };
    let mut row = Row::new(patch[2]);
    // `round(q)` must lie in `[0, S)`: `q` in `[-0.5, S - 0.5]` up to the rounding of ties.
    let index = |q: f64, n: usize| -> Option<usize> {
        let r = q.round_ties_even();
        (r >= 0.0 && r < n as f64).then_some(r as usize)
    };
    for oz in 0..patch[0] {
        for oy in 0..patch[1] {
            grid.row(oz, oy, &mut row);
            let start = (oz * patch[1] + oy) * patch[2];
            for ox in 0..row.len() {
                let [qz, qy, qx] = row.point(ox);
                let (Some(iz), Some(iy), Some(ix)) = (
                    index(qz, shape[0]),
                    index(qy, shape[1]),
                    index(qx, shape[2]),
                ) else {
                    continue;
                };
                let offset = (iz * shape[1] + iy) * shape[2] + ix;
                for c in 0..n_channels {
                    dst[c * out_len + start + ox] = src[c * channel_len + offset];
                }
            }
        }
    }
    out
}

/// Resamples data and seg through `matrix` and `displacement` onto a `patch` (the geometry is
/// in the parent module's docs), one output row at a time, with the AVX2 kernel only when
/// `allow_simd` (tests compare both paths).
pub(super) fn resample(
    matrix: [[f64; 3]; 3],
    displacement: Option<&Array4<f32>>,
    patch: [usize; 3],
    data: ArrayView4<'_, f32>,
    seg: ArrayView4<'_, i16>,
    allow_simd: bool,
) -> (Array4<f32>, Array4<i16>) {
    let data = data.as_standard_layout();
    let seg = seg.as_standard_layout();
    let shape: [usize; 3] = std::array::from_fn(|a| data.shape()[a + 1]);
    let channel_len = shape.iter().product();
    let src = Source {
        data: data.as_slice().expect("standard layout is contiguous"),
        seg: seg.as_slice().expect("standard layout is contiguous"),
        n_channels: data.shape()[0],
        n_seg_channels: seg.shape()[0],
        shape,
        channel_len,
        last: shape.map(|s| s as f64 - 1.0),
        simd: allow_simd && simd_available(channel_len),
    };
    let out_shape = |c| (c, patch[0], patch[1], patch[2]);
    let mut out = Array4::<f32>::zeros(out_shape(src.n_channels));
    let mut out_seg = Array4::<i16>::zeros(out_shape(src.n_seg_channels));
    let mut target = Target {
        data: out.as_slice_mut().expect("fresh array is contiguous"),
        seg: out_seg.as_slice_mut().expect("fresh array is contiguous"),
        len: patch.iter().product(),
    };
    let grid = Grid {
        m: matrix,
        c_in: shape.map(|s| (s as f64 - 1.0) / 2.0),
        c_out: patch.map(|s| (s as f64 - 1.0) / 2.0),
        displacement,
    };
    let mut row = Row::new(patch[2]);
    for oz in 0..patch[0] {
        for oy in 0..patch[1] {
            grid.row(oz, oy, &mut row);
            src.sample_row(&row, &mut target, (oz * patch[1] + oy) * patch[2]);
        }
    }
    (out, out_seg)
}
