//! What a training run remembers between epochs: the per-epoch logs nnU-Net keeps, the EMA of
//! the pseudo Dice and its best value, the epoch counter and the seed. All of it but the data
//! wait goes into the checkpoint metadata, so a resumed run continues exactly where it stopped.
//!
//! nnU-Net: `training/logging/nnunet_logger.py::nnUNetLogger` (the lists) and the `_best_ema`
//! / `current_epoch` checkpoint entries.

use crate::validation::ema_update;

pub use autoseg_network::checkpoint::{InterruptedEpoch, TrainLog};

/// The measurements of one finished epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean validation loss (NaN without validation steps).
    pub val_loss: f64,
    /// Pseudo Dice per foreground class.
    pub dice_per_class: Vec<f64>,
    /// Their `nanmean`.
    pub mean_fg_dice: f64,
    /// Start, seconds since the Unix epoch.
    pub start: f64,
    /// End, seconds since the Unix epoch.
    pub end: f64,
    /// Share of the training iterations' time spent waiting for batches, in percent (NaN
    /// without training iterations).
    pub data_wait_percent: f64,
}

/// The state of a run between epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// Epochs finished (the next epoch's index).
    pub epochs_done: usize,
    /// The per-epoch logs.
    pub log: TrainLog,
    /// Best EMA pseudo Dice so far (`None` before the first finite value).
    pub best_ema: Option<f64>,
    /// Seed every random stream of every epoch derives from.
    pub seed: u64,
    /// Data wait in percent of each epoch recorded since this state was made or loaded (kept
    /// out of the checkpoint: it measures this machine, not the model).
    pub data_wait_percent: Vec<f64>,
    /// Where epoch `epochs_done` stopped, when the run resumes one stopped inside it.
    pub interrupted: Option<InterruptedEpoch>,
}

impl TrainState {
    /// A run that has not trained yet.
    pub fn new(seed: u64) -> TrainState {
        TrainState {
            epochs_done: 0,
            log: TrainLog::default(),
            best_ema: None,
            seed,
            data_wait_percent: Vec::new(),
            interrupted: None,
        }
    }

    /// Appends an epoch to the logs, updates the EMA and the best EMA; returns whether the EMA
    /// is a new best (nnU-Net: `ema > _best_ema`, where a NaN EMA never is).
    pub fn record(&mut self, epoch: EpochRecord) -> bool {
        let log = &mut self.log;
        let ema = ema_update(log.ema_fg_dice.last().copied(), epoch.mean_fg_dice);
        log.train_losses.push(epoch.train_loss);
        log.val_losses.push(epoch.val_loss);
        log.dice_per_class.push(epoch.dice_per_class);
        log.mean_fg_dice.push(epoch.mean_fg_dice);
        log.ema_fg_dice.push(ema);
        log.lrs.push(epoch.lr);
        log.epoch_start_timestamps.push(epoch.start);
        log.epoch_end_timestamps.push(epoch.end);
        self.data_wait_percent.push(epoch.data_wait_percent);
        self.epochs_done += 1;
        let improved = is_new_best(self.best_ema, ema);
        if improved {
            self.best_ema = Some(ema);
        }
        improved
    }

    /// Epochs since the last new best EMA pseudo Dice (every epoch when none was), replayed from
    /// the log so that a resumed run counts as an uninterrupted one: early stopping's count.
    pub fn epochs_since_best(&self) -> usize {
        let emas = &self.log.ema_fg_dice;
        let mut best = None;
        let mut last_best = None;
        for (epoch, &ema) in emas.iter().enumerate() {
            if is_new_best(best, ema) {
                best = Some(ema);
                last_best = Some(epoch);
            }
        }
        last_best.map_or(emas.len(), |epoch| emas.len() - 1 - epoch)
    }
}

/// nnU-Net's rule: `ema > _best_ema`, where a NaN EMA never is a best and the first finite one
/// always is.
fn is_new_best(best: Option<f64>, ema: f64) -> bool {
    match best {
        None => !ema.is_nan(),
        Some(best) => ema > best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(dice: f64) -> EpochRecord {
        EpochRecord {
            lr: 0.01,
            train_loss: -0.5,
            val_loss: -0.4,
            dice_per_class: vec![dice],
            mean_fg_dice: dice,
            start: 10.0,
            end: 12.5,
            data_wait_percent: 1.5,
        }
    }

    #[test]
    fn records_track_ema_and_best() {
        let mut state = TrainState::new(7);
        assert!(state.record(epoch(0.5)));
        // ema 0.9 * 0.5 + 0.1 * 0.3 = 0.48 < 0.5: not a new best.
        assert!(!state.record(epoch(0.3)));
        // ema 0.9 * 0.48 + 0.1 * 1.0 = 0.532 > 0.5.
        assert!(state.record(epoch(1.0)));
        assert_eq!(state.epochs_done, 3);
        assert!((state.best_ema.unwrap() - 0.532).abs() < 1e-12);
        assert_eq!(state.log.n_epochs(), 3);
        assert_eq!(state.log.epoch_durations(), vec![2.5; 3]);
        assert_eq!(state.data_wait_percent, vec![1.5; 3]);
    }

    #[test]
    fn epochs_since_the_last_new_best_are_counted_from_the_log() {
        let mut state = TrainState::new(0);
        assert_eq!(state.epochs_since_best(), 0);
        state.record(epoch(0.5)); // best
        assert_eq!(state.epochs_since_best(), 0);
        state.record(epoch(0.3)); // ema 0.48
        state.record(epoch(0.5)); // ema 0.482 < 0.5
        assert_eq!(state.epochs_since_best(), 2);
        state.record(epoch(1.0)); // ema 0.5338 > 0.5
        assert_eq!(state.epochs_since_best(), 0);
        // A NaN first EMA stays NaN (nnU-Net's EMA): no epoch is ever a best.
        let mut state = TrainState::new(0);
        state.record(epoch(f64::NAN));
        state.record(epoch(0.5));
        assert_eq!(state.epochs_since_best(), 2);
    }

    #[test]
    fn a_nan_dice_is_never_a_best() {
        let mut state = TrainState::new(0);
        assert!(!state.record(epoch(f64::NAN)));
        assert_eq!(state.best_ema, None);
    }
}
