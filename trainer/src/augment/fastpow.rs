//! `x^g` over a slice of `f32`, vectorised, for the gamma augmentation's curve.
//!
//! libm's `powf` is a scalar call per voxel and dominated the gamma transform (about 8 ns per
//! voxel). [`powf_in_place`] computes the same power in f64 with only IEEE additions,
//! multiplications, one division, integer bit operations and selects, so LLVM vectorises the
//! loop (8 f64 lanes under AVX-512F, 4 under AVX2, chosen at run time). Before rounding to f32
//! the relative error is about 1e-14: the f32 result equals the correctly rounded `x^g` except
//! when the exact value lies within that distance of a halfway point between two floats (about
//! one value in a million in the tests), and is then 1 ULP away.
//!
//! The method: `x = 2^k · m` with `m` in `[√½, √2)`, read from the bits of `x` as f64 (f32
//! subnormals are normal in f64); `log2 m = 2/ln 2 · atanh(s)` with `s = (m - 1)/(m + 1)` by its
//! series in `s²`; then `y = g·k + g·log2 m` (the first product exact), `n = round(y)`,
//! `2^(y - n)` by the Taylor series of `exp` and `n` added to the exponent bits. Integers
//! become floats by the magic-constant trick (OR into the mantissa of `2^52`, subtract), since
//! AVX2 has no i64 ↔ f64 conversion and LLVM would otherwise fall back to scalar code. No
//! `mul_add` is used, so the AVX-512 and AVX2+FMA builds agree bit for bit with the plain build
//! (tested); CPUs without AVX2 use libm, which is faster there.

/// Largest exponent `g` taken by the vectorised path; others use libm's `powf` per value.
const MAX_FAST_EXPONENT: f32 = 16.0;

/// `2^52 − frac(√2)`: added to the bits of `x`, it carries into the exponent exactly when the
/// mantissa is at least √2, which moves the mantissa into `[√½, √2)`.
const SQRT2_CARRY: u64 = 0x0009_5f61_9980_c433;
/// Bits of 1.0, the biased exponent 1023 in place.
const EXPONENT_BIAS_BITS: u64 = 1023 << 52;
/// Bits of `2^52`: OR-ing an integer below 2^52 into them gives the float `2^52 + integer`.
const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
/// `2^52 + 1023`: subtracting it from `2^52 + biased exponent` leaves the exponent.
const TWO_52_PLUS_BIAS: f64 = 4_503_599_627_370_496.0 + 1023.0;
/// `1.5 · 2^52`: `(y + ROUND) - ROUND` rounds `y` to the nearest integer (ties to even) for
/// `|y| < 2^51`, and the low bits of `y + ROUND` hold that integer in two's complement.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// Bits of [`ROUND`].
const ROUND_BITS: u64 = 0x4338_0000_0000_0000;
/// Scale exponents beyond ±1020 already give 0 or ∞ in f32; the clamp keeps the biased
/// exponent field of the result inside `[1, 2046]`.
const MAX_SCALE: f64 = 1020.0;

/// `2/ln 2 · 1/(2j + 1)`, j = 0..=7: `log2 m = s · Σ LOG2_ATANH[j] · s^(2j)`. With
/// `|s| ≤ 0.1716` the first omitted term, `s^17/17 · 2/ln 2`, is below 2e-14.
const LOG2_ATANH: [f64; 8] = [
    2.0 * std::f64::consts::LOG2_E,
    2.0 * std::f64::consts::LOG2_E / 3.0,
    2.0 * std::f64::consts::LOG2_E / 5.0,
    2.0 * std::f64::consts::LOG2_E / 7.0,
    2.0 * std::f64::consts::LOG2_E / 9.0,
    2.0 * std::f64::consts::LOG2_E / 11.0,
    2.0 * std::f64::consts::LOG2_E / 13.0,
    2.0 * std::f64::consts::LOG2_E / 15.0,
];

/// `1/i!`, i = 0..=11: `e^z = Σ EXP_TAYLOR[i] · z^i`. With `|z| ≤ ln 2 / 2 ≈ 0.347` the first
/// omitted term, `z^12/12!`, is below 7e-15 (relative to `e^z ≥ 0.7`, below 1e-14).
const EXP_TAYLOR: [f64; 12] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
];

/// Replaces every `v` in `values` by `v^g`.
///
/// Accurate (see the module docs) for every `v ≥ 0` including subnormals and `+∞`, with
/// `0^g = 0`; a NaN or a negative `v` gives NaN (libm gives `-0.0` for `(-0.0)^g` with odd
/// integer `g`, and a finite value for negative `v` with integer `g`: this function does not).
/// Exponents outside `(0, 16]`, and NaN, take libm's `powf` for every value.
pub(super) fn powf_in_place(values: &mut [f32], g: f32) {
    if !(g > 0.0 && g <= MAX_FAST_EXPONENT) {
        values.iter_mut().for_each(|v| *v = v.powf(g));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: `powf_avx512` only requires AVX-512F, detected on this CPU just above.
        unsafe { powf_avx512(values, g) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: `powf_avx2` only requires AVX2 and FMA, both detected on this CPU just above.
        unsafe { powf_avx2(values, g) };
        return;
    }
    // Without wide vectors (x86 before AVX2, aarch64's 2-lane f64) the kernel is slower than
    // libm, so these CPUs take libm (within 1 ULP of the kernel).
    values.iter_mut().for_each(|v| *v = v.powf(g));
}

/// [`powf_kernel`] compiled for the build's baseline CPU (the reference the wide builds are
/// tested against).
#[cfg(test)]
fn powf_plain(values: &mut [f32], g: f32) {
    powf_kernel(values, g);
}

/// [`powf_kernel`] compiled with AVX2 and FMA: 4 f64 lanes. Callers must check the features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn powf_avx2(values: &mut [f32], g: f32) {
    powf_kernel(values, g);
}

/// [`powf_kernel`] compiled with AVX-512F: 8 f64 lanes. Callers must check the feature.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn powf_avx512(values: &mut [f32], g: f32) {
    powf_kernel(values, g);
}

/// The loop all builds share; `g` must lie in `(0, 16]`.
#[inline(always)]
fn powf_kernel(values: &mut [f32], g: f32) {
    let g = f64::from(g);
    for v in values.iter_mut() {
        *v = pow_positive(f64::from(*v), g) as f32;
    }
}

/// `x^g` for `g` in `(0, 16]`: the power for `x > 0` (∞ for ∞), 0 for `x = ±0`, NaN otherwise.
#[inline(always)]
fn pow_positive(x: f64, g: f64) -> f64 {
    let (k, log2_m) = log2_split(x);
    // `g` has 24 significant bits and `|k| ≤ 1024`, so `g·k` is exact; splitting `y` this way
    // keeps the reduced argument accurate when `|y|` is large (tiny `x`).
    let gk = g * k;
    let gl = g * log2_m;
    let n = ((gk + gl) + ROUND) - ROUND;
    let power = scale_by_pow2(exp2_reduced((gk - n) + gl), n);
    if x == f64::INFINITY {
        x
    } else if x > 0.0 {
        power
    } else if x == 0.0 {
        0.0
    } else {
        f64::NAN
    }
}

/// `(k, log2 m)` with `x = 2^k · m`, `m` in `[√½, √2)`, for finite `x > 0`
/// (other inputs give meaningless values that the caller replaces).
#[inline(always)]
fn log2_split(x: f64) -> (f64, f64) {
    let bits = x.to_bits();
    let biased_k = bits.wrapping_add(SQRT2_CARRY) >> 52;
    let m_bits = bits
        .wrapping_sub(biased_k << 52)
        .wrapping_add(EXPONENT_BIAS_BITS);
    let k = f64::from_bits(TWO_52_BITS | (biased_k & 0x7ff)) - TWO_52_PLUS_BIAS;
    let m = f64::from_bits(m_bits);
    let s = (m - 1.0) / (m + 1.0);
    let t = s * s;
    let (t2, c) = (t * t, &LOG2_ATANH);
    let pair = |i: usize| c[i] + c[i + 1] * t;
    let series = (pair(0) + pair(2) * t2) + (pair(4) + pair(6) * t2) * (t2 * t2);
    (k, s * series)
}

/// `2^f` for `f` in about `[-0.5, 0.5]`.
///
/// Both series are summed by Estrin's scheme: pairs and powers are independent, so the
/// dependency chain is about 4 multiply-adds long instead of Horner's 7 or 11 (with Horner the
/// loop was latency-bound: 6.5 instead of 4.5 ns per value).
#[inline(always)]
fn exp2_reduced(f: f64) -> f64 {
    let z = f * std::f64::consts::LN_2;
    let (z2, c) = (z * z, &EXP_TAYLOR);
    let z4 = z2 * z2;
    let pair = |i: usize| c[i] + c[i + 1] * z;
    let low = (pair(0) + pair(2) * z2) + (pair(4) + pair(6) * z2) * z4;
    let high = pair(8) + pair(10) * z2;
    low + high * (z4 * z4)
}

/// `p · 2^n` for `p` in `[0.7, 1.5)` and integral `n`, by adding `n` (clamped to ±1020) to the
/// exponent bits of `p`.
#[inline(always)]
fn scale_by_pow2(p: f64, n: f64) -> f64 {
    let n_bits = (n.clamp(-MAX_SCALE, MAX_SCALE) + ROUND)
        .to_bits()
        .wrapping_sub(ROUND_BITS);
    f64::from_bits(p.to_bits().wrapping_add(n_bits << 52))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Gamma;
    use ndarray::{s, Array4};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const GAMMAS: [f32; 5] = [0.7, 0.8333, 1.0, 1.2, 1.5];

    /// The correctly rounded reference: libm's f64 `pow`, rounded to f32.
    fn reference(x: f32, g: f32) -> f32 {
        f64::from(x).powf(f64::from(g)) as f32
    }

    fn pow_all(xs: &[f32], g: f32) -> Vec<f32> {
        let mut out = xs.to_vec();
        powf_in_place(&mut out, g);
        out
    }

    /// Every 61st f32 in `[0, 2]`, plus 0, 1, 2, the smallest normal, subnormals and the
    /// floats next to 1.
    fn sweep() -> Vec<f32> {
        let mut xs: Vec<f32> = (0..=2.0f32.to_bits())
            .step_by(61)
            .map(f32::from_bits)
            .collect();
        xs.extend([0.0, 1.0, 2.0, f32::MIN_POSITIVE, 1e-45, 1e-40, 3e-39]);
        xs.extend((1..2000).map(|i| f32::from_bits(1.0f32.to_bits() - i)));
        xs.extend((1..2000).map(|i| f32::from_bits(1.0f32.to_bits() + i)));
        xs.extend((1..2000).map(|i| f32::from_bits(i * 4099)));
        xs
    }

    #[test]
    fn sweep_is_within_one_ulp_and_rarely_differs() {
        let xs = sweep();
        for g in GAMMAS {
            let got = pow_all(&xs, g);
            let mut n_differ = 0usize;
            for (&x, &y) in xs.iter().zip(&got) {
                let want = reference(x, g);
                let ulps = (i64::from(y.to_bits()) - i64::from(want.to_bits())).abs();
                assert!(ulps <= 1, "{x:e}^{g}: {y:e} vs {want:e}");
                n_differ += usize::from(ulps != 0);
            }
            let fraction = n_differ as f64 / xs.len() as f64;
            assert!(
                fraction < 1e-5,
                "g = {g}: {n_differ} of {} differ",
                xs.len()
            );
        }
    }

    #[test]
    fn zero_one_infinity_and_nan() {
        for g in GAMMAS.into_iter().chain([0.01, 4.0, 16.0]) {
            let got = pow_all(&[0.0, -0.0, 1.0, f32::INFINITY, f32::NAN, -0.5], g);
            assert_eq!(got[0].to_bits(), 0, "0^{g}");
            assert_eq!(got[1].to_bits(), 0, "(-0)^{g}");
            assert_eq!(got[2], 1.0, "1^{g}");
            assert_eq!(got[3], f32::INFINITY, "inf^{g}");
            assert!(got[4].is_nan() && got[5].is_nan(), "{g}: {got:?}");
        }
    }

    #[test]
    fn extreme_results_saturate_like_libm() {
        // 2^-149 · 4 = 2^-147 squared -> 2^-294: 0 in f32; 1e30^4 overflows; 2^-149 ^ 0.25 is
        // 2^-37.25, a normal float.
        for (x, g) in [
            (1e-45f32, 2.0f32),
            (1e30, 4.0),
            (1e-45, 0.25),
            (3e38, 1.1),
            (7.0, 9.5),
        ] {
            let got = pow_all(&[x], g)[0];
            let want = reference(x, g);
            let ulps = (i64::from(got.to_bits()) - i64::from(want.to_bits())).abs();
            assert!(ulps <= 1, "{x:e}^{g}: {got:e} vs {want:e}");
        }
    }

    #[test]
    fn exponents_outside_the_fast_range_use_libm() {
        let xs = [0.0f32, 0.3, 1.0, 1.7];
        for g in [0.0f32, -1.5, 20.0, f32::NAN] {
            let want: Vec<u32> = xs.iter().map(|x| x.powf(g).to_bits()).collect();
            let got: Vec<u32> = pow_all(&xs, g).iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "g = {g}");
        }
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    #[test]
    fn wide_builds_match_the_plain_build_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let xs: Vec<f32> = (0..1_000_003)
            .map(|i| match i % 4 {
                0 => rng.gen::<f32>(),
                1 => rng.gen::<f32>() * 2.0,
                2 => f32::from_bits(rng.gen_range(0..=2.0f32.to_bits())),
                _ => f32::from_bits(rng.gen_range(0..0x0080_0000)),
            })
            .collect();
        for g in GAMMAS {
            let mut plain = xs.clone();
            powf_plain(&mut plain, g);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                let mut dispatched = xs.clone();
                powf_in_place(&mut dispatched, g);
                assert!(same_bits(&dispatched, &plain), "g = {g}: dispatched build");
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                let mut wide = xs.clone();
                // SAFETY: AVX2 and FMA were detected just above.
                unsafe { powf_avx2(&mut wide, g) };
                assert!(same_bits(&wide, &plain), "g = {g}: AVX2 build");
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut wide = xs.clone();
                // SAFETY: AVX-512F was detected just above.
                unsafe { powf_avx512(&mut wide, g) };
                assert!(same_bits(&wide, &plain), "g = {g}: AVX-512 build");
            }
        }
    }

    #[test]
    fn gamma_on_a_strided_view_matches_the_contiguous_path() {
        // The x-reversed view is not contiguous, so `Gamma::apply` takes its strided path.
        let values: Vec<f32> = (0..2 * 3 * 5 * 7)
            .map(|i| ((i * 37) % 101) as f32 / 7.0 - 3.0)
            .collect();
        let data = Array4::from_shape_vec((2, 3, 5, 7), values).unwrap();
        for invert in [false, true] {
            let gamma = Gamma {
                gammas: vec![0.8, 1.4],
                invert,
            };
            let mut strided = data.clone();
            gamma.apply(strided.slice_mut(s![.., .., .., ..;-1]));
            let mut flipped = data.slice(s![.., .., .., ..;-1]).to_owned();
            gamma.apply(flipped.view_mut());
            let back = flipped.slice(s![.., .., .., ..;-1]);
            for (a, b) in strided.iter().zip(back.iter()) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }
}
