//! Mirroring: each allowed axis flipped independently with p = 0.5, image and labels alike.
//! The deterministic [`Mirror`] is its own inverse. Training only: test-time augmentation flips
//! tensors of tiles in the inference crate (`segmenter.rs`), not with [`Mirror`].
//!
//! nnU-Net: `MirrorTransform(allowed_axes=mirror_axes)`.

use ndarray::{ArrayViewMut4, Axis, Zip};
use rand::Rng;

/// Draws [`Mirror`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomMirror {
    /// Axes `(z = 0, y = 1, x = 2)` that may be flipped.
    pub axes: Vec<usize>,
}

impl RandomMirror {
    /// Draws each allowed axis with probability 0.5.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Mirror {
        let mut flip = [false; 3];
        for &axis in &self.axes {
            flip[axis] = rng.gen::<f64>() < 0.5;
        }
        Mirror { flip }
    }
}

/// Flips the spatial axes marked in `flip` `(z, y, x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// Whether axis `z`, `y`, `x` is flipped.
    pub flip: [bool; 3],
}

impl Mirror {
    /// Flips an array `(c, z, y, x)` in place.
    pub fn apply<T>(&self, mut array: ArrayViewMut4<'_, T>) {
        let shape: [usize; 4] = std::array::from_fn(|a| array.shape()[a]);
        if let Some(values) = array.as_slice_mut() {
            // Standard layout: whole rows and planes swap as contiguous blocks.
            let [_, n_z, n_y, n_x] = shape;
            let flips = [(n_z, n_y * n_x), (n_y, n_x), (n_x, 1)];
            for (&(n, block), _) in flips.iter().zip(self.flip).filter(|(_, f)| *f) {
                reverse_blocks(values, n, block);
            }
            return;
        }
        for (axis, _) in self.flip.iter().enumerate().filter(|(_, &f)| f) {
            flip_in_place(array.view_mut(), Axis(axis + 1));
        }
    }
}

/// Within every run of `n` consecutive blocks of `block` values, reverses the block order.
fn reverse_blocks<T>(values: &mut [T], n: usize, block: usize) {
    if values.is_empty() || n < 2 {
        return;
    }
    for run in values.chunks_exact_mut(n * block) {
        if block == 1 {
            run.reverse();
            continue;
        }
        for i in 0..n / 2 {
            let (low, high) = run.split_at_mut((n - 1 - i) * block);
            low[i * block..(i + 1) * block].swap_with_slice(&mut high[..block]);
        }
    }
}

/// Reverses `array` along `axis` by swapping mirrored halves.
fn flip_in_place<T>(array: ArrayViewMut4<'_, T>, axis: Axis) {
    let n = array.len_of(axis);
    let (low, rest) = array.split_at(axis, n / 2);
    let (_, mut high) = rest.split_at(axis, n - 2 * (n / 2));
    high.invert_axis(axis);
    Zip::from(low).and(high).for_each(std::mem::swap);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn flipping_a_ramp_reverses_it() {
        let ramp = Array4::from_shape_fn((2, 3, 4, 5), |(c, z, y, x)| {
            (c * 1000 + z * 100 + y * 10 + x) as i32
        });
        let mut flipped = ramp.clone();
        Mirror {
            flip: [false, true, true],
        }
        .apply(flipped.view_mut());
        for ((c, z, y, x), &v) in flipped.indexed_iter() {
            assert_eq!(v, ramp[[c, z, 3 - y, 4 - x]]);
        }
        let mut odd = ramp.clone();
        Mirror {
            flip: [true, false, false],
        }
        .apply(odd.view_mut());
        assert_eq!(odd[[1, 0, 2, 3]], ramp[[1, 2, 2, 3]]);
        assert_eq!(odd[[1, 1, 2, 3]], ramp[[1, 1, 2, 3]]);
        // A mirror is its own inverse.
        Mirror {
            flip: [true, false, false],
        }
        .apply(odd.view_mut());
        assert_eq!(odd, ramp);
    }

    #[test]
    fn strided_views_flip_like_contiguous_arrays() {
        let ramp = Array4::from_shape_fn((2, 3, 4, 5), |(c, z, y, x)| {
            (c * 1000 + z * 100 + y * 10 + x) as i32
        });
        let mirror = Mirror {
            flip: [true, true, true],
        };
        let mut contiguous = ramp.clone();
        mirror.apply(contiguous.view_mut());
        // The same flips through a transposed (non-standard) view of a transposed copy.
        let mut transposed = ramp.clone().reversed_axes().as_standard_layout().to_owned();
        let mut view = transposed.view_mut().reversed_axes();
        mirror.apply(view.view_mut());
        assert_eq!(view, contiguous);
        for ((c, z, y, x), &v) in contiguous.indexed_iter() {
            assert_eq!(v, ramp[[c, 2 - z, 3 - y, 4 - x]]);
        }
    }
}
