//! Per-epoch validation metrics: nnU-Net's pseudo Dice from true/false positives and false
//! negatives counted on the highest-resolution output of the validation batches, the mean
//! foreground Dice, and its exponential moving average (which picks the best checkpoint).
//!
//! nnU-Net: `nnUNetTrainer.validation_step` (labels: argmax one-hot, ignore mask, background
//! dropped; regions: `sigmoid > 0.5` per region, ignore mask from the target's last channel),
//! `on_validation_epoch_end` (`2TP / (2TP + FP + FN)`, `nanmean`) and
//! `training/logging/nnunet_logger.py` (`ema = 0.9 * ema + 0.1 * dice`).

use tch::{Kind, TchError, Tensor};

use crate::loss::region_shapes_fit;

/// Weight of the previous EMA value (nnU-Net's logger: `0.9 * ema + 0.1 * new`).
pub const EMA_DECAY: f64 = 0.9;

/// True positives, false positives and false negatives per foreground class (index 0 is label
/// 1) or per region (index 0 is the first region), summed over batches and voxels.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassCounts {
    /// True positives per foreground class.
    pub tp: Vec<f64>,
    /// False positives per foreground class.
    pub fp: Vec<f64>,
    /// False negatives per foreground class.
    pub fn_: Vec<f64>,
}

impl ClassCounts {
    /// All-zero counts for `n_foreground` classes.
    pub fn zeros(n_foreground: usize) -> ClassCounts {
        ClassCounts {
            tp: vec![0.0; n_foreground],
            fp: vec![0.0; n_foreground],
            fn_: vec![0.0; n_foreground],
        }
    }

    /// Adds `other`'s counts (the same classes) to these.
    pub fn add(&mut self, other: &ClassCounts) {
        let add = |a: &mut Vec<f64>, b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.tp, &other.tp);
        add(&mut self.fp, &other.fp);
        add(&mut self.fn_, &other.fn_);
    }

    /// Pseudo Dice per foreground class, `2TP / (2TP + FP + FN)`; NaN for a class that is
    /// neither predicted nor present (numpy's `0 / 0`).
    pub fn dice_per_class(&self) -> Vec<f64> {
        self.tp
            .iter()
            .zip(&self.fp)
            .zip(&self.fn_)
            .map(|((tp, fp), fn_)| 2.0 * tp / (2.0 * tp + fp + fn_))
            .collect()
    }
}

/// numpy's `nanmean` of the per-class Dice: NaN entries are skipped; NaN when none is left.
pub fn mean_foreground_dice(dice_per_class: &[f64]) -> f64 {
    let valid: Vec<f64> = dice_per_class
        .iter()
        .copied()
        .filter(|d| !d.is_nan())
        .collect();
    if valid.is_empty() {
        return f64::NAN;
    }
    valid.iter().sum::<f64>() / valid.len() as f64
}

/// The next EMA of the mean foreground Dice: the first epoch's value itself, then
/// `0.9 * previous + 0.1 * value`.
pub fn ema_update(previous: Option<f64>, value: f64) -> f64 {
    match previous {
        None => value,
        Some(ema) => EMA_DECAY * ema + (1.0 - EMA_DECAY) * value,
    }
}

/// Counts TP/FP/FN of the argmax prediction of `logits` against `target`, per foreground
/// class, summed over the batch and every voxel; voxels labelled `ignore_label` count nowhere.
///
/// # Shapes
/// `logits`: `[b, c, *spatial]` (any float kind); `target`: `[b, 1, *spatial]`, integer labels
/// in `0..c` or the ignore label. Returns counts for classes `1..c`.
///
/// # Errors
/// [`TchError`] when libtorch fails (e.g. shapes that do not match).
pub fn count_tp_fp_fn(
    logits: &Tensor,
    target: &Tensor,
    ignore_label: Option<i64>,
) -> Result<ClassCounts, TchError> {
    let _no_grad = tch::no_grad_guard();
    let target = target.f_to_kind(Kind::Int64)?;
    let mask = match ignore_label {
        Some(label) => Some(target.f_ne(label)?.f_to_kind(Kind::Float)?),
        None => None,
    };
    let target = match &mask {
        Some(mask) => target.f_mul(&mask.f_to_kind(Kind::Int64)?)?,
        None => target,
    };
    let zeros = Tensor::f_zeros(logits.size(), (Kind::Float, logits.device()))?;
    let pred = zeros.f_scatter_value(1, &logits.f_argmax(1, true)?, 1.0)?;
    let truth = zeros.f_scatter_value(1, &target, 1.0)?;
    let (pred, truth) = match &mask {
        Some(mask) => (pred.f_mul(mask)?, truth.f_mul(mask)?),
        None => (pred, truth),
    };
    counts_per_channel(&pred, &truth, 1)
}

/// Counts TP/FP/FN of the region prediction `sigmoid(logits) > 0.5` against the region
/// channels of `target`, per region (none dropped), summed over the batch and every voxel;
/// with `has_ignore`, voxels whose last target channel is 1 count nowhere.
///
/// # Shapes
/// `logits`: `[b, r, *spatial]` (any float kind); `target`: `[b, r, *spatial]`, or `[b, r + 1,
/// *spatial]` with the ignore channel last, 0/1 values of any kind. Returns counts for the `r`
/// regions.
///
/// # Errors
/// [`TchError::Shape`] when the shapes do not match; [`TchError`] when libtorch fails.
pub fn count_region_tp_fp_fn(
    logits: &Tensor,
    target: &Tensor,
    has_ignore: bool,
) -> Result<ClassCounts, TchError> {
    let _no_grad = tch::no_grad_guard();
    check_region_shapes(logits, target, has_ignore)?;
    let n_regions = logits.size()[1];
    let pred = logits.f_sigmoid()?.f_gt(0.5)?.f_to_kind(Kind::Float)?;
    let truth = target.f_narrow(1, 0, n_regions)?.f_to_kind(Kind::Float)?;
    let (pred, truth) = if has_ignore {
        // nnU-Net: `mask = 1 - target[:, -1:]`.
        let mask = target
            .f_narrow(1, n_regions, 1)?
            .f_to_kind(Kind::Float)?
            .f_neg()?
            .f_add_scalar(1.0)?;
        (pred.f_mul(&mask)?, truth.f_mul(&mask)?)
    } else {
        (pred, truth)
    };
    counts_per_channel(&pred, &truth, 0)
}

fn check_region_shapes(logits: &Tensor, target: &Tensor, has_ignore: bool) -> Result<(), TchError> {
    let (ls, ts) = (logits.size(), target.size());
    if region_shapes_fit(&ls, &ts, has_ignore) {
        Ok(())
    } else {
        Err(TchError::Shape(format!(
            "region validation: logits of shape {ls:?} and target of shape {ts:?} do not match \
             (ignore channel: {has_ignore})"
        )))
    }
}

/// TP/FP/FN per channel from `first_channel` on, of masked 0/1 `pred` and `truth` (`[b, c,
/// *spatial]`, f32), summed over the batch and the spatial axes.
fn counts_per_channel(
    pred: &Tensor,
    truth: &Tensor,
    first_channel: i64,
) -> Result<ClassCounts, TchError> {
    let n_channels = pred.size()[1];
    let axes: Vec<i64> = std::iter::once(0).chain(2..pred.dim() as i64).collect();
    let sum = |t: Tensor| -> Result<Vec<f64>, TchError> {
        let per_channel = t
            .f_sum_dim_intlist(axes.as_slice(), false, Kind::Double)?
            .f_narrow(0, first_channel, n_channels - first_channel)?
            .f_to_device(tch::Device::Cpu)?;
        Vec::<f64>::try_from(&per_channel)
    };
    let both = pred.f_mul(truth)?;
    Ok(ClassCounts {
        tp: sum(both.shallow_clone())?,
        fp: sum(pred.f_sub(&both)?)?,
        fn_: sum(truth.f_sub(&both)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits whose argmax is `labels` (one-hot times 10).
    fn logits_for(labels: &[i64], n_classes: i64) -> Tensor {
        let t = Tensor::from_slice(labels).view([1, 1, labels.len() as i64]);
        Tensor::zeros(
            [1, n_classes, labels.len() as i64],
            (Kind::Float, tch::Device::Cpu),
        )
        .scatter_value(1, &t, 10.0)
    }

    #[test]
    fn counts_match_a_hand_count() {
        // pred   0 1 1 2 2 0 1
        // target 0 1 2 2 0 1 1
        // class 1: TP at 1, 6 (2); FP at 2 (1); FN at 5 (1).
        // class 2: TP at 3 (1); FP at 4 (1); FN at 2 (1).
        let logits = logits_for(&[0, 1, 1, 2, 2, 0, 1], 3);
        let target = Tensor::from_slice(&[0i64, 1, 2, 2, 0, 1, 1]).view([1, 1, 7]);
        let counts = count_tp_fp_fn(&logits, &target, None).unwrap();
        assert_eq!(counts.tp, vec![2.0, 1.0]);
        assert_eq!(counts.fp, vec![1.0, 1.0]);
        assert_eq!(counts.fn_, vec![1.0, 1.0]);
        // Dice: 4 / 6 and 2 / 4.
        let dice = counts.dice_per_class();
        assert!((dice[0] - 2.0 / 3.0).abs() < 1e-15);
        assert!((dice[1] - 0.5).abs() < 1e-15);
    }

    #[test]
    fn ignored_voxels_count_nowhere() {
        // Voxels 2 and 4 carry the ignore label 3: the class-1 FP at 2 and the class-2 FP at 4
        // disappear.
        let logits = logits_for(&[0, 1, 1, 2, 2, 0, 1], 3);
        let target = Tensor::from_slice(&[0i64, 1, 3, 2, 3, 1, 1]).view([1, 1, 7]);
        let counts = count_tp_fp_fn(&logits, &target, Some(3)).unwrap();
        assert_eq!(counts.tp, vec![2.0, 1.0]);
        assert_eq!(counts.fp, vec![0.0, 0.0]);
        assert_eq!(counts.fn_, vec![1.0, 0.0]);
    }

    #[test]
    fn region_counts_match_a_hand_count() {
        // Two regions over 6 voxels; logit > 0 <=> sigmoid > 0.5 (0 itself gives 0.5: negative).
        // region 0 pred   1 1 0 0 1 0   (logits 2, 1, -1, 0, 3, -2)
        //          target 1 0 1 0 1 1   -> TP at 0, 4 (2); FP at 1 (1); FN at 2, 5 (2).
        // region 1 pred   0 1 1 0 0 1   (logits -1, 4, 0.5, -3, 0, 2)
        //          target 0 1 0 0 1 1   -> TP at 1, 5 (2); FP at 2 (1); FN at 4 (1).
        let logits = Tensor::from_slice(&[
            2.0f32, 1.0, -1.0, 0.0, 3.0, -2.0, -1.0, 4.0, 0.5, -3.0, 0.0, 2.0,
        ])
        .view([1, 2, 6]);
        let target = Tensor::from_slice(&[1i16, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1]).view([1, 2, 6]);
        let counts = count_region_tp_fp_fn(&logits, &target, false).unwrap();
        assert_eq!(counts.tp, vec![2.0, 2.0]);
        assert_eq!(counts.fp, vec![1.0, 1.0]);
        assert_eq!(counts.fn_, vec![2.0, 1.0]);
        // Dice: 4 / 7 and 4 / 6.
        let dice = counts.dice_per_class();
        assert!((dice[0] - 4.0 / 7.0).abs() < 1e-15);
        assert!((dice[1] - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn region_ignore_channel_masks_every_region() {
        // As above with voxels 1 and 5 ignored (third channel): region 0 loses its FP at 1 and
        // its FN at 5; region 1 loses its TPs at 1 and 5.
        let logits = Tensor::from_slice(&[
            2.0f32, 1.0, -1.0, 0.0, 3.0, -2.0, -1.0, 4.0, 0.5, -3.0, 0.0, 2.0,
        ])
        .view([1, 2, 6]);
        let target = Tensor::from_slice(&[1i16, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1])
            .view([1, 3, 6]);
        let counts = count_region_tp_fp_fn(&logits, &target, true).unwrap();
        assert_eq!(counts.tp, vec![2.0, 0.0]);
        assert_eq!(counts.fp, vec![0.0, 1.0]);
        assert_eq!(counts.fn_, vec![1.0, 1.0]);
        assert!(matches!(
            count_region_tp_fp_fn(&logits, &target, false),
            Err(TchError::Shape(_))
        ));
    }

    #[test]
    fn absent_classes_are_nan_and_skipped_by_the_mean() {
        let counts = ClassCounts {
            tp: vec![3.0, 0.0],
            fp: vec![1.0, 0.0],
            fn_: vec![1.0, 0.0],
        };
        let dice = counts.dice_per_class();
        assert!((dice[0] - 0.75).abs() < 1e-15);
        assert!(dice[1].is_nan());
        assert!((mean_foreground_dice(&dice) - 0.75).abs() < 1e-15);
        assert!(mean_foreground_dice(&[f64::NAN]).is_nan());
    }

    #[test]
    fn ema_follows_nnunet_logger() {
        // nnU-Net: ema_0 = d_0; ema_e = 0.9 ema_{e-1} + 0.1 d_e.
        let e0 = ema_update(None, 0.5);
        assert_eq!(e0, 0.5);
        let e1 = ema_update(Some(e0), 1.0);
        assert!((e1 - 0.55).abs() < 1e-15);
        let e2 = ema_update(Some(e1), 0.0);
        assert!((e2 - 0.495).abs() < 1e-15);
    }

    #[test]
    fn counts_add_up() {
        let mut total = ClassCounts::zeros(2);
        let one = ClassCounts {
            tp: vec![1.0, 2.0],
            fp: vec![3.0, 4.0],
            fn_: vec![5.0, 6.0],
        };
        total.add(&one);
        total.add(&one);
        assert_eq!(total.tp, vec![2.0, 4.0]);
        assert_eq!(total.fp, vec![6.0, 8.0]);
        assert_eq!(total.fn_, vec![10.0, 12.0]);
    }
}
