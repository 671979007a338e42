//! Quarter turns and axis permutations of samples whose patch has axes of equal length, image
//! and label maps alike (nnU-Net's DA5 set; the patch keeps its shape because only axes of the
//! same length are turned or swapped).
//!
//! nnU-Net: `nnUNetTrainerDA5.get_training_transforms` → `matching_axes`/`valid_axes` (the axes
//! whose length occurs most often, used when one occurs at least twice), then
//! `RandomTransform(Rot90Transform(num_axis_combinations=1, num_rot_per_combination=(0, 1, 2,
//! 3), allowed_axes=valid_axes), apply_probability=0.5)` and
//! `RandomTransform(TransposeAxesTransform(allowed_axes=valid_axes), apply_probability=0.5)`.

use ndarray::{Array4, Axis};
use rand::seq::SliceRandom;
use rand::Rng;

use super::setup::SpatialMode;

/// DA5's `valid_axes` of a patch `(z, y, x)`: the axes whose length is shared by the most axes,
/// or none when all lengths differ (then DA5 neither turns nor transposes). 2D configurations
/// (`Planar`, `z = 1`) consider `(y, x)` only.
pub fn equal_length_axes(patch: [usize; 3], mode: SpatialMode) -> Vec<usize> {
    let axes: &[usize] = if mode == SpatialMode::Planar {
        &[1, 2]
    } else {
        &[0, 1, 2]
    };
    let count = |a: usize| axes.iter().filter(|&&b| patch[b] == patch[a]).count();
    let most = axes.iter().map(|&a| count(a)).max().unwrap_or(0);
    if most < 2 {
        return Vec::new();
    }
    axes.iter().copied().filter(|&a| count(a) == most).collect()
}

/// Draws [`Rot90`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomRot90 {
    /// Probability of turning (0.5).
    pub p: f64,
    /// Axes `(z = 0, y = 1, x = 2)` of equal length, at least two ([`equal_length_axes`]).
    pub axes: Vec<usize>,
    /// Numbers of quarter turns to choose from, uniformly (0, 1, 2, 3).
    pub turns: Vec<u8>,
}

impl RandomRot90 {
    /// DA5's settings for `axes` ([`equal_length_axes`]); `None` for fewer than two axes.
    pub fn da5(axes: &[usize]) -> Option<RandomRot90> {
        (axes.len() >= 2).then(|| RandomRot90 {
            p: 0.5,
            axes: axes.to_vec(),
            turns: vec![0, 1, 2, 3],
        })
    }

    /// Draws the number of turns and two distinct axes (ascending), or `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Option<Rot90> {
        if rng.gen::<f64>() >= self.p || self.axes.len() < 2 || self.turns.is_empty() {
            return None;
        }
        let turns = self.turns[rng.gen_range(0..self.turns.len())];
        let mut pair: Vec<usize> = self.axes.choose_multiple(rng, 2).copied().collect();
        pair.sort_unstable();
        Some(Rot90 {
            turns,
            axes: [pair[0], pair[1]],
        })
    }
}

/// `turns` quarter turns in the plane of `axes`, from the first axis towards the second
/// (`torch.rot90(x, turns, dims=axes)`: one turn maps `out[i, j] = in[j, n - 1 - i]`). Odd
/// turns swap the two axes' lengths; the random transform only turns axes of equal length, so
/// samples keep their shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rot90 {
    /// Number of quarter turns (taken modulo 4).
    pub turns: u8,
    /// Spatial axes `(z = 0, y = 1, x = 2)` of the plane, of equal length.
    pub axes: [usize; 2],
}

impl Rot90 {
    /// Turns an array `(c, z, y, x)`; the array itself when there is nothing to turn (no
    /// turn, or `axes` not two distinct spatial axes).
    pub fn apply<T: Clone>(&self, array: Array4<T>) -> Array4<T> {
        let [a, b] = self.axes.map(|axis| Axis(axis + 1));
        if a == b || a.0 > 3 || b.0 > 3 {
            return array;
        }
        let mut view = array.view();
        match self.turns % 4 {
            0 => return array,
            1 => {
                view.invert_axis(b);
                view.swap_axes(a.0, b.0);
            }
            2 => {
                view.invert_axis(a);
                view.invert_axis(b);
            }
            _ => {
                view.invert_axis(a);
                view.swap_axes(a.0, b.0);
            }
        }
        view.as_standard_layout().into_owned()
    }
}

/// Draws [`Transpose`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomTranspose {
    /// Probability of transposing (0.5).
    pub p: f64,
    /// Axes `(z = 0, y = 1, x = 2)` of equal length that are permuted among themselves.
    pub axes: Vec<usize>,
}

impl RandomTranspose {
    /// DA5's settings for `axes` ([`equal_length_axes`]); `None` for fewer than two axes.
    pub fn da5(axes: &[usize]) -> Option<RandomTranspose> {
        (axes.len() >= 2).then(|| RandomTranspose {
            p: 0.5,
            axes: axes.to_vec(),
        })
    }

    /// Draws a uniformly random permutation of the allowed axes (the identity included), or
    /// `None` (not applied).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Option<Transpose> {
        if rng.gen::<f64>() >= self.p {
            return None;
        }
        let mut shuffled = self.axes.clone();
        shuffled.shuffle(rng);
        let mut order = [0, 1, 2];
        for (&slot, &axis) in self.axes.iter().zip(&shuffled) {
            order[slot] = axis;
        }
        Some(Transpose { order })
    }
}

/// Permutes the spatial axes: output axis `i` is input axis `order[i]` (`x.permute(..)`); the
/// random transform only permutes axes of equal length, so samples keep their shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transpose {
    /// A permutation of `(0, 1, 2)` (`z`, `y`, `x`).
    pub order: [usize; 3],
}

impl Transpose {
    /// Permutes an array `(c, z, y, x)`; the array itself for the identity or an `order` that
    /// is not a permutation of `(0, 1, 2)`.
    pub fn apply<T: Clone>(&self, array: Array4<T>) -> Array4<T> {
        let mut sorted = self.order;
        sorted.sort_unstable();
        if self.order == [0, 1, 2] || sorted != [0, 1, 2] {
            return array;
        }
        let [a, b, c] = self.order.map(|axis| axis + 1);
        array
            .view()
            .permuted_axes([0, a, b, c])
            .as_standard_layout()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeMap;

    fn ramp(shape: (usize, usize, usize, usize)) -> Array4<i32> {
        Array4::from_shape_fn(shape, |(c, z, y, x)| {
            (c * 1000 + z * 100 + y * 10 + x) as i32
        })
    }

    #[test]
    fn valid_axes_follow_da5s_matching_rule() {
        use SpatialMode::*;
        assert_eq!(equal_length_axes([64, 64, 64], Volumetric), vec![0, 1, 2]);
        assert_eq!(equal_length_axes([40, 56, 40], Volumetric), vec![0, 2]);
        assert_eq!(equal_length_axes([20, 192, 192], Dummy2d), vec![1, 2]);
        assert!(equal_length_axes([80, 192, 160], Volumetric).is_empty());
        // 2D: z = 1 never matches.
        assert_eq!(equal_length_axes([1, 256, 256], Planar), vec![1, 2]);
        assert!(equal_length_axes([1, 1, 256], Planar).is_empty());
        assert!(RandomRot90::da5(&[]).is_none() && RandomTranspose::da5(&[2]).is_none());
    }

    #[test]
    fn one_turn_of_a_known_plane() {
        // torch.rot90([[0, 1, 2], [10, 11, 12], [20, 21, 22]], 1, (0, 1))
        // = [[2, 12, 22], [1, 11, 21], [0, 10, 20]].
        let a = ramp((1, 1, 3, 3));
        let out = Rot90 {
            turns: 1,
            axes: [1, 2],
        }
        .apply(a);
        let got: Vec<i32> = out.iter().copied().collect();
        assert_eq!(got, vec![2, 12, 22, 1, 11, 21, 0, 10, 20]);
        assert!(out.is_standard_layout());
    }

    #[test]
    fn turns_compose_and_four_are_the_identity() {
        let a = ramp((2, 4, 4, 3));
        let turn = |k, arr| {
            Rot90 {
                turns: k,
                axes: [0, 1],
            }
            .apply(arr)
        };
        let twice = turn(1, turn(1, a.clone()));
        assert_eq!(twice, turn(2, a.clone()));
        assert_eq!(turn(1, turn(3, a.clone())), a);
        assert_eq!(turn(0, a.clone()), a);
        for ((c, z, y, x), &v) in turn(1, a.clone()).indexed_iter() {
            // One turn from axis 0 towards axis 1: out[z, y] = in[y, n - 1 - z].
            assert_eq!(v, a[[c, y, 3 - z, x]]);
        }
        for ((c, z, y, x), &v) in turn(3, a.clone()).indexed_iter() {
            assert_eq!(v, a[[c, 3 - y, z, x]]);
        }
    }

    #[test]
    fn transpose_permutes_axes() {
        let a = ramp((1, 3, 3, 3));
        let out = Transpose { order: [2, 0, 1] }.apply(a.clone());
        for ((c, z, y, x), &v) in out.indexed_iter() {
            // Output axis 0 is input axis 2, etc.
            let mut idx = [0; 3];
            idx[2] = z;
            idx[0] = y;
            idx[1] = x;
            assert_eq!(v, a[[c, idx[0], idx[1], idx[2]]]);
        }
        assert_eq!(Transpose { order: [0, 1, 2] }.apply(a.clone()), a);
        assert_eq!(Transpose { order: [0, 0, 1] }.apply(a.clone()), a);
        // Turning a non-square plane swaps its lengths (as torch.rot90); a degenerate plane is
        // left alone.
        let b = ramp((1, 2, 3, 4));
        let turned = Rot90 {
            turns: 1,
            axes: [1, 2],
        }
        .apply(b.clone());
        assert_eq!(turned.shape(), &[1, 2, 4, 3]);
        assert_eq!(turned[[0, 1, 0, 2]], b[[0, 1, 2, 3]]);
        let same = Rot90 {
            turns: 1,
            axes: [2, 2],
        };
        assert_eq!(same.apply(b.clone()), b);
    }

    #[test]
    fn draws_cover_turns_and_permutations_uniformly() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let rot = RandomRot90::da5(&[0, 1, 2]).unwrap();
        let n = 24_000;
        let mut turns = [0usize; 4];
        let mut planes: BTreeMap<[usize; 2], usize> = BTreeMap::new();
        let mut fired = 0;
        for _ in 0..n {
            if let Some(r) = rot.sample(&mut rng) {
                fired += 1;
                turns[r.turns as usize] += 1;
                *planes.entry(r.axes).or_default() += 1;
            }
        }
        assert!((fired as f64 / n as f64 - 0.5).abs() < 0.015, "{fired}");
        assert!(turns
            .iter()
            .all(|&t| (t as f64 / fired as f64 - 0.25).abs() < 0.02));
        assert_eq!(
            planes.keys().copied().collect::<Vec<_>>(),
            vec![[0, 1], [0, 2], [1, 2]]
        );
        assert!(planes
            .values()
            .all(|&v| (v as f64 / fired as f64 - 1.0 / 3.0).abs() < 0.02));
        let transpose = RandomTranspose::da5(&[1, 2]).unwrap();
        let draws: Vec<Option<Transpose>> = (0..n).map(|_| transpose.sample(&mut rng)).collect();
        let swapped = draws
            .iter()
            .filter(|t| t.map(|t| t.order) == Some([0, 2, 1]))
            .count();
        let identity = draws
            .iter()
            .filter(|t| t.map(|t| t.order) == Some([0, 1, 2]))
            .count();
        // p 0.5, then either order with p 0.5.
        assert!((swapped as f64 / n as f64 - 0.25).abs() < 0.015);
        assert!((identity as f64 / n as f64 - 0.25).abs() < 0.015);
        let all = RandomTranspose::da5(&[0, 1, 2]).unwrap();
        let mut perms: BTreeMap<[usize; 3], usize> = BTreeMap::new();
        for t in (0..n).filter_map(|_| all.sample(&mut rng)) {
            *perms.entry(t.order).or_default() += 1;
        }
        assert_eq!(perms.len(), 6);
    }
}
