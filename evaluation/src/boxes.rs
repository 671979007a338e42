//! Bounding boxes of every class of one case in one pass over the volume, so that the surface
//! metrics work on crops (outside a class's box both of its masks are empty).

use autoseg_planner::LabelValue;
use ndarray::{ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

use crate::classes::LabelVoxel;
use crate::counts::Buckets;

/// Inclusive lower and upper corners `(z, y, x)` of a box of voxels.
pub(crate) type Corners = ([usize; 3], [usize; 3]);

/// Per bucket, `[y_low, y_high, x_low, x_high]`; `EMPTY` when the bucket has no voxel.
type PlaneBoxes = Vec<[usize; 4]>;

const EMPTY: [usize; 4] = [usize::MAX, 0, usize::MAX, 0];

fn merge(a: [usize; 4], b: [usize; 4]) -> [usize; 4] {
    [
        a[0].min(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].max(b[3]),
    ]
}

/// For each class, the box of the voxels in the class in the reference or in the prediction,
/// leaving out voxels whose reference is `ignore`; `None` when the class is in neither map.
/// The same box as scanning each class on its own; parallel over z slices.
///
/// # Shapes
/// `reference`, `prediction`: `(z, y, x)`, equal (checked by the caller).
pub(crate) fn class_boxes<T: LabelVoxel>(
    reference: ArrayView3<'_, T>,
    prediction: ArrayView3<'_, T>,
    classes: &[LabelValue],
    ignore: Option<u16>,
) -> Vec<Option<Corners>> {
    let buckets = Buckets::for_classes(classes, ignore);
    let ignored = ignore.map(|l| buckets.of(i64::from(l)));
    let slices: Vec<(usize, PlaneBoxes)> = (0..reference.len_of(Axis(0)))
        .into_par_iter()
        .filter_map(|z| {
            let (r, p) = (
                reference.index_axis(Axis(0), z),
                prediction.index_axis(Axis(0), z),
            );
            let boxes = plane_boxes(r, p, &buckets, ignored);
            boxes.iter().any(|b| *b != EMPTY).then_some((z, boxes))
        })
        .collect();
    classes
        .iter()
        .map(|class| {
            let in_class: Vec<bool> = (0..buckets.n_buckets)
                .map(|b| buckets.in_class(b, class))
                .collect();
            let mut z_range = (usize::MAX, 0);
            let mut yx = EMPTY;
            for (z, boxes) in &slices {
                let plane = boxes
                    .iter()
                    .zip(&in_class)
                    .filter(|(_, &inside)| inside)
                    .fold(EMPTY, |acc, (b, _)| merge(acc, *b));
                if plane != EMPTY {
                    z_range = (z_range.0.min(*z), z_range.1.max(*z));
                    yx = merge(yx, plane);
                }
            }
            (yx != EMPTY).then_some(([z_range.0, yx[0], yx[2]], [z_range.1, yx[1], yx[3]]))
        })
        .collect()
}

/// Per bucket, the `(y, x)` box of one slice: a reference voxel marks its bucket, a predicted
/// voxel its bucket, both only where the reference is not the ignore label.
fn plane_boxes<T: LabelVoxel>(
    reference: ArrayView2<'_, T>,
    prediction: ArrayView2<'_, T>,
    buckets: &Buckets,
    ignored: Option<usize>,
) -> PlaneBoxes {
    let n = buckets.n_buckets;
    let other = n - 1;
    let mut boxes = vec![EMPTY; n];
    // Background in both maps marks nothing when it is in no class (the usual case).
    let skip_background = buckets.of(T::BACKGROUND.to_i64()) == other;
    // First and last x of each bucket in the current row.
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (y, (r_row, p_row)) in reference
        .rows()
        .into_iter()
        .zip(prediction.rows())
        .enumerate()
    {
        let mut any = false;
        let mut mark = |b: usize, x: usize| {
            if b != other {
                if first[b] == usize::MAX {
                    first[b] = x;
                }
                last[b] = x;
                any = true;
            }
        };
        for (x, (&r, &p)) in r_row.iter().zip(p_row.iter()).enumerate() {
            if skip_background && r == T::BACKGROUND && p == T::BACKGROUND {
                continue;
            }
            let br = buckets.of(r.to_i64());
            if Some(br) == ignored {
                continue;
            }
            mark(br, x);
            mark(buckets.of(p.to_i64()), x);
        }
        if any {
            for b in 0..n {
                if first[b] != usize::MAX {
                    boxes[b] = merge(boxes[b], [y, y, first[b], last[b]]);
                    first[b] = usize::MAX;
                }
            }
        }
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::class_contains;
    use crate::edt::tests::Rng;
    use ndarray::Array3;

    /// One class at a time, voxel by voxel: the scan this pass replaces.
    fn scanned_box(
        reference: &Array3<u16>,
        prediction: &Array3<u16>,
        class: &LabelValue,
        ignore: Option<u16>,
    ) -> Option<Corners> {
        let mut corners: Option<Corners> = None;
        for ((z, y, x), &r) in reference.indexed_iter() {
            let p = prediction[[z, y, x]];
            let counts = |v: u16| class_contains(class, v.into()) && Some(r) != ignore;
            if counts(r) || counts(p) {
                let (low, high) = corners.get_or_insert(([z, y, x], [z, y, x]));
                for (axis, v) in [z, y, x].into_iter().enumerate() {
                    low[axis] = low[axis].min(v);
                    high[axis] = high[axis].max(v);
                }
            }
        }
        corners
    }

    #[test]
    fn one_pass_gives_each_classs_own_box() {
        let mut rng = Rng(0xB0E5);
        let classes = [
            LabelValue::Single(1),
            LabelValue::Single(2),
            LabelValue::Region(vec![2, 3]),
            LabelValue::Single(9),
            LabelValue::Region(vec![3, 5]), // 5 is also the ignore label below.
        ];
        // A region holding the background: background voxels mark its box too.
        let with_background = [LabelValue::Single(2), LabelValue::Region(vec![0, 4])];
        for (round, shape) in [(6, 7, 8), (1, 9, 4), (11, 1, 3), (4, 4, 4)]
            .iter()
            .enumerate()
        {
            for ignore in [None, Some(5)] {
                // Sparse labels, so boxes are not the whole volume.
                let mut draw = |_| match rng.below(40) {
                    v @ 0..=5 => v as u16,
                    _ => 0,
                };
                let reference = Array3::from_shape_fn(*shape, &mut draw);
                let prediction = Array3::from_shape_fn(*shape, &mut draw);
                for classes in [&classes[..], &with_background[..]] {
                    let boxes = class_boxes(reference.view(), prediction.view(), classes, ignore);
                    for (class, got) in classes.iter().zip(boxes) {
                        let want = scanned_box(&reference, &prediction, class, ignore);
                        assert_eq!(got, want, "round {round}, {class:?}, ignore {ignore:?}");
                    }
                }
            }
        }
    }
}
