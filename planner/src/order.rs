//! Pipeline order as plan data: which configurations a run trains, in which order, and whose
//! preprocessed data each needs. Decided from `previous_stage` and `inherits_from` alone, so
//! configurations added to `plans.toml` under any name order themselves.

use crate::{PlanError, Plans};

impl Plans {
    /// `names` in training order: a configuration after its `previous_stage` (and that one's,
    /// and so on), otherwise by name. For nnU-Net's configurations this is `2d`, `3d_fullres`,
    /// `3d_lowres`, `3d_cascade_fullres`, the order nnU-Net documents. Duplicates are dropped.
    ///
    /// # Errors
    /// [`PlanError::UnknownConfiguration`] for a name that is not planned, the errors of
    /// [`Plans::resolve`], and [`PlanError::StageCycle`] when `previous_stage` links loop.
    pub fn training_order(&self, names: &[String]) -> Result<Vec<String>, PlanError> {
        let mut keyed = Vec::with_capacity(names.len());
        for name in names {
            if keyed.iter().any(|(_, n)| n == name) {
                continue;
            }
            keyed.push((self.stage_depth(name)?, name.clone()));
        }
        keyed.sort();
        Ok(keyed.into_iter().map(|(_, name)| name).collect())
    }

    /// Every planned configuration in [`Plans::training_order`]: what `plan-and-train` trains
    /// when no configuration is named (nnU-Net's default set, with any added by hand).
    ///
    /// # Errors
    /// As [`Plans::training_order`].
    pub fn all_in_training_order(&self) -> Result<Vec<String>, PlanError> {
        self.training_order(&self.configuration_names())
    }

    /// The configurations that have preprocessed data of their own (every one but the cascade
    /// stages that share the data of the configuration they inherit from), in name order:
    /// what `preprocess` writes by default.
    pub fn configurations_with_own_data(&self) -> Vec<String> {
        self.configuration_names()
            .into_iter()
            .filter(|name| self.data_configuration(name) == name)
            .collect()
    }

    /// The caches training and validating `name` reads, in the order to prepare them: its own
    /// data ([`Plans::data_configuration`]), then, for a stage with a `next_stage`, the next
    /// stage's (its validation writes the next stage's inputs on that grid).
    ///
    /// # Errors
    /// As [`Plans::resolve`].
    pub fn caches_for_training(&self, name: &str) -> Result<Vec<String>, PlanError> {
        let mut caches = vec![self.data_configuration(name).to_string()];
        if let Some(next) = self.resolve(name)?.next_stage {
            let next_data = self.data_configuration(&next).to_string();
            if !caches.contains(&next_data) {
                caches.push(next_data);
            }
        }
        Ok(caches)
    }

    /// How many `previous_stage` links lead from `name` back to a configuration without one.
    fn stage_depth(&self, name: &str) -> Result<usize, PlanError> {
        let mut chain = vec![name.to_string()];
        let mut current = name.to_string();
        while let Some(previous) = self.resolve(&current)?.previous_stage {
            if chain.contains(&previous) {
                chain.push(previous);
                return Err(PlanError::StageCycle {
                    name: name.to_string(),
                    chain,
                });
            }
            chain.push(previous.clone());
            current = previous;
        }
        Ok(chain.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{
        plan, DatasetInfo, Fingerprint, ForegroundIntensityProperties, LabelEntry, LabelValue,
        PlanError, PlannerSettings, Plans,
    };

    /// Plans of a large anisotropic-free dataset, which get a 3d_lowres stage and a cascade.
    fn cascade_plans() -> Plans {
        let stats = ForegroundIntensityProperties {
            mean: 100.0,
            median: 98.0,
            std: 20.0,
            min: 0.0,
            max: 400.0,
            percentile_00_5: 10.0,
            percentile_99_5: 300.0,
        };
        let fingerprint = Fingerprint::new(
            vec![[1.0; 3]; 20],
            vec![[400, 400, 400]; 20],
            1.0,
            vec![stats],
        )
        .unwrap();
        let label = |name: &str, v| LabelEntry {
            name: name.into(),
            value: LabelValue::Single(v),
        };
        let labels = vec![label("background", 0), label("organ", 1)];
        let info =
            DatasetInfo::new("Dataset900_Big", vec!["CT".into()], labels, 20, ".nii.gz").unwrap();
        plan(&fingerprint, &info, &PlannerSettings::nnunet_default()).unwrap()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nnunet_configurations_train_in_nnunets_order() {
        let plans = cascade_plans();
        assert_eq!(
            plans.all_in_training_order().unwrap(),
            names(&["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"])
        );
        assert_eq!(
            plans
                .training_order(&names(&["3d_cascade_fullres", "3d_lowres", "2d"]))
                .unwrap(),
            names(&["2d", "3d_lowres", "3d_cascade_fullres"])
        );
        assert_eq!(
            plans.configurations_with_own_data(),
            names(&["2d", "3d_fullres", "3d_lowres"])
        );
        assert_eq!(
            plans.caches_for_training("3d_lowres").unwrap(),
            names(&["3d_lowres", "3d_fullres"])
        );
        assert_eq!(
            plans.caches_for_training("3d_cascade_fullres").unwrap(),
            names(&["3d_fullres"])
        );
    }

    /// The stages renamed `low` → `high` (`high` sorts before `low` by name): `low` trains
    /// first. Before `training_order`, plan-and-train sorted unknown names to the front.
    #[test]
    fn custom_named_cascade_trains_its_previous_stage_first() {
        let mut plans = cascade_plans();
        let rename: BTreeMap<&str, &str> = [("3d_lowres", "low"), ("3d_cascade_fullres", "high")]
            .into_iter()
            .collect();
        let mut configurations = BTreeMap::new();
        for (name, mut entry) in std::mem::take(&mut plans.configurations) {
            for link in [&mut entry.previous_stage, &mut entry.next_stage] {
                if let Some(target) = link.as_ref().and_then(|l| rename.get(l.as_str())) {
                    *link = Some(target.to_string());
                }
            }
            let name = rename
                .get(name.as_str())
                .map_or(name.clone(), |n| n.to_string());
            configurations.insert(name, entry);
        }
        plans.configurations = configurations;
        assert_eq!(
            plans.training_order(&names(&["high", "low"])).unwrap(),
            names(&["low", "high"])
        );
        assert_eq!(
            plans.caches_for_training("low").unwrap(),
            names(&["low", "3d_fullres"])
        );
    }

    #[test]
    fn unknown_and_looping_stages_are_refused() {
        let mut plans = cascade_plans();
        let err = plans.training_order(&names(&["3d_huge"])).unwrap_err();
        assert!(
            matches!(err, PlanError::UnknownConfiguration { .. }),
            "{err}"
        );
        plans
            .configurations
            .get_mut("3d_lowres")
            .unwrap()
            .previous_stage = Some("3d_cascade_fullres".into());
        let err = plans
            .training_order(&names(&["3d_cascade_fullres"]))
            .unwrap_err();
        assert!(matches!(err, PlanError::StageCycle { .. }), "{err}");
        assert!(err.to_string().contains("previous_stage"), "{err}");
    }
}
