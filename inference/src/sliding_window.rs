//! The Gaussian-weighted sliding window: a whole (preprocessed) image's logits from a model
//! that sees one patch at a time.
//!
//! nnU-Net: `predict_from_raw_data.py::predict_sliding_window_return_logits` and
//! `_internal_predict_sliding_window_return_logits` (`use_gaussian=True`).

use tch::{Device, Kind, Tensor};

use crate::gaussian::{gaussian_importance_map, NNUNET_SIGMA_SCALE, NNUNET_VALUE_SCALING};
use crate::segmenter::predict_with_mirroring;
use crate::tiling::{check_step, compute_steps, crop_padding, pad_to_patch};
use crate::{InferenceError, Segmenter};

/// Precision of the buffers that accumulate weighted logits and weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accumulator {
    /// float16, as nnU-Net: the logits come back rounded to float16 (half the memory).
    Half,
    /// float32: no rounding per tile; for large logits or exact comparisons.
    Float,
}

impl Accumulator {
    /// The tensor kind of the buffers and of the returned logits.
    pub fn kind(self) -> Kind {
        match self {
            Accumulator::Half => Kind::Half,
            Accumulator::Float => Kind::Float,
        }
    }
}

/// How to slide the window; one value per prediction run (the plan fixes most of it).
#[derive(Clone, Debug, PartialEq)]
pub struct SlidingWindowSettings {
    /// Patch size, `(z, y, x)` for 3D configurations, `(y, x)` for 2D ones (then every slice
    /// of axis 0 is predicted on its own).
    pub patch: Vec<usize>,
    /// Tile step as a fraction of the patch, in `(0, 1]` (nnU-Net `tile_step_size`, 0.5).
    pub step: f64,
    /// Patch axes to mirror for test-time augmentation (nnU-Net: the checkpoint's
    /// `inference_allowed_mirroring_axes`, `(0, 1, 2)` in 3D); `None` turns it off.
    pub mirror_axes: Option<Vec<usize>>,
    /// Tiles per network call (nnU-Net: 1). Results equal up to floating-point reordering.
    pub tile_batch: usize,
    /// Precision of the accumulation buffers.
    pub accumulator: Accumulator,
    /// Run the network under CUDA autocast (float16), as nnU-Net does on CUDA; no effect on CPU.
    pub mixed_precision: bool,
    /// Where the network runs.
    pub device: Device,
    /// Where the image and the buffers live (nnU-Net: the network's device, or the CPU after
    /// running out of device memory; a caller retries with [`Device::Cpu`] the same way).
    pub results_device: Device,
}

impl SlidingWindowSettings {
    /// nnU-Net's predictor defaults (`nnUNetPredictor(tile_step_size=0.5, use_gaussian=True,
    /// use_mirroring=True, perform_everything_on_device=True)`): step 0.5, one tile per call,
    /// float16 buffers, autocast on CUDA.
    pub fn nnunet(patch: &[usize], mirror_axes: Option<&[usize]>, device: Device) -> Self {
        SlidingWindowSettings {
            patch: patch.to_vec(),
            step: 0.5,
            mirror_axes: mirror_axes.map(<[usize]>::to_vec),
            tile_batch: 1,
            accumulator: Accumulator::Half,
            mixed_precision: device.is_cuda(),
            device,
            results_device: device,
        }
    }

    /// Checks patch, step, mirror axes and tile batch.
    ///
    /// # Errors
    /// [`InferenceError::InvalidPatch`], [`InferenceError::InvalidStep`],
    /// [`InferenceError::InvalidMirrorAxes`] or [`InferenceError::ZeroTileBatch`].
    pub fn validate(&self) -> Result<(), InferenceError> {
        let n_axes = self.patch.len();
        if !(2..=3).contains(&n_axes) || self.patch.contains(&0) {
            return Err(InferenceError::InvalidPatch {
                patch: self.patch.clone(),
            });
        }
        check_step(self.step)?;
        if let Some(axes) = &self.mirror_axes {
            let repeated = axes.iter().enumerate().any(|(i, a)| axes[..i].contains(a));
            if repeated || axes.iter().any(|&a| a >= n_axes) {
                return Err(InferenceError::InvalidMirrorAxes {
                    axes: axes.clone(),
                    n_axes,
                });
            }
        }
        if self.tile_batch == 0 {
            return Err(InferenceError::ZeroTileBatch);
        }
        Ok(())
    }
}

/// Tile positions over the padded image.
struct TileGrid {
    /// Extent of a tile on the three spatial axes (`[1, py, px]` for a 2D patch).
    window: [i64; 3],
    /// Whether tiles are single slices of axis 0 that the model sees as 2D.
    planar: bool,
    /// Tile origins, `(z, y, x)`, in nnU-Net's order.
    starts: Vec<[i64; 3]>,
}

impl TileGrid {
    /// nnU-Net's slicers: every combination of steps, axis 0 slowest; for a 2D patch, every
    /// slice of axis 0 times the 2D steps.
    fn new(spatial: [usize; 3], patch: &[usize], step: f64) -> Result<TileGrid, InferenceError> {
        let planar = patch.len() == 2;
        let (steps, window) = if planar {
            let steps = compute_steps(&spatial[1..], patch, step)?;
            let all_slices = (0..spatial[0]).collect();
            let window = [1, patch[0] as i64, patch[1] as i64];
            ([vec![all_slices], steps].concat(), window)
        } else {
            let steps = compute_steps(&spatial, patch, step)?;
            (steps, [patch[0] as i64, patch[1] as i64, patch[2] as i64])
        };
        let mut starts = Vec::new();
        for &z in &steps[0] {
            for &y in &steps[1] {
                for &x in &steps[2] {
                    starts.push([z as i64, y as i64, x as i64]);
                }
            }
        }
        Ok(TileGrid {
            window,
            planar,
            starts,
        })
    }

    /// The region of `t`'s last three axes covered by the tile at `start` (a view).
    fn region(&self, t: &Tensor, start: [i64; 3]) -> Result<Tensor, InferenceError> {
        let first = t.dim() as i64 - 3;
        let mut view = t.shallow_clone();
        for (axis, (&origin, &extent)) in start.iter().zip(&self.window).enumerate() {
            view = view.f_narrow(first + axis as i64, origin, extent)?;
        }
        Ok(view)
    }

    /// The input tile at `start`: `[c, *patch]` (a view).
    fn tile(&self, data: &Tensor, start: [i64; 3]) -> Result<Tensor, InferenceError> {
        let tile = self.region(data, start)?;
        Ok(if self.planar {
            tile.f_squeeze_dim(1)?
        } else {
            tile
        })
    }
}

/// The running sums of Gaussian-weighted logits and of weights.
struct Accumulators {
    logits: Tensor,
    weights: Tensor,
}

impl Accumulators {
    /// Zeroed buffers for `n_classes` over the padded spatial shape.
    fn new(
        n_classes: i64,
        spatial: &[i64],
        kind: Kind,
        device: Device,
    ) -> Result<Self, InferenceError> {
        let logits_shape = [&[n_classes], spatial].concat();
        Ok(Accumulators {
            logits: Tensor::f_zeros(logits_shape.as_slice(), (kind, device))?,
            weights: Tensor::f_zeros(spatial, (kind, device))?,
        })
    }

    /// Adds one tile's logits `[n_classes, *patch]`, weighted by `gaussian`, and the weights.
    fn add(
        &mut self,
        grid: &TileGrid,
        start: [i64; 3],
        logits: &Tensor,
        gaussian: &Tensor,
    ) -> Result<(), InferenceError> {
        let weighted = logits.f_mul(gaussian)?;
        let (weighted, gaussian) = if grid.planar {
            (weighted.f_unsqueeze(1)?, gaussian.f_unsqueeze(0)?)
        } else {
            (weighted, gaussian.shallow_clone())
        };
        // In place through views of the buffers; the aliases the ops return are not needed.
        let _ = grid.region(&self.logits, start)?.f_add_(&weighted)?;
        let _ = grid.region(&self.weights, start)?.f_add_(&gaussian)?;
        Ok(())
    }
}

/// The logits of a whole image, predicted tile by tile and blended with Gaussian weights.
///
/// Pads the image to at least the patch (zeros, centred), runs the model on nnU-Net's tiles
/// (`settings.tile_batch` per call on `settings.device`, each with mirroring TTA), accumulates
/// `logits · gaussian` and `gaussian` in `settings.accumulator` buffers on
/// `settings.results_device`, divides, and crops the padding away. Runs without gradients.
///
/// # Shapes
/// `data`: `[c, z, y, x]` (a 2D configuration sees `[c, 1, y, x]` or a stack of slices);
/// returns `[n_classes, z, y, x]` of kind `settings.accumulator.kind()` on
/// `settings.results_device`.
///
/// # Errors
/// [`SlidingWindowSettings::validate`]'s errors; [`InferenceError::InputShape`] when `data` is
/// not 4-D; [`InferenceError::ModelOutputShape`] when the model's logits do not match its tiles;
/// [`InferenceError::InfiniteLogits`] when float16 buffers overflow; the model's errors.
pub fn sliding_window_logits(
    model: &dyn Segmenter,
    data: &Tensor,
    settings: &SlidingWindowSettings,
) -> Result<Tensor, InferenceError> {
    let _no_grad = tch::no_grad_guard();
    settings.validate()?;
    if data.dim() != 4 {
        return Err(InferenceError::InputShape { shape: data.size() });
    }
    let data = data
        .f_to_device(settings.results_device)?
        .f_to_kind(Kind::Float)?;
    let (padded, padding) = pad_to_patch(&data, &settings.patch)?;
    let spatial = &padded.size()[1..];
    let spatial = [spatial[0], spatial[1], spatial[2]].map(|s| s as usize);
    let grid = TileGrid::new(spatial, &settings.patch, settings.step)?;
    let sums = accumulate_tiles(model, &padded, &grid, settings)?;
    let mut logits = sums.logits;
    let _ = logits.f_div_(&sums.weights)?;
    if logits.f_isinf()?.f_any()?.f_int64_value(&[])? != 0 {
        return Err(InferenceError::InfiniteLogits);
    }
    crop_padding(&logits, &padding)
}

/// Runs the model over every tile of `padded` (`[c, *spatial]` on the results device) and sums
/// the Gaussian-weighted logits and the weights.
fn accumulate_tiles(
    model: &dyn Segmenter,
    padded: &Tensor,
    grid: &TileGrid,
    settings: &SlidingWindowSettings,
) -> Result<Accumulators, InferenceError> {
    let results_device = settings.results_device;
    let gaussian = gaussian_importance_map(
        &settings.patch,
        NNUNET_SIGMA_SCALE,
        NNUNET_VALUE_SCALING,
        results_device,
    )?;
    let mut sums: Option<Accumulators> = None;
    for chunk in grid.starts.chunks(settings.tile_batch) {
        let tiles = chunk
            .iter()
            .map(|&start| grid.tile(padded, start))
            .collect::<Result<Vec<_>, _>>()?;
        let batch = Tensor::f_stack(&tiles, 0)?.f_to_device(settings.device)?;
        let logits = predict_batch(model, &batch, settings)?.f_to_device(results_device)?;
        if sums.is_none() {
            let n_classes = logits.size()[1];
            let spatial = &padded.size()[1..];
            let kind = settings.accumulator.kind();
            sums = Some(Accumulators::new(n_classes, spatial, kind, results_device)?);
        }
        let sums = sums
            .as_mut()
            .expect("the accumulators were allocated just above");
        for (idx, &start) in chunk.iter().enumerate() {
            sums.add(grid, start, &logits.f_get(idx as i64)?, &gaussian)?;
        }
    }
    Ok(sums.expect("every image has at least one tile"))
}

/// One network call over a batch of tiles, with TTA and (on CUDA, if asked) autocast; checks
/// the logits' shape.
fn predict_batch(
    model: &dyn Segmenter,
    batch: &Tensor,
    settings: &SlidingWindowSettings,
) -> Result<Tensor, InferenceError> {
    let mirror_axes = settings.mirror_axes.as_deref();
    let logits = tch::autocast(settings.mixed_precision, || {
        predict_with_mirroring(model, batch, mirror_axes)
    })?;
    let found = logits.size();
    let patch: Vec<i64> = settings.patch.iter().map(|&p| p as i64).collect();
    let n_tiles = batch.size()[0];
    if found.len() != patch.len() + 2 || found[0] != n_tiles || found[1] < 1 || found[2..] != patch
    {
        return Err(InferenceError::ModelOutputShape {
            found,
            batch: n_tiles,
            patch,
        });
    }
    Ok(logits)
}
