//! What the sliding window runs: anything that turns a batch of tiles into logits, and the
//! mirroring test-time augmentation around it.
//!
//! nnU-Net: `predict_from_raw_data.py::_internal_maybe_mirror_and_predict`.

use autoseg_network::UNet;
use rayon::prelude::*;
use tch::{Device, Kind, TchError, Tensor};

use crate::elements::{cpu_elements, cpu_elements_mut};
use crate::InferenceError;

/// A model that predicts logits for a batch of tiles.
///
/// Implemented for the [`UNet`] (its top head) and for closures
/// `Fn(&Tensor) -> Result<Tensor, TchError>`, which tests use as known-answer models.
pub trait Segmenter {
    /// Logits of a batch of tiles.
    ///
    /// # Shapes
    /// `batch`: `[b, c_in, *patch]`; returns `[b, n_classes, *patch]`.
    ///
    /// # Errors
    /// Whatever the model reports, as an [`InferenceError`].
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError>;
}

impl Segmenter for UNet {
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError> {
        Ok(self.forward(batch)?)
    }
}

impl<F> Segmenter for F
where
    F: Fn(&Tensor) -> Result<Tensor, TchError>,
{
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError> {
        Ok(self(batch)?)
    }
}

/// Every non-empty subset of `axes`, smallest first, each in the order of `axes` (Python's
/// `itertools.combinations` for sizes 1, 2, ...).
pub(crate) fn mirror_combinations(axes: &[usize]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for size in 1..=axes.len() {
        push_combinations(axes, size, &mut Vec::new(), &mut out);
    }
    out
}

/// Appends to `out` every `size`-subset of `axes` that extends `prefix`, lexicographically.
fn push_combinations(
    axes: &[usize],
    size: usize,
    prefix: &mut Vec<usize>,
    out: &mut Vec<Vec<usize>>,
) {
    if prefix.len() == size {
        out.push(prefix.clone());
        return;
    }
    for (i, &axis) in axes.iter().enumerate() {
        prefix.push(axis);
        push_combinations(&axes[i + 1..], size, prefix, out);
        prefix.pop();
    }
}

/// Logits of a batch, averaged over the plain pass and one mirrored pass per non-empty subset
/// of `mirror_axes` (patch axes: 0 is the first spatial axis); `None` runs the plain pass only.
///
/// The mirrored passes are `flip(model(flip(x, axes)), axes)`, added in `itertools` order to the
/// plain pass, and the sum divided by the number of passes (8 for three axes, 4 for two), in the
/// model's output dtype, as nnU-Net does.
///
/// # Shapes
/// `batch`: `[b, c_in, *patch]`; returns `[b, n_classes, *patch]`.
///
/// # Errors
/// The model's errors; [`InferenceError::Torch`] when libtorch fails or the mirrored passes'
/// logits differ in shape from the plain pass's.
pub fn predict_with_mirroring(
    model: &dyn Segmenter,
    batch: &Tensor,
    mirror_axes: Option<&[usize]>,
) -> Result<Tensor, InferenceError> {
    let (mut sum, n_passes) = sum_mirrored_passes(model, batch, mirror_axes)?;
    if n_passes > 1 {
        // In place on the sum, which the model does not share; the alias is not needed.
        let _ = sum.f_div_scalar_(n_passes as f64)?;
    }
    Ok(sum)
}

/// [`predict_with_mirroring`] before the division: the sum of the passes' logits (nnU-Net's
/// `prediction += flip(...)`, in `itertools` order) and the number of passes.
///
/// Float32 logits on the CPU are flipped and added in one pass per mirrored prediction, into a
/// fresh buffer (the same sums, element by element, as libtorch's flip and add); other logits
/// (float16 under autocast, CUDA) with libtorch's ops.
///
/// # Errors
/// As [`predict_with_mirroring`].
pub(crate) fn sum_mirrored_passes(
    model: &dyn Segmenter,
    batch: &Tensor,
    mirror_axes: Option<&[usize]>,
) -> Result<(Tensor, usize), InferenceError> {
    let plain = model.logits(batch)?;
    let Some(axes) = mirror_axes.filter(|a| !a.is_empty()) else {
        return Ok((plain, 1));
    };
    let combinations = mirror_combinations(axes);
    let fused = plain.device() == Device::Cpu && plain.f_kind()? == Kind::Float;
    let mut sum: Option<Tensor> = None;
    for combination in &combinations {
        let dims: Vec<i64> = combination.iter().map(|&a| a as i64 + 2).collect();
        let mirrored = model.logits(&flip(batch, combination)?)?;
        sum = Some(if fused {
            add_flipped_cpu(sum, &plain, &mirrored, combination)?
        } else {
            add_flipped_torch(sum, &plain, &mirrored, &dims)?
        });
    }
    let sum = sum.expect("there is at least one mirrored pass");
    Ok((sum, combinations.len() + 1))
}

/// `batch` flipped over patch axes `axes` (a new tensor); float32 CPU batches in one pass.
fn flip(batch: &Tensor, axes: &[usize]) -> Result<Tensor, InferenceError> {
    if batch.device() != Device::Cpu || batch.f_kind()? != Kind::Float {
        let dims: Vec<i64> = axes.iter().map(|&a| a as i64 + 2).collect();
        return Ok(batch.f_flip(dims.as_slice())?);
    }
    let batch = batch.f_contiguous()?;
    let mut flipped = batch.f_empty_like()?;
    // SAFETY: `flipped` was allocated just above and has no other handle; `batch` (perhaps
    // sharing storage with the caller's tiles) is only read while the slices live.
    let (dst, src) = unsafe { (cpu_elements_mut(&mut flipped)?, cpu_elements(&batch)?) };
    Volume::of(&batch.size(), axes).flip_into(dst, Target::Copy, src);
    Ok(flipped)
}

/// `sum + flip(mirrored, dims)` with libtorch; the first time (`sum` is `None`) out of place
/// from `plain`, which may be a view of the model's input, then in place.
fn add_flipped_torch(
    sum: Option<Tensor>,
    plain: &Tensor,
    mirrored: &Tensor,
    dims: &[i64],
) -> Result<Tensor, InferenceError> {
    let flipped = mirrored.f_flip(dims)?;
    Ok(match sum {
        None => plain.f_add(&flipped)?,
        Some(mut sum) => {
            // In place on our own sum; the alias the op returns is not needed.
            let _ = sum.f_add_(&flipped)?;
            sum
        }
    })
}

/// [`add_flipped_torch`] for float32 CPU logits, in one pass: reads `mirrored` at mirrored
/// indices of the patch axes in `axes` instead of flipping it first.
fn add_flipped_cpu(
    sum: Option<Tensor>,
    plain: &Tensor,
    mirrored: &Tensor,
    axes: &[usize],
) -> Result<Tensor, InferenceError> {
    let shape = plain.size();
    if mirrored.size() != shape || mirrored.f_kind()? != Kind::Float {
        return Err(InferenceError::Torch(TchError::Shape(format!(
            "the mirrored pass over patch axes {axes:?} gave logits {:?} of {:?}, the plain pass {shape:?} of Float",
            mirrored.size(),
            mirrored.f_kind()?
        ))));
    }
    let mirrored = mirrored.f_contiguous()?;
    let volume = Volume::of(&shape, axes);
    match sum {
        None => {
            let plain = plain.f_contiguous()?;
            let mut sum = Tensor::f_empty(shape.as_slice(), (Kind::Float, Device::Cpu))?;
            // SAFETY: `sum` was allocated just above and has no other handle; the model's
            // logits `plain` and `mirrored` (which may share storage with each other or with
            // the batch) are only read while the slices live.
            let (dst, plain, src) = unsafe {
                (
                    cpu_elements_mut(&mut sum)?,
                    cpu_elements(&plain)?,
                    cpu_elements(&mirrored)?,
                )
            };
            volume.flip_into(dst, Target::Sum(plain), src);
            Ok(sum)
        }
        Some(mut sum) => {
            // SAFETY: `sum` is the buffer the first mirrored pass allocated here, never handed
            // to the model, so no other handle uses it; `mirrored` is only read.
            let (dst, src) = unsafe { (cpu_elements_mut(&mut sum)?, cpu_elements(&mirrored)?) };
            volume.flip_into(dst, Target::AddTo, src);
            Ok(sum)
        }
    }
}

/// The spatial layout of a batch of logits as `[outer, z, y, x]` (2D patches have `z = 1`),
/// and which of the three axes a mirrored pass flipped.
struct Volume {
    dims: [usize; 3],
    flips: [bool; 3],
}

impl Volume {
    /// The layout of logits `[b, c, *patch]` mirrored over patch axes `axes`.
    fn of(shape: &[i64], axes: &[usize]) -> Volume {
        let patch = &shape[2..];
        let offset = 3 - patch.len();
        let mut dims = [1usize; 3];
        for (axis, &size) in patch.iter().enumerate() {
            dims[offset + axis] = size as usize;
        }
        let mut flips = [false; 3];
        for &axis in axes {
            flips[offset + axis] = true;
        }
        Volume { dims, flips }
    }

    /// Writes `flip(src)` into `dst` as `target` says, row by row along x, in parallel over
    /// the (outer, z) slabs.
    fn flip_into(&self, dst: &mut [f32], target: Target<'_>, src: &[f32]) {
        let [nz, ny, nx] = self.dims;
        let mirror = |i: usize, n: usize, flip: bool| if flip { n - 1 - i } else { i };
        let slab = ny * nx;
        dst.par_chunks_mut(slab).enumerate().for_each(|(idx, out)| {
            let (outer, z) = (idx / nz, idx % nz);
            let source = (outer * nz + mirror(z, nz, self.flips[0])) * slab;
            for (y, row) in out.chunks_mut(nx).enumerate() {
                let s = source + mirror(y, ny, self.flips[1]) * nx;
                let src = &src[s..s + nx];
                match target {
                    Target::Copy => combine(row, src, self.flips[2], |o, v| *o = v),
                    Target::Sum(base) => {
                        row.copy_from_slice(&base[idx * slab + y * nx..][..nx]);
                        combine(row, src, self.flips[2], |o, v| *o += v);
                    }
                    Target::AddTo => combine(row, src, self.flips[2], |o, v| *o += v),
                }
            }
        });
    }
}

/// Applies `op(row[i], src[i])`, or `op(row[i], src[n - 1 - i])` when `reversed`.
fn combine(row: &mut [f32], src: &[f32], reversed: bool, op: impl Fn(&mut f32, f32)) {
    if reversed {
        row.iter_mut()
            .zip(src.iter().rev())
            .for_each(|(o, &v)| op(o, v));
    } else {
        row.iter_mut().zip(src).for_each(|(o, &v)| op(o, v));
    }
}

/// What [`Volume::flip_into`] writes: the flipped values, their sum with a base, or their sum
/// with what the destination holds.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// `dst = flip(src)`.
    Copy,
    /// `dst = base + flip(src)`.
    Sum(&'a [f32]),
    /// `dst += flip(src)`.
    AddTo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_follow_itertools_order() {
        assert_eq!(
            mirror_combinations(&[0, 1, 2]),
            vec![
                vec![0],
                vec![1],
                vec![2],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
                vec![0, 1, 2]
            ]
        );
        assert_eq!(
            mirror_combinations(&[1, 0]),
            vec![vec![1], vec![0], vec![1, 0]]
        );
        assert!(mirror_combinations(&[]).is_empty());
    }

    #[test]
    fn mirroring_averages_the_unflipped_views() {
        // A model that is not mirror-equivariant: logits = the x coordinate of each voxel,
        // independent of the input. Flipping x back turns x into (w-1-x), so with mirroring
        // over x the average is (w-1)/2 everywhere; over y only, x is unchanged.
        let w = 6;
        let model = |batch: &Tensor| -> Result<Tensor, TchError> {
            let ramp = Tensor::f_arange(w, (Kind::Float, Device::Cpu))?;
            let (b, _, h, _) = batch.size4()?;
            ramp.f_expand([b, 1, h, w], false)
        };
        let batch = Tensor::zeros([2, 1, 4, w], (Kind::Float, Device::Cpu));
        let x_mirrored = predict_with_mirroring(&model, &batch, Some(&[1])).unwrap();
        assert!(x_mirrored.allclose(&batch.ones_like().g_mul_scalar(2.5), 0.0, 0.0, false));
        let y_mirrored = predict_with_mirroring(&model, &batch, Some(&[0])).unwrap();
        assert!(y_mirrored.equal(&model(&batch).unwrap()));
        let both = predict_with_mirroring(&model, &batch, Some(&[0, 1])).unwrap();
        assert!(both.allclose(&x_mirrored, 0.0, 0.0, false));
    }

    #[test]
    fn cpu_flips_and_sums_equal_libtorchs() {
        // Every mirror combination of 3D and 2D batches: the flipped input, and the sum of the
        // passes, bit for bit against torch.flip and in-place adds.
        let cpu = (Kind::Float, Device::Cpu);
        for shape in [&[2i64, 3, 5, 6, 7][..], &[2, 3, 6, 7]] {
            let n: i64 = shape.iter().product();
            let batch = (Tensor::arange(n, cpu) * 0.377).sin().reshape(shape);
            let n_axes = shape.len() - 2;
            let axes: Vec<usize> = (0..n_axes).collect();
            // Each pass's logits differ: the input times a pass-specific odd factor.
            let passes: Vec<Tensor> = (0..8)
                .map(|k| batch.g_mul_scalar(1.0 + 0.1 * k as f64))
                .collect();
            let mut torch_sum: Option<Tensor> = None;
            let mut cpu_sum: Option<Tensor> = None;
            for (k, combination) in mirror_combinations(&axes).iter().enumerate() {
                let dims: Vec<i64> = combination.iter().map(|&a| a as i64 + 2).collect();
                assert!(flip(&batch, combination)
                    .unwrap()
                    .equal(&batch.flip(dims.as_slice())));
                let mirrored = &passes[k + 1];
                torch_sum =
                    Some(add_flipped_torch(torch_sum, &passes[0], mirrored, &dims).unwrap());
                cpu_sum =
                    Some(add_flipped_cpu(cpu_sum, &passes[0], mirrored, combination).unwrap());
                let (t, c) = (torch_sum.as_ref().unwrap(), cpu_sum.as_ref().unwrap());
                assert!(
                    t.view_dtype(Kind::Int).equal(&c.view_dtype(Kind::Int)),
                    "{shape:?} {combination:?}"
                );
            }
        }
        // A mirrored pass of another shape is an error, not a panic.
        let small = Tensor::zeros([1, 1, 2, 2], cpu);
        let large = Tensor::zeros([1, 1, 2, 3], cpu);
        assert!(matches!(
            add_flipped_cpu(None, &small, &large, &[0]),
            Err(InferenceError::Torch(_))
        ));
    }
}
