//! Known-answer tests of the sliding window, TTA, fold ensembling and the export helpers, with
//! closures as models (exactly known logits) and nnU-Net's own numbers as goldens.

use autoseg_inference::{
    array4_to_tensor, ensemble_logits, label_map_to_array, probabilities, segmentation,
    sliding_window_logits, tensor_to_array4, Accumulator, InferenceError, SegmentationRule,
    Segmenter, SlidingWindowSettings,
};
use tch::{Device, Kind, TchError, Tensor};

mod predict;

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

/// Logits `[b, n_classes, *spatial]` with `value` in channel `class` and 0 elsewhere.
fn constant_class(
    batch: &Tensor,
    n_classes: i64,
    class: i64,
    value: f64,
) -> Result<Tensor, TchError> {
    let shape = batch.size();
    let mut one = shape.clone();
    one[1] = 1;
    let channels: Vec<Tensor> = (0..n_classes)
        .map(|c| Tensor::full(one.as_slice(), if c == class { value } else { 0.0 }, CPU))
        .collect();
    Tensor::f_cat(&channels, 1)
}

/// A deterministic, non-constant input: `sin(0.37 · i)` over the flat index, float32.
fn sine_image(shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    (Tensor::arange(n, CPU) * 0.37).sin().reshape(shape)
}

fn settings(
    patch: &[usize],
    mirror: Option<&[usize]>,
    accumulator: Accumulator,
) -> SlidingWindowSettings {
    SlidingWindowSettings {
        accumulator,
        ..SlidingWindowSettings::nnunet(patch, mirror, Device::Cpu)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = a.to_kind(Kind::Double) - b.to_kind(Kind::Double);
    d.abs().max().double_value(&[])
}

#[test]
fn constant_class_model_gives_that_class_everywhere() {
    let model = |b: &Tensor| constant_class(b, 3, 2, 5.0);
    // Smaller than, equal to and larger than the patch, per axis and in 2D.
    let cases: [(&[i64], &[usize]); 5] = [
        (&[1, 5, 7, 3], &[8, 8, 8]),
        (&[2, 8, 8, 8], &[8, 8, 8]),
        (&[1, 19, 8, 13], &[8, 8, 8]),
        (&[1, 3, 5, 21], &[8, 8]),
        (&[1, 1, 16, 16], &[16, 16]),
    ];
    for (shape, patch) in cases {
        let image = sine_image(shape);
        for accumulator in [Accumulator::Half, Accumulator::Float] {
            let s = settings(patch, Some(&[0, 1]), accumulator);
            let logits = sliding_window_logits(&model, &image, &s).unwrap();
            assert_eq!(logits.kind(), accumulator.kind());
            assert_eq!(
                logits.size(),
                [&[3], &shape[1..]].concat(),
                "{shape:?} | {patch:?}"
            );
            let labels =
                label_map_to_array(&segmentation(&logits, &SegmentationRule::Argmax).unwrap())
                    .unwrap();
            assert!(labels.iter().all(|&l| l == 2), "{shape:?} | {patch:?}");
            // Weighted means of 5 are 5 up to rounding of the buffers (fp16: 2^-8 relative).
            assert!(
                max_abs_diff(&logits.get(2), &logits.get(2).ones_like().g_mul_scalar(5.0)) < 0.05
            );
            assert_eq!(logits.get(0).abs().max().double_value(&[]), 0.0);
        }
    }
}

#[test]
fn identity_model_reproduces_the_input_where_tiles_overlap() {
    // Logits = input: every tile agrees, so the Gaussian weights cancel.
    let identity = |b: &Tensor| -> Result<Tensor, TchError> { Ok(b.shallow_clone()) };
    for (shape, patch) in [
        (&[2i64, 21, 30, 17][..], &[8usize, 16, 8][..]),
        (&[2, 4, 30, 17], &[16, 8]),
        (&[1, 7, 6, 9], &[4, 8, 8]),
    ] {
        let image = sine_image(shape);
        let exact = sliding_window_logits(
            &identity,
            &image,
            &settings(patch, None, Accumulator::Float),
        )
        .unwrap();
        assert!(max_abs_diff(&exact, &image) < 1e-6, "{shape:?} | {patch:?}");
        // fp16 buffers (nnU-Net's): away from the borders, within fp16 rounding: each of up to
        // 8 overlapping tiles' additions rounds both sums by up to 2^-11 relative (< 5e-3 here). Within 2 voxels of several faces at once, only tile borders reach,
        // where Gaussian weights are fp16 subnormals (<= 2^-14) and the blend is quantised:
        // nnU-Net's own logits are off there too (by up to 0.46 on this image).
        let half = sliding_window_logits(
            &identity,
            &image,
            &settings(patch, Some(&[0]), Accumulator::Half),
        )
        .unwrap();
        // Two voxels off each face a tile slides over (2D patches do not slide over axis 0).
        let first_axis = 4 - patch.len() as i64;
        let interior = |t: &Tensor| {
            (first_axis..4).fold(t.shallow_clone(), |v, axis| {
                v.narrow(axis, 2, t.size()[axis as usize] - 4)
            })
        };
        let error = max_abs_diff(&interior(&half), &interior(&image));
        assert!(error < 5e-3, "{shape:?} | {patch:?}: {error}");
    }
}

/// A mirror-equivariant model: a 3x3x3 convolution whose kernel is symmetric under every flip
/// (weights depend only on the distance from the centre), zero padding, plus a bias.
fn symmetric_conv(b: &Tensor) -> Result<Tensor, TchError> {
    let r = Tensor::arange(3, CPU) - 1.0;
    let d2 = r.square().view([3, 1, 1]) + r.square().view([1, 3, 1]) + r.square().view([1, 1, 3]);
    let kernel = (d2 * -0.5)
        .exp()
        .view([1, 1, 3, 3, 3])
        .repeat([2, 1, 1, 1, 1]);
    let bias = Tensor::from_slice(&[0.25f32, -1.0]);
    b.f_conv3d(&kernel, Some(&bias), [1, 1, 1], [1, 1, 1], [1, 1, 1], 1)
}

#[test]
fn tta_with_an_equivariant_model_equals_no_tta() {
    // A mirror-symmetric input: |z - 8.5| + cos(y - 7.5) + (x - 6)^2 over 18 x 16 x 13.
    let axis = |n: i64, centre: f64, shape: [i64; 3]| (Tensor::arange(n, CPU) - centre).view(shape);
    let image = (axis(18, 8.5, [18, 1, 1]).abs()
        + axis(16, 7.5, [1, 16, 1]).cos()
        + axis(13, 6.0, [1, 1, 13]).square())
    .view([1, 18, 16, 13]);
    assert!(image.equal(&image.flip([1, 2, 3])));
    let plain = sliding_window_logits(
        &symmetric_conv,
        &image,
        &settings(&[8, 8, 8], None, Accumulator::Float),
    )
    .unwrap();
    let tta = sliding_window_logits(
        &symmetric_conv,
        &image,
        &settings(&[8, 8, 8], Some(&[0, 1, 2]), Accumulator::Float),
    )
    .unwrap();
    let scale = plain.abs().max().double_value(&[]);
    assert!(
        max_abs_diff(&plain, &tta) <= 1e-6 * scale,
        "{}",
        max_abs_diff(&plain, &tta)
    );
}

#[test]
fn tile_batches_do_not_change_the_result() {
    let image = sine_image(&[1, 13, 20, 11]);
    let one = sliding_window_logits(
        &symmetric_conv,
        &image,
        &settings(&[8, 8, 8], Some(&[2]), Accumulator::Float),
    )
    .unwrap();
    let batched = SlidingWindowSettings {
        tile_batch: 5,
        ..settings(&[8, 8, 8], Some(&[2]), Accumulator::Float)
    };
    let five = sliding_window_logits(&symmetric_conv, &image, &batched).unwrap();
    assert!(max_abs_diff(&one, &five) < 1e-5);
}

/// nnU-Net golden model: channel 0 = x - mean(tile), channel 1 = 0.5 mean(tile) + 0.25 x².
fn golden_model(x: &Tensor) -> Result<Tensor, TchError> {
    let dims: Vec<i64> = (2..x.dim() as i64).collect();
    let mean = x
        .f_mean_dim(dims.as_slice(), true, Kind::Float)?
        .f_narrow(1, 0, 1)?;
    let x0 = x.f_narrow(1, 0, 1)?;
    let c0 = x0.f_sub(&mean)?;
    let c1 = mean
        .f_mul_scalar(0.5)?
        .f_add(&x0.f_mul_scalar(0.25)?.f_mul(&x0)?)?;
    Tensor::f_cat(&[c0, c1], 1)
}

/// Σ (fp16 bits of element i) · (i mod 1000 + 1), in C order.
fn fp16_checksum(t: &Tensor) -> i64 {
    let bits = Vec::<i16>::try_from(t.contiguous().view_dtype(Kind::Int16).flatten(0, -1)).unwrap();
    bits.iter()
        .enumerate()
        .map(|(i, &b)| i64::from(b as u16) * (i as i64 % 1000 + 1))
        .sum()
}

/// One golden sliding-window run of nnU-Net's.
struct GoldenRun {
    name: &'static str,
    shape: &'static [i64],
    patch: &'static [usize],
    mirror: Option<&'static [usize]>,
    /// [`fp16_checksum`] of nnU-Net's logits.
    checksum: i64,
    /// Their sum in float64.
    sum: f64,
}

#[test]
fn half_buffers_match_nnunet_bit_for_bit() {
    // nnU-Net 2.8.1's CPU path (_internal_predict_sliding_window_return_logits with fp16
    // buffers, _internal_maybe_mirror_and_predict, compute_gaussian, pad_nd_image) re-typed in
    // Python around `golden_model`, torch 2.11 CPU, input sin(0.37 i), step 0.5, then the
    // checksum above: script tests/golden/sliding_window.py. Even the corner quirk matches:
    // where only far tile borders reach, the fp16 weights are 2^-24 and the logits come out as
    // 0 or 1 (the 3D case's first voxels: 0, 0, 1).
    let cases = [
        GoldenRun {
            name: "3d",
            shape: &[1, 11, 23, 30],
            patch: &[8, 16, 16],
            mirror: Some(&[0, 1, 2]),
            checksum: 155_643_460_698,
            sum: 945.2250584363937,
        },
        GoldenRun {
            name: "2d",
            shape: &[1, 3, 23, 30],
            patch: &[16, 16],
            mirror: Some(&[0, 1]),
            checksum: 43_173_988_828,
            sum: 259.68439269065857,
        },
        GoldenRun {
            name: "3d_notta",
            shape: &[1, 20, 20, 20],
            patch: &[8, 12, 16],
            mirror: None,
            checksum: 168_001_215_114,
            sum: 995.9784315228462,
        },
    ];
    for GoldenRun {
        name,
        shape,
        patch,
        mirror,
        checksum,
        sum,
    } in cases
    {
        let logits = sliding_window_logits(
            &golden_model,
            &sine_image(shape),
            &settings(patch, mirror, Accumulator::Half),
        )
        .unwrap();
        assert_eq!(logits.size(), [&[2], &shape[1..]].concat(), "{name}");
        assert_eq!(
            logits
                .to_kind(Kind::Double)
                .sum(Kind::Double)
                .double_value(&[]),
            sum,
            "{name}"
        );
        assert_eq!(fp16_checksum(&logits), checksum, "{name}");
    }
}

#[test]
fn ensemble_of_one_is_the_model_and_of_two_the_mean() {
    let image = sine_image(&[1, 10, 12, 9]);
    let s = settings(&[8, 8, 8], Some(&[0, 1, 2]), Accumulator::Half);
    let single = sliding_window_logits(&golden_model, &image, &s).unwrap();
    let ensemble = ensemble_logits(&[&golden_model], &image, &s).unwrap();
    assert!(ensemble.equal(&single));
    let a = |b: &Tensor| constant_class(b, 2, 0, 3.0);
    let b = |b: &Tensor| constant_class(b, 2, 1, 1.0);
    let s = settings(&[8, 8, 8], None, Accumulator::Float);
    let mean = ensemble_logits(&[&a, &b], &image, &s).unwrap();
    assert!(max_abs_diff(&mean.get(0), &mean.get(0).ones_like().g_mul_scalar(1.5)) < 1e-6);
    assert!(max_abs_diff(&mean.get(1), &mean.get(1).ones_like().g_mul_scalar(0.5)) < 1e-6);
    let three = |b: &Tensor| constant_class(b, 3, 0, 1.0);
    assert!(matches!(
        ensemble_logits(&[&a, &three], &image, &s),
        Err(InferenceError::EnsembleShapeMismatch { index: 1, .. })
    ));
    let none: [&dyn Segmenter; 0] = [];
    assert!(matches!(
        ensemble_logits(&none, &image, &s),
        Err(InferenceError::EmptyEnsemble)
    ));
}

#[test]
fn bad_requests_are_errors() {
    let model = |b: &Tensor| constant_class(b, 2, 1, 1.0);
    let image = sine_image(&[1, 8, 8, 8]);
    let bad = |s: SlidingWindowSettings| sliding_window_logits(&model, &image, &s);
    let base = settings(&[4, 4, 4], None, Accumulator::Half);
    assert!(matches!(
        bad(SlidingWindowSettings {
            step: 0.0,
            ..base.clone()
        }),
        Err(InferenceError::InvalidStep { .. })
    ));
    assert!(matches!(
        bad(SlidingWindowSettings {
            mirror_axes: Some(vec![0, 3]),
            ..base.clone()
        }),
        Err(InferenceError::InvalidMirrorAxes { .. })
    ));
    assert!(matches!(
        bad(SlidingWindowSettings {
            mirror_axes: Some(vec![1, 1]),
            ..base.clone()
        }),
        Err(InferenceError::InvalidMirrorAxes { .. })
    ));
    assert!(matches!(
        bad(SlidingWindowSettings {
            tile_batch: 0,
            ..base.clone()
        }),
        Err(InferenceError::ZeroTileBatch)
    ));
    assert!(matches!(
        bad(SlidingWindowSettings {
            patch: vec![4],
            ..base.clone()
        }),
        Err(InferenceError::InvalidPatch { .. })
    ));
    assert!(matches!(
        sliding_window_logits(&model, &sine_image(&[8, 8, 8]), &base),
        Err(InferenceError::InputShape { .. })
    ));
    // A model whose logits lose the patch's shape.
    let shrinking = |b: &Tensor| b.f_narrow(2, 0, 2);
    assert!(matches!(
        sliding_window_logits(&shrinking, &image, &base),
        Err(InferenceError::ModelOutputShape { .. })
    ));
}

#[test]
fn probabilities_and_label_maps_follow_nnunet() {
    // Two voxels, three classes: softmax over the channel axis, argmax picks the first maximum.
    let logits = Tensor::from_slice(&[0.0f32, 2.0, 1.0, 2.0, 1.0, 0.0])
        .view([3, 1, 1, 2])
        .to_kind(Kind::Half);
    let p = probabilities(&logits, &SegmentationRule::Argmax).unwrap();
    assert_eq!(p.kind(), Kind::Float);
    // Voxel 0 has logits (0, 1, 1), voxel 1 (2, 2, 0).
    let expected = 1.0 / (1.0 + 2.0 * 1f64.exp());
    assert!((p.double_value(&[0, 0, 0, 0]) - expected).abs() < 1e-7);
    let sums = p.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
    assert!(max_abs_diff(&sums, &sums.ones_like()) < 1e-6);
    let labels = segmentation(&logits, &SegmentationRule::Argmax).unwrap();
    assert_eq!(
        label_map_to_array(&labels)
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        vec![1, 0]
    );
    // Ties go to the first channel, as np.argmax.
    let tied = Tensor::from_slice(&[1.0f32, 1.0]).view([2, 1, 1, 1]);
    assert_eq!(
        label_map_to_array(&segmentation(&tied, &SegmentationRule::Argmax).unwrap()).unwrap()
            [[0, 0, 0]],
        0
    );
    // Regions: sigmoid > 0.5 in order, later regions overwrite earlier ones; sigmoid(0) = 0.5
    // is not above the threshold.
    let rule = SegmentationRule::Regions {
        regions_class_order: vec![1, 2],
    };
    let region_logits =
        Tensor::from_slice(&[1.0f32, 1.0, -1.0, -1.0, 1.0, -1.0, 0.0, 1.0]).view([2, 1, 1, 4]);
    let labels = label_map_to_array(&segmentation(&region_logits, &rule).unwrap()).unwrap();
    assert_eq!(labels.into_raw_vec_and_offset().0, vec![2, 1, 0, 2]);
    let sig = probabilities(&region_logits, &rule).unwrap();
    assert!((sig.double_value(&[0, 0, 0, 0]) - 1.0 / (1.0 + (-1f64).exp())).abs() < 1e-7);
    assert!(matches!(
        segmentation(&logits, &rule),
        Err(InferenceError::RegionCount {
            expected: 2,
            found: 3
        })
    ));
    assert!(matches!(
        label_map_to_array(&Tensor::from_slice(&[70_000i64]).view([1, 1, 1])),
        Err(InferenceError::LabelOutOfRange { value: 70_000 })
    ));
}

#[test]
fn arrays_cross_to_tensors_and_back_unchanged() {
    let t = sine_image(&[2, 3, 4, 5]);
    let a = tensor_to_array4(&t).unwrap();
    assert_eq!(a.dim(), (2, 3, 4, 5));
    assert_eq!(a[[1, 2, 3, 4]], t.double_value(&[1, 2, 3, 4]) as f32);
    assert!(array4_to_tensor(a.view()).unwrap().equal(&t));
    // A strided view (axes permuted) is made contiguous first.
    let permuted = a.view().permuted_axes([0, 1, 3, 2]);
    let back = array4_to_tensor(permuted).unwrap();
    assert!(back.equal(&t.permute([0, 1, 3, 2])));
    assert!(matches!(
        tensor_to_array4(&t.get(0)),
        Err(InferenceError::ArrayShape { ndim: 4, .. })
    ));
}
