//! From logits to what is exported: probabilities (float32 softmax or sigmoid), label maps
//! (argmax or region thresholds), and the crossings between tch tensors and ndarray arrays.
//!
//! nnU-Net: `LabelManager.apply_inference_nonlin` (logits cast to float32 first),
//! `convert_logits_to_segmentation` and `convert_probabilities_to_segmentation`.

use autoseg_evaluation::SegmentationRule;
use ndarray::{Array3, Array4, ArrayView4};
use tch::kind::Element;
use tch::{Device, Kind, Tensor};

use crate::InferenceError;

/// Class probabilities of logits, float32: softmax over the channels (labels) or a sigmoid per
/// channel (regions).
///
/// # Shapes
/// `logits`: `[c, *spatial]`; returns the same shape, on the same device.
///
/// # Errors
/// [`InferenceError::InputShape`] for a tensor without axes; [`InferenceError::Torch`].
pub fn probabilities(logits: &Tensor, rule: &SegmentationRule) -> Result<Tensor, InferenceError> {
    if logits.dim() == 0 {
        return Err(InferenceError::InputShape {
            shape: logits.size(),
        });
    }
    let logits = logits.f_to_kind(Kind::Float)?;
    Ok(match rule {
        SegmentationRule::Argmax => logits.f_softmax(0, Kind::Float)?,
        SegmentationRule::Regions { .. } => logits.f_sigmoid()?,
    })
}

/// The label map of logits, int64 on the logits' device: the first channel of highest logit
/// (labels), or, for regions, in `regions_class_order`, every voxel whose sigmoid exceeds 0.5
/// takes that region's label, later regions overwriting earlier ones.
///
/// # Shapes
/// `logits`: `[c, *spatial]`; returns `[*spatial]`.
///
/// # Errors
/// [`InferenceError::RegionCount`] when channels and regions differ in number;
/// [`InferenceError::InputShape`]; [`InferenceError::Torch`].
pub fn segmentation(logits: &Tensor, rule: &SegmentationRule) -> Result<Tensor, InferenceError> {
    if logits.dim() == 0 {
        return Err(InferenceError::InputShape {
            shape: logits.size(),
        });
    }
    match rule {
        SegmentationRule::Argmax => Ok(logits.f_to_kind(Kind::Float)?.f_argmax(0, false)?),
        SegmentationRule::Regions {
            regions_class_order,
        } => {
            let n_channels = logits.size()[0] as usize;
            if n_channels != regions_class_order.len() {
                return Err(InferenceError::RegionCount {
                    expected: regions_class_order.len(),
                    found: n_channels,
                });
            }
            let probabilities = probabilities(logits, rule)?;
            let mut labels = probabilities
                .f_get(0)?
                .f_zeros_like()?
                .f_to_kind(Kind::Int64)?;
            for (idx, &label) in regions_class_order.iter().enumerate() {
                let inside = probabilities.f_get(idx as i64)?.f_gt(0.5)?;
                // In place; the alias the op returns is not needed.
                let _ = labels.f_masked_fill_(&inside, i64::from(label))?;
            }
            Ok(labels)
        }
    }
}

/// A label map tensor `[z, y, x]` (any integer kind, any device) as a `u16` array.
///
/// # Errors
/// [`InferenceError::ArrayShape`] unless 3-D; [`InferenceError::LabelOutOfRange`] for values
/// outside `0..=65535`; [`InferenceError::Torch`].
pub fn label_map_to_array(labels: &Tensor) -> Result<Array3<u16>, InferenceError> {
    let shape = labels.size();
    if shape.len() != 3 {
        return Err(InferenceError::ArrayShape { shape, ndim: 3 });
    }
    let values = flat_values::<i32>(labels)?;
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        out.push(
            u16::try_from(v).map_err(|_| InferenceError::LabelOutOfRange {
                value: i64::from(v),
            })?,
        );
    }
    let dims = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
    Ok(Array3::from_shape_vec(dims, out).expect("the tensor has exactly z*y*x elements"))
}

/// A `[c, z, y, x]` tensor (any float kind, any device) as a float32 array: one copy to the
/// CPU (plus the conversion when the kind is not float32).
///
/// # Errors
/// [`InferenceError::ArrayShape`] unless 4-D; [`InferenceError::Torch`].
pub fn tensor_to_array4(t: &Tensor) -> Result<Array4<f32>, InferenceError> {
    let shape = t.size();
    if shape.len() != 4 {
        return Err(InferenceError::ArrayShape { shape, ndim: 4 });
    }
    let values = flat_values::<f32>(t)?;
    let dims = (
        shape[0] as usize,
        shape[1] as usize,
        shape[2] as usize,
        shape[3] as usize,
    );
    Ok(Array4::from_shape_vec(dims, values).expect("the tensor has exactly c*z*y*x elements"))
}

/// A float32 array `(c, z, y, x)` as a CPU tensor: one copy (two when `array` is not in
/// standard layout, which is made contiguous first).
///
/// # Errors
/// [`InferenceError::Torch`].
pub fn array4_to_tensor(array: ArrayView4<'_, f32>) -> Result<Tensor, InferenceError> {
    let contiguous = array.as_standard_layout();
    let slice = contiguous
        .as_slice()
        .expect("as_standard_layout returns a contiguous array");
    let shape: Vec<i64> = array.shape().iter().map(|&s| s as i64).collect();
    Ok(Tensor::f_from_slice(slice)?.f_reshape(shape.as_slice())?)
}

/// Float32 probabilities of array logits `(c, z, y, x)` through [`probabilities`] (libtorch's
/// softmax, as nnU-Net's).
///
/// # Errors
/// As [`probabilities`].
pub fn probabilities_array(
    logits: ArrayView4<'_, f32>,
    rule: &SegmentationRule,
) -> Result<Array4<f32>, InferenceError> {
    tensor_to_array4(&probabilities(&array4_to_tensor(logits)?, rule)?)
}

/// The elements of `t` in C order, converted to `T`'s kind, on the CPU.
fn flat_values<T: Element + Copy>(t: &Tensor) -> Result<Vec<T>, InferenceError> {
    let flat = t
        .f_to_device(Device::Cpu)?
        .f_to_kind(T::KIND)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<T>::try_from(&flat)?)
}
