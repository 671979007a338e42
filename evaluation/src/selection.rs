//! Choosing the best configuration or ensemble by foreground-mean Dice.
//!
//! nnU-Net: `evaluation/find_best_configuration.py::find_best_configuration`: single models are
//! listed first, then every pair `(i, j)`, `i < j`, of them as an ensemble; the best has the
//! highest foreground-mean Dice and ties go to the first listed (the simpler model).

use crate::EvaluationError;

/// A trained model or ensemble with its cross-validation score.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The configuration name (`3d_fullres`) or an ensemble's name.
    pub name: String,
    /// Foreground-mean Dice over the cross-validation predictions.
    pub foreground_dice: f64,
}

/// The index of the best candidate: highest foreground Dice, the first on ties.
///
/// A NaN score ranks below every number (Python's `max` would keep a NaN that comes first);
/// when all scores are NaN the first candidate is chosen.
///
/// # Errors
/// [`EvaluationError::NoCandidates`] for an empty list.
pub fn choose_best(candidates: &[Candidate]) -> Result<usize, EvaluationError> {
    let mut best: Option<usize> = None;
    for (i, candidate) in candidates.iter().enumerate() {
        let better = match best {
            None => true,
            Some(b) => {
                let current = candidates[b].foreground_dice;
                candidate.foreground_dice > current
                    || (current.is_nan() && !candidate.foreground_dice.is_nan())
            }
        };
        if better {
            best = Some(i);
        }
    }
    best.ok_or(EvaluationError::NoCandidates)
}

/// The ensembles nnU-Net tries for `n_models` single models, in its order: every pair
/// `(i, j)` with `i < j`.
pub fn ensemble_pairs(n_models: usize) -> Vec<(usize, usize)> {
    (0..n_models)
        .flat_map(|i| (i + 1..n_models).map(move |j| (i, j)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(scores: &[f64]) -> Vec<Candidate> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| Candidate {
                name: format!("m{i}"),
                foreground_dice: s,
            })
            .collect()
    }

    #[test]
    fn highest_dice_wins_and_ties_go_to_the_first() {
        assert_eq!(choose_best(&candidates(&[0.7, 0.9, 0.8])).unwrap(), 1);
        assert_eq!(choose_best(&candidates(&[0.9, 0.8, 0.9])).unwrap(), 0);
        assert_eq!(choose_best(&candidates(&[f64::NAN, 0.1])).unwrap(), 1);
        assert_eq!(choose_best(&candidates(&[f64::NAN, f64::NAN])).unwrap(), 0);
        assert!(matches!(
            choose_best(&[]),
            Err(EvaluationError::NoCandidates)
        ));
    }

    #[test]
    fn pairs_follow_nnunets_order() {
        assert_eq!(ensemble_pairs(3), vec![(0, 1), (0, 2), (1, 2)]);
        assert!(ensemble_pairs(1).is_empty());
    }
}
