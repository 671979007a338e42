//! Crop to the nonzero region, as nnU-Net does before fingerprinting and preprocessing.
//!
//! nnU-Net: `preprocessing/cropping/cropping.py` (`create_nonzero_mask`, `crop_to_nonzero`)
//! with scipy's `binary_fill_holes` and acvl_utils' `get_bbox_from_mask`
//! (`reference/nnunet.md` §2 step 2). The mask is the OR over channels of `value != 0` with
//! every enclosed background cavity filled; the crop is its half-open bounding box; in the
//! cropped label map, background voxels outside the mask become −1.

use std::collections::VecDeque;

use ndarray::{s, Array3, Array4, ArrayBase, ArrayView3, ArrayView4, Axis, Data, Ix3, Ix4, Zip};
use thiserror::Error;

/// Why a crop cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CropError {
    /// The label map's spatial shape differs from the image's.
    #[error("segmentation shape {seg:?} does not match image shape {image:?} (z, y, x)")]
    ShapeMismatch {
        /// Image shape `(z, y, x)`.
        image: [usize; 3],
        /// Segmentation shape `(z, y, x)`.
        seg: [usize; 3],
    },
}

/// A half-open box `[start, end)` per axis `(z, y, x)`, as nnU-Net's `bbox_used_for_cropping`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BoundingBox {
    /// First voxel inside, per axis.
    pub start: [usize; 3],
    /// One past the last voxel inside, per axis.
    pub end: [usize; 3],
}

impl BoundingBox {
    /// The box covering a whole volume of `shape`.
    pub fn full(shape: [usize; 3]) -> BoundingBox {
        BoundingBox {
            start: [0; 3],
            end: shape,
        }
    }

    /// The box's shape `(z, y, x)`.
    pub fn shape(&self) -> [usize; 3] {
        std::array::from_fn(|i| self.end[i] - self.start[i])
    }

    /// The box cut out of a `(c, z, y, x)` array (a view for views, no copy).
    ///
    /// # Panics
    /// If the box does not lie inside the array's spatial shape, an internal invariant: boxes
    /// come from [`bbox`] on a mask of the same array.
    pub fn crop<S: Data>(&self, array: ArrayBase<S, Ix4>) -> ArrayBase<S, Ix4> {
        let [z, y, x] = self.ranges();
        array.slice_move(s![.., z, y, x])
    }

    /// The box cut out of a `(z, y, x)` array (a view for views, no copy).
    ///
    /// # Panics
    /// As [`BoundingBox::crop`].
    pub fn crop3<S: Data>(&self, array: ArrayBase<S, Ix3>) -> ArrayBase<S, Ix3> {
        let [z, y, x] = self.ranges();
        array.slice_move(s![z, y, x])
    }

    fn ranges(&self) -> [std::ops::Range<usize>; 3] {
        std::array::from_fn(|i| self.start[i]..self.end[i])
    }
}

/// The result of [`crop_to_nonzero`].
#[derive(Debug)]
pub struct Cropped<'a> {
    /// The image cut to the box: a view of the input `(c, z, y, x)`.
    pub data: ArrayView4<'a, f32>,
    /// The label map cut to the box, `(c, z, y, x)`, with −1 where the input label was 0 and
    /// the voxel lies outside the nonzero mask. Without an input label map: 0 inside the mask,
    /// −1 outside, one channel.
    pub seg: Array4<i16>,
    /// The box, in the input's voxel coordinates.
    pub bbox: BoundingBox,
}

/// nnU-Net `create_nonzero_mask`: OR over channels of `value != 0` (NaN counts as nonzero),
/// then scipy `binary_fill_holes` (background components not 6-connected to the border are
/// filled).
///
/// # Shapes
/// `data`: `(c, z, y, x)`; returns `(z, y, x)`.
pub fn nonzero_mask(data: ArrayView4<'_, f32>) -> Array3<bool> {
    let (_, nz, ny, nx) = data.dim();
    let mut mask = Array3::from_elem((nz, ny, nx), false);
    for channel in data.outer_iter() {
        Zip::from(&mut mask)
            .and(&channel)
            .for_each(|m, &v| *m |= v != 0.0);
    }
    fill_holes(&mut mask);
    mask
}

/// scipy `binary_fill_holes` with its default structure (6-connectivity): flood the
/// background from every border voxel; whatever background the flood does not reach is a
/// hole and becomes foreground.
fn fill_holes(mask: &mut Array3<bool>) {
    let (nz, ny, nx) = mask.dim();
    let flat = mask
        .as_slice_mut()
        .expect("nonzero_mask builds the mask with Array3::from_elem: standard layout");
    let idx = |z: usize, y: usize, x: usize| (z * ny + y) * nx + x;
    let mut outside = vec![false; flat.len()];
    let mut queue = VecDeque::new();
    let seed = |i: usize, outside: &mut [bool], queue: &mut VecDeque<usize>| {
        if !flat[i] && !outside[i] {
            outside[i] = true;
            queue.push_back(i);
        }
    };
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let on_border =
                    z == 0 || y == 0 || x == 0 || z + 1 == nz || y + 1 == ny || x + 1 == nx;
                if on_border {
                    seed(idx(z, y, x), &mut outside, &mut queue);
                }
            }
        }
    }
    while let Some(i) = queue.pop_front() {
        let (z, y, x) = (i / (ny * nx), (i / nx) % ny, i % nx);
        let neighbours = [
            (z > 0).then(|| i - ny * nx),
            (z + 1 < nz).then(|| i + ny * nx),
            (y > 0).then(|| i - nx),
            (y + 1 < ny).then(|| i + nx),
            (x > 0).then(|| i - 1),
            (x + 1 < nx).then(|| i + 1),
        ];
        for n in neighbours.into_iter().flatten() {
            seed(n, &mut outside, &mut queue);
        }
    }
    for (m, out) in flat.iter_mut().zip(&outside) {
        *m = !out;
    }
}

/// acvl_utils `get_bbox_from_mask`: the half-open bounding box of the `true` voxels; the
/// whole volume when there are none.
pub fn bbox(mask: ArrayView3<'_, bool>) -> BoundingBox {
    let shape: [usize; 3] = std::array::from_fn(|a| mask.len_of(Axis(a)));
    let mut found = BoundingBox {
        start: shape,
        end: [0; 3],
    };
    for ((z, y, x), &m) in mask.indexed_iter() {
        if m {
            for (a, i) in [z, y, x].into_iter().enumerate() {
                found.start[a] = found.start[a].min(i);
                found.end[a] = found.end[a].max(i + 1);
            }
        }
    }
    if found.end[0] == 0 {
        BoundingBox::full(shape)
    } else {
        found
    }
}

/// nnU-Net `crop_to_nonzero(data, seg)`: the image cut to the bounding box of its nonzero
/// mask, the label map cut likewise with −1 marking background outside the mask, and the box.
///
/// # Shapes
/// `data`: `(c, z, y, x)`; `seg`: `(c', z, y, x)`.
///
/// # Errors
/// [`CropError::ShapeMismatch`] when `seg`'s spatial shape differs from `data`'s.
pub fn crop_to_nonzero<'a>(
    data: ArrayView4<'a, f32>,
    seg: Option<ArrayView4<'_, i16>>,
) -> Result<Cropped<'a>, CropError> {
    let (_, nz, ny, nx) = data.dim();
    if let Some(seg) = &seg {
        let (_, sz, sy, sx) = seg.dim();
        if [sz, sy, sx] != [nz, ny, nx] {
            return Err(CropError::ShapeMismatch {
                image: [nz, ny, nx],
                seg: [sz, sy, sx],
            });
        }
    }
    let mask = nonzero_mask(data);
    let bbox = bbox(mask.view());
    let mask = bbox.crop3(mask.view());
    let seg = match seg {
        Some(seg) => {
            let mut cropped = bbox.crop(seg).to_owned();
            for mut channel in cropped.outer_iter_mut() {
                Zip::from(&mut channel).and(&mask).for_each(|s, &inside| {
                    if *s == 0 && !inside {
                        *s = -1;
                    }
                });
            }
            cropped
        }
        None => mask
            .mapv(|inside| if inside { 0 } else { -1 })
            .insert_axis(Axis(0)),
    };
    Ok(Cropped {
        data: bbox.crop(data),
        seg,
        bbox,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    /// A hollow 5x5x5 cube shell (value 1) at offset (2, 3, 1) inside a 9x10x8 volume.
    fn hollow_cube() -> Array4<f32> {
        Array::from_shape_fn((1, 9, 10, 8), |(_, z, y, x)| {
            let inside = |v: usize, lo: usize| (lo..lo + 5).contains(&v);
            let on_shell = |v: usize, lo: usize| v == lo || v == lo + 4;
            let in_cube = inside(z, 2) && inside(y, 3) && inside(x, 1);
            let shell = on_shell(z, 2) || on_shell(y, 3) || on_shell(x, 1);
            if in_cube && shell {
                1.0
            } else {
                0.0
            }
        })
    }

    #[test]
    fn enclosed_cavity_is_filled() {
        let mask = nonzero_mask(hollow_cube().view());
        // The 3x3x3 cavity is enclosed, so the whole 5^3 cube is in the mask.
        assert_eq!(mask.iter().filter(|m| **m).count(), 125);
        assert!(mask[[4, 5, 3]]);
    }

    #[test]
    fn cavity_touching_the_border_is_not_filled() {
        // Open the shell's x = 1 face at one voxel: the cavity now connects to the outside
        // through (4, 5, 1) -> (4, 5, 0), which lies on the border.
        let mut data = hollow_cube();
        data[[0, 4, 5, 1]] = 0.0;
        let mask = nonzero_mask(data.view());
        assert_eq!(mask.iter().filter(|m| **m).count(), 98 - 1);
        assert!(!mask[[4, 5, 3]]);
    }

    #[test]
    fn diagonal_gaps_do_not_connect_background() {
        // 6-connectivity: a cavity touching the outside only through an edge stays a hole.
        let mut data = Array4::<f32>::zeros((1, 3, 4, 4));
        for (y, x) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
            data[[0, 0, y, x]] = 1.0;
            data[[0, 2, y, x]] = 1.0;
        }
        for (y, x) in [
            (0, 1),
            (0, 2),
            (1, 0),
            (2, 0),
            (3, 1),
            (3, 2),
            (1, 3),
            (2, 3),
        ] {
            data[[0, 1, y, x]] = 1.0;
        }
        let mask = nonzero_mask(data.view());
        assert!(mask[[1, 1, 1]] && mask[[1, 2, 2]]);
        assert!(!mask[[1, 0, 0]]);
    }

    #[test]
    fn channels_are_combined_with_or() {
        let mut data = Array4::<f32>::zeros((2, 1, 1, 4));
        data[[0, 0, 0, 1]] = 3.0;
        data[[1, 0, 0, 2]] = f32::NAN;
        let mask = nonzero_mask(data.view());
        assert_eq!(
            mask.iter().copied().collect::<Vec<_>>(),
            [false, true, true, false]
        );
    }

    #[test]
    fn bbox_is_half_open() {
        let mut mask = Array3::from_elem((4, 5, 6), false);
        mask[[1, 2, 3]] = true;
        mask[[2, 4, 0]] = true;
        assert_eq!(
            bbox(mask.view()),
            BoundingBox {
                start: [1, 2, 0],
                end: [3, 5, 4]
            }
        );
        let empty = Array3::from_elem((4, 5, 6), false);
        assert_eq!(bbox(empty.view()), BoundingBox::full([4, 5, 6]));
    }

    #[test]
    fn crop_marks_background_outside_the_mask() {
        let mut data = Array4::<f32>::zeros((1, 1, 3, 5));
        data.slice_mut(s![0, 0, .., 1..4]).fill(2.0);
        data[[0, 0, 1, 2]] = 0.0; // a pixel on the border of a 1-slice volume is never a hole
        let mut seg = Array4::<i16>::zeros((1, 1, 3, 5));
        seg[[0, 0, 0, 1]] = 1;
        seg[[0, 0, 1, 2]] = 2; // labelled although the image is 0 there: keeps its label
        let cropped = crop_to_nonzero(data.view(), Some(seg.view())).unwrap();
        assert_eq!(
            cropped.bbox,
            BoundingBox {
                start: [0, 0, 1],
                end: [1, 3, 4]
            }
        );
        assert_eq!(cropped.data.dim(), (1, 1, 3, 3));
        let got: Vec<i16> = cropped.seg.iter().copied().collect();
        assert_eq!(got, [1, 0, 0, 0, 2, 0, 0, 0, 0]);

        let no_seg = crop_to_nonzero(data.view(), None).unwrap();
        let got: Vec<i16> = no_seg.seg.iter().copied().collect();
        assert_eq!(got, [0, 0, 0, 0, -1, 0, 0, 0, 0]);
    }

    #[test]
    fn mismatched_seg_is_an_error() {
        let data = Array4::<f32>::zeros((1, 2, 3, 4));
        let seg = Array4::<i16>::zeros((1, 2, 3, 5));
        let err = crop_to_nonzero(data.view(), Some(seg.view())).unwrap_err();
        assert_eq!(
            err,
            CropError::ShapeMismatch {
                image: [2, 3, 4],
                seg: [2, 3, 5]
            }
        );
    }
}
