//! numpy's reductions as nnU-Net's planner uses them, reproduced bit for bit where the order of
//! floating-point operations matters: `np.percentile` (linear method), `np.median`, and
//! `np.argsort(..)[-1]` (last index among ties).

/// `np.percentile(values, q)` with numpy's default linear method.
///
/// numpy: virtual index `(n - 1) * q/100`, then `_lerp(a, b, t)` which evaluates
/// `b - (b - a) * (1 - t)` when `t >= 0.5` and `a + (b - a) * t` otherwise.
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    let sorted = sorted(values);
    let quantile = q / 100.0;
    let virtual_idx = (sorted.len() - 1) as f64 * quantile;
    let previous = virtual_idx.floor();
    let gamma = virtual_idx - previous;
    let prev_idx = (previous as usize).min(sorted.len() - 1);
    let next_idx = (prev_idx + 1).min(sorted.len() - 1);
    let (a, b) = (sorted[prev_idx], sorted[next_idx]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// `np.median(values)`: the middle element, or the mean `(a + b) / 2` of the two middle ones.
pub(crate) fn median(values: &[f64]) -> f64 {
    let sorted = sorted(values);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Per-axis `f` over a list of 3-vectors (numpy's `axis=0` reductions).
pub(crate) fn per_axis(rows: &[[f64; 3]], f: impl Fn(&[f64]) -> f64) -> [f64; 3] {
    std::array::from_fn(|axis| f(&rows.iter().map(|r| r[axis]).collect::<Vec<_>>()))
}

/// `np.argsort(values)[-1]`: the index of the largest value, the LAST one among ties (numpy
/// sorts arrays this short with a stable insertion sort).
pub(crate) fn argsort_last(values: &[f64]) -> usize {
    let mut best = 0;
    for (idx, &v) in values.iter().enumerate() {
        if v >= values[best] {
            best = idx;
        }
    }
    best
}

/// `np.argmax(values)`: the index of the largest value, the FIRST one among ties.
pub(crate) fn argmax_first(values: &[f64]) -> usize {
    let mut best = 0;
    for (idx, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = idx;
        }
    }
    best
}

/// `np.prod` of a short float vector, left to right.
pub(crate) fn product(values: &[f64]) -> f64 {
    values.iter().product()
}

fn sorted(values: &[f64]) -> Vec<f64> {
    assert!(
        !values.is_empty(),
        "percentile/median callers pass non-empty lists"
    );
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear_method() {
        // np.percentile([3.6]*24 + [3.0]*8, [10, 50]) -> [3.0, 3.6]
        let mut z = vec![3.6; 24];
        z.extend([3.0; 8]);
        assert_eq!(percentile(&z, 10.0), 3.0);
        assert_eq!(percentile(&z, 50.0), 3.6);
        // np.percentile([1, 2, 3, 4], 10) == 1.3 (virtual index 0.3); 90 -> 3.7
        assert!((percentile(&[4.0, 1.0, 3.0, 2.0], 10.0) - 1.3).abs() < 1e-15);
        assert!((percentile(&[4.0, 1.0, 3.0, 2.0], 90.0) - 3.7).abs() < 1e-15);
        assert_eq!(percentile(&[5.0], 10.0), 5.0);
    }

    #[test]
    fn median_averages_the_two_middle_values() {
        assert_eq!(median(&[1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 4.0, 2.0, 3.0]), 2.5);
        assert_eq!(
            per_axis(&[[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], median),
            [2.0; 3]
        );
    }

    #[test]
    fn argsort_last_and_argmax_first_break_ties_like_numpy() {
        assert_eq!(argsort_last(&[0.5, 1.0, 1.0]), 2);
        assert_eq!(argmax_first(&[0.5, 1.0, 1.0]), 1);
        assert_eq!(argsort_last(&[2.0, 1.0, 1.0]), 0);
    }
}
