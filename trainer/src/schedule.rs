//! The training schedule: nnU-Net's hyper-parameters as a named value, and its poly learning-rate
//! decay.
//!
//! nnU-Net: `nnUNetTrainer.__init__` (epochs, iterations, lr, weight decay, oversampling),
//! `configure_optimizers` (SGD, momentum 0.99, Nesterov), `training/lr_scheduler/polylr.py`,
//! `train_step` (`clip_grad_norm_(.., 12)`).

/// Training hyper-parameters. There is no `Default`: start from
/// [`TrainSettings::nnunet_default`] and override fields, e.g.
/// `TrainSettings { epochs: 5, ..TrainSettings::nnunet_default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Epochs to train.
    pub epochs: usize,
    /// Training iterations (batches) per epoch.
    pub iters_per_epoch: usize,
    /// Validation iterations (batches) per epoch.
    pub val_iters_per_epoch: usize,
    /// Learning rate at epoch 0.
    pub initial_lr: f64,
    /// Exponent of the poly decay.
    pub lr_exponent: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Use Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f64,
    /// Fraction of each batch forced to contain foreground.
    pub oversample_foreground: f64,
    /// Gradients are scaled down to this total L2 norm when larger.
    pub grad_clip_norm: f64,
    /// Early stopping (beyond nnU-Net): stop when this many epochs pass without a new best EMA
    /// pseudo Dice; `None`, nnU-Net's behaviour, trains every epoch.
    pub patience: Option<usize>,
}

impl TrainSettings {
    /// nnU-Net 2.8.1's defaults (`nnUNetTrainer.__init__`, `configure_optimizers`,
    /// `train_step`): 1000 epochs of 250 iterations, 50 validation iterations, SGD lr 1e-2,
    /// momentum 0.99, Nesterov, weight decay 3e-5, poly exponent 0.9, foreground oversampling
    /// 0.33, gradient clipping at norm 12.
    pub fn nnunet_default() -> TrainSettings {
        TrainSettings {
            epochs: 1000,
            iters_per_epoch: 250,
            val_iters_per_epoch: 50,
            initial_lr: 1e-2,
            lr_exponent: 0.9,
            momentum: 0.99,
            nesterov: true,
            weight_decay: 3e-5,
            oversample_foreground: 0.33,
            grad_clip_norm: 12.0,
            patience: None,
        }
    }

    /// The learning-rate schedule these settings describe.
    pub fn lr_schedule(&self) -> PolyLr {
        PolyLr {
            initial_lr: self.initial_lr,
            epochs: self.epochs,
            exponent: self.lr_exponent,
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

    #[test]
    fn poly_lr_matches_nnunet() {
        // python: 0.01 * (1 - e / 1000) ** 0.9 for e in (0, 1, 500, 999)
        //   -> 0.01, 0.009990999549834914, 0.005358867312681466, 1.995262314968881e-05
        let schedule = TrainSettings::nnunet_default().lr_schedule();
        let expected = [
            (0, 0.01),
            (1, 0.009_990_999_549_834_914),
            (500, 0.005_358_867_312_681_466),
            (999, 1.995_262_314_968_881e-5),
        ];
        for (epoch, lr) in expected {
            let got = schedule.lr(epoch);
            assert!(
                (got - lr).abs() <= 1e-15 * lr.max(1.0),
                "epoch {epoch}: {got} vs {lr}"
            );
        }
        assert_eq!(schedule.lr(1000), 0.0);
    }

    #[test]
    fn settings_can_be_overridden_field_by_field() {
        let short = TrainSettings {
            epochs: 5,
            ..TrainSettings::nnunet_default()
        };
        assert_eq!(short.lr_schedule().lr(0), 0.01);
        assert!((short.lr_schedule().lr(4) - 0.01 * 0.2f64.powf(0.9)).abs() < 1e-15);
        assert_eq!(short.iters_per_epoch, 250);
    }
}
