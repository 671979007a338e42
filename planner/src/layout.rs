//! The work folder of one dataset, `<work>/<dataset folder name>/`: the one place that knows
//! where every artifact lives. Every crate and the binary ask a [`WorkLayout`] for a path;
//! nobody else spells `fold_<k>`, `plans.toml` or `results/`.
//!
//! ```text
//! <work>/<dataset>/
//!   .autoseg.lock                held by the run writing here (autoseg_planner::WorkLock)
//!   dataset.json                 copy of the raw dataset's (a model folder is self-contained)
//!   fingerprint.toml             autoseg fingerprint
//!   plans.toml                   autoseg plan (hand-editable)
//!   splits.toml                  the five folds
//!   preprocessed/<config>/       the cache of a configuration with its own data
//!   results/<config>/fold_<k>/   checkpoints (autoseg_network::checkpoint names them),
//!                                train.log, progress.png, validation/,
//!                                train_output.log (plan-and-train --parallel-folds)
//!   results/<config>/crossval/   every fold's validation merged (find-best)
//!   results/<config>/predicted_next_stage/<next>/   a cascade's first-stage outputs
//!   results/ensembles/<a>__<b>/  pair ensembles (find-best)
//!   results/best.toml            find-best's choice
//!   report/                      the HTML report
//! ```
//!
//! Paths only: reading and writing each artifact is the job of the crate that owns its type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the artifacts of one dataset live. Cheap to clone; does no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkLayout {
    root: PathBuf,
}

impl WorkLayout {
    /// The layout rooted at `root` (`<work>/<dataset folder name>`; a model folder).
    pub fn new(root: impl Into<PathBuf>) -> WorkLayout {
        WorkLayout { root: root.into() }
    }

    /// The dataset's work folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `.autoseg.lock`: the advisory lock a writing command holds ([`crate::WorkLock`]).
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".autoseg.lock")
    }

    /// `.autoseg.lock.<configuration>.fold_<fold>`: the lock of one fold's training, beside
    /// the folder's own lock (not inside the fold folder, whose files are the model's).
    pub fn fold_lock_file(&self, configuration: &str, fold: impl fmt::Display) -> PathBuf {
        self.root.join(format!(
            ".autoseg.lock.{configuration}.{}",
            fold_folder(fold)
        ))
    }

    /// `dataset.json`: the copy `plan` keeps beside the plans.
    pub fn dataset_json(&self) -> PathBuf {
        self.root.join("dataset.json")
    }

    /// `fingerprint.toml`.
    pub fn fingerprint(&self) -> PathBuf {
        self.root.join("fingerprint.toml")
    }

    /// `plans.toml`.
    pub fn plans(&self) -> PathBuf {
        self.root.join("plans.toml")
    }

    /// `splits.toml`.
    pub fn splits(&self) -> PathBuf {
        self.root.join("splits.toml")
    }

    /// `preprocessed/`: every configuration's cache.
    pub fn preprocessed_root(&self) -> PathBuf {
        self.root.join("preprocessed")
    }

    /// `preprocessed/<data_configuration>/`: the cache of the configuration whose data a
    /// configuration uses ([`crate::Plans::data_configuration`]).
    pub fn preprocessed(&self, data_configuration: &str) -> PathBuf {
        self.preprocessed_root().join(data_configuration)
    }

    /// `results/`.
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }

    /// `results/<configuration>/`.
    pub fn configuration(&self, configuration: &str) -> PathBuf {
        self.results().join(configuration)
    }

    /// `results/<configuration>/fold_<fold>/` (`fold`: `0`..`4` or `all`).
    pub fn fold(&self, configuration: &str, fold: impl fmt::Display) -> PathBuf {
        self.configuration(configuration).join(fold_folder(fold))
    }

    /// `results/<configuration>/fold_<fold>/validation/`: the final validation's outputs.
    pub fn validation(&self, configuration: &str, fold: impl fmt::Display) -> PathBuf {
        self.fold(configuration, fold).join("validation")
    }

    /// `results/<configuration>/fold_<fold>/train.log`: the trainer's log.
    pub fn train_log(&self, configuration: &str, fold: impl fmt::Display) -> PathBuf {
        self.fold(configuration, fold).join("train.log")
    }

    /// `results/<configuration>/fold_<fold>/train_output.log`: what the `autoseg train`
    /// process that `plan-and-train --parallel-folds` ran for this fold printed (stdout and
    /// stderr, each run appended).
    pub fn train_output(&self, configuration: &str, fold: impl fmt::Display) -> PathBuf {
        self.fold(configuration, fold).join("train_output.log")
    }

    /// `results/<configuration>/fold_<fold>/training.toml`: the training settings the fold's last
    /// run used (the plan's `training` table with a `--trainer` name's and the flags' values).
    pub fn training_settings(&self, configuration: &str, fold: impl fmt::Display) -> PathBuf {
        self.fold(configuration, fold).join("training.toml")
    }

    /// `results/<configuration>/fold_<fold>/progress.png`: the training curves.
    pub fn progress_plot(&self, configuration: &str, fold: impl fmt::Display) -> PathBuf {
        self.fold(configuration, fold).join("progress.png")
    }

    /// `results/<configuration>/crossval/`: every fold's validation merged.
    pub fn crossval(&self, configuration: &str) -> PathBuf {
        self.configuration(configuration).join("crossval")
    }

    /// `results/<previous>/predicted_next_stage/<next>/`: the segmentations of a cascade's
    /// first stage on the next stage's grid.
    pub fn predicted_next_stage(&self, previous: &str, next: &str) -> PathBuf {
        self.configuration(previous)
            .join("predicted_next_stage")
            .join(next)
    }

    /// `results/ensembles/<name>/`: a find-best ensemble's predictions.
    pub fn ensemble(&self, name: &str) -> PathBuf {
        self.results().join("ensembles").join(name)
    }

    /// `results/best.toml`.
    pub fn best(&self) -> PathBuf {
        self.results().join("best.toml")
    }

    /// `report/`.
    pub fn report(&self) -> PathBuf {
        self.root.join("report")
    }
}

/// The folder name of a fold, `fold_<fold>`.
pub fn fold_folder(fold: impl fmt::Display) -> String {
    format!("fold_{fold}")
}

/// The fold of a folder named `fold_<fold>`, `None` for any other name.
pub fn fold_of_folder(name: &str) -> Option<&str> {
    name.strip_prefix("fold_").filter(|fold| !fold.is_empty())
}

/// The file name `summary.json` that every evaluated folder holds.
pub const SUMMARY_JSON: &str = "summary.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_documented_layout() {
        let layout = WorkLayout::new("/w/Dataset001_X");
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(layout.plans(), p("/w/Dataset001_X/plans.toml"));
        assert_eq!(layout.fingerprint(), p("/w/Dataset001_X/fingerprint.toml"));
        assert_eq!(layout.splits(), p("/w/Dataset001_X/splits.toml"));
        assert_eq!(layout.dataset_json(), p("/w/Dataset001_X/dataset.json"));
        assert_eq!(
            layout.preprocessed("3d_fullres"),
            p("/w/Dataset001_X/preprocessed/3d_fullres")
        );
        assert_eq!(layout.fold("2d", 3), p("/w/Dataset001_X/results/2d/fold_3"));
        assert_eq!(
            layout.validation("2d", "all"),
            p("/w/Dataset001_X/results/2d/fold_all/validation")
        );
        assert_eq!(
            layout.train_output("2d", 1),
            p("/w/Dataset001_X/results/2d/fold_1/train_output.log")
        );
        assert_eq!(
            layout.crossval("2d"),
            p("/w/Dataset001_X/results/2d/crossval")
        );
        assert_eq!(
            layout.predicted_next_stage("3d_lowres", "3d_cascade_fullres"),
            p("/w/Dataset001_X/results/3d_lowres/predicted_next_stage/3d_cascade_fullres")
        );
        assert_eq!(
            layout.ensemble("2d__3d_fullres"),
            p("/w/Dataset001_X/results/ensembles/2d__3d_fullres")
        );
        assert_eq!(layout.best(), p("/w/Dataset001_X/results/best.toml"));
        assert_eq!(layout.report(), p("/w/Dataset001_X/report"));
        assert_eq!(fold_of_folder("fold_all"), Some("all"));
        assert_eq!(fold_of_folder("fold_"), None);
        assert_eq!(fold_of_folder("crossval"), None);
    }
}
