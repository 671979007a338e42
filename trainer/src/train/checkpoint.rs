//! Checkpoint decisions, as pure functions: which checkpoints to write after an epoch, and
//! which one `--resume` continues from. The format itself (files, metadata, digests, loading
//! weights with their checks) is `autoseg_network::checkpoint`'s.
//!
//! nnU-Net: the checkpoint logic of `nnUNetTrainer.on_epoch_end` (there `latest` is written
//! every 50 epochs; here every epoch, design.md).

use std::path::Path;

use autoseg_network::checkpoint::{read_checkpoint_meta, CheckpointKind};

use super::TrainError;

/// Something to write after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointAction {
    /// Write the checkpoint of this kind.
    Save(CheckpointKind),
}

/// What to write after `epochs_done` of `total_epochs` epochs: `best` when the EMA improved,
/// `final` after the last epoch, and `latest` always, last (so that a crash while writing the
/// others leaves the previous `latest` to resume from).
pub fn checkpoint_actions(
    epochs_done: usize,
    total_epochs: usize,
    new_best_ema: bool,
) -> Vec<CheckpointAction> {
    let mut actions = Vec::with_capacity(3);
    if new_best_ema {
        actions.push(CheckpointAction::Save(CheckpointKind::Best));
    }
    if epochs_done >= total_epochs {
        actions.push(CheckpointAction::Save(CheckpointKind::Final));
    }
    actions.push(CheckpointAction::Save(CheckpointKind::Latest));
    actions
}

/// Which checkpoint `--resume` continues from: `latest` or `final`, whichever has more epochs
/// (`final` on a tie, unless `latest` stopped inside the epoch after them); `None` when
/// neither exists.
///
/// # Errors
/// As [`read_checkpoint_meta`].
pub fn resume_checkpoint(fold_dir: &Path) -> Result<Option<CheckpointKind>, TrainError> {
    let latest = read_checkpoint_meta(fold_dir, CheckpointKind::Latest)?;
    let last = read_checkpoint_meta(fold_dir, CheckpointKind::Final)?;
    Ok(match (latest, last) {
        (None, None) => None,
        (Some(_), None) => Some(CheckpointKind::Latest),
        (None, Some(_)) => Some(CheckpointKind::Final),
        (Some(l), Some(f))
            if l.epochs_done > f.epochs_done
                || (l.epochs_done == f.epochs_done && l.interrupted.is_some()) =>
        {
            Some(CheckpointKind::Latest)
        }
        (Some(_), Some(_)) => Some(CheckpointKind::Final),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckpointAction::Save;
    use CheckpointKind::{Best, Final, Latest};

    #[test]
    fn latest_every_epoch_best_on_improvement_final_at_the_end() {
        assert_eq!(checkpoint_actions(1, 10, false), vec![Save(Latest)]);
        assert_eq!(
            checkpoint_actions(1, 10, true),
            vec![Save(Best), Save(Latest)]
        );
        assert_eq!(
            checkpoint_actions(10, 10, true),
            vec![Save(Best), Save(Final), Save(Latest)]
        );
        assert_eq!(
            checkpoint_actions(10, 10, false),
            vec![Save(Final), Save(Latest)]
        );
    }
}
