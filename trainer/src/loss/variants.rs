//! The losses of nnU-Net's loss trainers, chosen by `training.loss`: cross-entropy alone
//! (`nnUNetTrainerCELoss`), soft Dice alone (`nnUNetTrainerDiceLoss`) and top-k cross-entropy
//! (`nnUNetTrainerTopk10Loss`); and [`SegLoss::for_training`], which picks the loss of a run.
//!
//! nnU-Net: `training/loss/robust_ce_loss.py` (`RobustCrossEntropyLoss`, `TopKLoss`),
//! `training/loss/dice.py::MemoryEfficientSoftDiceLoss`, `variants/loss/*.py`.

use autoseg_planner::LossKind;
use tch::{Kind, Reduction, Tensor};

use super::{
    check_shapes, cross_entropy, region_shapes_fit, soft_dice, softmax_dice, DiceBceLoss,
    DiceCeLoss, LossError, SegLoss,
};

/// `RobustCrossEntropyLoss(ignore_index)`: the mean cross-entropy over annotated voxels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CeLoss {
    /// Voxels with this label do not count.
    pub ignore_label: Option<i64>,
}

impl CeLoss {
    /// The loss of one output (shapes as [`DiceCeLoss::forward`]). A batch whose voxels are
    /// all ignored gives 0 (torch would give NaN).
    ///
    /// # Errors
    /// [`LossError::Shape`] or [`LossError::Torch`].
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        check_shapes(logits, target)?;
        let logits = logits.f_to_kind(Kind::Float)?;
        let target = target.f_to_kind(Kind::Int64)?;
        let mask = self.ignore_label.map(|l| target.f_ne(l)).transpose()?;
        Ok(cross_entropy(
            &logits,
            &target,
            mask.as_ref(),
            self.ignore_label,
        )?)
    }
}

/// `TopKLoss(k, ignore_index)`: per-voxel cross-entropy (0 on ignored voxels), the mean of the
/// largest `int(n · k / 100)` of the batch's `n` voxels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopKLoss {
    /// The share of voxels averaged, in percent.
    pub percent: f64,
    /// Voxels with this label have loss 0.
    pub ignore_label: Option<i64>,
}

impl TopKLoss {
    /// The loss of one output (shapes as [`DiceCeLoss::forward`]).
    ///
    /// # Errors
    /// [`LossError::Shape`] or [`LossError::Torch`].
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        check_shapes(logits, target)?;
        let logits = logits.f_to_kind(Kind::Float)?;
        let target = target.f_to_kind(Kind::Int64)?.f_squeeze_dim(1)?;
        let per_voxel = logits.f_cross_entropy_loss(
            &target,
            None::<&Tensor>,
            Reduction::None,
            self.ignore_label.unwrap_or(-100),
            0.0,
        )?;
        let n = per_voxel.numel() as f64;
        // nnU-Net: `int(num_voxels * k / 100)`; at least one voxel.
        let k = ((n * self.percent / 100.0) as i64).max(1);
        let (top, _) = per_voxel.f_view([-1])?.f_topk(k, 0, true, false)?;
        Ok(top.f_mean(Kind::Float)?)
    }
}

/// `MemoryEfficientSoftDiceLoss` alone: softmax without background for label maps, sigmoid
/// over every region for regions; ignored voxels (the ignore label, or the regions' ignore
/// channel) count in no term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiceLoss {
    /// Sum the Dice terms over the batch (the plan's `batch_dice`).
    pub batch_dice: bool,
    /// Label maps: the ignore label. Regions: see `regions_with_ignore`.
    pub ignore_label: Option<i64>,
    /// Sigmoid region outputs (`Some(has_ignore_channel)`) instead of softmax label outputs.
    pub regions_with_ignore: Option<bool>,
}

impl DiceLoss {
    /// The loss of one output: `-mean(dc)`.
    ///
    /// # Errors
    /// [`LossError::Shape`] / [`LossError::RegionShape`] or [`LossError::Torch`].
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        let logits_f = logits.f_to_kind(Kind::Float)?;
        if let Some(has_ignore) = self.regions_with_ignore {
            let (ls, ts) = (logits.size(), target.size());
            if !region_shapes_fit(&ls, &ts, has_ignore) {
                return Err(LossError::RegionShape {
                    logits: ls,
                    target: ts,
                    has_ignore,
                });
            }
            let target = target.f_to_kind(Kind::Float)?;
            let n_regions = ls[1];
            let mask = has_ignore
                .then(|| target.f_narrow(1, n_regions, 1)?.f_ne(1))
                .transpose()?;
            let truth = target.f_narrow(1, 0, n_regions)?;
            let probs = logits_f.f_sigmoid()?;
            return soft_dice(&probs, &truth, mask.as_ref(), self.batch_dice);
        }
        check_shapes(logits, target)?;
        let target = target.f_to_kind(Kind::Int64)?;
        let mask = self.ignore_label.map(|l| target.f_ne(l)).transpose()?;
        let target = match &mask {
            Some(mask) => target.f_where_scalarother(mask, 0)?,
            None => target,
        };
        softmax_dice(&logits_f, &target, mask.as_ref(), self.batch_dice)
    }
}

impl SegLoss {
    /// The loss `training.loss` names (`None`: nnU-Net's choice, Dice and BCE for regions, Dice
    /// and CE for label maps), for a plan's `batch_dice`, the dataset's ignore label, and
    /// region-based targets or not.
    ///
    /// # Errors
    /// A message when the loss does not fit the targets: `ce`, `topk` and `dice_ce` need label
    /// maps (nnU-Net asserts the same), `dice_bce` needs regions.
    pub fn for_training(
        kind: Option<LossKind>,
        topk_percent: f64,
        batch_dice: bool,
        ignore_label: Option<i64>,
        region_based: bool,
    ) -> Result<SegLoss, String> {
        let kind = kind.unwrap_or(if region_based {
            LossKind::DiceBce
        } else {
            LossKind::DiceCe
        });
        let needs_labels = matches!(kind, LossKind::DiceCe | LossKind::Ce | LossKind::Topk);
        if region_based && needs_labels {
            return Err(format!(
                "training.loss = \"{}\" needs label maps, but the dataset defines regions; use \
                 \"dice_bce\" or \"dice\"",
                kind.as_str()
            ));
        }
        if !region_based && kind == LossKind::DiceBce {
            return Err(
                "training.loss = \"dice_bce\" is the loss of region-based training, and the \
                 dataset has no regions; use \"dice_ce\", \"ce\", \"dice\" or \"topk\""
                    .to_string(),
            );
        }
        Ok(match kind {
            LossKind::DiceCe => SegLoss::DiceCe(DiceCeLoss {
                batch_dice,
                ignore_label,
            }),
            LossKind::DiceBce => SegLoss::DiceBce(DiceBceLoss {
                batch_dice,
                has_ignore: ignore_label.is_some(),
            }),
            LossKind::Ce => SegLoss::Ce(CeLoss { ignore_label }),
            LossKind::Topk => SegLoss::TopK(TopKLoss {
                percent: topk_percent,
                ignore_label,
            }),
            LossKind::Dice => SegLoss::Dice(DiceLoss {
                batch_dice,
                ignore_label,
                regions_with_ignore: region_based.then_some(ignore_label.is_some()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logits and labels of scripts/golden_training_variants.py: `[2, 3, 4, 5]` logits
    /// `((i · 37) mod 23) / 7 − 1.5` and `[2, 1, 4, 5]` labels `((i · 11) mod 7) mod 3`.
    fn variant_batch() -> (Tensor, Tensor) {
        let logits: Vec<f32> = (0..120)
            .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
            .collect();
        let labels: Vec<i64> = (0..40).map(|i| ((i * 11) % 7) % 3).collect();
        (
            Tensor::from_slice(&logits).view([2, 3, 4, 5]),
            Tensor::from_slice(&labels).view([2, 1, 4, 5]),
        )
    }

    fn value(loss: &SegLoss, logits: &Tensor, target: &Tensor) -> f64 {
        loss.forward(logits, target).unwrap().double_value(&[])
    }

    fn labels_loss(kind: LossKind, percent: f64, batch_dice: bool) -> SegLoss {
        SegLoss::for_training(Some(kind), percent, batch_dice, None, false).unwrap()
    }

    // Golden values: scripts/golden_training_variants.py (torch 2.11, nnunetv2 2.8.1).
    #[test]
    fn ce_topk_and_dice_match_nnunet() {
        let (logits, target) = variant_batch();
        let close = |got: f64, want: f64, what: &str| {
            assert!((got - want).abs() < 1e-6, "{what}: {got} vs {want}");
        };
        let ce = labels_loss(LossKind::Ce, 10.0, false);
        close(value(&ce, &logits, &target), 1.448_135_972_023_010_3, "CE");
        let top10 = labels_loss(LossKind::Topk, 10.0, false);
        close(
            value(&top10, &logits, &target),
            2.820_124_626_159_668,
            "TopK 10",
        );
        let top25 = labels_loss(LossKind::Topk, 25.0, false);
        close(
            value(&top25, &logits, &target),
            2.354_284_286_499_023_4,
            "TopK 25",
        );
        let dice = labels_loss(LossKind::Dice, 10.0, false);
        close(
            value(&dice, &logits, &target),
            -0.306_693_851_947_784_4,
            "Dice",
        );
        let batch = labels_loss(LossKind::Dice, 10.0, true);
        close(
            value(&batch, &logits, &target),
            -0.306_924_313_306_808_47,
            "batch Dice",
        );
        // Regions (> 0, == 2, == 1) with sigmoid Dice over every region.
        let is = |v: i64| target.eq(v).to_kind(Kind::Float);
        let regions = Tensor::cat(&[target.gt(0).to_kind(Kind::Float), is(2), is(1)], 1);
        let region_dice = SegLoss::for_training(Some(LossKind::Dice), 10.0, false, None, true);
        close(
            value(&region_dice.unwrap(), &logits, &regions),
            -0.434_334_993_362_426_76,
            "region Dice",
        );
    }

    #[test]
    fn ignored_voxels_count_in_no_term() {
        let (logits, target) = variant_batch();
        // Label 2 ignored: CE is the mean over the other voxels, computed by hand here.
        let ce = SegLoss::for_training(Some(LossKind::Ce), 10.0, false, Some(2), false).unwrap();
        let per_voxel = logits.log_softmax(1, Kind::Float).neg();
        let picked = per_voxel.gather(1, &target.clamp_max(1), false);
        let keep = target.ne(2).to_kind(Kind::Float);
        let want = (&picked * &keep).sum(Kind::Double) / keep.sum(Kind::Double);
        let got = value(&ce, &logits, &target);
        assert!((got - want.double_value(&[])).abs() < 1e-6);
    }

    #[test]
    fn losses_that_do_not_fit_the_targets_are_refused() {
        for kind in [LossKind::Ce, LossKind::Topk, LossKind::DiceCe] {
            let err = SegLoss::for_training(Some(kind), 10.0, false, None, true).unwrap_err();
            assert!(err.contains("needs label maps"), "{err}");
        }
        let err =
            SegLoss::for_training(Some(LossKind::DiceBce), 10.0, false, None, false).unwrap_err();
        assert!(err.contains("region-based"), "{err}");
        assert!(matches!(
            SegLoss::for_training(None, 10.0, false, None, true),
            Ok(SegLoss::DiceBce(_))
        ));
        assert!(matches!(
            SegLoss::for_training(None, 10.0, false, Some(3), false),
            Ok(SegLoss::DiceCe(DiceCeLoss {
                ignore_label: Some(3),
                ..
            }))
        ));
    }
}
