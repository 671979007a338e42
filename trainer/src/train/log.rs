//! The fold's text log, `train.log`: nnU-Net's per-epoch lines, each prefixed with a UTC
//! timestamp, appended (a resumed run continues the same file). Every line also goes to
//! `tracing`.
//!
//! nnU-Net: `nnUNetTrainer.print_to_log_file` and the lines of `on_epoch_end` (`Epoch N`,
//! `Current learning rate`, `train_loss`, `val_loss`, `Pseudo dice`, `Epoch time`,
//! `Yayy! New best EMA pseudo Dice`), plus autoseg's `Data wait` line: the share of the
//! training iterations' time spent waiting for the data loader.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::state::TrainLog;
use super::TrainError;

/// An open `train.log` (or none: a data-parallel rank other than 0 logs nothing, as nnU-Net's
/// `print_to_log_file` on `local_rank != 0`).
pub(crate) struct LogFile {
    path: PathBuf,
    file: Option<File>,
}

impl LogFile {
    /// Opens (creating or appending to) the log at `path`.
    pub fn open(path: &Path) -> Result<LogFile, TrainError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, "open the training log", e))?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// A log that writes nothing anywhere.
    pub fn disabled() -> LogFile {
        LogFile {
            path: PathBuf::new(),
            file: None,
        }
    }

    /// Appends `text` as one line, `<timestamp>: <text>`, and logs it through `tracing`.
    pub fn line(&mut self, text: &str) -> Result<(), TrainError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        tracing::info!("{text}");
        let stamped = format!("{}: {text}\n", utc_timestamp(SystemTime::now()));
        file.write_all(stamped.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| TrainError::io(&self.path, "write the training log", e))
    }

    /// The lines nnU-Net writes at the end of an epoch (the last one logged in `log`), and the
    /// epoch's data wait in percent.
    pub fn epoch(
        &mut self,
        log: &TrainLog,
        new_best: bool,
        data_wait_percent: f64,
    ) -> Result<(), TrainError> {
        for line in epoch_lines(log, new_best, data_wait_percent) {
            self.line(&line)?;
        }
        Ok(())
    }
}

/// nnU-Net's end-of-epoch lines for the last epoch in `log` (empty when nothing is logged),
/// with the epoch's data wait after `Epoch time`.
pub(crate) fn epoch_lines(log: &TrainLog, new_best: bool, data_wait_percent: f64) -> Vec<String> {
    let Some(epoch) = log.n_epochs().checked_sub(1) else {
        return Vec::new();
    };
    let dice: Vec<String> = log.dice_per_class[epoch]
        .iter()
        .map(|d| format!("{d:.4}"))
        .collect();
    let duration = log.epoch_durations()[epoch];
    let mut lines = vec![
        format!("Epoch {epoch}"),
        format!("Current learning rate: {:.5}", log.lrs[epoch]),
        format!("train_loss {:.4}", log.train_losses[epoch]),
        format!("val_loss {:.4}", log.val_losses[epoch]),
        format!("Pseudo dice [{}]", dice.join(", ")),
        format!("Epoch time: {duration:.2} s"),
        format!("Data wait: {data_wait_percent:.2} % of the training iterations"),
    ];
    if new_best {
        lines.push(format!(
            "Yayy! New best EMA pseudo Dice: {:.4}",
            log.ema_fg_dice[epoch]
        ));
    }
    lines
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC (nnU-Net prints local time in the same layout).
pub(crate) fn utc_timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, day_secs) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let at = |s: u64, micros: u64| {
            utc_timestamp(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(micros))
        };
        assert_eq!(at(0, 0), "1970-01-01 00:00:00.000000");
        // date -u -d @951782400 -> 2000-02-29 00:00:00 (a leap day of a century leap year).
        assert_eq!(at(951_782_400, 5), "2000-02-29 00:00:00.000005");
        // date -u -d @1764168363 -> 2025-11-26 14:46:03.
        assert_eq!(at(1_764_168_363, 123_456), "2025-11-26 14:46:03.123456");
    }

    #[test]
    fn epoch_lines_follow_nnunet() {
        let log = TrainLog {
            train_losses: vec![-0.5, -0.61234],
            val_losses: vec![-0.4, -0.55],
            dice_per_class: vec![vec![0.5, 0.25], vec![0.8, f64::NAN]],
            mean_fg_dice: vec![0.375, 0.8],
            ema_fg_dice: vec![0.375, 0.4175],
            lrs: vec![0.01, 0.00991],
            epoch_start_timestamps: vec![0.0, 10.0],
            epoch_end_timestamps: vec![10.0, 22.5],
        };
        assert_eq!(
            epoch_lines(&log, true, 0.8),
            vec![
                "Epoch 1",
                "Current learning rate: 0.00991",
                "train_loss -0.6123",
                "val_loss -0.5500",
                "Pseudo dice [0.8000, NaN]",
                "Epoch time: 12.50 s",
                "Data wait: 0.80 % of the training iterations",
                "Yayy! New best EMA pseudo Dice: 0.4175",
            ]
        );
        assert_eq!(epoch_lines(&log, false, 0.0).len(), 7);
        assert!(epoch_lines(&TrainLog::default(), true, 0.0).is_empty());
    }
}
