//! The learning-rate schedule of a run's [`Training`]: nnU-Net's poly decay, cosine annealing
//! and linear warm-up, each stepped once at the start of every epoch; and the constants of
//! nnU-Net's training step that are not plan keys.
//!
//! nnU-Net: `training/lr_scheduler/polylr.py`, `torch.optim.lr_scheduler.CosineAnnealingLR`
//! (`nnUNetTrainerCosAnneal`), `training/lr_scheduler/warmup.py` (`Lin_incr_LRScheduler`,
//! `PolyLRScheduler_offset`, `CosineAnnealingLR_offset`), `train_step` (`clip_grad_norm_(.., 12)`).

use autoseg_planner::{LrScheduleKind, Training};

/// Exponent of nnU-Net's poly decay.
pub const POLY_EXPONENT: f64 = 0.9;

/// Gradients are scaled down to this total L2 norm when larger (nnU-Net's `train_step`).
pub const GRAD_CLIP_NORM: f64 = 12.0;

/// The learning rate of every epoch of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The decay after the warm-up.
    pub decay: Decay,
    /// Epochs of linear warm-up: `lr(e) = initial_lr · (e + 1) / warmup` for `e < warmup`.
    pub warmup_epochs: usize,
}

/// The decay a schedule runs over the epochs after its warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    /// [`PolyLr`].
    Poly(PolyLr),
    /// `initial_lr · (1 + cos(π e / epochs)) / 2` (torch `CosineAnnealingLR`, `eta_min = 0`,
    /// stepped with the epoch: its closed form).
    Cosine {
        /// Learning rate at the decay's epoch 0.
        initial_lr: f64,
        /// Epochs of the decay.
        epochs: usize,
    },
}

impl LrSchedule {
    /// The schedule `training` describes.
    pub fn of(training: &Training) -> LrSchedule {
        let (initial_lr, warmup) = (training.initial_lr, training.warmup_epochs);
        // nnU-Net's `*_offset` schedulers: the decay runs over the epochs after the warm-up.
        let epochs = training.epochs.saturating_sub(warmup);
        let decay = match training.lr_schedule {
            LrScheduleKind::Poly => Decay::Poly(PolyLr {
                initial_lr,
                epochs,
                exponent: POLY_EXPONENT,
            }),
            LrScheduleKind::Cosine => Decay::Cosine { initial_lr, epochs },
        };
        LrSchedule {
            decay,
            warmup_epochs: warmup,
        }
    }

    /// Learning rate of `epoch`.
    pub fn lr(&self, epoch: usize) -> f64 {
        let peak = match self.decay {
            Decay::Poly(poly) => poly.initial_lr,
            Decay::Cosine { initial_lr, .. } => initial_lr,
        };
        if epoch < self.warmup_epochs {
            return peak / self.warmup_epochs as f64 * (epoch + 1) as f64;
        }
        let e = epoch - self.warmup_epochs;
        match self.decay {
            Decay::Poly(poly) => poly.lr(e),
            Decay::Cosine { initial_lr, epochs } => {
                if e >= epochs {
                    return 0.0;
                }
                let t = e as f64 / epochs as f64;
                initial_lr * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }
}

/// nnU-Net's `PolyLRScheduler`, stepped once at the start of every epoch:
/// `lr(e) = initial_lr * (1 - e / epochs) ^ exponent`, constant within the epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolyLr {
    /// Learning rate at epoch 0.
    pub initial_lr: f64,
    /// Total epochs (the decay reaches 0 there).
    pub epochs: usize,
    /// Decay exponent (nnU-Net: 0.9).
    pub exponent: f64,
}

impl PolyLr {
    /// Learning rate of `epoch`; 0 from `epochs` on (where nnU-Net's formula would leave the
    /// real numbers).
    pub fn lr(&self, epoch: usize) -> f64 {
        if epoch >= self.epochs {
            return 0.0;
        }
        let remaining = 1.0 - epoch as f64 / self.epochs as f64;
        self.initial_lr * remaining.powf(self.exponent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(epochs: usize, kind: LrScheduleKind, warmup_epochs: usize) -> LrSchedule {
        LrSchedule::of(&Training {
            epochs,
            lr_schedule: kind,
            warmup_epochs,
            ..Training::nnunet_default()
        })
    }

    fn assert_close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-15 * want.abs().max(1.0),
            "{what}: {got} vs {want}"
        );
    }

    #[test]
    fn poly_lr_matches_nnunet() {
        // python: 0.01 * (1 - e / 1000) ** 0.9 for e in (0, 1, 500, 999)
        //   -> 0.01, 0.009990999549834914, 0.005358867312681466, 1.995262314968881e-05
        let schedule = LrSchedule::of(&Training::nnunet_default());
        let expected = [
            (0, 0.01),
            (1, 0.009_990_999_549_834_914),
            (500, 0.005_358_867_312_681_466),
            (999, 1.995_262_314_968_881e-5),
        ];
        for (epoch, lr) in expected {
            assert_close(schedule.lr(epoch), lr, &format!("epoch {epoch}"));
        }
        assert_eq!(schedule.lr(1000), 0.0);
    }

    #[test]
    fn cosine_and_warm_up_match_torch_and_nnunet() {
        // torch 2.11: SGD([p], lr=0.01); CosineAnnealingLR(opt, T_max=1000); s.step(e) for
        //   e in (0, 1, 500, 999) -> 0.01, 0.009999975326009292, 0.005, 2.467399070893439e-08
        let cosine = schedule(1000, LrScheduleKind::Cosine, 0);
        let expected = [
            (0, 0.01),
            (1, 0.009_999_975_326_009_292),
            (500, 0.005),
            (999, 2.467_399_070_893_439e-8),
        ];
        for (epoch, lr) in expected {
            assert_close(cosine.lr(epoch), lr, &format!("cosine epoch {epoch}"));
        }
        // nnunetv2 2.8.1 warmup.py, as nnUNetTrainer_warmup steps them (50 warm-up epochs of
        // 1000): Lin_incr_LRScheduler(opt, 0.01, 50).step(e) for e in (0, 1, 49), then
        // PolyLRScheduler_offset(opt, 0.01, 1000, 50).step(e) for e in (50, 51, 999)
        //   -> 0.0002, 0.0004, 0.01, 0.01, 0.00999052581698196, 2.0895306948576246e-05
        let warm = schedule(1000, LrScheduleKind::Poly, 50);
        let expected = [
            (0, 0.0002),
            (1, 0.0004),
            (49, 0.01),
            (50, 0.01),
            (51, 0.009_990_525_816_981_96),
            (999, 2.089_530_694_857_624_6e-5),
        ];
        for (epoch, lr) in expected {
            assert_close(warm.lr(epoch), lr, &format!("warm-up epoch {epoch}"));
        }
    }

    #[test]
    fn a_shorter_run_decays_over_its_own_epochs() {
        let short = schedule(5, LrScheduleKind::Poly, 0);
        assert_eq!(short.lr(0), 0.01);
        assert!((short.lr(4) - 0.01 * 0.2f64.powf(0.9)).abs() < 1e-15);
    }
}
