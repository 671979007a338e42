//! Cross-validation splits: nnU-Net's seeded 5-fold split, the `all` fold, the 80:20 fallback
//! for fold indices beyond the split list, and `splits.toml`.
//!
//! nnU-Net: `nnUNetTrainer.do_split` and `utilities/crossval_split.py::generate_crossval_split`
//! (sklearn `KFold(n_splits=5, shuffle=True, random_state=12345)` over the sorted case ids).

use std::fmt;
use std::str::FromStr;

use autoseg_preprocessing::rng::RandomState;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Version of the `splits.toml` layout this code reads and writes.
pub const SPLITS_SCHEMA_VERSION: u32 = 1;

/// nnU-Net's number of cross-validation folds.
pub const NNUNET_N_FOLDS: usize = 5;

/// nnU-Net's split seed (`random_state=12345`; the 80:20 fallback seeds `12345 + fold`).
pub const NNUNET_SPLIT_SEED: u32 = 12345;

/// What can go wrong making, reading or using splits.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SplitError {
    /// KFold needs at least two folds.
    #[error("cannot make {n_folds}-fold splits: at least 2 folds are needed")]
    TooFewFolds {
        /// Requested number of folds.
        n_folds: usize,
    },
    /// KFold needs at least as many cases as folds.
    #[error(
        "cannot make {n_folds}-fold splits of {n_cases} cases: need at least one case per fold"
    )]
    TooFewCases {
        /// Requested number of folds.
        n_folds: usize,
        /// Number of cases.
        n_cases: usize,
    },
    /// `splits.toml` is not valid TOML for [`Splits`].
    #[error("splits.toml: {0}")]
    Parse(#[from] toml::de::Error),
    /// [`Splits`] could not be written as TOML.
    #[error("splits.toml: cannot serialise: {0}")]
    Serialise(#[from] toml::ser::Error),
    /// `splits.toml` was written by a different layout version.
    #[error("splits.toml: schema_version {found} is not supported (expected {expected})")]
    SchemaVersion {
        /// Version in the file.
        found: u32,
        /// Version this code reads.
        expected: u32,
    },
    /// A split names a case the dataset does not have.
    #[error("splits.toml: split {split_idx} names case '{case}', which is not in the dataset")]
    UnknownCase {
        /// Index of the split in the file.
        split_idx: usize,
        /// The unknown case id.
        case: String,
    },
    /// A fold string is neither a fold index nor `all`.
    #[error("'{0}' is not a fold: expected an index 0..=255 or 'all'")]
    BadFold(String),
}

/// One fold's training and validation case ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Cases trained on.
    pub train: Vec<String>,
    /// Cases validated on.
    pub val: Vec<String>,
}

/// The contents of `splits.toml`: every split, in fold order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Splits {
    /// Layout version, [`SPLITS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Splits; index `k` is fold `k`.
    pub folds: Vec<Split>,
}

/// Which fold to train: an index into the splits (indices past the end get nnU-Net's seeded
/// 80:20 split) or nnU-Net's `all` (train and validate on every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fold {
    /// Fold `k`.
    Index(u8),
    /// Every case is both trained and validated on.
    All,
}

impl FromStr for Fold {
    type Err = SplitError;

    fn from_str(s: &str) -> Result<Fold, SplitError> {
        if s == "all" {
            return Ok(Fold::All);
        }
        s.parse::<u8>()
            .map(Fold::Index)
            .map_err(|_| SplitError::BadFold(s.to_string()))
    }
}

impl fmt::Display for Fold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fold::Index(k) => write!(f, "{k}"),
            Fold::All => f.write_str("all"),
        }
    }
}

/// sklearn `KFold(n_folds, shuffle=True, random_state=seed)` over the sorted case ids, as nnU-Net
/// builds `splits_final.json`: shuffle `0..n` with numpy's legacy shuffle, cut it into `n_folds`
/// consecutive chunks (the first `n % n_folds` one case longer); chunk `k` is fold `k`'s
/// validation set; both lists are in ascending (sorted-id) order.
///
/// `case_ids` are sorted here, so any order may be passed.
///
/// # Errors
/// [`SplitError::TooFewFolds`] for `n_folds < 2`, [`SplitError::TooFewCases`] for fewer cases
/// than folds (sklearn raises the same).
pub fn kfold_splits(case_ids: &[String], n_folds: usize, seed: u32) -> Result<Splits, SplitError> {
    let n_cases = case_ids.len();
    if n_folds < 2 {
        return Err(SplitError::TooFewFolds { n_folds });
    }
    if n_cases < n_folds {
        return Err(SplitError::TooFewCases { n_folds, n_cases });
    }
    let sorted = sorted_ids(case_ids);
    let order = RandomState::new(seed).permutation(n_cases);
    let mut start = 0;
    let folds = (0..n_folds)
        .map(|k| {
            let len = n_cases / n_folds + usize::from(k < n_cases % n_folds);
            let mut is_val = vec![false; n_cases];
            order[start..start + len]
                .iter()
                .for_each(|&i| is_val[i] = true);
            start += len;
            let pick = |want: bool| {
                (0..n_cases)
                    .filter(|&i| is_val[i] == want)
                    .map(|i| sorted[i].clone())
                    .collect()
            };
            Split {
                train: pick(false),
                val: pick(true),
            }
        })
        .collect();
    Ok(Splits {
        schema_version: SPLITS_SCHEMA_VERSION,
        folds,
    })
}

/// The cases of `fold` (nnU-Net `do_split`): `All` trains and validates on every case; an index
/// inside `splits` takes that split; an index past the end takes a random 80:20 split seeded with
/// `RandomState(12345 + fold)`: training cases in draw order, validation cases sorted.
pub fn fold_cases(splits: &Splits, case_ids: &[String], fold: Fold) -> Split {
    match fold {
        Fold::All => {
            let all = sorted_ids(case_ids);
            Split {
                train: all.clone(),
                val: all,
            }
        }
        Fold::Index(k) => match splits.folds.get(usize::from(k)) {
            Some(split) => split.clone(),
            None => random_80_20_split(case_ids, k),
        },
    }
}

fn random_80_20_split(case_ids: &[String], fold: u8) -> Split {
    let sorted = sorted_ids(case_ids);
    let n_train = sorted.len() * 8 / 10;
    let mut rs = RandomState::new(NNUNET_SPLIT_SEED + u32::from(fold));
    let train_idx = rs
        .choice_without_replacement(sorted.len(), n_train)
        .expect("80% of the cases is never more than all of them");
    let mut is_train = vec![false; sorted.len()];
    train_idx.iter().for_each(|&i| is_train[i] = true);
    Split {
        train: train_idx.iter().map(|&i| sorted[i].clone()).collect(),
        val: (0..sorted.len())
            .filter(|&i| !is_train[i])
            .map(|i| sorted[i].clone())
            .collect(),
    }
}

fn sorted_ids(case_ids: &[String]) -> Vec<String> {
    let mut sorted = case_ids.to_vec();
    sorted.sort();
    sorted
}

impl Splits {
    /// `splits.toml` text (`schema_version`, then one `[[folds]]` table per split).
    ///
    /// # Errors
    /// [`SplitError::Serialise`] if TOML serialisation fails.
    pub fn to_toml_string(&self) -> Result<String, SplitError> {
        Ok(toml::to_string(self)?)
    }

    /// Parses `splits.toml` text and checks its `schema_version`.
    ///
    /// # Errors
    /// [`SplitError::Parse`] for malformed TOML or unknown keys, [`SplitError::SchemaVersion`]
    /// for a version this code does not read.
    pub fn from_toml_str(text: &str) -> Result<Splits, SplitError> {
        let splits: Splits = toml::from_str(text)?;
        if splits.schema_version != SPLITS_SCHEMA_VERSION {
            return Err(SplitError::SchemaVersion {
                found: splits.schema_version,
                expected: SPLITS_SCHEMA_VERSION,
            });
        }
        Ok(splits)
    }

    /// Checks that every case named in every split is one of `case_ids` (a user may edit the
    /// file).
    ///
    /// # Errors
    /// [`SplitError::UnknownCase`] for the first case that is not in the dataset.
    pub fn check_cases(&self, case_ids: &[String]) -> Result<(), SplitError> {
        let known: std::collections::HashSet<&str> = case_ids.iter().map(String::as_str).collect();
        for (split_idx, split) in self.folds.iter().enumerate() {
            let named = split.train.iter().chain(&split.val);
            if let Some(case) = named.into_iter().find(|c| !known.contains(c.as_str())) {
                return Err(SplitError::UnknownCase {
                    split_idx,
                    case: case.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("case_{i:03}")).collect()
    }

    fn val_indices(split: &Split) -> Vec<usize> {
        split.val.iter().map(|c| c[5..].parse().unwrap()).collect()
    }

    #[test]
    fn twenty_cases_give_nnunets_five_folds() {
        // reference/nnunet.md §12 (sklearn KFold(5, shuffle=True, random_state=12345)).
        let splits = kfold_splits(&ids(20), 5, 12345).unwrap();
        let vals: Vec<Vec<usize>> = splits.folds.iter().map(val_indices).collect();
        assert_eq!(
            vals,
            [
                vec![3, 8, 13, 16],
                vec![0, 10, 12, 15],
                vec![6, 7, 11, 17],
                vec![9, 14, 18, 19],
                vec![1, 2, 4, 5]
            ]
        );
        let fold0 = &splits.folds[0];
        assert_eq!(fold0.train.len(), 16);
        assert!(fold0.train.windows(2).all(|w| w[0] < w[1]));
        assert!(fold0.train.iter().all(|c| !fold0.val.contains(c)));
    }

    // sklearn 1.x: [sorted(v) for _, v in KFold(5, shuffle=True, random_state=12345)
    //               .split(np.arange(32))] (fold 0 is also in reference/nnunet.md §12)
    #[test]
    fn uneven_folds_match_sklearn() {
        let splits = kfold_splits(&ids(32), 5, 12345).unwrap();
        let vals: Vec<Vec<usize>> = splits.folds.iter().map(val_indices).collect();
        assert_eq!(vals[0], [0, 3, 8, 12, 15, 18, 27]);
        assert_eq!(vals[1], [6, 7, 20, 21, 23, 24, 25]);
        assert_eq!(vals[2], [10, 11, 13, 16, 19, 26]);
        assert_eq!(vals[3], [14, 17, 22, 28, 30, 31]);
        assert_eq!(vals[4], [1, 2, 4, 5, 9, 29]);
    }

    #[test]
    fn ids_are_sorted_before_splitting() {
        let mut shuffled = ids(20);
        shuffled.reverse();
        assert_eq!(
            kfold_splits(&shuffled, 5, 12345).unwrap(),
            kfold_splits(&ids(20), 5, 12345).unwrap()
        );
    }

    #[test]
    fn too_few_cases_or_folds_are_errors() {
        assert!(matches!(
            kfold_splits(&ids(4), 5, 12345),
            Err(SplitError::TooFewCases {
                n_folds: 5,
                n_cases: 4
            })
        ));
        assert!(matches!(
            kfold_splits(&ids(4), 1, 12345),
            Err(SplitError::TooFewFolds { n_folds: 1 })
        ));
    }

    // numpy: rnd = np.random.RandomState(12345 + 5); idx_tr = rnd.choice(20, 16, replace=False)
    //   -> [5, 9, 6, 18, 3, 1, 4, 13, 15, 7, 0, 10, 8, 12, 14, 11]; val -> [2, 16, 17, 19]
    #[test]
    fn folds_past_the_splits_get_the_seeded_80_20_split() {
        let splits = kfold_splits(&ids(20), 5, 12345).unwrap();
        let split = fold_cases(&splits, &ids(20), Fold::Index(5));
        let train: Vec<usize> = split
            .train
            .iter()
            .map(|c| c[5..].parse().unwrap())
            .collect();
        assert_eq!(
            train,
            [5, 9, 6, 18, 3, 1, 4, 13, 15, 7, 0, 10, 8, 12, 14, 11]
        );
        assert_eq!(val_indices(&split), [2, 16, 17, 19]);
    }

    #[test]
    fn fold_all_trains_and_validates_on_everything() {
        let splits = kfold_splits(&ids(6), 5, 12345).unwrap();
        let split = fold_cases(&splits, &ids(6), Fold::All);
        assert_eq!(split.train, ids(6));
        assert_eq!(split.val, ids(6));
        assert_eq!(
            fold_cases(&splits, &ids(6), Fold::Index(2)),
            splits.folds[2]
        );
    }

    #[test]
    fn splits_round_trip_through_toml() {
        let splits = kfold_splits(&ids(7), 5, 12345).unwrap();
        let text = splits.to_toml_string().unwrap();
        assert!(text.starts_with("schema_version = 1\n"));
        assert_eq!(Splits::from_toml_str(&text).unwrap(), splits);
    }

    #[test]
    fn bad_splits_files_are_rejected_with_their_fault() {
        let wrong_version = "schema_version = 9\nfolds = []\n";
        assert!(matches!(
            Splits::from_toml_str(wrong_version),
            Err(SplitError::SchemaVersion { found: 9, .. })
        ));
        let unknown_key = "schema_version = 1\n[[folds]]\ntrain = []\nval = []\ntest = []\n";
        assert!(matches!(
            Splits::from_toml_str(unknown_key),
            Err(SplitError::Parse(_))
        ));
        let edited = "schema_version = 1\n[[folds]]\ntrain = [\"case_000\"]\nval = [\"ghost\"]\n";
        let err = Splits::from_toml_str(edited)
            .unwrap()
            .check_cases(&ids(3))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "splits.toml: split 0 names case 'ghost', which is not in the dataset"
        );
    }

    #[test]
    fn folds_parse_from_the_command_line_words() {
        assert_eq!("3".parse::<Fold>().unwrap(), Fold::Index(3));
        assert_eq!("all".parse::<Fold>().unwrap(), Fold::All);
        assert!(matches!("x".parse::<Fold>(), Err(SplitError::BadFold(s)) if s == "x"));
        assert_eq!(Fold::All.to_string(), "all");
        assert_eq!(Fold::Index(4).to_string(), "4");
    }
}
