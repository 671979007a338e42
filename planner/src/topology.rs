//! The U-Net topology for a patch: how often each axis is downsampled, the stride and kernel of
//! every stage, and the patch padded to a size every stage can divide.
//!
//! nnU-Net: `experiment_planning/experiment_planners/network_topology.py`
//! (`get_pool_and_conv_props`, `pad_shape`), with `min_feature_map_size = 4` and no limit on
//! the number of poolings.

/// Smallest edge length a bottleneck feature map may have (nnU-Net's
/// `UNet_featuremap_min_edge_length`).
const MIN_FEATURE_MAP_SIZE: f64 = 4.0;

/// Result of [`pool_and_conv_props`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    /// Stride of every stage; stage 0 is all ones.
    pub strides: Vec<Vec<usize>>,
    /// Convolution kernel of every stage; the bottleneck's is all threes.
    pub kernels: Vec<Vec<usize>>,
    /// The patch rounded up per axis to a multiple of [`Topology::divisor`].
    pub patch_size: Vec<usize>,
    /// `2 ** poolings` per axis: what every patch edge must be divisible by.
    pub divisor: Vec<usize>,
}

impl Topology {
    /// Number of resolution stages.
    pub fn n_stages(&self) -> usize {
        self.strides.len()
    }
}

/// Chooses strides and kernels for `patch_size` at `spacing` and pads the patch.
///
/// Loop: axes whose current size is at least 8 and whose current spacing is within a factor 2
/// of the smallest such spacing are downsampled together; a lone axis needs size >= 12. Kernels
/// become 3 (and stay 3) once an axis' spacing is within a factor 2 of the smallest spacing.
/// Sizes are floats because the initial patch may be clipped to a fractional median shape.
pub(crate) fn pool_and_conv_props(spacing: &[f64], patch_size: &[f64]) -> Topology {
    let dim = spacing.len();
    let mut current_spacing = spacing.to_vec();
    let mut current_size = patch_size.to_vec();
    let mut strides = vec![vec![1; dim]];
    let mut kernels = Vec::new();
    let mut n_pool = vec![0u32; dim];
    let mut kernel = vec![1; dim];
    loop {
        let pool_axes = axes_to_pool(&current_spacing, &current_size);
        if pool_axes.is_empty() {
            break;
        }
        let min_spacing = current_spacing
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        for d in 0..dim {
            if kernel[d] != 3 && current_spacing[d] / min_spacing < 2.0 {
                kernel[d] = 3;
            }
        }
        let mut stride = vec![1; dim];
        for &axis in &pool_axes {
            stride[axis] = 2;
            n_pool[axis] += 1;
            current_spacing[axis] *= 2.0;
            current_size[axis] = (current_size[axis] / 2.0).ceil();
        }
        strides.push(stride);
        kernels.push(kernel.clone());
    }
    kernels.push(vec![3; dim]);
    let divisor: Vec<usize> = n_pool.iter().map(|&n| 1usize << n).collect();
    Topology {
        strides,
        kernels,
        patch_size: pad_shape(patch_size, &divisor),
        divisor,
    }
}

/// The axes downsampled in the next stage; empty when downsampling stops.
fn axes_to_pool(current_spacing: &[f64], current_size: &[f64]) -> Vec<usize> {
    let big_enough: Vec<usize> = (0..current_size.len())
        .filter(|&d| current_size[d] >= 2.0 * MIN_FEATURE_MAP_SIZE)
        .collect();
    let Some(min_spacing) = big_enough
        .iter()
        .map(|&d| current_spacing[d])
        .reduce(f64::min)
    else {
        return Vec::new();
    };
    let axes: Vec<usize> = big_enough
        .into_iter()
        .filter(|&d| current_spacing[d] / min_spacing < 2.0)
        .collect();
    if axes.len() == 1 && current_size[axes[0]] < 3.0 * MIN_FEATURE_MAP_SIZE {
        return Vec::new();
    }
    axes
}

/// nnU-Net's `pad_shape`: rounds each edge up to a multiple of its divisor (unchanged when
/// already divisible), then truncates to an integer like numpy's `astype(int)`.
fn pad_shape(shape: &[f64], divisor: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .zip(divisor)
        .map(|(&s, &d)| {
            let d = d as f64;
            let rem = s % d;
            let padded = if rem == 0.0 { s } else { s + d - rem };
            padded as usize
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hippocampus_patch_pools_three_times_isotropically() {
        let t = pool_and_conv_props(&[1.0; 3], &[36.0, 50.0, 35.0]);
        assert_eq!(
            t.strides,
            vec![vec![1, 1, 1], vec![2, 2, 2], vec![2, 2, 2], vec![2, 2, 2]]
        );
        assert_eq!(t.kernels, vec![vec![3, 3, 3]; 4]);
        assert_eq!(t.patch_size, vec![40, 56, 40]);
        assert_eq!(t.divisor, vec![8, 8, 8]);
    }

    #[test]
    fn anisotropic_prostate_patch_gets_in_plane_pooling_and_1x3x3_kernels_first() {
        // nnunet.md §12 Prostate-like: spacing (3.0, 0.625, 0.625), patch (24, 256, 256).
        let t = pool_and_conv_props(&[3.0, 0.625, 0.625], &[24.0, 256.0, 256.0]);
        let s = |z, y| vec![z, y, y];
        assert_eq!(
            t.strides,
            vec![
                s(1, 1),
                s(1, 2),
                s(1, 2),
                s(2, 2),
                s(2, 2),
                s(1, 2),
                s(1, 2)
            ]
        );
        let mut kernels = vec![vec![1, 3, 3]; 2];
        kernels.extend(vec![vec![3, 3, 3]; 5]);
        assert_eq!(t.kernels, kernels);
        assert_eq!(t.patch_size, vec![24, 256, 256]);
    }

    #[test]
    fn pad_shape_rounds_up_fractional_and_integer_edges() {
        assert_eq!(
            pad_shape(&[115.0, 128.0, 319.5], &[32, 32, 64]),
            vec![128, 128, 320]
        );
        // Heart-like: the clipped initial patch (115, 264, 232) pads to (128, 320, 256).
        let t = pool_and_conv_props(&[1.37, 1.25, 1.25], &[115.0, 264.0, 232.0]);
        assert_eq!(t.patch_size, vec![128, 320, 256]);
    }

    #[test]
    fn tiny_patch_does_not_pool() {
        let t = pool_and_conv_props(&[1.0, 1.0], &[7.0, 12.0]);
        // Only axis 1 is >= 8, and a lone axis needs >= 12: one pooling, then 6 < 8 stops it.
        assert_eq!(t.strides, vec![vec![1, 1], vec![1, 2]]);
        assert_eq!(t.divisor, vec![1, 2]);
        let none = pool_and_conv_props(&[1.0, 1.0], &[7.0, 11.0]);
        assert_eq!(none.n_stages(), 1);
        assert_eq!(none.kernels, vec![vec![3, 3]]);
    }
}
