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

fn fixture_of(plans: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__{plans}__3d_fullres/plans.json"
    ));
    std::fs::read_to_string(path).unwrap()
}

/// nnU-Net's plans read and written again equal nnU-Net's file, key for key.
#[test]
fn nnunets_plans_written_back_equal_nnunets_file() {
    for name in ["nnUNetPlans", "nnUNetResEncUNetMPlans"] {
        let text = fixture_of(name);
        let written = Plans::from_nnunet_json(&text)
            .unwrap()
            .to_nnunet_json(".nii.gz")
            .unwrap();
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        let written_json: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(written_json, original, "{name}");
        // nnU-Net's key order and indentation.
        assert!(
            written
                .starts_with("{\n    \"dataset_name\": \"Dataset901_Demo3d\",\n    \"plans_name\""),
            "{written}"
        );
    }
}

/// A cascade (a `3d_lowres` with its `next_stage`, a `3d_cascade_fullres` that inherits from
/// `3d_fullres`) survives the way out and back.
#[test]
fn a_cascade_round_trips_through_nnunets_format() {
    let mut plans = Plans::from_nnunet_json(&fixture_of("nnUNetPlans")).unwrap();
    let mut lowres = plans.configurations["3d_fullres"].clone();
    lowres.spacing = Some(vec![3.0, 2.0, 2.0]);
    lowres.next_stage = Some("3d_cascade_fullres".into());
    plans.configurations.insert("3d_lowres".into(), lowres);
    plans.configurations.insert(
        "3d_cascade_fullres".into(),
        autoseg_planner::ConfigurationEntry {
            inherits_from: Some("3d_fullres".into()),
            previous_stage: Some("3d_lowres".into()),
            ..Default::default()
        },
    );
    let json = plans.to_nnunet_json(".nii.gz").unwrap();
    assert_eq!(Plans::from_nnunet_json(&json).unwrap(), plans);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["configurations"]["3d_cascade_fullres"],
        serde_json::json!({"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"})
    );
    assert_eq!(
        value["configurations"]["3d_lowres"]["data_identifier"],
        "nnUNetPlans_3d_lowres"
    );
}

/// Plans of a PNG dataset as nnU-Net 2.8.1 wrote them (`NaturalImage2DIO`,
/// `scripts/make_nnunet_png_plans.sh`) are read, and written back for `.png` name that reader
/// again; every reader nnU-Net's registry picks is the one named for its ending.
#[test]
fn plans_of_readers_with_autosegs_axes_are_read_and_written_with_their_reader() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data/nnunet/png_plans/nnUNetPlans.json"),
    )
    .unwrap();
    let plans = Plans::from_nnunet_json(&text).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&plans.to_nnunet_json(".png").unwrap()).unwrap();
    let original: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(written, original);
    for (ending, two_d, reader) in [
        (".png", true, "NaturalImage2DIO"),
        (".bmp", true, "NaturalImage2DIO"),
        (".tif", true, "NaturalImage2DIO"),
        (".tif", false, "Tiff3DIO"),
        (".tiff", false, "Tiff3DIO"),
        (".nii", false, "NibabelIO"),
        (".nii.gz", false, "SimpleITKIO"),
        (".nrrd", false, "SimpleITKIO"),
        (".mha", false, "SimpleITKIO"),
        (".gipl", false, "SimpleITKIO"),
    ] {
        assert_eq!(
            autoseg_planner::nnunet_reader_for(ending, two_d),
            reader,
            "{ending}"
        );
        let edited = text.replacen("NaturalImage2DIO", reader, 1);
        assert!(Plans::from_nnunet_json(&edited).is_ok(), "{reader}");
    }
}
