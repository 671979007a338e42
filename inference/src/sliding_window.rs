//! The Gaussian-weighted sliding window: a whole (preprocessed) image's logits from a model
//! that sees one patch at a time.
//!
//! nnU-Net: `predict_from_raw_data.py::predict_sliding_window_return_logits` and
//! `_internal_predict_sliding_window_return_logits` (`use_gaussian=True`).

use half::f16;
use tch::{Device, Kind, Tensor};

use crate::accumulate::{add_row, add_weighted_row, divide_slabs, Buffer, TileLayout};
use crate::elements::{cpu_elements, cpu_elements_mut};
use crate::gaussian::{gaussian_importance_map, NNUNET_SIGMA_SCALE, NNUNET_VALUE_SCALING};
use crate::segmenter::sum_mirrored_passes;
use crate::tiling::{check_step, crop_padding, pad_to_patch, Padding, TileGrid};
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

/// The logits of a whole image, predicted tile by tile and blended with Gaussian weights.
///
/// Pads the image to at least the patch (zeros, centred), runs the model on nnU-Net's tiles
/// (`settings.tile_batch` per call on `settings.device`, each with mirroring TTA), accumulates
/// `logits · gaussian` and `gaussian` in `settings.accumulator` buffers on
/// `settings.results_device`, divides, and crops the padding away. Runs without gradients.
///
/// With buffers on the CPU, the tiles are cut, weighted and added by this crate's own loops
/// (on rayon's threads), which round every element exactly as nnU-Net's libtorch ops do.
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
    Window::new(data, settings)?.logits(model)
}

/// One image prepared for the window: padded, cut into tiles, with the Gaussian and the summed
/// weights. The weights depend only on the tiles, so every model (fold) that predicts the image
/// shares them: dividing by the same float16 weights gives the same bits as nnU-Net's per-fold
/// `n_predictions`.
pub(crate) struct Window<'s> {
    settings: &'s SlidingWindowSettings,
    /// `[c, *spatial]`, float32, contiguous on the results device, at least the patch.
    padded: Tensor,
    padding: Padding,
    grid: TileGrid,
    layout: TileLayout,
    gaussian: Gaussian,
    /// Σ gaussian over the tiles, `[*spatial]` in the accumulator's kind.
    weights: Tensor,
}

/// nnU-Net's Gaussian importance map in the two forms the accumulation uses.
struct Gaussian {
    /// float16 `[*patch]` on the results device (nnU-Net's tensor).
    half: Tensor,
    /// The same values in float32 (exactly), contiguous, for the CPU loops.
    float: Tensor,
}

impl<'s> Window<'s> {
    /// Checks `settings` and `data` (`[c, z, y, x]`), pads the image and sums the weights.
    ///
    /// # Errors
    /// [`SlidingWindowSettings::validate`]'s errors; [`InferenceError::InputShape`] when `data`
    /// is not 4-D; [`InferenceError::Torch`].
    pub(crate) fn new(
        data: &Tensor,
        settings: &'s SlidingWindowSettings,
    ) -> Result<Window<'s>, InferenceError> {
        let _no_grad = tch::no_grad_guard();
        settings.validate()?;
        if data.dim() != 4 {
            return Err(InferenceError::InputShape { shape: data.size() });
        }
        let data = data
            .f_to_device(settings.results_device)?
            .f_to_kind(Kind::Float)?;
        let (padded, padding) = pad_to_patch(&data, &settings.patch)?;
        let padded = padded.f_contiguous()?;
        let size = padded.size();
        let spatial = [size[1], size[2], size[3]].map(|s| s as usize);
        let grid = TileGrid::new(spatial, &settings.patch, settings.step)?;
        let layout = TileLayout {
            spatial,
            window: grid.window.map(|w| w as usize),
        };
        let half = gaussian_importance_map(
            &settings.patch,
            NNUNET_SIGMA_SCALE,
            NNUNET_VALUE_SCALING,
            settings.results_device,
        )?;
        let float = half.f_to_kind(Kind::Float)?.f_contiguous()?;
        let gaussian = Gaussian { half, float };
        let weights = sum_weights(&grid, &layout, &gaussian, settings.accumulator.kind())?;
        Ok(Window {
            settings,
            padded,
            padding,
            grid,
            layout,
            gaussian,
            weights,
        })
    }

    /// The blended logits of `model` over the image: `[n_classes, z, y, x]` in the
    /// accumulator's kind on the results device (a view into the padded buffer).
    ///
    /// # Errors
    /// [`InferenceError::ModelOutputShape`], [`InferenceError::InfiniteLogits`], the model's
    /// errors.
    pub(crate) fn logits(&self, model: &dyn Segmenter) -> Result<Tensor, InferenceError> {
        let _no_grad = tch::no_grad_guard();
        let mut sums = self.accumulate(model)?;
        if divide_by_weights(&mut sums, &self.weights)? {
            return Err(InferenceError::InfiniteLogits);
        }
        crop_padding(&sums, &self.padding)
    }

    /// Runs the model over every tile and sums the Gaussian-weighted logits.
    fn accumulate(&self, model: &dyn Segmenter) -> Result<Tensor, InferenceError> {
        let settings = self.settings;
        let mut sums: Option<Tensor> = None;
        for chunk in self.grid.starts.chunks(settings.tile_batch) {
            let batch = self.gather_tiles(chunk)?.f_to_device(settings.device)?;
            let (logits, n_passes) = predict_batch(model, &batch, settings)?;
            let logits = logits.f_to_device(settings.results_device)?;
            let sums = match &mut sums {
                Some(sums) => sums,
                None => sums.insert(self.zeroed_sums(logits.size()[1])?),
            };
            self.add_tiles(sums, chunk, &logits, n_passes)?;
        }
        Ok(sums.expect("every image has at least one tile"))
    }

    /// The input tiles at `starts`, `[b, c, *patch]`, contiguous.
    fn gather_tiles(&self, starts: &[[i64; 3]]) -> Result<Tensor, InferenceError> {
        if self.padded.device() != Device::Cpu {
            let tiles = starts
                .iter()
                .map(|&start| self.grid.tile(&self.padded, start))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Tensor::f_stack(&tiles, 0)?);
        }
        let n_channels = self.padded.size()[0];
        let patch = self.settings.patch.iter().map(|&p| p as i64);
        let shape: Vec<i64> = [starts.len() as i64, n_channels]
            .into_iter()
            .chain(patch)
            .collect();
        let mut batch = Tensor::f_empty(shape.as_slice(), (Kind::Float, Device::Cpu))?;
        // SAFETY: the window never writes its padded image, which may share storage only with
        // the `data` the caller lent to `Window::new` (read, not written, while we predict);
        // `batch` was allocated just above and has no other handle.
        let (image, tiles) = unsafe {
            (
                cpu_elements::<f32>(&self.padded)?,
                cpu_elements_mut::<f32>(&mut batch)?,
            )
        };
        let per_tile = tiles.len() / starts.len();
        for (tile, &start) in tiles.chunks_mut(per_tile).zip(starts) {
            self.layout.copy_tile(image, start, tile);
        }
        Ok(batch)
    }

    /// Zeroed sums for `n_classes` over the padded image.
    fn zeroed_sums(&self, n_classes: i64) -> Result<Tensor, InferenceError> {
        let shape = [&[n_classes], &self.padded.size()[1..]].concat();
        let options = (
            self.settings.accumulator.kind(),
            self.settings.results_device,
        );
        Ok(Tensor::f_zeros(shape.as_slice(), options)?)
    }

    /// Adds tiles' logits (`[b, n_classes, *patch]`, the sum over `n_passes` mirroring passes)
    /// divided by `n_passes` and weighted by the Gaussian, as nnU-Net does in steps:
    /// `prediction /= n; prediction *= gaussian; predicted_logits[sl] += prediction`.
    fn add_tiles(
        &self,
        sums: &mut Tensor,
        starts: &[[i64; 3]],
        logits: &Tensor,
        n_passes: usize,
    ) -> Result<(), InferenceError> {
        let on_cpu = sums.device() == Device::Cpu && logits.device() == Device::Cpu;
        match (on_cpu, logits.f_kind()?, sums.f_kind()?) {
            (true, Kind::Float, Kind::Half) => {
                self.add_tiles_cpu::<f16>(sums, starts, logits, n_passes)
            }
            (true, Kind::Float, Kind::Float) => {
                self.add_tiles_cpu::<f32>(sums, starts, logits, n_passes)
            }
            _ => self.add_tiles_torch(sums, starts, logits, n_passes),
        }
    }

    /// [`Window::add_tiles`] with libtorch's ops (any device, any logits kind).
    fn add_tiles_torch(
        &self,
        sums: &mut Tensor,
        starts: &[[i64; 3]],
        logits: &Tensor,
        n_passes: usize,
    ) -> Result<(), InferenceError> {
        let averaged = if n_passes > 1 {
            logits.f_div_scalar(n_passes as f64)?
        } else {
            logits.shallow_clone()
        };
        for (idx, &start) in starts.iter().enumerate() {
            let weighted = averaged.f_get(idx as i64)?.f_mul(&self.gaussian.half)?;
            let weighted = if self.grid.planar {
                weighted.f_unsqueeze(1)?
            } else {
                weighted
            };
            // In place through a view of the sums; the alias the op returns is not needed.
            let _ = self.grid.region(sums, start)?.f_add_(&weighted)?;
        }
        Ok(())
    }

    /// [`Window::add_tiles`] for float32 logits and sums on the CPU, one pass per tile.
    fn add_tiles_cpu<A: Buffer>(
        &self,
        sums: &mut Tensor,
        starts: &[[i64; 3]],
        logits: &Tensor,
        n_passes: usize,
    ) -> Result<(), InferenceError> {
        let logits = logits.f_contiguous()?;
        // SAFETY: the logits are the model's output (perhaps sharing storage with the batch of
        // tiles we gave it), which only this loop reads; the float32 Gaussian belongs to the
        // window, which never writes it; the sums are the buffer `Window::accumulate` (or a
        // test) allocated, shared with no other handle, and distinct from both.
        let (values, gaussian, sums) = unsafe {
            (
                cpu_elements::<f32>(&logits)?,
                cpu_elements::<f32>(&self.gaussian.float)?,
                cpu_elements_mut::<A>(sums)?,
            )
        };
        let per_tile = values.len() / starts.len();
        for (tile, &start) in values.chunks(per_tile).zip(starts) {
            self.layout
                .add_tile(sums, start, tile, |row, values, weight| {
                    add_weighted_row(row, values, &gaussian[weight..][..row.len()], n_passes);
                });
        }
        Ok(())
    }
}

/// Σ of the Gaussian over every tile, in `kind` (float16 weights are rounded after each tile,
/// as nnU-Net's `n_predictions[sl] += gaussian`).
fn sum_weights(
    grid: &TileGrid,
    layout: &TileLayout,
    gaussian: &Gaussian,
    kind: Kind,
) -> Result<Tensor, InferenceError> {
    let spatial = layout.spatial.map(|s| s as i64);
    let mut weights = Tensor::f_zeros(spatial.as_slice(), (kind, gaussian.half.device()))?;
    match (weights.device(), kind) {
        (Device::Cpu, Kind::Half) => sum_weights_cpu::<f16>(grid, layout, gaussian, &mut weights),
        (Device::Cpu, Kind::Float) => sum_weights_cpu::<f32>(grid, layout, gaussian, &mut weights),
        _ => {
            // float16 -> float32 is exact: adding the converted map equals the mixed-kind add.
            let map = gaussian.half.f_to_kind(kind)?;
            let map = if grid.planar {
                map.f_unsqueeze(0)?
            } else {
                map
            };
            for &start in &grid.starts {
                // In place through a view; the alias the op returns is not needed.
                let _ = grid.region(&weights, start)?.f_add_(&map)?;
            }
            Ok(())
        }
    }?;
    Ok(weights)
}

/// [`sum_weights`] on the CPU: `weights = round(weights + gaussian)` per tile, in float32.
fn sum_weights_cpu<A: Buffer>(
    grid: &TileGrid,
    layout: &TileLayout,
    gaussian: &Gaussian,
    weights: &mut Tensor,
) -> Result<(), InferenceError> {
    // SAFETY: the float32 Gaussian is made in `Window::new` and never written; `weights` is the
    // buffer `sum_weights` just allocated, whose only handle the caller lends us here.
    let (map, weights) = unsafe {
        (
            cpu_elements::<f32>(&gaussian.float)?,
            cpu_elements_mut::<A>(weights)?,
        )
    };
    for &start in &grid.starts {
        layout.add_tile(weights, start, map, |row, values, _| add_row(row, values));
    }
    Ok(())
}

/// `sums /= weights` in the sums' kind (broadcast over the classes); returns whether any
/// quotient is infinite.
fn divide_by_weights(sums: &mut Tensor, weights: &Tensor) -> Result<bool, InferenceError> {
    let on_cpu = sums.device() == Device::Cpu && sums.is_contiguous() && weights.is_contiguous();
    match (on_cpu, sums.f_kind()?) {
        (true, Kind::Half) => divide_cpu::<f16>(sums, weights),
        (true, Kind::Float) => divide_cpu::<f32>(sums, weights),
        _ => {
            // In place; the alias the op returns is not needed.
            let _ = sums.f_div_(weights)?;
            Ok(sums.f_isinf()?.f_any()?.f_int64_value(&[])? != 0)
        }
    }
}

/// [`divide_by_weights`] on the CPU: `round(sum / weight)` in float32, slab by slab.
fn divide_cpu<A: Buffer>(sums: &mut Tensor, weights: &Tensor) -> Result<bool, InferenceError> {
    // SAFETY: the callers pass the window's weights, which nothing writes after
    // `Window::new`, and sums that `Window::accumulate` (or a test) allocated and shares with
    // no other handle.
    let (weights, sums) = unsafe { (cpu_elements::<A>(weights)?, cpu_elements_mut::<A>(sums)?) };
    let any_infinite = divide_slabs(sums, weights);
    Ok(any_infinite)
}

/// One network call over a batch of tiles, with TTA and (on CUDA, if asked) autocast: the sum
/// of the passes' logits and the number of passes. Checks the logits' shape.
fn predict_batch(
    model: &dyn Segmenter,
    batch: &Tensor,
    settings: &SlidingWindowSettings,
) -> Result<(Tensor, usize), InferenceError> {
    let mirror_axes = settings.mirror_axes.as_deref();
    let (logits, n_passes) = tch::autocast(settings.mixed_precision, || {
        sum_mirrored_passes(model, batch, mirror_axes)
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
    Ok((logits, n_passes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Float32 values in `[-scale, scale]`, deterministic.
    fn values(shape: &[i64], scale: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.731)
            .sin()
            .g_mul_scalar(scale)
            .reshape(shape)
    }

    /// Whether two tensors hold the same bits (same kind and shape).
    fn same_bits(a: &Tensor, b: &Tensor) -> bool {
        a.kind() == b.kind() && a.size() == b.size() && {
            let bits = |t: &Tensor| t.contiguous().view_dtype(Kind::Int16).flatten(0, -1);
            match a.kind() {
                Kind::Half => bits(a).equal(&bits(b)),
                _ => a
                    .contiguous()
                    .view_dtype(Kind::Int)
                    .equal(&b.contiguous().view_dtype(Kind::Int)),
            }
        }
    }

    /// A window over a `[1, 13, 21, 18]` image (or its 2D counterpart) with the patch given.
    fn window<'s>(settings: &'s SlidingWindowSettings, shape: &[i64]) -> Window<'s> {
        Window::new(&values(shape, 1.0), settings).unwrap()
    }

    #[test]
    fn cpu_loops_round_as_libtorchs_ops() {
        // Both paths over the same tiles, for float16 and float32 sums, 3D and 2D patches,
        // one pass and eight: sums that start nonzero (large, to exercise float16 rounding),
        // logits up to 300 (so that some sums round up to the next float16 binade), subnormal
        // Gaussian weights at the tile borders.
        for accumulator in [Accumulator::Half, Accumulator::Float] {
            for (patch, shape) in [
                (&[8usize, 16, 12][..], [1i64, 13, 21, 18]),
                (&[16, 12], [1, 3, 21, 18]),
            ] {
                let settings = SlidingWindowSettings {
                    accumulator,
                    ..SlidingWindowSettings::nnunet(patch, None, Device::Cpu)
                };
                let w = window(&settings, &shape);
                let starts = &w.grid.starts[..3];
                let logits_shape = [
                    &[3i64, 2],
                    patch
                        .iter()
                        .map(|&p| p as i64)
                        .collect::<Vec<_>>()
                        .as_slice(),
                ]
                .concat();
                let logits = values(&logits_shape, 300.0);
                let start_sums =
                    values(&[2, shape[1], shape[2], shape[3]], 2000.0).to_kind(accumulator.kind());
                for n_passes in [1, 8] {
                    let mut torch = start_sums.copy();
                    w.add_tiles_torch(&mut torch, starts, &logits, n_passes)
                        .unwrap();
                    let mut cpu = start_sums.copy();
                    w.add_tiles(&mut cpu, starts, &logits, n_passes).unwrap();
                    assert!(
                        same_bits(&torch, &cpu),
                        "{accumulator:?} {patch:?} {n_passes}"
                    );
                    assert!(!same_bits(&cpu, &start_sums));
                }
            }
        }
    }

    #[test]
    fn cpu_weights_and_division_match_libtorch() {
        for accumulator in [Accumulator::Half, Accumulator::Float] {
            let settings = SlidingWindowSettings {
                accumulator,
                ..SlidingWindowSettings::nnunet(&[8, 16, 12], None, Device::Cpu)
            };
            let w = window(&settings, &[1, 13, 21, 18]);
            // The weights: libtorch's in-place adds of the Gaussian over every tile.
            let map = w.gaussian.half.to_kind(accumulator.kind());
            let torch = Tensor::zeros([13, 21, 18], (accumulator.kind(), Device::Cpu));
            for &start in &w.grid.starts {
                let _ = w.grid.region(&torch, start).unwrap().g_add_(&map);
            }
            assert!(same_bits(&torch, &w.weights), "{accumulator:?}");
            // The division, and its check for infinities (65504 / 2^-24 overflows float16).
            let sums = values(&[2, 13, 21, 18], 3000.0).to_kind(accumulator.kind());
            let mut cpu = sums.copy();
            let infinite = divide_by_weights(&mut cpu, &w.weights).unwrap();
            assert!(same_bits(&cpu, &(&sums / &w.weights)), "{accumulator:?}");
            assert_eq!(infinite, accumulator == Accumulator::Half);
            assert_eq!(infinite, cpu.isinf().any().int64_value(&[]) != 0);
        }
    }

    #[test]
    fn tiles_are_cut_as_libtorch_slices_them() {
        let settings = SlidingWindowSettings::nnunet(&[8, 16, 12], None, Device::Cpu);
        let image = values(&[2, 13, 21, 18], 1.0);
        let w = Window::new(&image, &settings).unwrap();
        let starts = &w.grid.starts[1..4];
        let expected: Vec<Tensor> = starts
            .iter()
            .map(|&s| w.grid.tile(&image, s).unwrap())
            .collect();
        assert!(w
            .gather_tiles(starts)
            .unwrap()
            .equal(&Tensor::stack(&expected, 0)));
    }
}
