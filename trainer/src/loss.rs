//! nnU-Net's training losses: soft Dice + cross-entropy for label maps, soft Dice + binary
//! cross-entropy for regions, the ignore label, and deep supervision (per-output weights and
//! targets downsampled to each output's resolution).
//!
//! nnU-Net: `training/loss/compound_losses.py::DC_and_CE_loss` / `DC_and_BCE_loss`,
//! `training/loss/dice.py::MemoryEfficientSoftDiceLoss`, `training/loss/deep_supervision.py`,
//! `nnUNetTrainer._build_loss` / `_get_deep_supervision_scales`, and bg2
//! `transforms/utils/deep_supervision_downsampling.py::DownsampleSegForDSTransform`.
//!
//! The loss trainers' losses (cross-entropy, Dice, top-k): [`CeLoss`], [`DiceLoss`], [`TopKLoss`].

use autoseg_planner::UNetSpec;
use tch::{Kind, Reduction, TchError, Tensor};
use thiserror::Error;

mod ranks;
mod variants;

pub use ranks::across_ranks;
pub use variants::{CeLoss, DiceLoss, TopKLoss};

/// nnU-Net's Dice smoothing term (`'smooth': 1e-5`).
const DICE_SMOOTH: f64 = 1e-5;

/// What can go wrong computing the loss.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LossError {
    /// Logits and target shapes do not belong together.
    #[error("loss: logits of shape {logits:?} and target of shape {target:?} do not match: expected [b, c, *spatial] and [b, 1, *spatial]")]
    Shape {
        /// Logits shape.
        logits: Vec<i64>,
        /// Target shape.
        target: Vec<i64>,
    },
    /// Region logits and target shapes do not belong together.
    #[error("region loss: logits of shape {logits:?} and target of shape {target:?} do not match: expected [b, r, *spatial] and [b, r, *spatial], or [b, r + 1, *spatial] with the ignore channel last (ignore channel: {has_ignore})")]
    RegionShape {
        /// Logits shape.
        logits: Vec<i64>,
        /// Target shape.
        target: Vec<i64>,
        /// Whether the target carries the ignore channel last.
        has_ignore: bool,
    },
    /// Deep supervision got different numbers of outputs, targets and weights.
    #[error("deep supervision: {n_outputs} outputs, {n_targets} targets, {n_weights} weights")]
    OutputCount {
        /// Network outputs.
        n_outputs: usize,
        /// Targets.
        n_targets: usize,
        /// Weights.
        n_weights: usize,
    },
    /// A downsampling scale has the wrong number of axes for the target.
    #[error("deep supervision: scale {scale:?} does not fit a target of shape {target:?}")]
    ScaleAxes {
        /// The scale.
        scale: Vec<f64>,
        /// Target shape `[b, c, *spatial]`.
        target: Vec<i64>,
    },
    /// Every deep-supervision weight is zero, so no output would be trained.
    #[error("deep supervision: every weight is zero")]
    AllWeightsZero,
    /// libtorch reported an error.
    #[error("loss: libtorch: {0}")]
    Torch(#[from] TchError),
    /// The batch-Dice sums could not be summed over the ranks of a data-parallel step.
    #[error("loss: {0}")]
    Ranks(String),
}

/// `DC_and_CE_loss(weight_ce=1, weight_dice=1)` with `MemoryEfficientSoftDiceLoss(softmax,
/// batch_dice, do_bg=False, smooth=1e-5)`, as nnU-Net trains label maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiceCeLoss {
    /// Sum the Dice terms over the batch before dividing (the plan's `batch_dice`).
    pub batch_dice: bool,
    /// Voxels with this label count in neither term (CE `ignore_index`, Dice mask).
    pub ignore_label: Option<i64>,
}

impl DiceCeLoss {
    /// The loss of one output: `CE + Dice`, where Dice is `-mean(dc)` (so the total is
    /// typically negative).
    ///
    /// # Shapes
    /// `logits`: `[b, c, *spatial]` (any float kind; computed in f32). `target`: `[b, 1,
    /// *spatial]`, integer labels in `0..c` or the ignore label. Returns a scalar f32.
    ///
    /// # Errors
    /// [`LossError::Shape`] when the shapes do not match; [`LossError::Torch`] when libtorch
    /// fails (e.g. a label outside `0..c` on CPU).
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        check_shapes(logits, target)?;
        let logits = logits.f_to_kind(Kind::Float)?;
        let target = target.f_to_kind(Kind::Int64)?;
        let mask = match self.ignore_label {
            Some(label) => Some(target.f_ne(label)?),
            None => None,
        };
        let target_dice = match &mask {
            Some(mask) => target.f_where_scalarother(mask, 0)?,
            None => target.shallow_clone(),
        };
        let dice = softmax_dice(&logits, &target_dice, mask.as_ref(), self.batch_dice)?;
        let ce = cross_entropy(&logits, &target, mask.as_ref(), self.ignore_label)?;
        Ok(ce.f_add(&dice)?)
    }
}

fn check_shapes(logits: &Tensor, target: &Tensor) -> Result<(), LossError> {
    let (ls, ts) = (logits.size(), target.size());
    let fits =
        ls.len() >= 3 && ts.len() == ls.len() && ts[0] == ls[0] && ts[1] == 1 && ts[2..] == ls[2..];
    if fits {
        Ok(())
    } else {
        Err(LossError::Shape {
            logits: ls,
            target: ts,
        })
    }
}

/// `MemoryEfficientSoftDiceLoss` with softmax and `do_bg=False`: the Dice of classes `1..c`.
fn softmax_dice(
    logits: &Tensor,
    target: &Tensor,
    mask: Option<&Tensor>,
    batch_dice: bool,
) -> Result<Tensor, LossError> {
    let n_classes = logits.size()[1];
    let probs = logits
        .f_softmax(1, Kind::Float)?
        .f_narrow(1, 1, n_classes - 1)?;
    let onehot = logits
        .f_zeros_like()?
        .f_scatter_value(1, target, 1.0)?
        .f_narrow(1, 1, n_classes - 1)?;
    soft_dice(&probs, &onehot, mask, batch_dice)
}

/// `MemoryEfficientSoftDiceLoss`' core: per channel, `dc = (2 I + s) / max(G + P + s, 1e-8)`
/// with `I = sum(p y m)`, `P = sum(p m)`, `G = sum(y m)` over the spatial axes (and the batch
/// with `batch_dice`); returns `-mean(dc)`. `probs` and `truth` are `[b, c, *spatial]` f32,
/// `mask` broadcasts against them (`[b, 1, *spatial]`).
fn soft_dice(
    probs: &Tensor,
    truth: &Tensor,
    mask: Option<&Tensor>,
    batch_dice: bool,
) -> Result<Tensor, LossError> {
    let axes: Vec<i64> = (2..probs.dim() as i64).collect();
    let (truth, probs_masked) = match mask {
        Some(mask) => {
            let mask = mask.f_to_kind(Kind::Float)?;
            (truth.f_mul(&mask)?, probs.f_mul(&mask)?)
        }
        None => (truth.shallow_clone(), probs.shallow_clone()),
    };
    let sum = |t: &Tensor| t.f_sum_dim_intlist(axes.as_slice(), false, Kind::Float);
    let mut intersect = sum(&probs_masked.f_mul(&truth)?)?;
    let mut sum_pred = sum(&probs_masked)?;
    let mut sum_gt = sum(&truth)?;
    if batch_dice {
        let over_batch = |t: &Tensor| t.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
        let stats = Tensor::f_stack(
            &[
                over_batch(&intersect)?,
                over_batch(&sum_pred)?,
                over_batch(&sum_gt)?,
            ],
            0,
        )?;
        let stats = ranks::sum_over_ranks(stats)?;
        intersect = stats.f_get(0)?;
        sum_pred = stats.f_get(1)?;
        sum_gt = stats.f_get(2)?;
    }
    let numerator = intersect.f_mul_scalar(2.0)?.f_add_scalar(DICE_SMOOTH)?;
    let denominator = sum_gt
        .f_add(&sum_pred)?
        .f_add_scalar(DICE_SMOOTH)?
        .f_clamp_min(1e-8)?;
    Ok(numerator
        .f_div(&denominator)?
        .f_mean(Kind::Float)?
        .f_neg()?)
}

/// torch `cross_entropy(logits, target[:, 0], ignore_index)`, mean over annotated voxels; 0 when
/// every voxel is ignored (nnU-Net skips the term then).
fn cross_entropy(
    logits: &Tensor,
    target: &Tensor,
    mask: Option<&Tensor>,
    ignore_label: Option<i64>,
) -> Result<Tensor, TchError> {
    let target = target.f_squeeze_dim(1)?;
    // torch's default ignore_index; labels are never negative.
    let ignore_index = ignore_label.unwrap_or(-100);
    let sum =
        logits.f_cross_entropy_loss(&target, None::<&Tensor>, Reduction::Sum, ignore_index, 0.0)?;
    let n_annotated = match mask {
        Some(mask) => mask.f_sum(Kind::Float)?.f_clamp_min(1.0)?,
        None => Tensor::f_from_slice(&[target.numel() as f32])?
            .f_to_device(logits.device())?
            .f_squeeze()?,
    };
    sum.f_div(&n_annotated)
}

/// `DC_and_BCE_loss(weight_ce=1, weight_dice=1)` with `MemoryEfficientSoftDiceLoss(sigmoid,
/// batch_dice, do_bg=True, smooth=1e-5)`, as nnU-Net trains regions (one sigmoid output each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiceBceLoss {
    /// Sum the Dice terms over the batch before dividing (the plan's `batch_dice`).
    pub batch_dice: bool,
    /// The target's last channel marks ignored voxels (1), which count in neither term.
    pub has_ignore: bool,
}

impl DiceBceLoss {
    /// The loss of one output: `BCE + Dice`, Dice being `-mean(dc)` over regions (and samples
    /// without `batch_dice`). BCE is the mean over every element; with the ignore channel it is
    /// `sum(bce * mask) / max(sum(mask), 1e-8)`, i.e. summed over regions per annotated voxel,
    /// as nnU-Net computes it.
    ///
    /// # Shapes
    /// `logits`: `[b, r, *spatial]` (any float kind; computed in f32). `target`: `[b, r,
    /// *spatial]`, or `[b, r + 1, *spatial]` with the ignore channel last; 0/1 values of any
    /// kind (converted to f32 here). Returns a scalar f32.
    ///
    /// # Errors
    /// [`LossError::RegionShape`] when the shapes do not match; [`LossError::Torch`] when
    /// libtorch fails.
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        self.check_shapes(logits, target)?;
        let logits = logits.f_to_kind(Kind::Float)?;
        let target = target.f_to_kind(Kind::Float)?;
        let n_regions = logits.size()[1];
        // nnU-Net: `mask = (1 - target[:, -1:]).bool()`, true wherever the loss is computed.
        let mask = if self.has_ignore {
            Some(target.f_narrow(1, n_regions, 1)?.f_ne(1)?)
        } else {
            None
        };
        let truth = target.f_narrow(1, 0, n_regions)?;
        let probs = logits.f_sigmoid()?;
        let dice = soft_dice(&probs, &truth, mask.as_ref(), self.batch_dice)?;
        let bce = binary_cross_entropy(&logits, &truth, mask.as_ref())?;
        Ok(bce.f_add(&dice)?)
    }

    fn check_shapes(&self, logits: &Tensor, target: &Tensor) -> Result<(), LossError> {
        let (ls, ts) = (logits.size(), target.size());
        if region_shapes_fit(&ls, &ts, self.has_ignore) {
            Ok(())
        } else {
            Err(LossError::RegionShape {
                logits: ls,
                target: ts,
                has_ignore: self.has_ignore,
            })
        }
    }
}

/// Whether region logits `[b, r, *spatial]` and a region target fit: `[b, r, *spatial]`, or
/// `[b, r + 1, *spatial]` with the ignore channel last.
pub(crate) fn region_shapes_fit(logits: &[i64], target: &[i64], has_ignore: bool) -> bool {
    logits.len() >= 3
        && target.len() == logits.len()
        && target[0] == logits[0]
        && target[1] == logits[1] + i64::from(has_ignore)
        && target[2..] == logits[2..]
}

/// torch `binary_cross_entropy_with_logits`: the mean over all elements, or with `mask`
/// (`[b, 1, *spatial]`, bool) `sum(bce * mask) / max(sum(mask), 1e-8)`.
fn binary_cross_entropy(
    logits: &Tensor,
    truth: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor, TchError> {
    let Some(mask) = mask else {
        return logits.f_binary_cross_entropy_with_logits(
            truth,
            None::<&Tensor>,
            None::<&Tensor>,
            Reduction::Mean,
        );
    };
    let mask = mask.f_to_kind(Kind::Float)?;
    let per_element = logits.f_binary_cross_entropy_with_logits(
        truth,
        None::<&Tensor>,
        None::<&Tensor>,
        Reduction::None,
    )?;
    per_element
        .f_mul(&mask)?
        .f_sum(Kind::Float)?
        .f_div(&mask.f_sum(Kind::Float)?.f_clamp_min(1e-8)?)
}

/// The loss of one output: nnU-Net's `_build_loss` choice ([`DiceCeLoss`] for label maps,
/// [`DiceBceLoss`] for regions) or a loss trainer's ([`SegLoss::for_training`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SegLoss {
    /// Softmax outputs, one per label (background included); targets `[b, 1, *spatial]`.
    DiceCe(DiceCeLoss),
    /// Sigmoid outputs, one per region; targets `[b, r (+1 ignore), *spatial]`.
    DiceBce(DiceBceLoss),
    /// Cross-entropy alone (label maps).
    Ce(CeLoss),
    /// Top-k cross-entropy (label maps).
    TopK(TopKLoss),
    /// Soft Dice alone (label maps or regions).
    Dice(DiceLoss),
}

impl SegLoss {
    /// The loss of one output, as the wrapped loss's `forward`.
    ///
    /// # Errors
    /// As the wrapped loss.
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor, LossError> {
        match self {
            SegLoss::DiceCe(loss) => loss.forward(logits, target),
            SegLoss::DiceBce(loss) => loss.forward(logits, target),
            SegLoss::Ce(loss) => loss.forward(logits, target),
            SegLoss::TopK(loss) => loss.forward(logits, target),
            SegLoss::Dice(loss) => loss.forward(logits, target),
        }
    }
}

/// nnU-Net's deep-supervision weights for `n_outputs` outputs: `1 / 2^i`, the last set to 0,
/// normalised to sum 1 (5 outputs: `[8/15, 4/15, 2/15, 1/15, 0]`). A single output gets weight 1
/// (nnU-Net's formula would divide by zero there).
pub fn deep_supervision_weights(n_outputs: usize) -> Vec<f64> {
    deep_supervision_weights_for(n_outputs, true)
}

/// [`deep_supervision_weights`] with deep supervision on; off, the top output alone has weight 1
/// (nnU-Net's `enable_deep_supervision = False`: the other outputs get no gradient).
pub fn deep_supervision_weights_for(n_outputs: usize, enabled: bool) -> Vec<f64> {
    if !enabled {
        return (0..n_outputs)
            .map(|i| if i == 0 { 1.0 } else { 0.0 })
            .collect();
    }
    if n_outputs <= 1 {
        return vec![1.0; n_outputs];
    }
    let mut weights: Vec<f64> = (0..n_outputs).map(|i| 0.5f64.powi(i as i32)).collect();
    weights[n_outputs - 1] = 0.0;
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// nnU-Net's `_get_deep_supervision_scales`: per stage `1 / cumprod(strides)`, without the
/// bottleneck, so one scale per deep-supervision output, highest resolution first.
pub fn deep_supervision_scales(spec: &UNetSpec) -> Vec<Vec<f64>> {
    let n_axes = spec.dim.n_axes();
    let mut cumulative = vec![1.0f64; n_axes];
    let n_outputs = spec.stages.len().saturating_sub(1);
    spec.stages[..n_outputs]
        .iter()
        .map(|stage| {
            cumulative
                .iter_mut()
                .zip(&stage.stride)
                .for_each(|(c, &s)| *c *= s as f64);
            cumulative.iter().map(|c| 1.0 / c).collect()
        })
        .collect()
}

/// Targets for every deep-supervision output (bg2 `DownsampleSegForDSTransform`): per scale,
/// nearest-exact interpolation to `round(size * scale)` (Python's half-to-even `round`); a scale
/// of all ones returns the target itself.
///
/// # Shapes
/// `target`: `[b, c, *spatial]` with 2 or 3 spatial axes (`c = 1` for labels, one channel per
/// region, plus the ignore channel, for regions), integer values; returns one tensor per scale,
/// of the target's kind, each channel downsampled alike.
///
/// # Errors
/// [`LossError::ScaleAxes`] when a scale's axis count differs from the target's;
/// [`LossError::Torch`] when libtorch fails.
pub fn downsample_target(target: &Tensor, scales: &[Vec<f64>]) -> Result<Vec<Tensor>, LossError> {
    let shape = target.size();
    let spatial = &shape[2.min(shape.len())..];
    let target_float = target.f_to_kind(Kind::Float)?;
    scales
        .iter()
        .map(|scale| {
            if scale.len() != spatial.len() || !(2..=3).contains(&scale.len()) {
                return Err(LossError::ScaleAxes {
                    scale: scale.clone(),
                    target: shape.clone(),
                });
            }
            if scale.iter().all(|&s| s == 1.0) {
                return Ok(target.shallow_clone());
            }
            let size: Vec<i64> = spatial
                .iter()
                .zip(scale)
                .map(|(&n, &s)| (n as f64 * s).round_ties_even() as i64)
                .collect();
            let down = if size.len() == 3 {
                target_float.f_internal_upsample_nearest_exact3d(
                    size.as_slice(),
                    None,
                    None,
                    None,
                )?
            } else {
                target_float.f_internal_upsample_nearest_exact2d(size.as_slice(), None, None)?
            };
            Ok(down.f_to_kind(target.kind())?)
        })
        .collect()
}

/// nnU-Net's `DeepSupervisionWrapper` around the per-output [`SegLoss`]:
/// `sum_i w_i * loss(output_i, target_i)`, skipping zero weights.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepSupervisionLoss {
    /// The per-output loss.
    pub loss: SegLoss,
    /// One weight per output, highest resolution first ([`deep_supervision_weights`]).
    pub weights: Vec<f64>,
}

impl DeepSupervisionLoss {
    /// The weighted loss over all outputs.
    ///
    /// # Shapes
    /// `outputs[i]`: `[b, c, *spatial_i]`, `targets[i]`: `[b, 1, *spatial_i]` (labels) or
    /// `[b, r (+1), *spatial_i]` (regions); returns a scalar.
    ///
    /// # Errors
    /// [`LossError::OutputCount`] when the three lists differ in length; otherwise as the
    /// per-output loss.
    pub fn forward(&self, outputs: &[Tensor], targets: &[Tensor]) -> Result<Tensor, LossError> {
        let (n_outputs, n_targets, n_weights) = (outputs.len(), targets.len(), self.weights.len());
        if n_outputs != n_targets || n_outputs != n_weights || n_outputs == 0 {
            return Err(LossError::OutputCount {
                n_outputs,
                n_targets,
                n_weights,
            });
        }
        let mut total: Option<Tensor> = None;
        for ((output, target), &weight) in outputs.iter().zip(targets).zip(&self.weights) {
            if weight == 0.0 {
                continue;
            }
            let term = self.loss.forward(output, target)?.f_mul_scalar(weight)?;
            total = Some(match total {
                Some(sum) => sum.f_add(&term)?,
                None => term,
            });
        }
        total.ok_or(LossError::AllWeightsZero)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_planner::{Dim, NetworkKind, StageSpec};

    // Golden values from torch 2.11 (/work/main/.venv/bin/python), with nnU-Net's formulas
    // written out (the core of the throwaway script):
    //   def mem_dice(x, y, batch_dice, loss_mask=None, smooth=1e-5):   # MemoryEfficientSoftDiceLoss
    //       x = softmax(x, 1); y_onehot = zeros(x.shape).scatter_(1, y.long(), 1)[:, 1:]
    //       sum_gt = (y_onehot [* loss_mask]).sum(axes); x = x[:, 1:]
    //       intersect = (x * y_onehot [* loss_mask]).sum(axes); sum_pred = (x [* loss_mask]).sum(axes)
    //       if batch_dice: sum the three over dim 0
    //       return -((2 * intersect + smooth) / (sum_gt + sum_pred + smooth).clamp_min(1e-8)).mean()
    //   def dc_ce(x, t, batch_dice, ignore=None):                      # DC_and_CE_loss
    //       mask = t != ignore; td = where(mask, t, 0)
    //       return F.cross_entropy(x, t[:, 0], ignore_index=ignore or -100) + mem_dice(x, td, batch_dice, mask)
    fn tensor(values: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).reshape(shape)
    }

    fn labels(values: &[i64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).reshape(shape)
    }

    fn value(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    const XB: [f32; 72] = [
        -1.25, -1.25, -0.25, -0.5, 0.75, 0.75, -0.25, -2.0, 0.25, -1.25, 0.25, 0.25, 0.0, 1.25,
        1.0, -0.25, -1.25, -1.75, 0.5, 0.75, 0.5, -1.5, -0.25, 1.75, 0.75, -0.5, -0.25, 0.25, 1.5,
        1.5, 1.0, -0.75, -0.5, 0.0, -0.5, 0.25, 0.5, 0.0, 0.75, 0.5, -0.0, 0.75, -0.25, 0.0, 0.5,
        2.25, -1.5, -1.5, -0.75, 0.75, 1.0, 0.25, -0.25, -0.5, 0.5, -0.5, 1.5, 2.0, 1.75, 2.5,
        -1.25, -0.25, -1.0, -0.0, 0.25, -0.75, -1.5, 0.0, -0.75, 0.25, 0.5, 0.75,
    ];
    const TB: [i64; 24] = [
        1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 2, 1, 2, 0, 1, 0, 2, 0, 0, 2, 2, 2, 2, 1,
    ];
    const TB_IGNORE: [i64; 24] = [
        3, 3, 3, 1, 1, 1, 1, 2, 1, 1, 2, 1, 2, 0, 1, 0, 2, 0, 0, 2, 2, 2, 2, 3,
    ];

    #[test]
    fn two_class_2d_loss_matches_torch() {
        // torch: dc_ce(x=[[[[1,-1],[.5,2]],[[0,1],[-.5,0]]]], t=[[[[0,1],[1,0]]]], False)
        //   -> ce 0.47009486, dice -0.64995944, total -0.17986459
        let logits = tensor(&[1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -0.5, 0.0], &[1, 2, 2, 2]);
        let target = labels(&[0, 1, 1, 0], &[1, 1, 2, 2]);
        let loss = DiceCeLoss {
            batch_dice: false,
            ignore_label: None,
        };
        let got = value(&loss.forward(&logits, &target).unwrap());
        assert!((got - -0.179_864_585_4).abs() < 1e-6, "{got}");
    }

    #[test]
    fn three_class_3d_loss_matches_torch_with_and_without_batch_dice() {
        // torch: dc_ce(xb [2,3,2,2,3], tb [2,1,2,2,3], batch_dice) -> 1.13302898 / 1.12699580
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let target = labels(&TB, &[2, 1, 2, 2, 3]);
        for (batch_dice, expected) in [(false, 1.133_028_984), (true, 1.126_995_802)] {
            let loss = DiceCeLoss {
                batch_dice,
                ignore_label: None,
            };
            let got = value(&loss.forward(&logits, &target).unwrap());
            assert!(
                (got - expected).abs() < 1e-6,
                "batch_dice {batch_dice}: {got}"
            );
        }
    }

    #[test]
    fn ignored_voxels_count_in_neither_term() {
        // torch: dc_ce(xb, tbi, batch_dice, ignore=3) -> 1.28000736 / 1.25791073;
        // every voxel ignored -> CE skipped, Dice of empty sums -1.0.
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let target = labels(&TB_IGNORE, &[2, 1, 2, 2, 3]);
        for (batch_dice, expected) in [(false, 1.280_007_362), (true, 1.257_910_728)] {
            let loss = DiceCeLoss {
                batch_dice,
                ignore_label: Some(3),
            };
            let got = value(&loss.forward(&logits, &target).unwrap());
            assert!(
                (got - expected).abs() < 1e-6,
                "batch_dice {batch_dice}: {got}"
            );
        }
        let loss = DiceCeLoss {
            batch_dice: false,
            ignore_label: Some(3),
        };
        let all_ignored = Tensor::full([2, 1, 2, 2, 3], 3, (Kind::Int64, tch::Device::Cpu));
        let got = value(&loss.forward(&logits, &all_ignored).unwrap());
        assert!((got - -1.0).abs() < 1e-9, "{got}");
    }

    // Region golden values, same torch 2.11 (the core of the throwaway script):
    //   def sig_dice(x, y, batch_dice, loss_mask=None):   # MemoryEfficientSoftDiceLoss(sigmoid, do_bg=True)
    //       as mem_dice above with x = sigmoid(x), y = y.float() used as the one-hot, no channel dropped
    //   def dc_bce(x, t, batch_dice, use_ignore):         # DC_and_BCE_loss
    //       if use_ignore: mask = (1 - t[:, -1:]).bool(); tr = t[:, :-1]  else: mask = None; tr = t
    //       dc = sig_dice(x, tr, batch_dice, mask); tr = tr.float()
    //       ce = (F.binary_cross_entropy_with_logits(x, tr, reduction='none') * mask).sum()
    //            / torch.clip(mask.sum(), min=1e-8)  if use_ignore  else F.binary_cross_entropy_with_logits(x, tr)
    //       return ce + dc
    //   def regions(lab, ignore=None):                    # regions [[1, 2], [2], [1]] (+ ignore channel)
    //       torch.cat([(lab == 1) | (lab == 2), lab == 2, lab == 1] + ([lab == ignore] if ignore else []), 1).long()

    /// Region targets `[[1, 2], [2], [1]]` of the label map `labels` (`[b, 1, *spatial]`), plus
    /// the channel of `ignore` when given; i16 as the data loader delivers them.
    fn region_target(labels: &Tensor, ignore: Option<i64>) -> Tensor {
        let mut channels = vec![
            labels.eq(1).logical_or(&labels.eq(2)),
            labels.eq(2),
            labels.eq(1),
        ];
        channels.extend(ignore.map(|label| labels.eq(label)));
        Tensor::cat(&channels, 1).to_kind(Kind::Int16)
    }

    #[test]
    fn two_region_2d_loss_matches_torch() {
        // torch: dc_bce(x=[[[[1,-1],[.5,2]],[[0,1],[-.5,0]]]], t=[[[[1,1],[0,1]],[[0,1],[0,0]]]],
        //   False, False) -> bce 0.61264521, dice -0.57693493, total 0.03571028
        let logits = tensor(&[1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -0.5, 0.0], &[1, 2, 2, 2]);
        let target = labels(&[1, 1, 0, 1, 0, 1, 0, 0], &[1, 2, 2, 2]);
        let loss = DiceBceLoss {
            batch_dice: false,
            has_ignore: false,
        };
        let got = value(&loss.forward(&logits, &target).unwrap());
        assert!((got - 0.035_710_275_17).abs() < 1e-6, "{got}");
    }

    #[test]
    fn three_region_3d_loss_matches_torch_with_and_without_batch_dice() {
        // torch: dc_bce(xb, regions(tb), batch_dice, False) -> 0.23633832 / 0.20485395
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let target = region_target(&labels(&TB, &[2, 1, 2, 2, 3]), None);
        for (batch_dice, expected) in [(false, 0.236_338_317_4), (true, 0.204_853_951_9)] {
            let loss = DiceBceLoss {
                batch_dice,
                has_ignore: false,
            };
            let got = value(&loss.forward(&logits, &target).unwrap());
            assert!(
                (got - expected).abs() < 1e-6,
                "batch_dice {batch_dice}: {got}"
            );
        }
    }

    #[test]
    fn region_ignore_channel_masks_both_terms() {
        // torch: dc_bce(xb, regions(tbi, 3), batch_dice, True) -> 1.58737350 / 1.53569055
        // (bce 2.08842278: summed over the 3 regions per annotated voxel); every voxel ignored ->
        // bce 0 / 1e-8 = 0, Dice of empty sums -1.0.
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let target = region_target(&labels(&TB_IGNORE, &[2, 1, 2, 2, 3]), Some(3));
        for (batch_dice, expected) in [(false, 1.587_373_495_1), (true, 1.535_690_546_0)] {
            let loss = DiceBceLoss {
                batch_dice,
                has_ignore: true,
            };
            let got = value(&loss.forward(&logits, &target).unwrap());
            assert!(
                (got - expected).abs() < 1e-6,
                "batch_dice {batch_dice}: {got}"
            );
        }
        let loss = DiceBceLoss {
            batch_dice: false,
            has_ignore: true,
        };
        let all_ignored = region_target(
            &Tensor::full([2, 1, 2, 2, 3], 3, (Kind::Int64, tch::Device::Cpu)),
            Some(3),
        );
        let got = value(&loss.forward(&logits, &all_ignored).unwrap());
        assert!((got - -1.0).abs() < 1e-9, "{got}");
    }

    #[test]
    fn region_targets_without_their_ignore_channel_are_errors() {
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let target = region_target(&labels(&TB, &[2, 1, 2, 2, 3]), None);
        let loss = DiceBceLoss {
            batch_dice: false,
            has_ignore: true,
        };
        assert!(matches!(
            loss.forward(&logits, &target),
            Err(LossError::RegionShape {
                has_ignore: true,
                ..
            })
        ));
    }

    #[test]
    fn seg_loss_dispatches_to_the_wrapped_loss() {
        // Same inputs and golden values as the label and region tests above.
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let label_loss = SegLoss::DiceCe(DiceCeLoss {
            batch_dice: false,
            ignore_label: None,
        });
        let got = value(
            &label_loss
                .forward(&logits, &labels(&TB, &[2, 1, 2, 2, 3]))
                .unwrap(),
        );
        assert!((got - 1.133_028_984).abs() < 1e-6, "{got}");
        let region_loss = SegLoss::DiceBce(DiceBceLoss {
            batch_dice: false,
            has_ignore: false,
        });
        let target = region_target(&labels(&TB, &[2, 1, 2, 2, 3]), None);
        let got = value(&region_loss.forward(&logits, &target).unwrap());
        assert!((got - 0.236_338_317_4).abs() < 1e-6, "{got}");
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let loss = DiceCeLoss {
            batch_dice: false,
            ignore_label: None,
        };
        let logits = Tensor::zeros([1, 2, 4, 4], (Kind::Float, tch::Device::Cpu));
        let target = Tensor::zeros([1, 1, 4, 2], (Kind::Int64, tch::Device::Cpu));
        assert!(matches!(
            loss.forward(&logits, &target),
            Err(LossError::Shape { .. })
        ));
    }

    #[test]
    fn deep_supervision_weights_match_nnunet() {
        // reference/nnunet.md §6.2 / §12: 6 stages -> 5 outputs -> [8/15, 4/15, 2/15, 1/15, 0].
        let weights = deep_supervision_weights(5);
        let expected = [8.0 / 15.0, 4.0 / 15.0, 2.0 / 15.0, 1.0 / 15.0, 0.0];
        assert!(
            weights
                .iter()
                .zip(expected)
                .all(|(w, e)| (w - e).abs() < 1e-12),
            "{weights:?}"
        );
        assert_eq!(deep_supervision_weights(1), [1.0]);
        assert_eq!(deep_supervision_weights(2), [1.0, 0.0]);
    }

    #[test]
    fn scales_are_inverse_cumulative_strides_without_the_bottleneck() {
        let stage = |stride: Vec<usize>, last: bool| StageSpec {
            features: 8,
            kernel: vec![3, 3, 3],
            stride,
            n_convs: 2,
            n_convs_decoder: (!last).then_some(2),
        };
        let spec = UNetSpec {
            dim: Dim::Three,
            kind: NetworkKind::PlainConvUNet,
            stages: vec![
                stage(vec![1, 1, 1], false),
                stage(vec![1, 2, 2], false),
                stage(vec![2, 2, 2], false),
                stage(vec![2, 2, 2], true),
            ],
        };
        assert_eq!(
            deep_supervision_scales(&spec),
            [
                vec![1.0, 1.0, 1.0],
                vec![1.0, 0.5, 0.5],
                vec![0.5, 0.25, 0.25]
            ]
        );
    }

    #[test]
    fn targets_are_downsampled_nearest_exact_like_torch() {
        // torch: t = arange(35).reshape(1,1,5,7) % 4;
        //   F.interpolate(t.float(), [round(2.5), round(3.5)] = [2, 4], mode='nearest-exact')
        //   -> [3, 1, 3, 1, 1, 3, 1, 3]
        let t = Tensor::arange(35, (Kind::Int64, tch::Device::Cpu))
            .remainder(4)
            .reshape([1, 1, 5, 7]);
        let out = downsample_target(&t, &[vec![1.0, 1.0], vec![0.5, 0.5]]).unwrap();
        assert!(out[0].equal(&t));
        assert_eq!(out[1].size(), [1, 1, 2, 4]);
        assert_eq!(out[1].kind(), Kind::Int64);
        assert_eq!(
            Vec::<i64>::try_from(out[1].flatten(0, -1)).unwrap(),
            [3, 1, 3, 1, 1, 3, 1, 3]
        );
        // 3D: arange(90).reshape(1,1,3,6,5) % 7 to [3, 2, 1] -> [0, 1, 2, 3, 4, 5].
        let t3 = Tensor::arange(90, (Kind::Int64, tch::Device::Cpu))
            .remainder(7)
            .reshape([1, 1, 3, 6, 5]);
        let out3 = downsample_target(&t3, &[vec![1.0, 0.25, 0.25]]).unwrap();
        assert_eq!(
            Vec::<i64>::try_from(out3[0].flatten(0, -1)).unwrap(),
            [0, 1, 2, 3, 4, 5]
        );
        assert!(matches!(
            downsample_target(&t3, &[vec![0.5, 0.5]]),
            Err(LossError::ScaleAxes { .. })
        ));
    }

    #[test]
    fn deep_supervision_loss_is_the_weighted_sum_of_output_losses() {
        let loss = DiceCeLoss {
            batch_dice: false,
            ignore_label: None,
        };
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let target = labels(&TB, &[2, 1, 2, 2, 3]);
        let low = logits.narrow(4, 0, 1);
        let low_target = target.narrow(4, 0, 1);
        let ds = DeepSupervisionLoss {
            loss: SegLoss::DiceCe(loss),
            weights: vec![0.75, 0.25, 0.0],
        };
        let outputs = [
            logits.shallow_clone(),
            low.shallow_clone(),
            low.shallow_clone(),
        ];
        let targets = [
            target.shallow_clone(),
            low_target.shallow_clone(),
            low_target.shallow_clone(),
        ];
        let got = value(&ds.forward(&outputs, &targets).unwrap());
        let expected = 0.75 * value(&loss.forward(&logits, &target).unwrap())
            + 0.25 * value(&loss.forward(&low, &low_target).unwrap());
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        assert!(matches!(
            ds.forward(&outputs[..2], &targets[..2]),
            Err(LossError::OutputCount {
                n_outputs: 2,
                n_targets: 2,
                n_weights: 3
            })
        ));
    }

    #[test]
    fn multi_channel_targets_downsample_channel_by_channel() {
        // Region targets carry several channels: each is downsampled as a one-channel target.
        let t = Tensor::arange(70, (Kind::Int64, tch::Device::Cpu))
            .remainder(2)
            .reshape([1, 2, 5, 7]);
        let out = downsample_target(&t, &[vec![0.5, 0.5]]).unwrap();
        assert_eq!(out[0].size(), [1, 2, 2, 4]);
        for channel in 0..2 {
            let alone = downsample_target(&t.narrow(1, channel, 1), &[vec![0.5, 0.5]]).unwrap();
            assert!(
                out[0].narrow(1, channel, 1).equal(&alone[0]),
                "channel {channel}"
            );
        }
    }

    #[test]
    fn deep_supervision_sums_region_losses() {
        let loss = SegLoss::DiceBce(DiceBceLoss {
            batch_dice: true,
            has_ignore: true,
        });
        let logits = tensor(&XB, &[2, 3, 2, 2, 3]);
        let target = region_target(&labels(&TB_IGNORE, &[2, 1, 2, 2, 3]), Some(3));
        let low = logits.narrow(4, 0, 1);
        let low_target = target.narrow(4, 0, 1);
        let ds = DeepSupervisionLoss {
            loss,
            weights: vec![0.5, 0.5],
        };
        let got = value(
            &ds.forward(
                &[logits.shallow_clone(), low.shallow_clone()],
                &[target.shallow_clone(), low_target.shallow_clone()],
            )
            .unwrap(),
        );
        let expected =
            0.5 * 1.535_690_546_0 + 0.5 * value(&loss.forward(&low, &low_target).unwrap());
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }
}
