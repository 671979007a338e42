//! Export: a case's logits, predicted on the preprocessed grid, turned into a label map (and on
//! request probabilities) with exactly the input image's shape, axis order and geometry.
//!
//! nnU-Net: `export_prediction.py::convert_predicted_logits_to_segmentation_with_correct_shape`
//! (`reference/nnunet.md` §7.4), in its order:
//! 1. resample the logits from the configuration's spacing to the case's own (transposed)
//!    spacing, to `shape_after_cropping_and_before_resampling`, with the plan's
//!    `resampling_probabilities` (order 1, separate-z rules; 2D configurations keep axis 0).
//!    nnU-Net's resampler returns its input's dtype, so float16 logits come back rounded to
//!    float16; so do ours (the values are resampled in float64, stored as float32, then
//!    rounded to the logits' kind).
//! 2. labels: argmax of the logits (first channel on ties), or for regions `sigmoid > 0.5` in
//!    `regions_class_order`; with probabilities: softmax (float32) first and the argmax of the
//!    probabilities, as nnU-Net does.
//! 3. insert into zeros of `shape_before_cropping` at the crop's box (probabilities: background
//!    1 outside the box for labels, 0 for regions), transpose back with `transpose_backward`.
//!
//! Memory: without probabilities, channels are resampled one at a time into a running argmax
//! (one full-resolution float32 channel, the best value so far and the label map), instead of
//! every channel at full resolution.

use autoseg_evaluation::{probabilities_to_segmentation, EvaluationError, SegmentationRule};
use autoseg_planner::{Configuration, Plans};
use autoseg_preprocessing::crop::BoundingBox;
use autoseg_preprocessing::pipeline::resample_settings;
use autoseg_preprocessing::resample::{resample_data, ResampleError, ResampleSettings};
use autoseg_preprocessing::{CaseProperties, LabelMap, Volume};
use ndarray::{Array3, Array4, ArrayView4, Axis};
use tch::{Device, Kind, Tensor};
use thiserror::Error;

use crate::{array4_to_tensor, label_map_to_array, tensor_to_array4, InferenceError};

/// Why a case's logits could not be exported.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The configuration's spacing has neither 2 nor 3 axes.
    #[error("configuration {configuration}: spacing {spacing:?} needs 2 or 3 axes")]
    SpacingAxes {
        /// Configuration name.
        configuration: String,
        /// The configuration's spacing.
        spacing: Vec<f64>,
    },
    /// The logits are not `[n_classes, z, y, x]` with the expected number of channels.
    #[error("case {case}: logits of shape {shape:?}, expected [{n_channels}, z, y, x]")]
    LogitsShape {
        /// Case identifier.
        case: String,
        /// Shape of the logits.
        shape: Vec<i64>,
        /// Channels expected (regions), or 0 when any count would do.
        n_channels: usize,
    },
    /// The crop recorded for the case does not fit its shape before cropping.
    #[error("case {case}: crop {bbox:?} does not fit the shape before cropping {shape:?}")]
    BoxOutside {
        /// Case identifier.
        case: String,
        /// The crop.
        bbox: BoundingBox,
        /// Shape before cropping (transposed axes).
        shape: [usize; 3],
    },
    /// The exported grid does not have the input's shape (properties and geometry disagree).
    #[error("case {case}: exported shape {exported:?} differs from the input's {input:?}")]
    ShapeMismatch {
        /// Case identifier.
        case: String,
        /// Shape after transposing back.
        exported: [usize; 3],
        /// The input's shape.
        input: [usize; 3],
    },
    /// Resampling failed.
    #[error("case {case}: cannot resample the logits")]
    Resample {
        /// Case identifier.
        case: String,
        /// The cause.
        #[source]
        source: ResampleError,
    },
    /// Probabilities could not become labels.
    #[error("case {case}: cannot turn probabilities into labels")]
    Labels {
        /// Case identifier.
        case: String,
        /// The cause.
        #[source]
        source: EvaluationError,
    },
    /// A tensor operation failed.
    #[error("case {case}: export failed")]
    Inference {
        /// Case identifier.
        case: String,
        /// The cause.
        #[source]
        source: InferenceError,
    },
}

/// The plan's part of export, fixed per configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSpec {
    /// Configuration name, for messages.
    pub configuration: String,
    /// `transpose_forward` of the plans (to transpose the case's spacing).
    pub transpose_forward: [usize; 3],
    /// `transpose_backward` of the plans (to restore the input's axis order).
    pub transpose_backward: [usize; 3],
    /// The configuration's spacing: 3 axes, or 2 for 2D configurations (axis 0 is the
    /// case's own).
    pub configuration_spacing: Vec<f64>,
    /// `resampling_probabilities` of the configuration.
    pub resampling: ResampleSettings,
    /// Argmax or regions.
    pub rule: SegmentationRule,
}

impl ExportSpec {
    /// The export of configuration `config` of `plans` with label rule `rule`.
    ///
    /// # Errors
    /// [`ExportError::SpacingAxes`] for a spacing that has neither 2 nor 3 axes.
    pub fn new(
        plans: &Plans,
        config: &Configuration,
        rule: SegmentationRule,
    ) -> Result<ExportSpec, ExportError> {
        if !(2..=3).contains(&config.spacing.len()) {
            return Err(ExportError::SpacingAxes {
                configuration: config.name.clone(),
                spacing: config.spacing.clone(),
            });
        }
        Ok(ExportSpec {
            configuration: config.name.clone(),
            transpose_forward: plans.transpose_forward,
            transpose_backward: plans.transpose_backward,
            configuration_spacing: config.spacing.clone(),
            resampling: resample_settings(&config.resampling_probabilities),
            rule,
        })
    }

    /// The spacing the logits were predicted at and the case's own spacing, both in transposed
    /// axis order (nnU-Net: `current_spacing` and `properties['spacing']` transposed).
    fn spacings(&self, properties: &CaseProperties) -> ([f64; 3], [f64; 3]) {
        let own = self.transpose_forward.map(|axis| properties.spacing[axis]);
        let current = match self.configuration_spacing.as_slice() {
            [y, x] => [own[0], *y, *x],
            [z, y, x] => [*z, *y, *x],
            _ => unreachable!("ExportSpec::new accepts only 2 or 3 spacing axes"),
        };
        (current, own)
    }
}

/// A case exported to its input's grid.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedCase {
    /// The label map, `(1, z, y, x)` in the input's axis order, with the input's geometry.
    pub labels: LabelMap,
    /// Probabilities `(c, z, y, x)` on the same grid (float32), when asked for.
    pub probabilities: Option<Array4<f32>>,
}

/// Exports a case's logits to the input's grid and geometry (`properties.source_geometry`).
///
/// # Shapes
/// `logits`: `[n_classes, z, y, x]` on the preprocessed grid (any float kind, any device);
/// the label map is `(1, Z, Y, X)` with the input's shape, probabilities `(n_classes, Z, Y, X)`.
///
/// # Errors
/// [`ExportError`] naming the case: a logits shape that does not fit, a crop outside the
/// shape before cropping, a resampling or tensor failure, or an exported shape that differs
/// from the input's.
pub fn export_logits(
    logits: &Tensor,
    properties: &CaseProperties,
    spec: &ExportSpec,
    with_probabilities: bool,
) -> Result<ExportedCase, ExportError> {
    let case = properties.case.as_str();
    check_logits(logits, properties, spec)?;
    let kind = logits.kind();
    let logits = logits.f_to_device(Device::Cpu).map_err(torch_err(case))?;
    let resampled = ResampledChannels {
        logits: &logits,
        properties,
        spec,
        kind,
    };
    let (labels, probabilities) = if with_probabilities {
        let (labels, probabilities) = labels_and_probabilities(&resampled)?;
        (labels, Some(probabilities))
    } else {
        (streamed_labels(&resampled)?, None)
    };
    drop(logits);
    let labels = uncrop_labels(labels, properties, spec)?;
    let probabilities = match probabilities {
        Some(p) => Some(uncrop_probabilities(p.view(), properties, spec)?),
        None => None,
    };
    Ok(ExportedCase {
        labels,
        probabilities,
    })
}

/// Checks that `logits` are `[c, z, y, x]` with one channel per region for region rules, and
/// that the crop fits the shape before cropping.
fn check_logits(
    logits: &Tensor,
    properties: &CaseProperties,
    spec: &ExportSpec,
) -> Result<(), ExportError> {
    let shape = logits.size();
    let expected = match &spec.rule {
        SegmentationRule::Regions {
            regions_class_order,
        } => regions_class_order.len(),
        SegmentationRule::Argmax => 0,
    };
    let channels_ok =
        shape.first().is_some_and(|&c| c >= 1) && (expected == 0 || shape[0] == expected as i64);
    if shape.len() != 4 || !channels_ok {
        return Err(ExportError::LogitsShape {
            case: properties.case.clone(),
            shape,
            n_channels: expected,
        });
    }
    let bbox = properties.bbox_used_for_cropping;
    let before = properties.shape_before_cropping;
    let fits = (0..3).all(|i| bbox.start[i] <= bbox.end[i] && bbox.end[i] <= before[i]);
    if !fits || bbox.shape() != properties.shape_after_cropping_and_before_resampling {
        return Err(ExportError::BoxOutside {
            case: properties.case.clone(),
            bbox,
            shape: before,
        });
    }
    Ok(())
}

fn inference_err(case: &str) -> impl Fn(InferenceError) -> ExportError + '_ {
    move |source| ExportError::Inference {
        case: case.to_string(),
        source,
    }
}

fn torch_err(case: &str) -> impl Fn(tch::TchError) -> ExportError + '_ {
    move |source| ExportError::Inference {
        case: case.to_string(),
        source: InferenceError::Torch(source),
    }
}

/// The logits of one case and how to bring each channel to the cropped input grid.
struct ResampledChannels<'a> {
    /// `[c, z, y, x]` on the CPU, of kind `kind`.
    logits: &'a Tensor,
    properties: &'a CaseProperties,
    spec: &'a ExportSpec,
    /// The logits' kind: resampled values are rounded to it (nnU-Net keeps the dtype).
    kind: Kind,
}

impl ResampledChannels<'_> {
    fn n_channels(&self) -> usize {
        self.logits.size()[0] as usize
    }

    fn case(&self) -> &str {
        &self.properties.case
    }

    /// Channel `k` on the cropped input grid, `[z, y, x]` float32 on the CPU, rounded to the
    /// logits' kind.
    fn channel(&self, k: usize) -> Result<Tensor, ExportError> {
        let torch = torch_err(self.case());
        let target = self.properties.shape_after_cropping_and_before_resampling;
        let channel = self.logits.f_get(k as i64).map_err(&torch)?;
        let shape = channel.size();
        if shape.iter().zip(target).all(|(&s, t)| s as usize == t) {
            // nnU-Net returns the logits unchanged when the shapes already agree; values of
            // the logits' kind need no rounding.
            return channel.f_to_kind(Kind::Float).map_err(&torch);
        }
        let array = tensor_to_array4(&channel.f_unsqueeze(0).map_err(&torch)?)
            .map_err(inference_err(self.case()))?;
        let (current, own) = self.spec.spacings(self.properties);
        let resampled = resample_data(array.view(), target, current, own, &self.spec.resampling)
            .map_err(|source| ExportError::Resample {
                case: self.case().to_string(),
                source,
            })?;
        drop(array);
        array4_to_tensor(resampled.view())
            .map_err(inference_err(self.case()))?
            .f_to_kind(self.kind)
            .and_then(|t| t.f_to_kind(Kind::Float))
            .and_then(|t| t.f_squeeze_dim(0))
            .map_err(&torch)
    }
}

impl ResampledChannels<'_> {
    /// [`ResampledChannels::channel`] as a flat C-order vector. Float16 and float32 channels
    /// that need no resampling are read directly, without a libtorch conversion.
    fn channel_values(&self, k: usize) -> Result<Vec<f32>, ExportError> {
        let torch = torch_err(self.case());
        let target = self.properties.shape_after_cropping_and_before_resampling;
        let raw = self.logits.f_get(k as i64).map_err(&torch)?;
        let same = raw.size().iter().zip(target).all(|(&s, t)| s as usize == t);
        let direct = same && matches!(self.kind, Kind::Half | Kind::Float);
        let channel = if direct { raw } else { self.channel(k)? };
        let flat = channel
            .f_contiguous()
            .and_then(|t| t.f_view([-1]))
            .map_err(&torch)?;
        if channel.kind() == Kind::Half {
            let halves = Vec::<half::f16>::try_from(&flat).map_err(&torch)?;
            return Ok(halves.into_iter().map(f32::from).collect());
        }
        Vec::<f32>::try_from(&flat).map_err(&torch)
    }
}

/// Labels on the cropped grid, one channel at a time: a running argmax (strictly greater
/// wins, so the first channel wins ties, as numpy's argmax), or thresholded sigmoids in region
/// order, later regions overwriting earlier ones.
fn streamed_labels(channels: &ResampledChannels<'_>) -> Result<Array3<u16>, ExportError> {
    let case = channels.case();
    let torch = torch_err(case);
    let labels = match &channels.spec.rule {
        SegmentationRule::Argmax => return streamed_argmax(channels),
        SegmentationRule::Regions {
            regions_class_order,
        } => {
            let mut labels: Option<Tensor> = None;
            for (k, &label) in regions_class_order.iter().enumerate() {
                let inside = channels
                    .channel(k)?
                    .f_sigmoid()
                    .and_then(|p| p.f_gt(0.5))
                    .map_err(&torch)?;
                let mut current = match labels.take() {
                    Some(l) => l,
                    None => inside
                        .f_zeros_like()
                        .and_then(|t| t.f_to_kind(Kind::Int))
                        .map_err(&torch)?,
                };
                let _ = current
                    .f_masked_fill_(&inside, i64::from(label))
                    .map_err(&torch)?;
                labels = Some(current);
            }
            labels.expect("check_logits guarantees at least one region channel")
        }
    };
    label_map_to_array(&labels).map_err(inference_err(case))
}

/// The running argmax of [`streamed_labels`] in plain loops (one pass per channel, no
/// libtorch dispatch): a later channel wins only where it is strictly greater (NaN never wins).
fn streamed_argmax(channels: &ResampledChannels<'_>) -> Result<Array3<u16>, ExportError> {
    let case = channels.case();
    let shape = channels
        .properties
        .shape_after_cropping_and_before_resampling;
    let values = |k: usize| channels.channel_values(k);
    let mut best = values(0)?;
    let mut labels = vec![0u16; best.len()];
    for k in 1..channels.n_channels() {
        let label = u16::try_from(k).map_err(|_| {
            inference_err(case)(InferenceError::LabelOutOfRange { value: k as i64 })
        })?;
        let value = values(k)?;
        for ((b, l), &v) in best.iter_mut().zip(labels.iter_mut()).zip(&value) {
            if v > *b {
                *b = v;
                *l = label;
            }
        }
    }
    Ok(Array3::from_shape_vec(shape, labels).expect("every channel has the cropped grid's shape"))
}

/// Labels and float32 probabilities on the cropped grid: every channel resampled, then softmax
/// (or sigmoid) and the label map of the probabilities (nnU-Net's `return_probabilities` path).
fn labels_and_probabilities(
    channels: &ResampledChannels<'_>,
) -> Result<(Array3<u16>, Array4<f32>), ExportError> {
    let case = channels.case();
    let resampled = (0..channels.n_channels())
        .map(|k| channels.channel(k))
        .collect::<Result<Vec<_>, _>>()?;
    let stacked = Tensor::f_stack(&resampled, 0).map_err(torch_err(case))?;
    drop(resampled);
    let probabilities = crate::probabilities(&stacked, &channels.spec.rule)
        .and_then(|p| tensor_to_array4(&p))
        .map_err(inference_err(case))?;
    let labels = probabilities_to_segmentation(probabilities.view(), &channels.spec.rule).map_err(
        |source| ExportError::Labels {
            case: case.to_string(),
            source,
        },
    )?;
    Ok((labels, probabilities))
}

/// The label map on the cropped, transposed grid put back into the input's grid: zeros
/// outside the crop, axes transposed back, the input's geometry.
fn uncrop_labels(
    labels: Array3<u16>,
    properties: &CaseProperties,
    spec: &ExportSpec,
) -> Result<LabelMap, ExportError> {
    let bbox = properties.bbox_used_for_cropping;
    let full = if bbox == BoundingBox::full(properties.shape_before_cropping) {
        labels
    } else {
        let mut full = Array3::<u16>::zeros(properties.shape_before_cropping);
        bbox.crop3(full.view_mut()).assign(&labels);
        full
    };
    let back = if spec.transpose_backward == [0, 1, 2] {
        full
    } else {
        full.permuted_axes(spec.transpose_backward)
            .as_standard_layout()
            .into_owned()
    };
    let data = back.insert_axis(Axis(0));
    check_input_shape(properties, &data)?;
    Ok(Volume {
        data,
        geometry: properties.source_geometry.clone(),
    })
}

/// Probabilities on the cropped grid put back into the input's grid: outside the crop the
/// background has probability 1 (labels) or every region 0 (regions), nnU-Net's
/// `revert_cropping_on_probabilities`.
fn uncrop_probabilities(
    probabilities: ArrayView4<'_, f32>,
    properties: &CaseProperties,
    spec: &ExportSpec,
) -> Result<Array4<f32>, ExportError> {
    let [z, y, x] = properties.shape_before_cropping;
    let n_channels = probabilities.len_of(Axis(0));
    let mut full = Array4::<f32>::zeros((n_channels, z, y, x));
    if spec.rule == SegmentationRule::Argmax {
        full.index_axis_mut(Axis(0), 0).fill(1.0);
    }
    properties
        .bbox_used_for_cropping
        .crop(full.view_mut())
        .assign(&probabilities);
    let tb = spec.transpose_backward;
    let back = full
        .permuted_axes([0, tb[0] + 1, tb[1] + 1, tb[2] + 1])
        .as_standard_layout()
        .into_owned();
    check_input_shape(properties, &back)?;
    Ok(back)
}

fn check_input_shape<T>(properties: &CaseProperties, data: &Array4<T>) -> Result<(), ExportError> {
    let (_, z, y, x) = data.dim();
    let input = properties.source_geometry.shape().0;
    if [z, y, x] != input {
        return Err(ExportError::ShapeMismatch {
            case: properties.case.clone(),
            exported: [z, y, x],
            input,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_preprocessing::resample::{SeparateZ, SplineOrder};
    use autoseg_preprocessing::{Geometry, HeaderGeometry, Shape3, Spacing};
    use ndarray::s;
    use tch::Device;

    fn spec(rule: SegmentationRule, transpose: [usize; 3], spacing: Vec<f64>) -> ExportSpec {
        let mut backward = [0; 3];
        for (i, &axis) in transpose.iter().enumerate() {
            backward[axis] = i;
        }
        ExportSpec {
            configuration: "test".into(),
            transpose_forward: transpose,
            transpose_backward: backward,
            configuration_spacing: spacing,
            resampling: ResampleSettings {
                order: SplineOrder::Linear,
                order_z: SplineOrder::Nearest,
                separate_z: SeparateZ::Auto,
            },
            rule,
        }
    }

    /// A case of input shape `input` (file axes), transposed by `transpose`, cropped to `bbox`
    /// (transposed axes), spacing 1 everywhere.
    fn properties(input: [usize; 3], transpose: [usize; 3], bbox: BoundingBox) -> CaseProperties {
        let before = transpose.map(|a| input[a]);
        CaseProperties {
            case: "case".into(),
            spacing: [1.0; 3],
            shape_before_cropping: before,
            bbox_used_for_cropping: bbox,
            shape_after_cropping_and_before_resampling: bbox.shape(),
            spacing_after_resampling: [1.0; 3],
            class_locations: Vec::new(),
            source_geometry: Geometry::new(
                Shape3(input),
                HeaderGeometry::axis_aligned(Spacing([1.0; 3]), [0.0; 3]),
            ),
        }
    }

    #[test]
    fn argmax_is_inserted_at_the_box_and_transposed_back() {
        // Input (file axes) 4 x 5 x 6, transposed [2, 0, 1] -> (6, 4, 5); crop z 1..3, y 1..4,
        // x 2..5 of that grid. Logits: class 2 where the cropped x index is 1, else class 1.
        let transpose = [2, 0, 1];
        let bbox = BoundingBox {
            start: [1, 1, 2],
            end: [3, 4, 5],
        };
        let props = properties([4, 5, 6], transpose, bbox);
        let mut logits = Array4::<f32>::zeros((3, 2, 3, 3));
        logits.slice_mut(s![1, .., .., ..]).fill(1.0);
        logits.slice_mut(s![2, .., .., 1]).fill(2.0);
        let tensor = array4_to_tensor(logits.view()).unwrap();
        let spec = spec(SegmentationRule::Argmax, transpose, vec![1.0; 3]);
        let out = export_logits(&tensor, &props, &spec, true).unwrap();
        assert_eq!(out.labels.data.dim(), (1, 4, 5, 6));
        // Transposed position (t0, t1, t2) is file position (z, y, x) = (t1, t2, t0).
        for ((_, z, y, x), &label) in out.labels.data.indexed_iter() {
            let t = [x, z, y];
            let inside = (0..3).all(|i| (bbox.start[i]..bbox.end[i]).contains(&t[i]));
            let expected = match inside {
                false => 0,
                true if t[2] - bbox.start[2] == 1 => 2,
                true => 1,
            };
            assert_eq!(label, expected, "voxel {:?}", (z, y, x));
        }
        let p = out.probabilities.unwrap();
        assert_eq!(p.dim(), (3, 4, 5, 6));
        assert_eq!(p[[0, 0, 0, 0]], 1.0);
        assert_eq!(p[[1, 0, 0, 0]], 0.0);
        // Inside: softmax of (0, 1, 2) at a class-2 voxel (file (1, 3, 1) = transposed (1, 1, 3)).
        let e = [1.0f64, 1f64.exp(), 2f64.exp()];
        let sum: f64 = e.iter().sum();
        assert!((f64::from(p[[2, 1, 3, 1]]) - e[2] / sum).abs() < 1e-6);
        assert_eq!(out.labels.data[[0, 1, 3, 1]], 2);
    }

    #[test]
    fn streamed_argmax_equals_the_probabilities_path_and_ties_go_to_the_first() {
        let props = properties([4, 4, 4], [0, 1, 2], BoundingBox::full([4, 4, 4]));
        // Channel 0 and 1 tie everywhere; channel 2 wins in one voxel.
        let mut logits = Array4::<f32>::from_elem((3, 2, 2, 2), 0.5);
        logits.slice_mut(s![2, .., .., ..]).fill(-1.0);
        logits[[2, 1, 1, 1]] = 3.0;
        let tensor = array4_to_tensor(logits.view()).unwrap();
        let spec = spec(SegmentationRule::Argmax, [0, 1, 2], vec![2.0, 2.0, 2.0]);
        let streamed = export_logits(&tensor, &props, &spec, false).unwrap();
        let full = export_logits(&tensor, &props, &spec, true).unwrap();
        assert_eq!(streamed.labels, full.labels);
        assert!(streamed.probabilities.is_none());
        let data = &streamed.labels.data;
        // Linear upsampling x2 (centre-aligned): the winner spreads to the 2x2x2 high corner.
        assert_eq!(data[[0, 3, 3, 3]], 2);
        assert_eq!(data[[0, 0, 0, 0]], 0);
        assert_eq!(data.iter().filter(|&&l| l == 1).count(), 0);
    }

    #[test]
    fn regions_threshold_sigmoids_in_order() {
        let props = properties([1, 2, 2], [0, 1, 2], BoundingBox::full([1, 2, 2]));
        // Region channels for labels 1 (outer) and 2 (inner): voxel 0 both, 1 outer only,
        // 2 neither, 3 inner only.
        let logits = Array4::from_shape_vec(
            (2, 1, 2, 2),
            vec![4.0f32, 4.0, -4.0, -4.0, 4.0, -4.0, -4.0, 4.0],
        )
        .unwrap();
        let tensor = array4_to_tensor(logits.view()).unwrap();
        let rule = SegmentationRule::Regions {
            regions_class_order: vec![1, 2],
        };
        let spec = spec(rule, [0, 1, 2], vec![1.0; 3]);
        for with_probabilities in [false, true] {
            let out = export_logits(&tensor, &props, &spec, with_probabilities).unwrap();
            assert_eq!(
                out.labels.data.iter().copied().collect::<Vec<_>>(),
                vec![2, 1, 0, 2]
            );
        }
    }

    #[test]
    fn half_logits_are_rounded_after_resampling() {
        // nnU-Net resamples float16 logits into float16. Upsampling x 2 -> 4 linearly puts
        // output voxel 1 at a quarter of the way from input 0 to input 1: channel 1 is then
        // 1 + 2^-12 there, above channel 0's 1 in float32 but equal to it in float16 (the
        // first channel wins the tie); at voxel 2 (three quarters) it rounds up to 1 + 2^-10.
        let props = properties([1, 1, 4], [0, 1, 2], BoundingBox::full([1, 1, 4]));
        let logits =
            Array4::from_shape_vec((2, 1, 1, 2), vec![1.0f32, 1.0, 1.0, 1.0 + 1.0 / 1024.0])
                .unwrap();
        let half = array4_to_tensor(logits.view()).unwrap().to_kind(Kind::Half);
        let spec = spec(SegmentationRule::Argmax, [0, 1, 2], vec![1.0, 1.0, 2.0]);
        let labels = |t: &Tensor| {
            let out = export_logits(t, &props, &spec, false).unwrap();
            out.labels.data.iter().copied().collect::<Vec<u16>>()
        };
        assert_eq!(labels(&half), vec![0, 0, 1, 1]);
        assert_eq!(labels(&half.to_kind(Kind::Float)), vec![0, 1, 1, 1]);
    }

    #[test]
    fn half_logits_without_resampling_are_read_directly() {
        // No resampling: float16 values are compared as they are; ties go to the first
        // channel, a NaN never wins, and the labels equal those of the probabilities path.
        let props = properties([1, 1, 4], [0, 1, 2], BoundingBox::full([1, 1, 4]));
        let logits = Array4::from_shape_vec(
            (3, 1, 1, 4),
            vec![
                1.0f32,
                1.0,
                2.0,
                0.0, // channel 0
                1.0,
                1.0 + 1.0 / 1024.0,
                1.0,
                f32::NAN, // channel 1
                0.5,
                0.5,
                3.0,
                -1.0, // channel 2
            ],
        )
        .unwrap();
        let half = array4_to_tensor(logits.view()).unwrap().to_kind(Kind::Half);
        let spec = spec(SegmentationRule::Argmax, [0, 1, 2], vec![1.0; 3]);
        let streamed = export_logits(&half, &props, &spec, false).unwrap();
        let labels: Vec<u16> = streamed.labels.data.iter().copied().collect();
        assert_eq!(labels, vec![0, 1, 2, 0]);
        let float = export_logits(&half.to_kind(Kind::Float), &props, &spec, false).unwrap();
        assert_eq!(float.labels, streamed.labels);
    }

    #[test]
    fn a_box_outside_the_grid_is_an_error() {
        let mut props = properties([2, 2, 2], [0, 1, 2], BoundingBox::full([2, 2, 2]));
        props.bbox_used_for_cropping.end = [3, 2, 2];
        props.shape_after_cropping_and_before_resampling = [3, 2, 2];
        let tensor = Tensor::zeros([2, 3, 2, 2], (Kind::Float, Device::Cpu));
        let spec = spec(SegmentationRule::Argmax, [0, 1, 2], vec![1.0; 3]);
        assert!(matches!(
            export_logits(&tensor, &props, &spec, false),
            Err(ExportError::BoxOutside { .. })
        ));
        let three_axes = Tensor::zeros([2, 2, 2], (Kind::Float, Device::Cpu));
        assert!(matches!(
            export_logits(&three_axes, &props, &spec, false),
            Err(ExportError::LogitsShape { .. })
        ));
    }
}
