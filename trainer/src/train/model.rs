//! The network with everything a step needs: its variables, the optimiser, the loss scaler and
//! the deep-supervision loss (all as the run's [`Training`] says); and nnU-Net's training and
//! validation steps.
//!
//! nnU-Net: `nnUNetTrainer.train_step` (autocast on CUDA, `GradScaler`, clip 12, SGD step),
//! `_build_loss` (Dice + CE for labels, Dice + BCE for regions) and `validation_step` (no grad,
//! loss with deep supervision, TP/FP/FN on the top output).

use autoseg_network::UNet;
use autoseg_planner::Configuration;
use tch::{nn, Device, Tensor};

use super::ddp::{average_gradients, DataParallel};
use super::{RunOptions, TrainError};
use crate::loader::Batch;
use autoseg_planner::Training;

use crate::loss::{across_ranks, deep_supervision_weights_for, DeepSupervisionLoss, SegLoss};
use crate::optim::{optimizer_step, LossScaler, Optimizer};
use crate::schedule::GRAD_CLIP_NORM;
use crate::validation::{count_region_tp_fp_fn, count_tp_fp_fn, ClassCounts};

/// The model being trained.
pub(crate) struct Model {
    pub vs: nn::VarStore,
    pub net: UNet,
    pub optimizer: Optimizer,
    pub scaler: LossScaler,
    loss: DeepSupervisionLoss,
    device: Device,
    mixed_precision: bool,
    ignore_label: Option<i64>,
    /// Sigmoid outputs, one per region, instead of softmax outputs, one per label.
    region_based: bool,
    /// Segmentation heads: labels including background, or regions.
    n_classes: usize,
    /// 2D configurations: batches carry a singleton `z` axis that the network does not take.
    squeeze_z: bool,
    /// The data-parallel group whose ranks average their gradients (and batch-Dice sums).
    pub group: Option<DataParallel>,
}

impl Model {
    /// Builds the network of `config` on `run.device` with weights drawn from `run.seed`; on
    /// CUDA, steps use fp16 autocast and nnU-Net's loss scaler, on the CPU fp32.
    /// `n_classes` is the number of segmentation heads: labels including background, or the
    /// regions when `region_based` (then targets are region channels, the ignore channel last).
    pub fn new(
        config: &Configuration,
        in_channels: usize,
        n_classes: usize,
        ignore_label: Option<i64>,
        region_based: bool,
        training: &Training,
        run: &RunOptions,
    ) -> Result<Model, TrainError> {
        let loss = SegLoss::for_training(
            training.loss,
            training.topk_percent,
            config.batch_dice,
            ignore_label,
            region_based,
        )
        .map_err(|fault| TrainError::Job {
            configuration: config.name.clone(),
            fault,
        })?;
        if run.group.is_some() && training.norm == autoseg_planner::NormKind::Batch {
            return Err(TrainError::Job {
                configuration: config.name.clone(),
                fault: "batch norm is not trained data-parallel (nnU-Net converts it to \
                        SyncBatchNorm, which autoseg does not have): train it in one process, \
                        or use instance norm"
                    .into(),
            });
        }
        tch::manual_seed(run.seed as i64);
        let vs = nn::VarStore::new(run.device);
        let net = UNet::with_norm(
            &vs.root(),
            config.unet_spec(),
            in_channels as i64,
            n_classes as i64,
            training.norm,
        )?;
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        // A fixed order makes the gradient norm, a float sum, identical from run to run.
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let optimizer = Optimizer::new(params, training);
        let mixed_precision = run.device.is_cuda();
        let scaler = if mixed_precision {
            LossScaler::nnunet_default()
        } else {
            LossScaler::disabled()
        };
        let loss = DeepSupervisionLoss {
            loss,
            weights: deep_supervision_weights_for(net.n_outputs_ds(), training.deep_supervision),
        };
        Ok(Model {
            vs,
            net,
            optimizer,
            scaler,
            loss,
            device: run.device,
            mixed_precision,
            ignore_label,
            region_based,
            n_classes,
            squeeze_z: config.patch_size.len() == 2,
            group: run.group.clone(),
        })
    }

    /// One optimisation step on `batch`; returns its loss.
    pub fn train_step(&mut self, batch: &Batch) -> Result<f64, TrainError> {
        let (data, targets) = self.to_tensors(batch)?;
        self.step_on(&data, &targets)
    }

    /// One optimisation step on network inputs and one target per deep-supervision output,
    /// already on the model's device (nnU-Net's `train_step` after the batch is moved there).
    pub fn step_on(&mut self, data: &Tensor, targets: &[Tensor]) -> Result<f64, TrainError> {
        // nnU-Net: `network.train()` in `on_train_epoch_start`.
        self.net.set_training(true);
        self.optimizer.zero_grad();
        let group = self.group.as_ref().map(|g| &g.0);
        let loss = across_ranks(group, || {
            tch::autocast(self.mixed_precision, || -> Result<Tensor, TrainError> {
                let outputs = self.net.forward_ds(data)?;
                Ok(self.loss.forward(&outputs, targets)?)
            })
        })?;
        self.scaler.scale(&loss)?.f_backward()?;
        if let Some(group) = &self.group {
            average_gradients(group, &self.optimizer.params())?;
        }
        optimizer_step(&mut self.optimizer, &mut self.scaler, GRAD_CLIP_NORM)?;
        Ok(loss.f_double_value(&[])?)
    }

    /// The loss on `batch` and the TP/FP/FN of the top output, without gradients.
    pub fn val_step(&self, batch: &Batch) -> Result<(f64, ClassCounts), TrainError> {
        let _no_grad = tch::no_grad_guard();
        // nnU-Net: `network.eval()` in `on_validation_epoch_start`.
        self.net.set_training(false);
        let (data, targets) = self.to_tensors(batch)?;
        let group = self.group.as_ref().map(|g| &g.0);
        tch::autocast(self.mixed_precision, || {
            let outputs = self.net.forward_ds(&data)?;
            let loss = across_ranks(group, || self.loss.forward(&outputs, &targets))?;
            let counts = if self.region_based {
                count_region_tp_fp_fn(&outputs[0], &targets[0], self.ignore_label.is_some())?
            } else {
                count_tp_fp_fn(&outputs[0], &targets[0], self.ignore_label)?
            };
            Ok((loss.f_double_value(&[])?, counts))
        })
    }

    /// Number of foreground classes (segmentation heads without background), or of regions
    /// (every region is foreground).
    pub fn n_foreground(&self) -> usize {
        if self.region_based {
            self.n_classes
        } else {
            self.n_classes - 1
        }
    }

    /// The parameters by name (for the weights file).
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        self.vs.variables().into_iter().collect()
    }

    /// Crosses to libtorch once per batch: images `[b, c, *spatial]` and one target
    /// `[b, 1, *spatial_i]` (labels) or `[b, r (+1 ignore), *spatial_i]` (regions) per
    /// deep-supervision output, on the model's device. The loss converts targets to the kind it
    /// needs (f32 for BCE).
    /// A batch the loader pinned ([`Batch::pinned`]) is copied asynchronously.
    fn to_tensors(&self, batch: &Batch) -> Result<(Tensor, Vec<Tensor>), TrainError> {
        let non_blocking = batch.pinned.is_some();
        let convert = |t: Tensor| -> Result<Tensor, tch::TchError> {
            let t = if self.squeeze_z {
                t.f_squeeze_dim(2)?
            } else {
                t
            };
            t.f_to_device_(self.device, t.kind(), non_blocking, false)
        };
        let (data, targets) = batch.tensors()?;
        let data = convert(data)?;
        let targets = targets
            .into_iter()
            .map(convert)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((data, targets))
    }
}
