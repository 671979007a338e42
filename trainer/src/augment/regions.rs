//! Region-based targets: the label map becomes one 0/1 channel per region (the labels it
//! unites), plus a last channel marking the ignore label when the dataset has one.
//!
//! nnU-Net: `ConvertSegmentationToRegionsTransform(regions + [ignore_label], channel_in_seg=0)`
//! (batchgeneratorsv2 `transforms/utils/seg_to_regions.py`), run after `-1 → 0`.

use ndarray::{Array4, ArrayView3, Axis, Zip};

/// One 0/1 channel per region (a voxel belongs to a region iff its label is one of the
/// region's labels), then, if `ignore_label` is set, one channel that is 1 exactly on that
/// label.
///
/// # Shapes
/// `labels` `(z, y, x)`; returns `(regions.len() + [ignore_label is set], z, y, x)`.
pub fn region_targets(
    labels: ArrayView3<'_, i16>,
    regions: &[Vec<i16>],
    ignore_label: Option<i16>,
) -> Array4<i16> {
    let (z, y, x) = labels.dim();
    let ignore = ignore_label.map(|label| vec![label]);
    let all: Vec<&[i16]> = regions
        .iter()
        .map(Vec::as_slice)
        .chain(ignore.as_deref())
        .collect();
    let mut out = Array4::zeros((all.len(), z, y, x));
    for (channel, members) in out.axis_iter_mut(Axis(0)).zip(all) {
        Zip::from(channel)
            .and(&labels)
            .for_each(|v, l| *v = i16::from(members.contains(l)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn channel(out: &Array4<i16>, c: usize) -> Vec<i16> {
        out.index_axis(Axis(0), c).iter().copied().collect()
    }

    #[test]
    fn nested_regions_mark_their_labels() {
        // Labels {1, 2}, regions [[1, 2], [2]] (e.g. whole tumour, enhancing core).
        let seg = Array3::from_shape_vec((1, 2, 3), vec![0i16, 1, 2, 2, 1, 0]).unwrap();
        let out = region_targets(seg.view(), &[vec![1, 2], vec![2]], None);
        assert_eq!(out.shape(), &[2, 1, 2, 3]);
        assert_eq!(channel(&out, 0), vec![0, 1, 1, 1, 1, 0]);
        assert_eq!(channel(&out, 1), vec![0, 0, 1, 1, 0, 0]);
    }

    #[test]
    fn the_ignore_label_gets_the_last_channel() {
        let seg = Array3::from_shape_vec((1, 1, 5), vec![0i16, 1, 4, 2, 4]).unwrap();
        let out = region_targets(seg.view(), &[vec![1, 2], vec![2]], Some(4));
        assert_eq!(out.shape(), &[3, 1, 1, 5]);
        assert_eq!(channel(&out, 0), vec![0, 1, 0, 1, 0]);
        assert_eq!(channel(&out, 1), vec![0, 0, 0, 1, 0]);
        assert_eq!(channel(&out, 2), vec![0, 0, 1, 0, 1]);
    }
}
