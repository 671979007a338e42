//! Voxel counts (TP, FP, FN, TN) per class and the overlap metrics derived from them.
//!
//! One pass over a case builds a confusion matrix between the reference's and the prediction's
//! label values; every label's and region's counts are then sums over that matrix, so a case
//! with many classes and regions is still read once.

use autoseg_planner::LabelValue;
use ndarray::{ArrayView3, Zip};
use rayon::prelude::*;

use crate::classes::LabelVoxel;

/// Voxel counts of one class in one case; voxels whose reference is the ignore label are in
/// none of them (nnU-Net: `compute_tp_fp_fn_tn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VoxelCounts {
    /// In the class in both reference and prediction.
    pub true_positive: u64,
    /// In the class in the prediction only.
    pub false_positive: u64,
    /// In the class in the reference only.
    pub false_negative: u64,
    /// In the class in neither.
    pub true_negative: u64,
}

/// `num / den`, NaN when the denominator is zero.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        f64::NAN
    } else {
        num as f64 / den as f64
    }
}

impl VoxelCounts {
    /// Predicted voxels of the class, `TP + FP` (nnU-Net's `n_pred`).
    pub fn n_pred(&self) -> u64 {
        self.true_positive + self.false_positive
    }

    /// Reference voxels of the class, `TP + FN` (nnU-Net's `n_ref`).
    pub fn n_ref(&self) -> u64 {
        self.true_positive + self.false_negative
    }

    /// `2TP / (2TP + FP + FN)`; NaN when `TP + FP + FN == 0` (class absent in both), as nnU-Net.
    pub fn dice(&self) -> f64 {
        let tp = self.true_positive;
        ratio(2 * tp, 2 * tp + self.false_positive + self.false_negative)
    }

    /// `TP / (TP + FP + FN)`; NaN when `TP + FP + FN == 0`, as nnU-Net.
    pub fn iou(&self) -> f64 {
        let tp = self.true_positive;
        ratio(tp, tp + self.false_positive + self.false_negative)
    }

    /// Sensitivity (recall) `TP / (TP + FN)`; NaN when the reference has no voxel of the class.
    pub fn sensitivity(&self) -> f64 {
        ratio(self.true_positive, self.n_ref())
    }

    /// Specificity `TN / (TN + FP)`; NaN when every counted voxel is in the reference class.
    pub fn specificity(&self) -> f64 {
        ratio(self.true_negative, self.true_negative + self.false_positive)
    }

    /// Precision `TP / (TP + FP)`; NaN when the prediction has no voxel of the class.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.n_pred())
    }

    /// Relative signed volume difference `(n_pred − n_ref) / n_ref`; NaN when `n_ref == 0`.
    pub fn volume_difference(&self) -> f64 {
        if self.n_ref() == 0 {
            return f64::NAN;
        }
        (self.n_pred() as f64 - self.n_ref() as f64) / self.n_ref() as f64
    }
}

/// Maps voxel values to a small bucket index: one bucket per value of interest, plus "other".
pub(crate) struct Buckets {
    lowest: i64,
    table: Vec<u32>,
    pub(crate) n_buckets: usize,
}

impl Buckets {
    /// One bucket per label number of `classes` and the ignore label, plus "other".
    pub(crate) fn for_classes(classes: &[LabelValue], ignore: Option<u16>) -> Buckets {
        let values: Vec<i64> = classes
            .iter()
            .flat_map(|c| c.values().iter().map(|&l| i64::from(l)))
            .chain(ignore.map(i64::from))
            .collect();
        Buckets::new(&values)
    }

    /// Whether `bucket` holds a label number of `class`.
    pub(crate) fn in_class(&self, bucket: usize, class: &LabelValue) -> bool {
        class
            .values()
            .iter()
            .any(|&l| self.of(i64::from(l)) == bucket)
    }

    /// `values` are `u16` label numbers, so the table spans at most 65536 entries.
    fn new(values: &[i64]) -> Buckets {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let lowest = sorted.first().copied().unwrap_or(0);
        let highest = sorted.last().copied().unwrap_or(0);
        let other = u32::try_from(sorted.len()).expect("at most 65537 distinct label values");
        let mut table = vec![other; (highest - lowest + 1) as usize];
        for (idx, &v) in sorted.iter().enumerate() {
            table[(v - lowest) as usize] = idx as u32;
        }
        Buckets {
            lowest,
            table,
            n_buckets: sorted.len() + 1,
        }
    }

    /// The bucket of a voxel value.
    pub(crate) fn of(&self, value: i64) -> usize {
        let other = self.n_buckets - 1;
        usize::try_from(value - self.lowest)
            .ok()
            .and_then(|i| self.table.get(i))
            .map_or(other, |&b| b as usize)
    }
}

/// Joint histogram of (reference value, predicted value) over one case.
pub(crate) struct Confusion {
    buckets: Buckets,
    matrix: Vec<u64>,
}

impl Confusion {
    /// Counts one case over the label numbers of `classes` and the ignore label. The two views
    /// must have the same shape (checked by the caller).
    pub(crate) fn count<T: LabelVoxel>(
        reference: ArrayView3<'_, T>,
        prediction: ArrayView3<'_, T>,
        classes: &[LabelValue],
        ignore: Option<u16>,
    ) -> Confusion {
        let buckets = Buckets::for_classes(classes, ignore);
        let matrix = match (reference.as_slice(), prediction.as_slice()) {
            (Some(r), Some(p)) => count_slices(r, p, &buckets),
            _ => count_views(reference, prediction, &buckets),
        };
        Confusion { buckets, matrix }
    }

    /// The counts of one class, leaving out voxels whose reference is `ignore`.
    pub(crate) fn counts(&self, class: &LabelValue, ignore: Option<u16>) -> VoxelCounts {
        let n = self.buckets.n_buckets;
        let in_class: Vec<bool> = (0..n).map(|b| self.buckets.in_class(b, class)).collect();
        let ignored = ignore.map(|l| self.buckets.of(i64::from(l)));
        let mut counts = VoxelCounts::default();
        for r in (0..n).filter(|&r| Some(r) != ignored) {
            for p in 0..n {
                let c = self.matrix[r * n + p];
                match (in_class[r], in_class[p]) {
                    (true, true) => counts.true_positive += c,
                    (false, true) => counts.false_positive += c,
                    (true, false) => counts.false_negative += c,
                    (false, false) => counts.true_negative += c,
                }
            }
        }
        counts
    }
}

/// Voxels per parallel chunk of a contiguous case.
const CHUNK: usize = 1 << 16;

/// The joint histogram of two C-contiguous maps, in parallel over chunks.
fn count_slices<T: LabelVoxel>(reference: &[T], prediction: &[T], buckets: &Buckets) -> Vec<u64> {
    let n = buckets.n_buckets;
    let background = buckets.of(T::BACKGROUND.to_i64());
    reference
        .par_chunks(CHUNK)
        .zip(prediction.par_chunks(CHUNK))
        .map(|(r, p)| {
            let mut acc = vec![0u64; n * n];
            // Background in both maps, most voxels, skips the bucket look-ups.
            let mut both_background = 0;
            for (&r, &p) in r.iter().zip(p) {
                if r == T::BACKGROUND && p == T::BACKGROUND {
                    both_background += 1;
                } else {
                    acc[buckets.of(r.to_i64()) * n + buckets.of(p.to_i64())] += 1;
                }
            }
            acc[background * n + background] += both_background;
            acc
        })
        .reduce(|| vec![0u64; n * n], add_into)
}

/// The joint histogram of two strided views of one shape.
fn count_views<T: LabelVoxel>(
    reference: ArrayView3<'_, T>,
    prediction: ArrayView3<'_, T>,
    buckets: &Buckets,
) -> Vec<u64> {
    let n = buckets.n_buckets;
    Zip::from(reference.outer_iter())
        .and(prediction.outer_iter())
        .into_par_iter()
        .map(|(r, p)| {
            let mut acc = vec![0u64; n * n];
            Zip::from(&r).and(&p).for_each(|&r, &p| {
                acc[buckets.of(r.to_i64()) * n + buckets.of(p.to_i64())] += 1;
            });
            acc
        })
        .reduce(|| vec![0u64; n * n], add_into)
}

fn add_into(mut a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr3, Array3};

    #[test]
    fn counts_of_labels_and_regions() {
        let reference = arr3(&[[[0u8, 1, 1, 2], [2, 2, 0, 3]]]);
        let prediction = arr3(&[[[1u8, 1, 2, 2], [2, 0, 0, 9]]]);
        let classes = [LabelValue::Single(1), LabelValue::Region(vec![1, 2])];
        let confusion = Confusion::count(reference.view(), prediction.view(), &classes, Some(3));
        let one = confusion.counts(&classes[0], None);
        assert_eq!(
            one,
            VoxelCounts {
                true_positive: 1,
                false_positive: 1,
                false_negative: 1,
                true_negative: 5
            }
        );
        let region = confusion.counts(&classes[1], None);
        assert_eq!(region.true_positive, 4);
        assert_eq!(region.false_positive, 1);
        assert_eq!(region.false_negative, 1);
        assert_eq!(region.true_negative, 2);
        // Ignoring label 3 drops the last voxel (reference 3, prediction 9) from every count.
        let ignored = confusion.counts(&classes[0], Some(3));
        assert_eq!(ignored.true_negative, 4);
    }

    #[test]
    fn strided_views_count_like_contiguous_ones() {
        let reference = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| ((z + y * x) % 3) as u8);
        let prediction = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| ((z * y + x) % 3) as u8);
        let classes = [LabelValue::Single(1), LabelValue::Single(2)];
        let (r_step, p_step) = (
            reference.slice(ndarray::s![.., .., ..;2]),
            prediction.slice(ndarray::s![.., .., ..;2]),
        );
        assert!(r_step.as_slice().is_none());
        let strided = Confusion::count(r_step, p_step, &classes, None);
        let copied = Confusion::count(
            r_step.to_owned().view(),
            p_step.to_owned().view(),
            &classes,
            None,
        );
        let transposed = Confusion::count(reference.t(), prediction.t(), &classes, None);
        let plain = Confusion::count(reference.view(), prediction.view(), &classes, None);
        for class in &classes {
            assert_eq!(strided.counts(class, None), copied.counts(class, None));
            assert_eq!(transposed.counts(class, None), plain.counts(class, None));
        }
    }

    #[test]
    fn dice_and_iou_of_half_overlapping_cubes() {
        let mut reference = Array3::<u8>::zeros((16, 16, 16));
        let mut prediction = Array3::<u8>::zeros((16, 16, 16));
        reference
            .slice_mut(ndarray::s![2..10, 2..10, 2..10])
            .fill(1);
        prediction
            .slice_mut(ndarray::s![2..10, 2..10, 6..14])
            .fill(1);
        let classes = [LabelValue::Single(1)];
        let confusion = Confusion::count(reference.view(), prediction.view(), &classes, None);
        let c = confusion.counts(&classes[0], None);
        assert_eq!(c.true_positive, 256);
        assert_eq!(c.dice(), 0.5);
        assert!((c.iou() - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(c.sensitivity(), 0.5);
        assert_eq!(c.precision(), 0.5);
        assert_eq!(c.volume_difference(), 0.0);
        assert_eq!(c.specificity(), (4096.0 - 768.0) / (4096.0 - 512.0));
    }

    #[test]
    fn absent_class_gives_nan_like_nnunet() {
        let empty = VoxelCounts {
            true_negative: 10,
            ..VoxelCounts::default()
        };
        assert!(empty.dice().is_nan() && empty.iou().is_nan());
        assert!(empty.sensitivity().is_nan() && empty.precision().is_nan());
        assert_eq!(empty.specificity(), 1.0);
    }
}
