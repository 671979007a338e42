//! Integration tests of `autoseg-evaluation`: known answers from hand computation and golden
//! numbers from medpy 0.5.2 (numpy 2.4.6, scipy 1.17.1).

use autoseg_evaluation::{
    apply_postprocessing, determine_postprocessing, evaluate_case, evaluate_cases, CaseInput,
    EvaluationError, EvaluationSettings, LabelValue, Metric, PostprocessingStep, Summary,
    SurfaceMetrics, SurfaceSettings,
};
use ndarray::{s, Array3};

fn case<'a>(
    name: &str,
    reference: &'a Array3<u8>,
    prediction: &'a Array3<u8>,
    spacing: [f64; 3],
) -> CaseInput<'a, u8> {
    CaseInput {
        prediction_file: format!("pred/{name}.nii.gz"),
        reference_file: format!("ref/{name}.nii.gz"),
        prediction: prediction.view(),
        reference: reference.view(),
        spacing,
    }
}

fn settings(classes: Vec<LabelValue>, tolerance_mm: Option<f64>) -> EvaluationSettings {
    EvaluationSettings {
        classes,
        ignore_label: None,
        surface: tolerance_mm.map(|t| SurfaceSettings {
            nsd_tolerance_mm: t,
        }),
    }
}

fn surface_of(
    reference: &Array3<u8>,
    prediction: &Array3<u8>,
    spacing: [f64; 3],
    tolerance: f64,
) -> SurfaceMetrics {
    let s = settings(vec![LabelValue::Single(1)], Some(tolerance));
    let m = evaluate_case(&case("c", reference, prediction, spacing), &s).unwrap();
    m.metrics[0].1.surface.unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

mod cubes {
    use super::*;

    /// An 8³ cube at [2, 10)³ and the same cube shifted by 4 voxels along x.
    fn shifted_cubes() -> (Array3<u8>, Array3<u8>) {
        let mut reference = Array3::zeros((12, 12, 20));
        reference.slice_mut(s![2..10, 2..10, 2..10]).fill(1);
        let mut prediction = Array3::zeros((12, 12, 20));
        prediction.slice_mut(s![2..10, 2..10, 6..14]).fill(1);
        (reference, prediction)
    }

    #[test]
    fn dice_half_and_iou_one_third() {
        let (reference, prediction) = shifted_cubes();
        let s = settings(vec![LabelValue::Single(1)], None);
        let m = evaluate_case(&case("cube", &reference, &prediction, [1.0; 3]), &s).unwrap();
        let c = &m.metrics[0].1;
        assert_eq!(c.get(Metric::Dice), Some(0.5));
        assert!(close(c.get(Metric::IoU).unwrap(), 1.0 / 3.0, 1e-15));
        assert_eq!(c.get(Metric::TP), Some(256.0));
        assert_eq!(c.get(Metric::NRef), Some(512.0));
        assert_eq!(c.surface, None);
    }

    // Hand computation (cube coordinates 0..7, B = A + 4 along x). Surface of each cube: 296
    // voxels. Directed distances A -> B in voxels: x = 0 face 64 x 4; rims at x = 1, 2, 3
    // (28 each) 3, 2, 1; rims at x = 4..6 and the x = 7 rim: 112 x 0; the 36 inner voxels of the
    // x = 7 face: min(3, distance to the nearest y or z face) = 20 x 1, 12 x 2, 4 x 3.
    // Isotropic: sum 480, so ASSD = 480 / 296; pooled (592) 95th percentile = 4;
    // NSD(1 mm) = (224 + 96) / 592. B -> A is the mirror image.
    #[test]
    fn surface_distances_isotropic() {
        let (reference, prediction) = shifted_cubes();
        let m = surface_of(&reference, &prediction, [1.0; 3], 1.0);
        assert_eq!(m.hd95, 4.0);
        assert!(close(m.assd, 480.0 / 296.0, 1e-12));
        assert!(close(m.nsd, 320.0 / 592.0, 1e-12));
    }

    // Spacing (z, y, x) = (2, 1, 0.5) mm: x steps cost 0.5 mm, y steps 1 mm, z steps 2 mm.
    // A -> B: 64 x 2, 28 x 1.5, 28 x 1, 28 x 0.5, 112 x 0, and the inner x = 7 face
    // min(1.5, y-face distance, z-face distance) = 12 x 1, 24 x 1.5. Sum 260 mm:
    // ASSD = 260 / 296; HD95 = 2; NSD(1 mm) = (224 + 56 + 80) / 592.
    #[test]
    fn surface_distances_anisotropic() {
        let (reference, prediction) = shifted_cubes();
        let m = surface_of(&reference, &prediction, [2.0, 1.0, 0.5], 1.0);
        assert_eq!(m.hd95, 2.0);
        assert!(close(m.assd, 260.0 / 296.0, 1e-12));
        assert!(close(m.nsd, 360.0 / 592.0, 1e-12));
    }
}

mod medpy_golden {
    use super::*;

    const SHAPE: (usize, usize, usize) = (24, 28, 32);

    fn ellipsoid(c: [i64; 3], r: [i64; 3]) -> Array3<bool> {
        Array3::from_shape_fn(SHAPE, |(z, y, x)| {
            let d = [z as i64 - c[0], y as i64 - c[1], x as i64 - c[2]];
            let r2 = [r[0] * r[0], r[1] * r[1], r[2] * r[2]];
            d[0] * d[0] * r2[1] * r2[2] + d[1] * d[1] * r2[0] * r2[2] + d[2] * d[2] * r2[0] * r2[1]
                <= r2[0] * r2[1] * r2[2]
        })
    }

    fn without_holes(
        mut mask: Array3<bool>,
        a: usize,
        b: usize,
        c: usize,
        m: usize,
    ) -> Array3<bool> {
        for ((z, y, x), v) in mask.indexed_iter_mut() {
            if (z * a + y * b + x * c).is_multiple_of(m) {
                *v = false;
            }
        }
        mask
    }

    fn labels(mask: &Array3<bool>) -> Array3<u8> {
        mask.mapv(u8::from)
    }

    /// Golden numbers from medpy 0.5.2 (`hd95`, `assd`; NSD from its `__surface_distances`):
    /// ```python
    /// import numpy as np; from medpy.metric import binary
    /// SHAPE = (24, 28, 32); z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    /// def ellipsoid(c, r):
    ///     (cz, cy, cx), (rz, ry, rx) = c, r
    ///     return ((z-cz)**2*ry**2*rx**2 + (y-cy)**2*rz**2*rx**2 + (x-cx)**2*rz**2*ry**2) <= rz**2*ry**2*rx**2
    /// def holes(a, b, c, m): return (z*a + y*b + x*c) % m == 0
    /// ref1 = ellipsoid((12, 14, 15), (7, 9, 10)) & ~holes(7, 13, 3, 11)
    /// pred1 = ellipsoid((11, 15, 17), (6, 10, 9)) & ~holes(5, 3, 11, 13); pred1[2:4, 2:5, 25:29] = True
    /// ref2 = ellipsoid((8, 10, 10), (4, 5, 5)) | ellipsoid((16, 18, 22), (5, 6, 6))
    /// pred2 = ellipsoid((9, 11, 12), (5, 5, 6))
    /// def nsd(a, b, sp, tau):
    ///     d_ab = binary.__surface_distances(a, b, sp); d_ba = binary.__surface_distances(b, a, sp)
    ///     return ((d_ab <= tau).sum() + (d_ba <= tau).sum()) / (len(d_ab) + len(d_ba))
    /// for ref, pred, sp in [(ref1, pred1, (2.5, 0.8, 0.7)), (ref1, pred1, (1, 1, 1)), (ref2, pred2, (1.5, 1.0, 1.2))]:
    ///     print(ref.sum(), pred.sum(), binary.hd95(pred, ref, sp), binary.assd(pred, ref, sp), nsd(pred, ref, sp, 1.5))
    /// ```
    #[test]
    fn hd95_assd_nsd_match_medpy() {
        let ref1 = without_holes(ellipsoid([12, 14, 15], [7, 9, 10]), 7, 13, 3, 11);
        let mut pred1 = without_holes(ellipsoid([11, 15, 17], [6, 10, 9]), 5, 3, 11, 13);
        pred1.slice_mut(s![2..4, 2..5, 25..29]).fill(true);
        let mut ref2 = ellipsoid([8, 10, 10], [4, 5, 5]);
        ref2.zip_mut_with(&ellipsoid([16, 18, 22], [5, 6, 6]), |a, &b| *a |= b);
        let pred2 = ellipsoid([9, 11, 12], [5, 5, 6]);
        let golden = [
            (
                &ref1,
                &pred1,
                [2.5, 0.8, 0.7],
                2379,
                2090,
                2.716615541441225,
                0.765937302090216,
                0.860472751149048,
            ),
            (
                &ref1,
                &pred1,
                [1.0, 1.0, 1.0],
                2379,
                2090,
                2.23606797749979,
                0.7994773735280216,
                0.8880499015101773,
            ),
            (
                &ref2,
                &pred2,
                [1.5, 1.0, 1.2],
                1156,
                613,
                15.943823940023785,
                5.410488526505991,
                0.34,
            ),
        ];
        for (reference, prediction, spacing, n_ref, n_pred, hd95, assd, nsd) in golden {
            let (reference, prediction) = (labels(reference), labels(prediction));
            assert_eq!(reference.iter().filter(|&&v| v == 1).count(), n_ref);
            assert_eq!(prediction.iter().filter(|&&v| v == 1).count(), n_pred);
            let m = surface_of(&reference, &prediction, spacing, 1.5);
            assert!(close(m.hd95, hd95, 1e-9), "HD95 {} vs medpy {hd95}", m.hd95);
            assert!(close(m.assd, assd, 1e-9), "ASSD {} vs medpy {assd}", m.assd);
            assert!(
                close(m.nsd, nsd, 1e-9),
                "NSD {} vs medpy-based {nsd}",
                m.nsd
            );
        }
    }
}

mod conventions {
    use super::*;

    #[test]
    fn empty_masks() {
        let empty = Array3::<u8>::zeros((6, 6, 6));
        let mut one = empty.clone();
        one.slice_mut(s![1..3, 1..3, 1..3]).fill(1);
        let s = settings(vec![LabelValue::Single(1)], Some(1.0));
        let both = evaluate_case(&case("e", &empty, &empty, [1.0; 3]), &s).unwrap();
        let both = both.metrics[0].1;
        assert!(both.get(Metric::Dice).unwrap().is_nan());
        assert!(both.get(Metric::IoU).unwrap().is_nan());
        assert!(both.get(Metric::Hd95).unwrap().is_nan());
        assert!(both.get(Metric::Nsd).unwrap().is_nan());
        let missed = evaluate_case(&case("m", &one, &empty, [1.0; 3]), &s).unwrap();
        let missed = missed.metrics[0].1;
        assert_eq!(missed.get(Metric::Dice), Some(0.0));
        assert_eq!(missed.get(Metric::Hd95), Some(f64::INFINITY));
        assert_eq!(missed.get(Metric::Assd), Some(f64::INFINITY));
        assert_eq!(missed.get(Metric::Nsd), Some(0.0));
        assert_eq!(missed.get(Metric::Sensitivity), Some(0.0));
        assert!(missed.get(Metric::Precision).unwrap().is_nan());
    }

    /// A one-voxel-thick plate in a 3D volume is all surface (its z neighbours are background),
    /// even though the box holding both plates is one slice thick. Plates 4 x 4 at z = 3, the
    /// prediction shifted by 2 along x: per row distances 2, 1, 0, 0 both ways, so pooled
    /// 16 x 0, 8 x 1, 8 x 2: ASSD 0.75, HD95 2, NSD(1 mm) 24 / 32.
    #[test]
    fn thin_plates_are_all_surface() {
        let mut reference = Array3::<u8>::zeros((8, 8, 10));
        reference.slice_mut(s![3..4, 2..6, 2..6]).fill(1);
        let mut prediction = Array3::<u8>::zeros((8, 8, 10));
        prediction.slice_mut(s![3..4, 2..6, 4..8]).fill(1);
        let m = surface_of(&reference, &prediction, [1.0; 3], 1.0);
        assert_eq!((m.hd95, m.assd, m.nsd), (2.0, 0.75, 0.75));
    }

    #[test]
    fn ignore_label_voxels_count_nowhere() {
        // Reference: label 1 in x < 4, ignore label 3 in x >= 8. Prediction: label 1 in x < 12.
        let mut reference = Array3::<u8>::zeros((4, 4, 16));
        reference.slice_mut(s![.., .., ..4]).fill(1);
        reference.slice_mut(s![.., .., 8..]).fill(3);
        let mut prediction = Array3::<u8>::zeros((4, 4, 16));
        prediction.slice_mut(s![.., .., ..12]).fill(1);
        let s = EvaluationSettings {
            ignore_label: Some(3),
            ..settings(vec![LabelValue::Single(1)], None)
        };
        let m = evaluate_case(&case("i", &reference, &prediction, [1.0; 3]), &s).unwrap();
        let c = m.metrics[0].1.counts;
        assert_eq!(
            (
                c.true_positive,
                c.false_positive,
                c.false_negative,
                c.true_negative
            ),
            (64, 64, 0, 0)
        );
        assert!(close(c.dice(), 2.0 * 64.0 / (2.0 * 64.0 + 64.0), 1e-15));
    }

    #[test]
    fn regions_are_unions_of_labels() {
        let reference = Array3::from_shape_vec((1, 1, 6), vec![1u8, 2, 2, 0, 3, 0]).unwrap();
        let prediction = Array3::from_shape_vec((1, 1, 6), vec![2u8, 2, 1, 1, 0, 0]).unwrap();
        let region = LabelValue::Region(vec![1, 2]);
        let s = settings(vec![region.clone(), LabelValue::Single(2)], None);
        let m = evaluate_case(&case("r", &reference, &prediction, [1.0; 3]), &s).unwrap();
        let r = m.get(&region).unwrap().counts;
        assert_eq!(
            (
                r.true_positive,
                r.false_positive,
                r.false_negative,
                r.true_negative
            ),
            (3, 1, 0, 2)
        );
        let l = m.get(&LabelValue::Single(2)).unwrap().counts;
        assert_eq!(
            (l.true_positive, l.false_positive, l.false_negative),
            (1, 1, 1)
        );
    }

    #[test]
    fn faults_name_the_case() {
        let a = Array3::<u8>::zeros((2, 2, 2));
        let b = Array3::<u8>::zeros((2, 2, 3));
        let s = settings(vec![LabelValue::Single(1)], Some(1.0));
        let err = evaluate_case(&case("c7", &a, &b, [1.0; 3]), &s).unwrap_err();
        assert!(matches!(err, EvaluationError::ShapeMismatch { .. }));
        assert!(err.to_string().contains("pred/c7.nii.gz"), "{err}");
        let err = evaluate_case(&case("c8", &a, &a, [1.0, 0.0, 1.0]), &s).unwrap_err();
        assert!(
            err.to_string().contains("c8") && err.to_string().contains("spacing"),
            "{err}"
        );
        let bad = settings(vec![LabelValue::Single(1)], Some(-1.0));
        assert!(matches!(
            evaluate_case(&case("c9", &a, &a, [1.0; 3]), &bad),
            Err(EvaluationError::InvalidTolerance { .. })
        ));
        assert!(matches!(
            evaluate_cases::<u8>(&[], &s),
            Err(EvaluationError::NoCases { .. })
        ));
    }
}

mod summary_file {
    use super::*;

    fn two_case_summary() -> Summary {
        let mut reference = Array3::<u8>::zeros((4, 6, 8));
        reference.slice_mut(s![1..3, 1..5, 1..4]).fill(1);
        let mut prediction = reference.clone();
        prediction.slice_mut(s![1..3, 1..5, 4..6]).fill(1);
        let empty = Array3::<u8>::zeros((4, 6, 8));
        let classes = vec![LabelValue::Single(1), LabelValue::Single(2)];
        let cases = [
            case("a", &reference, &prediction, [1.0; 3]),
            case("b", &reference, &empty, [1.0; 3]),
        ];
        evaluate_cases(&cases, &settings(classes, Some(1.0))).unwrap()
    }

    #[test]
    fn nan_and_infinity_are_written_as_python_does_and_read_back() {
        let summary = two_case_summary();
        // Label 2 is absent everywhere: its Dice is NaN, and so is the foreground mean.
        assert!(summary.foreground_dice().is_nan());
        // Label 1: case a has TP 24, FP 16 (Dice 48 / 64); case b predicts nothing (Dice 0).
        assert_eq!(
            summary.class_dice(&LabelValue::Single(1)),
            (48.0 / 64.0 + 0.0) / 2.0
        );
        let json = summary.to_json();
        assert!(json.contains("\"Dice\": NaN"), "{json}");
        assert!(json.contains("\"HD95\": Infinity"), "{json}");
        assert!(
            json.contains("\"TP\": 24,"),
            "per-case counts are integers: {json}"
        );
        assert!(
            json.starts_with("{\n    \"foreground_mean\": {\n        \"ASSD\":"),
            "{json}"
        );
        let back = Summary::from_json(&json, "summary.json").unwrap();
        assert_eq!(back.to_json(), json);
        for (a, b) in back.metric_per_case.iter().zip(&summary.metric_per_case) {
            assert_eq!(a.prediction_file, b.prediction_file);
            assert_eq!(a.metrics[0].1.counts, b.metrics[0].1.counts);
        }
    }

    #[test]
    fn write_then_read_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        let summary = two_case_summary();
        summary.write(&path).unwrap();
        let back = Summary::read(&path).unwrap();
        assert_eq!(back.to_json(), summary.to_json());
        let missing = Summary::read(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }
}

mod postprocessing {
    use super::*;

    /// Label 1: a 4³ cube; label 2: a 3³ cube far from it (two components in the foreground).
    fn reference() -> Array3<u8> {
        let mut r = Array3::zeros((10, 10, 20));
        r.slice_mut(s![1..5, 1..5, 1..5]).fill(1);
        r.slice_mut(s![5..8, 5..8, 14..17]).fill(2);
        r
    }

    #[test]
    fn per_class_step_removes_a_spurious_blob_when_the_foreground_step_would_hurt() {
        let reference = reference();
        let mut prediction = reference.clone();
        prediction.slice_mut(s![8..10, 0..2, 8..10]).fill(1); // spurious label-1 blob, 8 voxels
        let cases = [
            case("a", &reference, &prediction, [1.0; 3]),
            case("b", &reference, &reference, [1.0; 3]),
        ];
        let classes = vec![LabelValue::Single(1), LabelValue::Single(2)];
        let decision = determine_postprocessing(&cases, &settings(classes, Some(1.0))).unwrap();
        // Keeping the largest foreground component would delete label 2 (Dice 1 -> 0): rejected.
        // Keeping label 1's largest component lifts its Dice in case a from 128/136 to 1.
        let expected = vec![PostprocessingStep {
            keep_largest_component_of: vec![1],
        }];
        assert_eq!(decision.plan.steps, expected);
        assert_eq!(
            decision.before.class_dice(&LabelValue::Single(1)),
            (128.0 / 136.0 + 1.0) / 2.0
        );
        assert_eq!(decision.after.foreground_dice(), 1.0);
        let mut fixed = prediction.clone();
        apply_postprocessing(&decision.plan, fixed.view_mut());
        assert_eq!(fixed, reference);
    }

    #[test]
    fn foreground_step_is_taken_when_it_helps_every_class() {
        let mut reference = Array3::<u8>::zeros((10, 10, 20));
        reference.slice_mut(s![1..5, 1..5, 1..5]).fill(1);
        reference.slice_mut(s![1..5, 1..5, 5..8]).fill(2); // touches label 1: one foreground blob
        let mut prediction = reference.clone();
        prediction.slice_mut(s![8..10, 8..10, 15..17]).fill(2); // spurious label-2 blob
        let cases = [case("a", &reference, &prediction, [1.0; 3])];
        let classes = vec![LabelValue::Single(1), LabelValue::Single(2)];
        let decision = determine_postprocessing(&cases, &settings(classes, None)).unwrap();
        let expected = vec![PostprocessingStep {
            keep_largest_component_of: vec![1, 2],
        }];
        // After (a) nothing is left to remove, so no per-class step strictly improves.
        assert_eq!(decision.plan.steps, expected);
        assert_eq!(decision.after.foreground_dice(), 1.0);
    }

    #[test]
    fn nothing_is_chosen_when_nothing_helps() {
        let reference = reference();
        let cases = [case("a", &reference, &reference, [1.0; 3])];
        let classes = vec![LabelValue::Single(1), LabelValue::Single(2)];
        let decision = determine_postprocessing(&cases, &settings(classes, None)).unwrap();
        assert!(decision.plan.steps.is_empty());
        assert_eq!(decision.after, decision.before);
    }
}
