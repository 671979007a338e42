//! nnU-Net's own `plans.json` (written by nnU-Net 2.8.1 for the fixture model,
//! `scripts/make_nnunet_model_fixture.sh`) read as autoseg plans, and what is refused by name.

use std::path::Path;

use autoseg_planner::{NetworkKind, NormalizationScheme, PlanError, Plans, SplineOrder};

fn fixture_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__nnUNetPlans__3d_fullres/plans.json",
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn a_trained_models_plans_read_with_nnunets_numbers() {
    let plans = Plans::from_nnunet_json(&fixture_text()).unwrap();
    assert_eq!(plans.dataset_name, "Dataset901_Demo3d");
    assert_eq!(plans.transpose_forward, [0, 1, 2]);
    let fg = &plans.foreground_intensity_properties[0];
    assert_eq!((fg.mean, fg.std), (153.72879028320312, 17.27893829345703));
    let full = plans.resolve("3d_fullres").unwrap();
    assert_eq!(full.patch_size, [56, 56, 56]);
    assert_eq!(full.spacing, [1.5, 1.0, 1.0]);
    assert_eq!(full.batch_size, 2);
    assert_eq!(full.median_image_size_in_voxels, [49.0, 50.5, 55.0]);
    assert_eq!(
        full.normalization_schemes,
        [NormalizationScheme::ZScoreNormalization]
    );
    assert_eq!(full.use_mask_for_norm, [true]);
    assert_eq!(full.resampling_data.order, SplineOrder::Cubic);
    assert_eq!(full.resampling_seg.order, SplineOrder::Linear);
    assert_eq!(full.resampling_probabilities.order, SplineOrder::Linear);
    let spec = full.unet_spec();
    assert_eq!(spec.kind, NetworkKind::PlainConvUNet);
    let features: Vec<usize> = spec.stages.iter().map(|s| s.features).collect();
    assert_eq!(features, [2, 4, 8, 16]);
    let two = plans.resolve("2d").unwrap();
    assert_eq!((two.patch_size.clone(), two.batch_size), (vec![56, 56], 22));
    // Written as plans.toml and read back: nothing lost.
    let text = plans.to_toml_string().unwrap();
    assert_eq!(Plans::from_toml_str(&text).unwrap(), plans);
}

#[test]
fn what_autoseg_does_not_build_is_refused_by_name() {
    let text = fixture_text();
    let cases = [
        (
            "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "dynamic_network_architectures.architectures.primus.Primus",
            "Primus",
        ),
        (
            "\"SimpleITKIO\"",
            "\"NibabelIOWithReorient\"",
            "NibabelIOWithReorient",
        ),
        ("InstanceNorm3d", "BatchNorm3d", "InstanceNorm"),
        (
            "\"DefaultPreprocessor\"",
            "\"MyPreprocessor\"",
            "MyPreprocessor",
        ),
        ("\"order\": 3", "\"order\": 2", "spline order"),
    ];
    for (from, to, named) in cases {
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "{from} not in the fixture");
        let err = Plans::from_nnunet_json(&edited).unwrap_err();
        assert!(matches!(err, PlanError::NnUnetPlans { .. }), "{err}");
        assert!(err.to_string().contains(named), "{named}: {err}");
    }
    let err = Plans::from_nnunet_json("{").unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}
