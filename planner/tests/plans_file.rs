//! `plans.toml`: round trip, hand edits, `inherits_from` (shallow merge, cycles) and the errors
//! a user sees for a broken file.

use autoseg_planner::{
    plan, ConfigurationEntry, DatasetInfo, Fingerprint, ForceSeparateZ,
    ForegroundIntensityProperties, LabelEntry, LabelValue, OptimizerKind, PlanError,
    PlannerSettings, Plans, Training, TrainingEntry,
};

fn liver_plans() -> Plans {
    let stats = ForegroundIntensityProperties {
        mean: 99.4,
        median: 101.0,
        std: 39.4,
        min: -1024.0,
        max: 3071.0,
        percentile_00_5: -17.0,
        percentile_99_5: 201.0,
    };
    let spacing = [1.0, 0.767578125, 0.767578125];
    let fingerprint = Fingerprint::new(
        vec![spacing; 131],
        vec![[432, 512, 512]; 131],
        0.9,
        vec![stats],
    )
    .expect("valid fingerprint");
    let label = |name: &str, v| LabelEntry {
        name: name.into(),
        value: LabelValue::Single(v),
    };
    let labels = vec![
        label("background", 0),
        label("liver", 1),
        label("tumour", 2),
    ];
    let dataset = DatasetInfo::new(
        "Dataset003_Liver",
        vec!["CT".into()],
        labels,
        131,
        ".nii.gz",
    )
    .expect("valid dataset");
    plan(&fingerprint, &dataset, &PlannerSettings::nnunet_default()).expect("plannable")
}

#[test]
fn toml_round_trip_is_lossless_and_uses_nnunet_spellings() {
    let plans = liver_plans();
    let text = plans.to_toml_string().expect("serialisable");
    for needle in [
        "schema_version = 1",
        "planner = \"default\"",
        "[foreground_intensity_properties.0]",
        "[configurations.3d_fullres.architecture]",
        "network = \"PlainConvUNet\"",
        "normalization_schemes = [\"CTNormalization\"]",
        "force_separate_z = \"auto\"",
        "inherits_from = \"3d_fullres\"",
        "next_stage = \"3d_cascade_fullres\"",
        "n_conv_per_stage_decoder = [",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert_eq!(Plans::from_toml_str(&text).expect("parses"), plans);
}

#[test]
fn hand_edited_batch_size_comes_back_through_resolve() {
    let text = liver_plans().to_toml_string().expect("serialisable");
    let section = text.find("[configurations.3d_fullres]").expect("section");
    let rel = text[section..]
        .find("batch_size = 2")
        .expect("batch size line");
    let mut edited = text.clone();
    edited.replace_range(section + rel..section + rel + 14, "batch_size = 5");
    let plans = Plans::from_toml_str(&edited).expect("parses");
    assert_eq!(plans.resolve("3d_fullres").expect("resolves").batch_size, 5);
    // The cascade inherits the edited value.
    assert_eq!(
        plans
            .resolve("3d_cascade_fullres")
            .expect("resolves")
            .batch_size,
        5
    );
    assert_eq!(plans.resolve("3d_lowres").expect("resolves").batch_size, 2);
}

#[test]
fn a_spline_order_the_resampler_lacks_is_refused_when_plans_toml_is_read() {
    let text = liver_plans().to_toml_string().expect("serialisable");
    assert!(text.contains("order = 3\norder_z = 0\n"), "{text}");
    let edited = text.replacen("order = 3\n", "order = 7\n", 1);
    let err = Plans::from_toml_str(&edited).expect_err("order 7 does not exist");
    assert!(matches!(err, PlanError::ParsePlans(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(
            "invalid value: integer `7`, expected a spline order: 0 (nearest), 1 (linear) or 3 (cubic)"
        ),
        "{message}"
    );
    assert!(
        message.contains("order = 7"),
        "the message shows the line: {message}"
    );
}

#[test]
fn inherits_from_is_a_shallow_merge() {
    let mut plans = liver_plans();
    let mut arch = plans.configurations["3d_lowres"]
        .architecture
        .clone()
        .expect("arch");
    arch.features_per_stage[0] = 16;
    let child = ConfigurationEntry {
        inherits_from: Some("3d_fullres".into()),
        batch_size: Some(7),
        architecture: Some(arch.clone()),
        ..ConfigurationEntry::default()
    };
    plans.configurations.insert("mine".into(), child);
    let mine = plans.resolve("mine").expect("resolves");
    let full = plans.resolve("3d_fullres").expect("resolves");
    assert_eq!(mine.batch_size, 7);
    assert_eq!(mine.spacing, full.spacing);
    // The child's architecture table replaces the parent's whole (no field-level merge).
    assert_eq!(mine.unet_spec().stages[0].features, 16);
    assert_eq!(
        mine.unet_spec().stages[1].features,
        arch.features_per_stage[1]
    );
}

#[test]
fn the_cascade_stage_shares_the_data_it_inherits_and_others_have_their_own() {
    let mut plans = liver_plans();
    assert_eq!(plans.data_configuration("3d_cascade_fullres"), "3d_fullres");
    assert_eq!(plans.data_configuration("3d_lowres"), "3d_lowres");
    assert_eq!(plans.data_configuration("2d"), "2d");
    let child = ConfigurationEntry {
        inherits_from: Some("3d_fullres".into()),
        batch_size: Some(7),
        ..ConfigurationEntry::default()
    };
    plans.configurations.insert("mine".into(), child);
    assert_eq!(plans.data_configuration("mine"), "mine");
}

#[test]
fn inheritance_cycles_and_unknown_parents_are_errors() {
    let mut plans = liver_plans();
    let link = |parent: &str| ConfigurationEntry {
        inherits_from: Some(parent.into()),
        ..ConfigurationEntry::default()
    };
    plans.configurations.insert("a".into(), link("b"));
    plans.configurations.insert("b".into(), link("a"));
    plans.configurations.insert("self".into(), link("self"));
    plans
        .configurations
        .insert("orphan".into(), link("nowhere"));
    let err = plans.resolve("a").expect_err("cycle");
    assert!(matches!(&err, PlanError::InheritanceCycle { chain, .. } if chain == &["a", "b", "a"]));
    assert_eq!(
        err.to_string(),
        "configuration a: inherits_from forms a cycle: a -> b -> a"
    );
    assert!(matches!(
        plans.resolve("self"),
        Err(PlanError::InheritanceCycle { .. })
    ));
    let err = plans.resolve("orphan").expect_err("unknown parent");
    assert!(
        err.to_string()
            .contains("configuration nowhere is not in the plans"),
        "{err}"
    );
    assert!(matches!(
        plans.resolve("4d"),
        Err(PlanError::UnknownConfiguration { .. })
    ));
}

#[test]
fn broken_files_name_the_key_at_fault() {
    let text = liver_plans().to_toml_string().expect("serialisable");
    let typo = text.replacen("CTNormalization", "CtNormalisation", 1);
    let err = Plans::from_toml_str(&typo).expect_err("misspelt scheme");
    assert!(err.to_string().contains("ZScoreNormalization"), "{err}");
    let unknown = text.replacen("batch_dice", "batch_dize", 1);
    assert!(Plans::from_toml_str(&unknown)
        .expect_err("unknown key")
        .to_string()
        .contains("batch_dize"));
    let version = text.replacen("schema_version = 1", "schema_version = 9", 1);
    assert!(matches!(
        Plans::from_toml_str(&version),
        Err(PlanError::UnsupportedSchemaVersion { found: 9, .. })
    ));

    let mut plans = liver_plans();
    let full = plans.configurations.get_mut("3d_fullres").expect("fullres");
    full.batch_size = None;
    let err = plans.resolve("3d_fullres").expect_err("missing key");
    assert_eq!(
        err.to_string(),
        "configuration 3d_fullres: missing key batch_size (also after inherits_from)"
    );

    let mut plans = liver_plans();
    let arch = plans
        .configurations
        .get_mut("2d")
        .and_then(|c| c.architecture.as_mut())
        .expect("arch");
    arch.strides.pop();
    let err = plans.resolve("2d").expect_err("short strides");
    assert!(
        err.to_string()
            .contains("architecture.strides has 7 entries; n_stages = 8 needs 8"),
        "{err}"
    );

    let mut plans = liver_plans();
    plans
        .configurations
        .get_mut("3d_fullres")
        .expect("fullres")
        .patch_size = Some(vec![128, 128, 100]);
    let err = plans.resolve("3d_fullres").expect_err("indivisible");
    assert!(
        err.to_string()
            .contains("axis 2 edge 100 is not divisible by 32"),
        "{err}"
    );
}

#[test]
fn force_separate_z_reads_auto_true_and_false() {
    let text = liver_plans().to_toml_string().expect("serialisable");
    let forced = text.replacen("force_separate_z = \"auto\"", "force_separate_z = true", 1);
    let plans = Plans::from_toml_str(&forced).expect("parses");
    let seps: Vec<ForceSeparateZ> = plans
        .configurations
        .values()
        .filter_map(|c| c.resampling_data.map(|r| r.force_separate_z))
        .collect();
    assert!(seps.contains(&ForceSeparateZ::Always));
    let never = text.replacen("force_separate_z = \"auto\"", "force_separate_z = false", 1);
    assert!(Plans::from_toml_str(&never).is_ok());
    let bad = text.replacen(
        "force_separate_z = \"auto\"",
        "force_separate_z = \"sometimes\"",
        1,
    );
    let err = Plans::from_toml_str(&bad).expect_err("bad value");
    assert!(err.to_string().contains("\"auto\", true or false"), "{err}");
}

#[test]
fn a_training_table_is_read_merged_through_inherits_from_and_overridden() {
    let mut text = liver_plans().to_toml_string().expect("serialises");
    text.push_str(
        "\n[configurations.3d_fullres.training]\nepochs = 300\noptimizer = \"adam\"\n\
         \n[configurations.long]\ninherits_from = \"3d_fullres\"\n\
         \n[configurations.long.training]\nepochs = 2000\n",
    );
    let plans = Plans::from_toml_str(&text).expect("a training table parses");
    let none = TrainingEntry::default();
    assert_eq!(
        plans.training("2d", &none).expect("2d"),
        Training::nnunet_default(),
        "no table: nnU-Net's trainer"
    );
    let full = plans.training("3d_fullres", &none).expect("3d_fullres");
    assert_eq!((full.epochs, full.optimizer), (300, OptimizerKind::Adam));
    // The child changes one key and keeps the parent's others.
    let long = plans.training("long", &none).expect("long");
    assert_eq!((long.epochs, long.optimizer), (2000, OptimizerKind::Adam));
    // Command-line flags win over the plan.
    let flags = TrainingEntry {
        epochs: Some(5),
        ..TrainingEntry::default()
    };
    assert_eq!(plans.training("long", &flags).expect("long").epochs, 5);
    // The table round-trips.
    assert_eq!(
        Plans::from_toml_str(&plans.to_toml_string().expect("serialises")).expect("parses"),
        plans
    );
}

#[test]
fn a_bad_training_table_names_the_key_and_the_valid_values() {
    let mut text = liver_plans().to_toml_string().expect("serialises");
    text.push_str("\n[configurations.3d_fullres.training]\noptimiser = \"sgd\"\n");
    let err = Plans::from_toml_str(&text)
        .expect_err("misspelt key")
        .to_string();
    assert!(
        err.contains("optimiser") && err.contains("optimizer"),
        "{err}"
    );
    let mut text = liver_plans().to_toml_string().expect("serialises");
    text.push_str("\n[configurations.3d_fullres.training]\nwarmup_epochs = 5000\n");
    let plans = Plans::from_toml_str(&text).expect("parses");
    let err = plans
        .training("3d_fullres", &TrainingEntry::default())
        .expect_err("warm-up longer than the run")
        .to_string();
    assert!(
        err.contains("3d_fullres") && err.contains("warmup_epochs"),
        "{err}"
    );
}
