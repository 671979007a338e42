//! The Gaussian importance map that weights each tile's logits: high in the centre of a patch,
//! low (but never zero) at its borders.
//!
//! nnU-Net: `sliding_window_prediction.py::compute_gaussian` with `sigma_scale = 1/8` and
//! `value_scaling_factor = 10`, as `predict_from_raw_data.py` calls it.

use autoseg_preprocessing::limits;
use half::f16;
use half::slice::HalfFloatSliceExt;
use tch::{Device, Tensor};

use crate::InferenceError;

/// nnU-Net's `sigma_scale`: σ is 1/8 of the patch size on each axis.
pub const NNUNET_SIGMA_SCALE: f64 = 1.0 / 8.0;
/// nnU-Net's `value_scaling_factor`: the map's maximum.
pub const NNUNET_VALUE_SCALING: f64 = 10.0;

/// scipy's `gaussian_filter` truncation, in standard deviations.
const TRUNCATE: f64 = 4.0;

/// The Gaussian importance map of a patch, as float16 on `device`.
///
/// Equals nnU-Net's construction: a unit impulse at `patch // 2` filtered with scipy's
/// `gaussian_filter(sigma = patch * sigma_scale, mode='constant', truncate=4)` (in float64,
/// separable, normalised kernels of radius `int(4σ + 0.5)`), divided by its maximum and
/// multiplied by `value_scaling`, cast to float16, and every zero (float16 underflow in the
/// corners, or beyond the kernel radius) replaced by the smallest nonzero value. For a 128³ patch
/// the maximum is 10 and the minimum 2⁻²⁴ ≈ 5.96e-8.
///
/// # Errors
/// [`InferenceError::InvalidPatch`] for an empty patch or a zero size;
/// [`InferenceError::PatchOverCeiling`] when the map passes the memory ceiling;
/// [`InferenceError::Torch`] when libtorch fails.
pub fn gaussian_importance_map(
    patch: &[usize],
    sigma_scale: f64,
    value_scaling: f64,
    device: Device,
) -> Result<Tensor, InferenceError> {
    if patch.is_empty() || patch.contains(&0) {
        return Err(InferenceError::InvalidPatch {
            patch: patch.to_vec(),
        });
    }
    // The float16 map, checked before it is allocated.
    let bytes = patch
        .iter()
        .fold(2u128, |acc, &n| acc.saturating_mul(n as u128));
    limits::check_volume_bytes(bytes).map_err(|memory| InferenceError::PatchOverCeiling {
        patch: patch.to_vec(),
        memory,
    })?;
    let profiles: Vec<Vec<f64>> = patch
        .iter()
        .map(|&size| axis_profile(size, size as f64 * sigma_scale))
        .collect();
    let centre: f64 = patch
        .iter()
        .zip(&profiles)
        .fold(1.0, |acc, (&size, profile)| acc * profile[size / 2]);
    let scale = centre / value_scaling;
    let mut map = scaled_half_map(&profiles, scale);
    replace_zeros_with_min_nonzero(&mut map);
    let shape: Vec<i64> = patch.iter().map(|&s| s as i64).collect();
    Ok(Tensor::f_from_slice(&map)?
        .f_reshape(shape.as_slice())?
        .f_to_device(device)?)
}

/// The outer product of the axis profiles in C order divided by `scale`, in float16. Each
/// value is multiplied up axis 0 first, as scipy filters axis after axis
/// (`((1 · p0[i]) · p1[j]) · p2[k] / scale`, in float64), then cast as libtorch casts float64
/// to float16: to float32 first, then to nearest even.
fn scaled_half_map(profiles: &[Vec<f64>], scale: f64) -> Vec<f16> {
    let (last, outer) = profiles
        .split_last()
        .expect("a patch has at least one axis");
    let rows = outer.iter().fold(vec![1.0], |values, profile| {
        values
            .iter()
            .flat_map(|&v| profile.iter().map(move |&p| v * p))
            .collect()
    });
    let mut wide = vec![0f32; last.len()];
    let mut map = vec![f16::ZERO; rows.len() * last.len()];
    for (&row, out) in rows.iter().zip(map.chunks_mut(last.len())) {
        wide.iter_mut()
            .zip(last)
            .for_each(|(w, &p)| *w = (row * p / scale) as f32);
        out.convert_from_f32_slice(&wide);
    }
    map
}

/// nnU-Net's `gaussian[gaussian == 0] = torch.min(gaussian[gaussian != 0])`; a map without a
/// nonzero value stays as it is.
fn replace_zeros_with_min_nonzero(map: &mut [f16]) {
    let is_zero = |v: &f16| v.to_bits() & 0x7fff == 0;
    let min_nonzero = map
        .iter()
        .filter(|v| !is_zero(v))
        .min_by(|a, b| a.total_cmp(b))
        .copied();
    if let Some(min_nonzero) = min_nonzero {
        map.iter_mut()
            .filter(|v| is_zero(v))
            .for_each(|v| *v = min_nonzero);
    }
}

/// The filtered impulse along one axis: scipy's normalised `_gaussian_kernel1d` centred on
/// `size // 2`, zero beyond its radius.
fn axis_profile(size: usize, sigma: f64) -> Vec<f64> {
    if sigma <= 1e-15 {
        // scipy skips axes whose sigma is not above 1e-15: the impulse stays an impulse.
        return (0..size)
            .map(|i| f64::from(u8::from(i == size / 2)))
            .collect();
    }
    let radius = (TRUNCATE * sigma + 0.5) as i64;
    let factor = -0.5 / (sigma * sigma);
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|x| (factor * (x * x) as f64).exp())
        .collect();
    let sum: f64 = kernel.iter().sum();
    let centre = (size / 2) as i64;
    (0..size as i64)
        .map(|i| {
            let offset = i - centre;
            if offset.abs() <= radius {
                kernel[(offset + radius) as usize] / sum
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn map(patch: &[usize]) -> Tensor {
        gaussian_importance_map(patch, NNUNET_SIGMA_SCALE, NNUNET_VALUE_SCALING, Device::Cpu)
            .unwrap()
    }

    /// `x` rounded to float16 by libtorch.
    fn fp16(x: f64) -> f64 {
        Tensor::from(x).to_kind(Kind::Half).double_value(&[])
    }

    fn at(t: &Tensor, idx: &[i64]) -> f64 {
        t.f_double_value(idx).unwrap()
    }

    #[test]
    fn cube_128_has_nnunets_extremes() {
        // Reference §12: max 10.0, min (fp16) 5.96e-8 = 2^-24, the smallest subnormal.
        let g = map(&[128, 128, 128]);
        assert_eq!(g.kind(), Kind::Half);
        assert_eq!(g.size(), vec![128, 128, 128]);
        assert_eq!(g.max().double_value(&[]), 10.0);
        assert_eq!(g.min().double_value(&[]), 2f64.powi(-24));
        assert_eq!(at(&g, &[64, 64, 64]), 10.0);
        assert_eq!(at(&g, &[0, 0, 0]), 2f64.powi(-24));
        assert_eq!(
            i64::try_from(g.argmax(None, false)).unwrap(),
            (64 * 128 + 64) * 128 + 64
        );
    }

    #[test]
    fn map_is_symmetric_about_the_centre() {
        // Even sizes: the centre is size/2, so index c+k mirrors c-k; index 0 has no partner.
        let g = map(&[16, 20, 12]);
        let inner = g.narrow(0, 1, 15).narrow(1, 1, 19).narrow(2, 1, 11);
        assert!(inner.equal(&inner.flip([0, 1, 2])));
        // Odd sizes: fully symmetric.
        let g = map(&[9, 15]);
        assert!(g.equal(&g.flip([0])));
        assert!(g.equal(&g.flip([1])));
        assert_eq!(i64::try_from(g.argmax(None, false)).unwrap(), 4 * 15 + 7);
    }

    #[test]
    fn values_follow_the_closed_form() {
        // 10 * exp(-0.5 * (d/σ)²) per axis; σ = 2 for size 16. At offset 2 on one axis:
        // 10 * exp(-0.5) = 6.0653..., in fp16 6.0664 (nearest of spacing 2^-8 = 0.0039).
        let g = map(&[16, 16]);
        let expected = fp16(10.0 * (-0.5f64).exp());
        assert_eq!(at(&g, &[8, 10]), expected);
        assert_eq!(at(&g, &[6, 8]), expected);
        let diag = fp16(10.0 * (-1.0f64).exp());
        assert_eq!(at(&g, &[10, 6]), diag);
    }

    /// Σ (fp16 bits of element i) · (i mod 1000 + 1), over the map in C order.
    fn checksum(t: &Tensor) -> i64 {
        let bits = Vec::<i16>::try_from(t.view_dtype(Kind::Int16).flatten(0, -1)).unwrap();
        bits.iter()
            .enumerate()
            .map(|(i, &b)| i64::from(b as u16) * (i as i64 % 1000 + 1))
            .sum()
    }

    #[test]
    fn maps_equal_nnunets_bit_for_bit() {
        // nnU-Net 2.8.1 compute_gaussian(patch, 1/8, 10) with scipy and torch 2.11 on CPU, then
        // the checksum above (script: tests/golden/gaussian.py):
        // (40,56,40) 331769872685, min 2^-24 on 829 voxels; (80,192,160) 9098175532817;
        // (56,40) 12049789037, min 1.1324882507324219e-06; (5,7,6) 164855639; (1,9) 666950.
        let cases: [(&[usize], i64); 5] = [
            (&[40, 56, 40], 331_769_872_685),
            (&[80, 192, 160], 9_098_175_532_817),
            (&[56, 40], 12_049_789_037),
            (&[5, 7, 6], 164_855_639),
            (&[1, 9], 666_950),
        ];
        for (patch, expected) in cases {
            assert_eq!(checksum(&map(patch)), expected, "patch {patch:?}");
        }
        let g = map(&[40, 56, 40]);
        let n_min = g.eq(2f64.powi(-24)).sum(Kind::Int64);
        assert_eq!(i64::try_from(n_min).unwrap(), 829);
        assert_eq!(
            map(&[56, 40]).min().double_value(&[]),
            1.1324882507324219e-06
        );
        // (128,128,128): 7763711614181, 18987 voxels at the minimum.
        assert_eq!(checksum(&map(&[128, 128, 128])), 7_763_711_614_181);
    }

    #[test]
    fn rejects_empty_patches() {
        assert!(matches!(
            gaussian_importance_map(&[4, 0], 0.125, 10.0, Device::Cpu),
            Err(InferenceError::InvalidPatch { .. })
        ));
    }
}
