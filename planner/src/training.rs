//! `[configurations.<name>.training]`: how a configuration trains, as plan data instead of
//! nnU-Net's trainer subclasses.
//!
//! [`TrainingEntry`] is the table as written (every key optional, merged key by key through
//! `inherits_from`, unknown keys and values refused with the valid ones listed);
//! [`Training`] is the resolved, checked set of values a run uses, nnU-Net's
//! `nnUNetTrainer` defaults where a key is absent. [`nnunet_trainer`] turns nnU-Net's trainer
//! class names (`nnUNetTrainer_250epochs`, `nnUNetTrainerNoMirroring`, ...) into the same
//! table, so that nnU-Net commands translate one for one.
//!
//! nnU-Net: `nnUNetTrainer.__init__` (epochs, iterations, lr, weight decay, oversampling),
//! `configure_optimizers`, `_build_loss`, `configure_rotation_dummyDA_mirroring_and_inital_patch_size`
//! and the classes of `training/nnUNetTrainer/variants/`.

use serde::{Deserialize, Serialize};

use crate::{Dim, PlanError};

/// The optimiser (nnU-Net's `configure_optimizers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// torch `SGD(momentum, nesterov=True, weight_decay)`: nnU-Net's default.
    Sgd,
    /// torch `Adam(weight_decay)` (L2 penalty added to the gradient): `nnUNetTrainerVanillaAdam`.
    Adam,
    /// torch `AdamW(weight_decay)` (decoupled decay); with `amsgrad = true` it is
    /// `nnUNetTrainerAdam`.
    Adamw,
}

/// The learning-rate schedule, stepped at the start of every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrScheduleKind {
    /// `PolyLRScheduler`: `lr · (1 − e / epochs)^0.9` (nnU-Net's default).
    Poly,
    /// `CosineAnnealingLR(T_max = epochs)`: `lr · (1 + cos(π e / epochs)) / 2`
    /// (`nnUNetTrainerCosAnneal`).
    Cosine,
}

/// The training loss (nnU-Net's `_build_loss` and its loss variants), each wrapped in the
/// deep-supervision weights when deep supervision is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Soft Dice (without background) + cross-entropy: nnU-Net's loss for label maps.
    DiceCe,
    /// Cross-entropy alone (`nnUNetTrainerCELoss`; label maps only).
    Ce,
    /// Soft Dice alone (`nnUNetTrainerDiceLoss`): softmax without background for label maps,
    /// sigmoid over every region for regions.
    Dice,
    /// Cross-entropy over the `topk_percent` % of voxels with the largest loss
    /// (`nnUNetTrainerTopk10Loss`; label maps only).
    Topk,
    /// Soft Dice + binary cross-entropy: nnU-Net's loss for regions (regions only).
    DiceBce,
}

impl LossKind {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LossKind::DiceCe => "dice_ce",
            LossKind::Ce => "ce",
            LossKind::Dice => "dice",
            LossKind::Topk => "topk",
            LossKind::DiceBce => "dice_bce",
        }
    }
}

/// The normalisation after every convolution of the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// `InstanceNorm(eps=1e-5, affine=True)`: nnU-Net's default.
    #[default]
    Instance,
    /// `BatchNorm(eps=1e-5, momentum=0.1, affine=True)` with running statistics, used in
    /// inference (`nnUNetTrainerBN`).
    Batch,
}

/// The training augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentationPreset {
    /// nnU-Net's `get_training_transforms`.
    Default,
    /// None: training batches get the validation transforms and the network's patch, and test
    /// time mirroring is off (`nnUNetTrainerNoDA`).
    None,
    /// The default set with nearest-neighbour label maps in the spatial transform
    /// (`nnUNetTrainer_DASegOrd0`).
    Ord0,
    /// nnU-Net's DA5 set (`nnUNetTrainerDA5`): stronger spatial and intensity augmentation,
    /// quarter turns, median filter, sharpening, blank rectangles, local brightness and gamma.
    Da5,
    /// DA5 with nearest-neighbour images and label maps (`nnUNetTrainerDA5ord0`).
    Da5Ord0,
    /// DA5 with nearest-neighbour label maps (`nnUNetTrainerDA5Segord0`).
    Da5SegOrd0,
}

/// The `training` table of a configuration as written in `plans.toml`: every key optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingEntry {
    /// Epochs (nnU-Net: 1000; 0 only initialises, or loads pretrained weights, and writes the
    /// checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Training iterations per epoch (250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations_per_epoch: Option<usize>,
    /// Validation iterations per epoch (50; 0: none, and no EMA pseudo Dice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_iterations_per_epoch: Option<usize>,
    /// Learning rate at epoch 0 (1e-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_lr: Option<f64>,
    /// Weight decay (3e-5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// SGD momentum (0.99; SGD only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// `sgd`, `adam` or `adamw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    /// The AMSGrad variant of `adam` / `adamw` (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amsgrad: Option<bool>,
    /// `poly` or `cosine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_schedule: Option<LrScheduleKind>,
    /// Epochs of linear warm-up before the schedule (0; `nnUNetTrainer_warmup`: 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<usize>,
    /// `dice_ce`, `ce`, `dice`, `topk` or `dice_bce` (default: `dice_ce` for label maps,
    /// `dice_bce` for regions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossKind>,
    /// The share of voxels, in percent, the `topk` loss averages (10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topk_percent: Option<f64>,
    /// Deep supervision (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_supervision: Option<bool>,
    /// `instance` or `batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<NormKind>,
    /// `default`, `none`, `ord0`, `da5`, `da5_ord0` or `da5_seg_ord0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augmentation: Option<AugmentationPreset>,
    /// Mirroring in training and at test time (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirroring: Option<bool>,
    /// The patch axes mirrored in training and allowed at test time (default: every axis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_axes: Option<Vec<usize>>,
    /// Share of each batch forced to contain foreground (0.33).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversample_foreground: Option<f64>,
    /// Early stopping (beyond nnU-Net): epochs without a new best EMA pseudo Dice (off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
}

impl TrainingEntry {
    /// Every key `over` sets replaces this entry's (a key-by-key merge: a configuration that
    /// inherits may change one training key and keep the others).
    pub fn overlaid_with(self, over: TrainingEntry) -> TrainingEntry {
        TrainingEntry {
            epochs: over.epochs.or(self.epochs),
            iterations_per_epoch: over.iterations_per_epoch.or(self.iterations_per_epoch),
            val_iterations_per_epoch: over
                .val_iterations_per_epoch
                .or(self.val_iterations_per_epoch),
            initial_lr: over.initial_lr.or(self.initial_lr),
            weight_decay: over.weight_decay.or(self.weight_decay),
            momentum: over.momentum.or(self.momentum),
            optimizer: over.optimizer.or(self.optimizer),
            amsgrad: over.amsgrad.or(self.amsgrad),
            lr_schedule: over.lr_schedule.or(self.lr_schedule),
            warmup_epochs: over.warmup_epochs.or(self.warmup_epochs),
            loss: over.loss.or(self.loss),
            topk_percent: over.topk_percent.or(self.topk_percent),
            deep_supervision: over.deep_supervision.or(self.deep_supervision),
            norm: over.norm.or(self.norm),
            augmentation: over.augmentation.or(self.augmentation),
            mirroring: over.mirroring.or(self.mirroring),
            mirror_axes: over.mirror_axes.or(self.mirror_axes),
            oversample_foreground: over.oversample_foreground.or(self.oversample_foreground),
            patience: over.patience.or(self.patience),
        }
    }

    /// The values of this table for a configuration of dimension `dim`, nnU-Net's defaults where
    /// a key is absent.
    ///
    /// # Errors
    /// A message naming the key and the values it may take.
    pub fn resolve(&self, dim: Dim) -> Result<Training, String> {
        let d = Training::nnunet_default();
        let optimizer = self.optimizer.unwrap_or(d.optimizer);
        if optimizer != OptimizerKind::Sgd && self.momentum.is_some() {
            return Err(
                "training.momentum applies to optimizer = \"sgd\"; adam and adamw use torch's \
                 betas (0.9, 0.999)"
                    .into(),
            );
        }
        if optimizer == OptimizerKind::Sgd && self.amsgrad == Some(true) {
            return Err("training.amsgrad applies to optimizer = \"adam\" or \"adamw\"".into());
        }
        let augmentation = self.augmentation.unwrap_or(d.augmentation);
        let mirror_axes = match (self.mirroring, &self.mirror_axes) {
            (Some(false), Some(axes)) if !axes.is_empty() => {
                return Err(format!(
                    "training.mirroring = false contradicts training.mirror_axes = {axes:?}"
                ))
            }
            (Some(false), _) => Some(Vec::new()),
            (_, Some(axes)) => Some(checked_axes(axes, dim)?),
            (_, None) => None,
        };
        let training = Training {
            epochs: self.epochs.unwrap_or(d.epochs),
            iterations_per_epoch: self.iterations_per_epoch.unwrap_or(d.iterations_per_epoch),
            val_iterations_per_epoch: self
                .val_iterations_per_epoch
                .unwrap_or(d.val_iterations_per_epoch),
            initial_lr: self.initial_lr.unwrap_or(d.initial_lr),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            momentum: self.momentum.unwrap_or(d.momentum),
            optimizer,
            amsgrad: self.amsgrad.unwrap_or(d.amsgrad),
            lr_schedule: self.lr_schedule.unwrap_or(d.lr_schedule),
            warmup_epochs: self.warmup_epochs.unwrap_or(d.warmup_epochs),
            loss: self.loss,
            topk_percent: self.topk_percent.unwrap_or(d.topk_percent),
            deep_supervision: self.deep_supervision.unwrap_or(d.deep_supervision),
            norm: self.norm.unwrap_or(d.norm),
            // nnUNetTrainerNoDA also turns test-time mirroring off.
            mirror_axes: if augmentation == AugmentationPreset::None {
                Some(Vec::new())
            } else {
                mirror_axes
            },
            augmentation,
            oversample_foreground: self
                .oversample_foreground
                .unwrap_or(d.oversample_foreground),
            patience: self.patience,
        };
        training.check()?;
        Ok(training)
    }
}

/// Mirror axes of a `dim` patch: distinct, in range, ascending.
fn checked_axes(axes: &[usize], dim: Dim) -> Result<Vec<usize>, String> {
    let n = dim.n_axes();
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != axes.len() || sorted.iter().any(|&a| a >= n) {
        return Err(format!(
            "training.mirror_axes = {axes:?}: a {n}-axis patch has distinct axes 0..{n}"
        ));
    }
    Ok(sorted)
}

/// The resolved training settings of a run (no `Default`: start from
/// [`Training::nnunet_default`] and override fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Epochs to train.
    pub epochs: usize,
    /// Training iterations (batches) per epoch.
    pub iterations_per_epoch: usize,
    /// Validation iterations (batches) per epoch.
    pub val_iterations_per_epoch: usize,
    /// Learning rate at epoch 0 (the peak, after a warm-up).
    pub initial_lr: f64,
    /// Weight decay: an L2 term added to the gradient (SGD, Adam) or decoupled (AdamW).
    pub weight_decay: f64,
    /// SGD momentum (Nesterov).
    pub momentum: f64,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// AMSGrad for Adam / AdamW.
    pub amsgrad: bool,
    /// The schedule after the warm-up.
    pub lr_schedule: LrScheduleKind,
    /// Epochs of linear warm-up (`nnUNetTrainer_warmup`'s `Lin_incr_LRScheduler`); the schedule
    /// then runs over the remaining epochs (`PolyLRScheduler_offset`).
    pub warmup_epochs: usize,
    /// The loss; `None`: nnU-Net's choice for the dataset (Dice + CE for label maps, Dice + BCE
    /// for regions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossKind>,
    /// The share of voxels, in percent, the `topk` loss averages.
    pub topk_percent: f64,
    /// Deep supervision.
    pub deep_supervision: bool,
    /// The network's normalisation (the predictor builds the same network from the
    /// checkpoint's settings).
    #[serde(default)]
    pub norm: NormKind,
    /// The training augmentation.
    pub augmentation: AugmentationPreset,
    /// The patch axes mirrored in training and allowed at test time; `None`: every axis of the
    /// configuration (nnU-Net's default), `Some([])`: no mirroring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_axes: Option<Vec<usize>>,
    /// Fraction of each batch forced to contain foreground.
    pub oversample_foreground: f64,
    /// Early stopping: end after this many epochs without a new best EMA pseudo Dice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
}

impl Training {
    /// nnU-Net 2.8.1's `nnUNetTrainer`: 1000 epochs of 250 iterations, 50 validation
    /// iterations, SGD (Nesterov, momentum 0.99) at lr 1e-2 with weight decay 3e-5 and the poly
    /// schedule, Dice + CE with deep supervision, instance norm, the default augmentation and
    /// mirroring, 0.33 foreground oversampling, no early stopping.
    pub fn nnunet_default() -> Training {
        Training {
            epochs: 1000,
            iterations_per_epoch: 250,
            val_iterations_per_epoch: 50,
            initial_lr: 1e-2,
            weight_decay: 3e-5,
            momentum: 0.99,
            optimizer: OptimizerKind::Sgd,
            amsgrad: false,
            lr_schedule: LrScheduleKind::Poly,
            warmup_epochs: 0,
            loss: None,
            topk_percent: 10.0,
            deep_supervision: true,
            norm: NormKind::Instance,
            augmentation: AugmentationPreset::Default,
            mirror_axes: None,
            oversample_foreground: 0.33,
            patience: None,
        }
    }

    /// Checks every value's range.
    ///
    /// # Errors
    /// A message naming the key and its valid range.
    pub fn check(&self) -> Result<(), String> {
        let positive = |key: &str, v: f64| {
            (v.is_finite() && v > 0.0)
                .then_some(())
                .ok_or_else(|| format!("training.{key} = {v} must be positive and finite"))
        };
        let unit = |key: &str, v: f64, open_top: bool| {
            let ok = v.is_finite() && v >= 0.0 && if open_top { v < 1.0 } else { v <= 1.0 };
            ok.then_some(()).ok_or_else(|| {
                let top = if open_top { "< 1" } else { "<= 1" };
                format!("training.{key} = {v} must be >= 0 and {top}")
            })
        };
        // 0 epochs is a run that only initialises (or loads pretrained weights) and writes
        // its checkpoints.
        if self.iterations_per_epoch == 0 {
            return Err("training.iterations_per_epoch must be at least 1".into());
        }
        positive("initial_lr", self.initial_lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "training.weight_decay = {} must be >= 0 and finite",
                self.weight_decay
            ));
        }
        unit("momentum", self.momentum, true)?;
        unit("oversample_foreground", self.oversample_foreground, false)?;
        if !(self.topk_percent.is_finite() && self.topk_percent > 0.0 && self.topk_percent <= 100.0)
        {
            return Err(format!(
                "training.topk_percent = {} must be in (0, 100]",
                self.topk_percent
            ));
        }
        if self.warmup_epochs > 0 && self.warmup_epochs >= self.epochs {
            return Err(format!(
                "training.warmup_epochs = {} leaves none of the {} epochs to the schedule",
                self.warmup_epochs, self.epochs
            ));
        }
        if self.patience == Some(0) {
            return Err("training.patience must be at least 1".into());
        }
        Ok(())
    }

    /// The text of the fold's `training.toml`: the settings a run used.
    ///
    /// # Errors
    /// [`PlanError::Serialize`] if a value cannot be written as TOML.
    pub fn to_toml_string(&self) -> Result<String, PlanError> {
        toml::to_string(self).map_err(|source| PlanError::Serialize {
            what: "training.toml",
            source,
        })
    }
}

/// nnU-Net's trainer classes autoseg reproduces, with the `training` keys each sets
/// (`nnunetv2/training/nnUNetTrainer/variants/`). `nnUNetTrainer` itself sets nothing.
pub fn nnunet_trainer_names() -> Vec<&'static str> {
    TRAINERS.iter().map(|(name, _)| *name).collect()
}

/// nnU-Net trainers autoseg knows but does not reproduce yet, with what they change.
const NOT_YET: &[(&str, &str)] = &[
    ("nnUNetTrainerDiceTopK10Loss", "SoftDiceLoss + TopK"),
    (
        "nnUNetTrainer_onlyMirror01",
        "mirror axes that depend on the patch's dimension",
    ),
    (
        "nnUNetTrainer_probabilisticOversampling",
        "probabilistic foreground oversampling",
    ),
];

type Keys = fn(&mut TrainingEntry);

const TRAINERS: &[(&str, Keys)] = &[
    ("nnUNetTrainer", |_| {}),
    ("nnUNetTrainer_1epoch", |t| t.epochs = Some(1)),
    ("nnUNetTrainer_5epochs", |t| t.epochs = Some(5)),
    ("nnUNetTrainer_10epochs", |t| t.epochs = Some(10)),
    ("nnUNetTrainer_20epochs", |t| t.epochs = Some(20)),
    ("nnUNetTrainer_50epochs", |t| t.epochs = Some(50)),
    ("nnUNetTrainer_100epochs", |t| t.epochs = Some(100)),
    ("nnUNetTrainer_250epochs", |t| t.epochs = Some(250)),
    ("nnUNetTrainer_500epochs", |t| t.epochs = Some(500)),
    ("nnUNetTrainer_750epochs", |t| t.epochs = Some(750)),
    ("nnUNetTrainer_2000epochs", |t| t.epochs = Some(2000)),
    ("nnUNetTrainer_4000epochs", |t| t.epochs = Some(4000)),
    ("nnUNetTrainer_8000epochs", |t| t.epochs = Some(8000)),
    ("nnUNetTrainer_250epochs_NoMirroring", |t| {
        t.epochs = Some(250);
        t.mirroring = Some(false);
    }),
    ("nnUNetTrainer_2000epochs_NoMirroring", |t| {
        t.epochs = Some(2000);
        t.mirroring = Some(false);
    }),
    ("nnUNetTrainer_4000epochs_NoMirroring", |t| {
        t.epochs = Some(4000);
        t.mirroring = Some(false);
    }),
    ("nnUNetTrainer_8000epochs_NoMirroring", |t| {
        t.epochs = Some(8000);
        t.mirroring = Some(false);
    }),
    ("nnUNetTrainerNoMirroring", |t| t.mirroring = Some(false)),
    ("nnUNetTrainerNoDA", |t| {
        t.augmentation = Some(AugmentationPreset::None)
    }),
    ("nnUNetTrainerCELoss", |t| t.loss = Some(LossKind::Ce)),
    ("nnUNetTrainerCELoss_5epochs", |t| {
        t.loss = Some(LossKind::Ce);
        t.epochs = Some(5);
    }),
    ("nnUNetTrainerDiceLoss", |t| t.loss = Some(LossKind::Dice)),
    ("nnUNetTrainerTopk10Loss", |t| {
        t.loss = Some(LossKind::Topk);
        t.topk_percent = Some(10.0);
    }),
    ("nnUNetTrainerAdam", |t| {
        t.optimizer = Some(OptimizerKind::Adamw);
        t.amsgrad = Some(true);
    }),
    ("nnUNetTrainerAdam1en3", |t| {
        t.optimizer = Some(OptimizerKind::Adamw);
        t.amsgrad = Some(true);
        t.initial_lr = Some(1e-3);
    }),
    ("nnUNetTrainerAdam3en4", |t| {
        t.optimizer = Some(OptimizerKind::Adamw);
        t.amsgrad = Some(true);
        t.initial_lr = Some(3e-4);
    }),
    ("nnUNetTrainerVanillaAdam", |t| {
        t.optimizer = Some(OptimizerKind::Adam)
    }),
    ("nnUNetTrainerVanillaAdam1en3", |t| {
        t.optimizer = Some(OptimizerKind::Adam);
        t.initial_lr = Some(1e-3);
    }),
    ("nnUNetTrainerVanillaAdam3en4", |t| {
        t.optimizer = Some(OptimizerKind::Adam);
        t.initial_lr = Some(3e-4);
    }),
    ("nnUNetTrainerCosAnneal", |t| {
        t.lr_schedule = Some(LrScheduleKind::Cosine)
    }),
    ("nnUNetTrainer_warmup", |t| {
        t.warmup_epochs = Some(50);
        t.epochs = Some(1000);
    }),
    ("nnUNetTrainerNoDeepSupervision", |t| {
        t.deep_supervision = Some(false)
    }),
    ("nnUNetTrainerBN", |t| t.norm = Some(NormKind::Batch)),
    ("nnUNetTrainerDA5", |t| {
        t.augmentation = Some(AugmentationPreset::Da5)
    }),
    ("nnUNetTrainerDA5_10epochs", |t| {
        t.augmentation = Some(AugmentationPreset::Da5);
        t.epochs = Some(10);
    }),
    ("nnUNetTrainerDA5ord0", |t| {
        t.augmentation = Some(AugmentationPreset::Da5Ord0)
    }),
    ("nnUNetTrainerDA5Segord0", |t| {
        t.augmentation = Some(AugmentationPreset::Da5SegOrd0)
    }),
    ("nnUNetTrainer_DASegOrd0", |t| {
        t.augmentation = Some(AugmentationPreset::Ord0)
    }),
    ("nnUNetTrainer_DASegOrd0_NoMirroring", |t| {
        t.augmentation = Some(AugmentationPreset::Ord0);
        t.mirroring = Some(false);
    }),
];

/// The `training` keys nnU-Net's trainer class `name` sets.
///
/// # Errors
/// [`PlanError::UnknownTrainer`] naming the trainers autoseg reproduces (and saying so when
/// `name` is one it knows but does not reproduce yet).
pub fn nnunet_trainer(name: &str) -> Result<TrainingEntry, PlanError> {
    if let Some((_, set)) = TRAINERS.iter().find(|(n, _)| *n == name) {
        let mut entry = TrainingEntry::default();
        set(&mut entry);
        return Ok(entry);
    }
    let not_yet = NOT_YET
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, what)| what.to_string());
    Err(PlanError::UnknownTrainer {
        name: name.to_string(),
        not_yet,
        known: nnunet_trainer_names().join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Result<TrainingEntry, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn an_empty_table_is_nnunets_trainer() {
        let t = TrainingEntry::default().resolve(Dim::Three).unwrap();
        assert_eq!(t, Training::nnunet_default());
    }

    #[test]
    fn keys_parse_and_unknown_keys_or_values_are_refused_with_the_valid_ones() {
        let t = entry(
            "epochs = 250\noptimizer = \"adamw\"\namsgrad = true\nlr_schedule = \"cosine\"\n\
             loss = \"topk\"\ntopk_percent = 5.0\ndeep_supervision = false\nmirror_axes = [2, 0]\n",
        )
        .unwrap()
        .resolve(Dim::Three)
        .unwrap();
        assert_eq!(t.epochs, 250);
        assert_eq!(t.optimizer, OptimizerKind::Adamw);
        assert!(t.amsgrad && !t.deep_supervision);
        assert_eq!(t.lr_schedule, LrScheduleKind::Cosine);
        assert_eq!(t.loss, Some(LossKind::Topk));
        assert_eq!(t.mirror_axes, Some(vec![0, 2]));
        let err = entry("epoch = 3\n").unwrap_err().to_string();
        assert!(
            err.contains("unknown field `epoch`") && err.contains("epochs"),
            "{err}"
        );
        let err = entry("optimizer = \"rmsprop\"\n").unwrap_err().to_string();
        assert!(err.contains("sgd") && err.contains("adamw"), "{err}");
        let err = entry("loss = \"focal\"\n").unwrap_err().to_string();
        assert!(err.contains("dice_ce") && err.contains("topk"), "{err}");
    }

    #[test]
    fn values_out_of_range_are_refused_naming_the_key() {
        let bad = |text: &str, key: &str| {
            let err = entry(text).unwrap().resolve(Dim::Two).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        };
        bad("iterations_per_epoch = 0", "training.iterations_per_epoch");
        bad("initial_lr = -1.0", "training.initial_lr");
        bad("momentum = 1.0", "training.momentum");
        bad(
            "oversample_foreground = 1.5",
            "training.oversample_foreground",
        );
        bad("topk_percent = 0.0", "training.topk_percent");
        bad("epochs = 10\nwarmup_epochs = 10", "training.warmup_epochs");
        bad("patience = 0", "training.patience");
        bad("mirror_axes = [0, 2]", "training.mirror_axes");
        bad("mirror_axes = [1, 1]", "training.mirror_axes");
        bad("mirroring = false\nmirror_axes = [0]", "training.mirroring");
        bad("optimizer = \"adam\"\nmomentum = 0.9", "training.momentum");
        bad("amsgrad = true", "training.amsgrad");
    }

    #[test]
    fn no_mirroring_and_no_augmentation_turn_test_time_mirroring_off() {
        let off = |text: &str| {
            entry(text)
                .unwrap()
                .resolve(Dim::Three)
                .unwrap()
                .mirror_axes
        };
        assert_eq!(off("mirroring = false"), Some(vec![]));
        assert_eq!(off("augmentation = \"none\""), Some(vec![]));
        assert_eq!(off("mirroring = true"), None);
    }

    #[test]
    fn the_merge_is_key_by_key() {
        let parent = entry("epochs = 500\noptimizer = \"adam\"").unwrap();
        let child = entry("epochs = 20").unwrap();
        let merged = parent.overlaid_with(child);
        assert_eq!(merged.epochs, Some(20));
        assert_eq!(merged.optimizer, Some(OptimizerKind::Adam));
    }

    #[test]
    fn nnunet_trainer_names_set_their_classes_values() {
        // nnunetv2 2.8.1 variants: num_epochs = 250; AdamW(amsgrad=True); lr 3e-4;
        // CosineAnnealingLR; warmup_duration_whole_net = 50; enable_deep_supervision = False.
        let t = |name: &str| nnunet_trainer(name).unwrap().resolve(Dim::Three).unwrap();
        assert_eq!(t("nnUNetTrainer"), Training::nnunet_default());
        assert_eq!(t("nnUNetTrainer_250epochs").epochs, 250);
        let adam = t("nnUNetTrainerAdam3en4");
        assert_eq!((adam.optimizer, adam.amsgrad), (OptimizerKind::Adamw, true));
        assert_eq!(adam.initial_lr, 3e-4);
        assert_eq!(t("nnUNetTrainerVanillaAdam").optimizer, OptimizerKind::Adam);
        assert_eq!(
            t("nnUNetTrainerCosAnneal").lr_schedule,
            LrScheduleKind::Cosine
        );
        assert_eq!(t("nnUNetTrainer_warmup").warmup_epochs, 50);
        assert!(!t("nnUNetTrainerNoDeepSupervision").deep_supervision);
        assert_eq!(t("nnUNetTrainerNoMirroring").mirror_axes, Some(vec![]));
        let m = t("nnUNetTrainer_2000epochs_NoMirroring");
        assert_eq!((m.epochs, m.mirror_axes), (2000, Some(vec![])));
        assert_eq!(t("nnUNetTrainerCELoss").loss, Some(LossKind::Ce));
        assert_eq!(t("nnUNetTrainerTopk10Loss").topk_percent, 10.0);
        assert_eq!(t("nnUNetTrainerBN").norm, NormKind::Batch);
        assert_eq!(t("nnUNetTrainerDA5").augmentation, AugmentationPreset::Da5);
        assert_eq!(
            t("nnUNetTrainerDA5ord0").augmentation,
            AugmentationPreset::Da5Ord0
        );
        let ord0 = t("nnUNetTrainer_DASegOrd0_NoMirroring");
        assert_eq!(
            (ord0.augmentation, ord0.mirror_axes),
            (AugmentationPreset::Ord0, Some(vec![]))
        );
        for name in nnunet_trainer_names() {
            assert!(
                nnunet_trainer(name).unwrap().resolve(Dim::Two).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_trainers_list_the_known_ones() {
        let err = nnunet_trainer("nnUNetTrainer_251epochs")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nnUNetTrainer_250epochs"), "{err}");
        let err = nnunet_trainer("nnUNetTrainerDiceTopK10Loss")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not reproduce") && err.contains("TopK"),
            "{err}"
        );
    }
}
