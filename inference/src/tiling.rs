//! Where the sliding window's tiles go: nnU-Net's step positions and tile grid, and the zero
//! padding that makes an image at least as large as the patch.
//!
//! nnU-Net: `sliding_window_prediction.py::compute_steps_for_sliding_window` and
//! `acvl_utils.cropping_and_padding.padding.pad_nd_image` (constant 0, centred, the odd voxel on
//! the high side).

use tch::Tensor;

use crate::InferenceError;

/// Start positions of the tiles along each axis.
///
/// Per axis: `n = ceil((size - patch) / (patch * step)) + 1` tiles, spaced
/// `(size - patch) / (n - 1)` apart, each start rounded half to even (Python's `round`). One
/// tile at 0 when the image is as large as the patch.
///
/// nnU-Net: `compute_steps_for_sliding_window`. `(110 | 64, 0.5)` gives `[0, 23, 46]`.
///
/// # Errors
/// [`InferenceError::InvalidStep`] unless `0 < step <= 1`;
/// [`InferenceError::ImagePatchMismatch`] when the axes differ in number or the image is
/// smaller than the patch on some axis (pad it first, [`pad_to_patch`]).
pub fn compute_steps(
    image_size: &[usize],
    patch: &[usize],
    step: f64,
) -> Result<Vec<Vec<usize>>, InferenceError> {
    check_step(step)?;
    let mismatch = |reason| InferenceError::ImagePatchMismatch {
        image: image_size.to_vec(),
        patch: patch.to_vec(),
        reason,
    };
    if image_size.len() != patch.len() {
        return Err(mismatch("different numbers of axes"));
    }
    if image_size.iter().zip(patch).any(|(&i, &p)| i < p || p == 0) {
        return Err(mismatch(
            "the image is smaller than the patch (or the patch is empty)",
        ));
    }
    Ok(image_size
        .iter()
        .zip(patch)
        .map(|(&size, &tile)| axis_steps(size, tile, step))
        .collect())
}

/// Checks that a tile step is a fraction of the patch in `(0, 1]`.
pub(crate) fn check_step(step: f64) -> Result<(), InferenceError> {
    if step > 0.0 && step <= 1.0 {
        Ok(())
    } else {
        Err(InferenceError::InvalidStep { step })
    }
}

/// Tile starts along one axis (`size >= tile >= 1`, `0 < step <= 1`).
fn axis_steps(size: usize, tile: usize, step: f64) -> Vec<usize> {
    let target = tile as f64 * step;
    let n_steps = ((size - tile) as f64 / target).ceil() as usize + 1;
    if n_steps == 1 {
        return vec![0];
    }
    let actual = (size - tile) as f64 / (n_steps - 1) as f64;
    (0..n_steps)
        .map(|i| (actual * i as f64).round_ties_even() as usize)
        .collect()
}

/// Zero padding of the trailing axes that makes an image at least as large as a patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Padding {
    /// Voxels added before the image, per trailing axis (patch order).
    pub before: Vec<usize>,
    /// Voxels added after the image, per trailing axis (patch order).
    pub after: Vec<usize>,
}

impl Padding {
    /// The padding that brings `image_size` (the trailing axes, as many as the patch has) up to
    /// `patch` where it is smaller: centred, the odd voxel after (nnU-Net: `pad_nd_image`).
    pub fn to_patch(image_size: &[usize], patch: &[usize]) -> Padding {
        let diffs: Vec<usize> = image_size
            .iter()
            .zip(patch)
            .map(|(&i, &p)| p.saturating_sub(i))
            .collect();
        Padding {
            before: diffs.iter().map(|d| d / 2).collect(),
            after: diffs.iter().map(|d| d - d / 2).collect(),
        }
    }

    /// Whether nothing is padded.
    pub fn is_empty(&self) -> bool {
        self.before.iter().chain(&self.after).all(|&p| p == 0)
    }
}

/// Pads the trailing `patch.len()` axes of `data` with zeros up to the patch size where they are
/// smaller; returns the padded tensor (`data` itself, shared, when nothing is padded) and the
/// padding, for [`crop_padding`].
///
/// # Errors
/// [`InferenceError::InputShape`] when `data` has fewer axes than the patch;
/// [`InferenceError::Torch`] when libtorch fails.
pub fn pad_to_patch(data: &Tensor, patch: &[usize]) -> Result<(Tensor, Padding), InferenceError> {
    let shape = data.size();
    if shape.len() < patch.len() {
        return Err(InferenceError::InputShape { shape });
    }
    let trailing: Vec<usize> = shape[shape.len() - patch.len()..]
        .iter()
        .map(|&s| s as usize)
        .collect();
    let padding = Padding::to_patch(&trailing, patch);
    if padding.is_empty() {
        return Ok((data.shallow_clone(), padding));
    }
    // torch's pad list runs from the last axis backwards: [x_lo, x_hi, y_lo, y_hi, ...].
    let pad: Vec<i64> = (0..patch.len())
        .rev()
        .flat_map(|a| [padding.before[a] as i64, padding.after[a] as i64])
        .collect();
    Ok((data.f_constant_pad_nd(pad.as_slice())?, padding))
}

/// Removes [`pad_to_patch`]'s padding from the trailing axes of `padded` (a view; no copy).
///
/// # Errors
/// [`InferenceError::InputShape`] when `padded` has fewer axes than the padding or is smaller
/// than it; [`InferenceError::Torch`] when libtorch fails.
pub fn crop_padding(padded: &Tensor, padding: &Padding) -> Result<Tensor, InferenceError> {
    let shape = padded.size();
    let n_axes = padding.before.len();
    if shape.len() < n_axes {
        return Err(InferenceError::InputShape { shape });
    }
    let first = shape.len() - n_axes;
    let mut out = padded.shallow_clone();
    for a in 0..n_axes {
        let (lo, hi) = (padding.before[a] as i64, padding.after[a] as i64);
        let len = shape[first + a] - lo - hi;
        if len < 0 {
            return Err(InferenceError::InputShape { shape });
        }
        out = out.f_narrow((first + a) as i64, lo, len)?;
    }
    Ok(out)
}

/// Tile positions over a padded image: nnU-Net's slicers.
pub(crate) struct TileGrid {
    /// Extent of a tile on the three spatial axes (`[1, py, px]` for a 2D patch).
    pub(crate) window: [i64; 3],
    /// Whether tiles are single slices of axis 0 that the model sees as 2D.
    pub(crate) planar: bool,
    /// Tile origins, `(z, y, x)`, in nnU-Net's order.
    pub(crate) starts: Vec<[i64; 3]>,
}

impl TileGrid {
    /// nnU-Net's slicers over a `spatial` image (at least the patch on every axis): every
    /// combination of steps, axis 0 slowest; for a 2D patch, every slice of axis 0 times the 2D
    /// steps.
    pub(crate) fn new(
        spatial: [usize; 3],
        patch: &[usize],
        step: f64,
    ) -> Result<TileGrid, InferenceError> {
        let planar = patch.len() == 2;
        let (steps, window) = if planar {
            let steps = compute_steps(&spatial[1..], patch, step)?;
            let all_slices = (0..spatial[0]).collect();
            let window = [1, patch[0] as i64, patch[1] as i64];
            ([vec![all_slices], steps].concat(), window)
        } else {
            let steps = compute_steps(&spatial, patch, step)?;
            (steps, [patch[0] as i64, patch[1] as i64, patch[2] as i64])
        };
        let mut starts = Vec::new();
        for &z in &steps[0] {
            for &y in &steps[1] {
                for &x in &steps[2] {
                    starts.push([z as i64, y as i64, x as i64]);
                }
            }
        }
        Ok(TileGrid {
            window,
            planar,
            starts,
        })
    }

    /// The region of `t`'s last three axes covered by the tile at `start` (a view).
    pub(crate) fn region(&self, t: &Tensor, start: [i64; 3]) -> Result<Tensor, InferenceError> {
        let first = t.dim() as i64 - 3;
        let mut view = t.shallow_clone();
        for (axis, (&origin, &extent)) in start.iter().zip(&self.window).enumerate() {
            view = view.f_narrow(first + axis as i64, origin, extent)?;
        }
        Ok(view)
    }

    /// The input tile at `start`: `[c, *patch]` (a view).
    pub(crate) fn tile(&self, data: &Tensor, start: [i64; 3]) -> Result<Tensor, InferenceError> {
        let tile = self.region(data, start)?;
        Ok(if self.planar {
            tile.f_squeeze_dim(1)?
        } else {
            tile
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_nnunet_examples() {
        // nnU-Net's comment in compute_steps_for_sliding_window and reference §12.
        assert_eq!(
            compute_steps(&[110], &[64], 0.5).unwrap(),
            vec![vec![0, 23, 46]]
        );
        assert_eq!(
            compute_steps(&[432], &[128], 0.5).unwrap(),
            vec![vec![0, 61, 122, 182, 243, 304]]
        );
    }

    #[test]
    fn steps_round_half_to_even_and_cover_the_image() {
        // (9 | 4, 0.5): n = ceil(5/2)+1 = 4, actual 5/3; (10 | 4, 1.0): n = 3, actual 3.
        assert_eq!(
            compute_steps(&[9], &[4], 0.5).unwrap(),
            vec![vec![0, 2, 3, 5]]
        );
        assert_eq!(
            compute_steps(&[10], &[4], 1.0).unwrap(),
            vec![vec![0, 3, 6]]
        );
        // (7 | 2, 0.5): n = 6, actual 1.0 -> consecutive; (5 | 2, 1): n = 3, actual 1.5:
        // round(1.5) = 2 and round(3.0) = 3.
        assert_eq!(compute_steps(&[5], &[2], 1.0).unwrap(), vec![vec![0, 2, 3]]);
        assert_eq!(
            compute_steps(&[64, 65], &[64, 64], 0.5).unwrap(),
            vec![vec![0], vec![0, 1]]
        );
    }

    #[test]
    fn steps_reject_bad_requests() {
        assert!(matches!(
            compute_steps(&[10], &[4], 0.0),
            Err(InferenceError::InvalidStep { .. })
        ));
        assert!(matches!(
            compute_steps(&[10], &[4], 1.5),
            Err(InferenceError::InvalidStep { .. })
        ));
        assert!(matches!(
            compute_steps(&[3], &[4], 0.5),
            Err(InferenceError::ImagePatchMismatch { .. })
        ));
        assert!(matches!(
            compute_steps(&[8, 8], &[4], 0.5),
            Err(InferenceError::ImagePatchMismatch { .. })
        ));
    }

    #[test]
    fn padding_is_centred_with_the_odd_voxel_high() {
        let p = Padding::to_patch(&[3, 8, 10], &[8, 8, 4]);
        assert_eq!(p.before, vec![2, 0, 0]);
        assert_eq!(p.after, vec![3, 0, 0]);
        let data =
            Tensor::arange(2 * 3 * 2, (tch::Kind::Float, tch::Device::Cpu)).reshape([2, 3, 2]);
        let (padded, padding) = pad_to_patch(&data, &[6, 3]).unwrap();
        assert_eq!(padded.size(), vec![2, 6, 3]);
        assert_eq!(padding.before, vec![1, 0]);
        assert_eq!(padding.after, vec![2, 1]);
        // The image sits at rows 1..4, columns 0..2; everything else is zero.
        assert_eq!(f64::try_from(padded.sum(tch::Kind::Double)).unwrap(), 66.0);
        assert_eq!(f64::try_from(padded.get(1).get(1).get(0)).unwrap(), 6.0);
        assert_eq!(f64::try_from(padded.get(0).get(0).get(0)).unwrap(), 0.0);
        let back = crop_padding(&padded, &padding).unwrap();
        assert!(back.equal(&data));
    }
}
