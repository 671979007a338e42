//! The resampler's row loop with AVX2: 8 output voxels at a time whose points all lie in the
//! interior (`0 <= q < S - 1` on every axis), with gathers for the 8 neighbours. The arithmetic
//! is the scalar path's, operation for operation and in the same order (no fused multiply-add),
//! so the results are bit-identical; groups with a point near the border, the row's tail and
//! label votes that are not unanimous go through the scalar code.

use std::arch::x86_64::*;

use super::{vote, Row, Source, Target};

/// [`Source::sample_row`] with AVX2.
///
/// # Safety
/// The CPU must support AVX2, and `src.channel_len` must not exceed `i32::MAX` (gather
/// offsets are i32 lanes).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sample_row(src: &Source<'_>, row: &Row, out: &mut Target<'_>, start: usize) {
    let n = row.len();
    let mut ox = 0;
    while ox + 8 <= n {
        // SAFETY: AVX2 is enabled in this function; `ox + 8 <= n`; i32 offsets by the caller.
        if !unsafe { sample_8(src, row, ox, out, start + ox) } {
            for i in ox..ox + 8 {
                src.sample_into(row.point(i), out, start + i);
            }
        }
        ox += 8;
    }
    for i in ox..n {
        src.sample_into(row.point(i), out, start + i);
    }
}

/// Truncations (as i32) and fractions (as f32) of 8 coordinates of one axis, or `None` when
/// one lies outside `[0, last)` (or is NaN).
#[target_feature(enable = "avx2")]
fn split_axis(q: &[f64], last: f64) -> Option<(__m256i, __m256)> {
    let (lo, hi) = (&q[..4], &q[4..8]);
    // SAFETY: each slice holds 4 f64; unaligned loads.
    let (lo, hi) = unsafe { (_mm256_loadu_pd(lo.as_ptr()), _mm256_loadu_pd(hi.as_ptr())) };
    let inside = |v: __m256d| {
        let ge = _mm256_cmp_pd::<_CMP_GE_OQ>(v, _mm256_setzero_pd());
        let lt = _mm256_cmp_pd::<_CMP_LT_OQ>(v, _mm256_set1_pd(last));
        _mm256_movemask_pd(_mm256_and_pd(ge, lt)) == 0b1111
    };
    if !(inside(lo) && inside(hi)) {
        return None;
    }
    // In [0, last) truncation is floor; as the scalar path: `(q - f64::from(q as i32)) as f32`.
    let (tl, th) = (_mm256_cvttpd_epi32(lo), _mm256_cvttpd_epi32(hi));
    let fl = _mm256_cvtpd_ps(_mm256_sub_pd(lo, _mm256_cvtepi32_pd(tl)));
    let fh = _mm256_cvtpd_ps(_mm256_sub_pd(hi, _mm256_cvtepi32_pd(th)));
    Some((_mm256_set_m128i(th, tl), _mm256_set_m128(fh, fl)))
}

/// Samples output voxels `voxel..voxel + 8` from the points `ox..ox + 8` of `row`; `false`
/// (nothing written) when one of them is not interior.
///
/// # Safety
/// As [`sample_row`]; `ox + 8 <= row.len()`.
#[target_feature(enable = "avx2")]
unsafe fn sample_8(
    src: &Source<'_>,
    row: &Row,
    ox: usize,
    out: &mut Target<'_>,
    voxel: usize,
) -> bool {
    let [lz, ly, lx] = src.last;
    let (Some((iz, fz)), Some((iy, fy)), Some((ix, fx))) = (
        split_axis(&row.z[ox..ox + 8], lz),
        split_axis(&row.y[ox..ox + 8], ly),
        split_axis(&row.x[ox..ox + 8], lx),
    ) else {
        return false;
    };
    let w = weights(fz, fy, fx);
    let [_, s1, s2] = src.shape.map(|s| _mm256_set1_epi32(s as i32));
    // (lz · S1 + ly) · S2 + lx: every point is interior, so this stays below channel_len.
    let base = _mm256_add_epi32(
        _mm256_mullo_epi32(_mm256_add_epi32(_mm256_mullo_epi32(iz, s1), iy), s2),
        ix,
    );
    let (row_len, plane) = (src.shape[2], src.shape[1] * src.shape[2]);
    let pairs = [0, row_len, plane, plane + row_len].map(|o| _mm256_set1_epi32(o as i32));
    for c in 0..src.n_channels {
        let channel = &src.data[c * src.channel_len..(c + 1) * src.channel_len];
        // SAFETY: interior points: every neighbour index lies inside `channel`.
        let sum = unsafe { interpolate(channel, base, &pairs, &w) };
        let dst = &mut out.data[c * out.len + voxel..][..8];
        // SAFETY: `dst` holds 8 f32.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), sum) };
    }
    for c in 0..src.n_seg_channels {
        let channel = &src.seg[c * src.channel_len..(c + 1) * src.channel_len];
        let dst = &mut out.seg[c * out.len + voxel..][..8];
        // SAFETY: as for the data.
        unsafe { vote_8(channel, base, &pairs, &w, dst) };
    }
    true
}

/// The 8 corner weights in `Neighbours` order, the products of `corner_weights`.
#[target_feature(enable = "avx2")]
fn weights(fz: __m256, fy: __m256, fx: __m256) -> [__m256; 8] {
    let one = _mm256_set1_ps(1.0);
    let (gz, gy, gx) = (
        _mm256_sub_ps(one, fz),
        _mm256_sub_ps(one, fy),
        _mm256_sub_ps(one, fx),
    );
    let zy = [
        _mm256_mul_ps(gz, gy),
        _mm256_mul_ps(gz, fy),
        _mm256_mul_ps(fz, gy),
        _mm256_mul_ps(fz, fy),
    ];
    std::array::from_fn(|k| _mm256_mul_ps(zy[k / 2], if k % 2 == 0 { gx } else { fx }))
}

/// `Σ w_k · v_k` over the 8 neighbours, summed left to right as the scalar path.
///
/// # Safety
/// AVX2; `base + pair + 1` lies inside `channel` in every lane for every `pair`.
#[target_feature(enable = "avx2")]
unsafe fn interpolate(
    channel: &[f32],
    base: __m256i,
    pairs: &[__m256i; 4],
    w: &[__m256; 8],
) -> __m256 {
    let ptr = channel.as_ptr();
    let mut sum = _mm256_setzero_ps();
    for (p, pair) in pairs.iter().enumerate() {
        let at = _mm256_add_epi32(base, *pair);
        // SAFETY: by the contract, `at` and `at + 1` index `channel`.
        let (v0, v1) = unsafe { gather_pairs(ptr, at) };
        let (t0, t1) = (_mm256_mul_ps(w[2 * p], v0), _mm256_mul_ps(w[2 * p + 1], v1));
        // The scalar sum starts with w0·v0 itself, not 0 + w0·v0 (the same for -0.0 only).
        sum = if p == 0 {
            _mm256_add_ps(t0, t1)
        } else {
            _mm256_add_ps(_mm256_add_ps(sum, t0), t1)
        };
    }
    sum
}

/// The label of each of 8 points: the common label when the 8 neighbours agree, else the
/// scalar [`vote`] with that point's weights.
///
/// # Safety
/// As [`interpolate`].
#[target_feature(enable = "avx2")]
unsafe fn vote_8(
    channel: &[i16],
    base: __m256i,
    pairs: &[__m256i; 4],
    w: &[__m256; 8],
    dst: &mut [i16],
) {
    let ptr = channel.as_ptr().cast::<i32>();
    // Each i32 lane holds two x neighbours: the label at `at` (low half) and at `at + 1`.
    // SAFETY: by the contract both halves index `channel` (scale 2: i16 elements).
    let words: [__m256i; 4] =
        pairs.map(|pair| unsafe { _mm256_i32gather_epi32::<2>(ptr, _mm256_add_epi32(base, pair)) });
    let low = _mm256_and_si256(words[0], _mm256_set1_epi32(0xffff));
    let both = _mm256_or_si256(low, _mm256_slli_epi32::<16>(low));
    let mut same = _mm256_set1_epi32(-1);
    for word in &words {
        same = _mm256_and_si256(same, _mm256_cmpeq_epi32(*word, both));
    }
    let unanimous = _mm256_movemask_ps(_mm256_castsi256_ps(same));
    let mut lanes = [[0i32; 8]; 4];
    for (lane, word) in lanes.iter_mut().zip(&words) {
        // SAFETY: each array holds 8 i32.
        unsafe { _mm256_storeu_si256(lane.as_mut_ptr().cast(), *word) };
    }
    let mut weights = [[0f32; 8]; 8];
    if unanimous != 0xff {
        for (lane, wk) in weights.iter_mut().zip(w) {
            // SAFETY: each array holds 8 f32.
            unsafe { _mm256_storeu_ps(lane.as_mut_ptr(), *wk) };
        }
    }
    for (i, out) in dst.iter_mut().enumerate() {
        let first = lanes[0][i] as i16;
        *out = if unanimous & (1 << i) != 0 {
            first
        } else {
            let labels: [i16; 8] =
                std::array::from_fn(|k| (lanes[k / 2][i] >> (16 * (k % 2))) as i16);
            vote(&labels, &std::array::from_fn(|k| weights[k][i]))
        };
    }
}

/// `(v[at], v[at + 1])` for 8 lanes with two 4-lane 64-bit gathers.
///
/// # Safety
/// AVX2; `at` and `at + 1` index the array behind `ptr` in every lane.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn gather_pairs(ptr: *const f32, at: __m256i) -> (__m256, __m256) {
    let ptr = ptr.cast::<f64>();
    // SAFETY: each 8-byte read covers `v[at]` and `v[at + 1]`.
    let (lo, hi) = unsafe {
        (
            _mm256_castpd_ps(_mm256_i32gather_pd::<4>(ptr, _mm256_castsi256_si128(at))),
            _mm256_castpd_ps(_mm256_i32gather_pd::<4>(
                ptr,
                _mm256_extracti128_si256::<1>(at),
            )),
        )
    };
    // lo = a0 b0 a1 b1 | a2 b2 a3 b3, hi = a4 b4 a5 b5 | a6 b6 a7 b7.
    let a = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
    let b = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
    // a = a0 a1 a4 a5 | a2 a3 a6 a7: 64-bit chunks (0, 2, 1, 3).
    let order =
        |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
    (order(a), order(b))
}
