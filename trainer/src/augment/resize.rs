//! Index maps of torch's `F.interpolate` used by the augmentations: `nearest-exact` and linear
//! with `align_corners=False`, computed per axis in f32 as torch does.

/// Source index of output index `dst` for `nearest-exact` from `n_in` to `n_out` samples:
/// `min(floor((dst + 0.5) · n_in / n_out), n_in - 1)`.
pub(crate) fn nearest_exact(dst: usize, n_in: usize, n_out: usize) -> usize {
    let scale = n_in as f32 / n_out as f32;
    (((dst as f32 + 0.5) * scale).floor() as usize).min(n_in - 1)
}

/// Linear interpolation taps `(i0, i1, w1)` of output index `dst` from `n_in` to `n_out`
/// samples with `align_corners=False`: `src = max((dst + 0.5) · n_in / n_out - 0.5, 0)`,
/// the value is `(1 - w1) · x[i0] + w1 · x[i1]`.
pub(crate) fn linear_taps(dst: usize, n_in: usize, n_out: usize) -> (usize, usize, f32) {
    let scale = n_in as f32 / n_out as f32;
    let src = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(n_in - 1);
    let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
    (i0, i1, src - i0 as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_exact_matches_torch() {
        // torch: F.interpolate(arange(5), size=2, mode='nearest-exact') -> [1, 3];
        // size=3 -> [0, 2, 4]; upsampling 2 -> 5 -> [0, 0, 1, 1, 1].
        let pick = |n_in, n_out| {
            (0..n_out)
                .map(|d| nearest_exact(d, n_in, n_out))
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(5, 2), vec![1, 3]);
        assert_eq!(pick(5, 3), vec![0, 2, 4]);
        assert_eq!(pick(2, 5), vec![0, 0, 1, 1, 1]);
    }

    #[test]
    fn linear_taps_match_torch() {
        // torch: F.interpolate([0., 10.], size=4, mode='linear') -> [0, 2.5, 7.5, 10].
        let value = |d| {
            let (i0, i1, w) = linear_taps(d, 2, 4);
            let x = [0.0f32, 10.0];
            (1.0 - w) * x[i0] + w * x[i1]
        };
        assert_eq!(
            [value(0), value(1), value(2), value(3)],
            [0.0, 2.5, 7.5, 10.0]
        );
    }
}
