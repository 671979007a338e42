//! Label-map steps at the end of the pipeline: zeroing the image outside the nonzero mask
//! (`use_mask_for_norm`), turning the outside marker -1 into background, and the
//! deep-supervision targets.
//!
//! nnU-Net: `MaskImageTransform(apply_to_channels, channel_idx_in_seg=0, set_outside_to=0)`,
//! `RemoveLabelTansform(-1, 0)`, `DownsampleSegForDSTransform(ds_scales)` (`nearest-exact` to
//! `round(shape · scale)`).

use ndarray::{s, Array4, ArrayView4, ArrayViewMut4, Axis, Zip};

use super::resize::nearest_exact;

/// Sets the listed image channels to 0 wherever the segmentation is negative (outside).
pub fn mask_outside(
    mut data: ArrayViewMut4<'_, f32>,
    seg: ArrayView4<'_, i16>,
    channels: &[usize],
) {
    let outside = seg.index_axis(Axis(0), 0);
    for &c in channels {
        Zip::from(data.index_axis_mut(Axis(0), c))
            .and(&outside)
            .for_each(|v, &s| {
                if s < 0 {
                    *v = 0.0;
                }
            });
    }
}

/// Replaces the outside marker -1 by background 0, in place.
pub fn outside_to_background(mut seg: ArrayViewMut4<'_, i16>) {
    let relabel = |v: &mut i16| {
        if *v == -1 {
            *v = 0;
        }
    };
    match seg.as_slice_memory_order_mut() {
        Some(values) => values.iter_mut().for_each(relabel),
        None => seg.map_inplace(relabel),
    }
}

/// Target shape of a deep-supervision level: `round(shape · scale)` (half to even) per axis.
pub fn ds_shape(shape: [usize; 3], scale: [f64; 3]) -> [usize; 3] {
    std::array::from_fn(|a| ((shape[a] as f64 * scale[a]).round_ties_even() as usize).max(1))
}

/// The segmentation `(k, z, y, x)` resampled `nearest-exact` to [`ds_shape`], every channel
/// alike.
pub fn downsample_seg(seg: ArrayView4<'_, i16>, scale: [f64; 3]) -> Array4<i16> {
    let shape: [usize; 3] = std::array::from_fn(|a| seg.shape()[a + 1]);
    let out = ds_shape(shape, scale);
    let maps: [Vec<usize>; 3] = std::array::from_fn(|a| {
        (0..out[a])
            .map(|d| nearest_exact(d, shape[a], out[a]))
            .collect()
    });
    let n_channels = seg.shape()[0];
    let mut values = Vec::with_capacity(n_channels * out.iter().product::<usize>());
    for channel in seg.outer_iter() {
        for &z in &maps[0] {
            for &y in &maps[1] {
                let row = channel.slice(s![z, y, ..]);
                // Same expression; on a contiguous row it indexes a plain slice (no strides).
                match row.as_slice() {
                    Some(row) => values.extend(maps[2].iter().map(|&x| row[x])),
                    None => values.extend(maps[2].iter().map(|&x| row[x])),
                }
            }
        }
    }
    Array4::from_shape_vec((n_channels, out[0], out[1], out[2]), values)
        .expect("one value per output voxel")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_background() {
        let mut seg = Array4::from_shape_vec((1, 1, 1, 4), vec![-1i16, 0, 2, -1]).unwrap();
        let mut data = Array4::<f32>::from_elem((2, 1, 1, 4), 5.0);
        mask_outside(data.view_mut(), seg.view(), &[1]);
        assert_eq!(
            data.index_axis(Axis(0), 0)
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![5.0; 4]
        );
        assert_eq!(
            data.index_axis(Axis(0), 1)
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![0.0, 5.0, 5.0, 0.0]
        );
        outside_to_background(seg.view_mut());
        assert_eq!(seg.iter().copied().collect::<Vec<_>>(), vec![0, 0, 2, 0]);
    }

    #[test]
    fn ds_targets_pick_nearest_exact_voxels() {
        // 2D-like (z = 1) seg of 5 × 6 halved: round(2.5) = 2 rows (half to even), 3 columns;
        // rows 5 -> 2 pick 1, 3; columns 6 -> 3 pick 1, 3, 5.
        let seg = Array4::from_shape_fn((1, 1, 5, 6), |(_, _, y, x)| (y * 10 + x) as i16);
        let out = downsample_seg(seg.view(), [1.0, 0.5, 0.5]);
        assert_eq!(out.shape(), &[1, 1, 2, 3]);
        assert_eq!(
            out.iter().copied().collect::<Vec<_>>(),
            vec![11, 13, 15, 31, 33, 35]
        );
        assert_eq!(ds_shape([40, 56, 40], [0.25, 0.125, 0.125]), [10, 7, 5]);
    }
}
