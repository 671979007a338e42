//! nnU-Net 2.8.1's planner outputs on synthetic fingerprints (shared/reference/nnunet.md §12,
//! produced by running the real `ExperimentPlanner` / `nnUNetPlannerResEnc{M,L,XL}` code): every
//! number here is nnU-Net's.

use autoseg_planner::{
    plan_with_report, Configuration, DatasetInfo, Fingerprint, ForegroundIntensityProperties,
    LabelEntry, LabelValue, LowresDecision, NetworkKind, NormalizationScheme, PlanReport,
    PlannerPreset, PlannerSettings, Plans,
};

struct Synthetic {
    spacings: Vec<[f64; 3]>,
    shape: [usize; 3],
    relative_size: f64,
    channels: &'static [&'static str],
    n_foreground_labels: u16,
}

impl Synthetic {
    fn uniform(n_cases: usize, spacing: [f64; 3], shape: [usize; 3]) -> Synthetic {
        Synthetic {
            spacings: vec![spacing; n_cases],
            shape,
            relative_size: 1.0,
            channels: &["MRI"],
            n_foreground_labels: 2,
        }
    }

    fn plan(&self, preset: PlannerPreset) -> (Plans, PlanReport) {
        let stats = ForegroundIntensityProperties {
            mean: 0.0,
            median: 0.0,
            std: 1.0,
            min: -1.0,
            max: 1.0,
            percentile_00_5: -1.0,
            percentile_99_5: 1.0,
        };
        let n_cases = self.spacings.len();
        let fingerprint = Fingerprint::new(
            self.spacings.clone(),
            vec![self.shape; n_cases],
            self.relative_size,
            vec![stats; self.channels.len()],
        )
        .expect("valid synthetic fingerprint");
        let labels = (0..=self.n_foreground_labels)
            .map(|v| LabelEntry {
                name: if v == 0 {
                    "background".into()
                } else {
                    format!("class{v}")
                },
                value: LabelValue::Single(v),
            })
            .collect();
        let channels = self.channels.iter().map(|c| c.to_string()).collect();
        let dataset = DatasetInfo::new("Synthetic", channels, labels, n_cases, ".nii.gz")
            .expect("valid synthetic dataset");
        plan_with_report(&fingerprint, &dataset, &PlannerSettings::for_preset(preset))
            .expect("plannable")
    }
}

fn hippocampus() -> Synthetic {
    Synthetic::uniform(260, [1.0; 3], [36, 50, 35])
}

fn heart() -> Synthetic {
    Synthetic {
        n_foreground_labels: 1,
        ..Synthetic::uniform(20, [1.37, 1.25, 1.25], [115, 320, 232])
    }
}

fn prostate() -> Synthetic {
    let mut spacings = vec![[3.6, 0.625, 0.625]; 24];
    spacings.extend(vec![[3.0, 0.625, 0.625]; 8]);
    Synthetic {
        spacings,
        channels: &["T2", "ADC"],
        ..Synthetic::uniform(0, [1.0; 3], [20, 320, 319])
    }
}

fn liver() -> Synthetic {
    Synthetic {
        channels: &["CT"],
        ..Synthetic::uniform(131, [1.0, 0.767578125, 0.767578125], [432, 512, 512])
    }
}

fn brats() -> Synthetic {
    Synthetic {
        relative_size: 0.6,
        channels: &["FLAIR", "T1w", "T1gd", "T2w"],
        n_foreground_labels: 3,
        ..Synthetic::uniform(484, [1.0; 3], [138, 169, 138])
    }
}

/// nnunet.md §12 does not state the labels of the natural-image vector; background + 1 label
/// reproduces all four batch sizes (with background + 2 labels ResEnc M would give 12, not 13:
/// its estimate 129_703_936 instead of 129_441_792 moves 135e6 / E * 12 below 12.5).
fn natural_2d() -> Synthetic {
    Synthetic {
        channels: &["R", "G", "B"],
        n_foreground_labels: 1,
        ..Synthetic::uniform(100, [999.0, 1.0, 1.0], [1, 512, 512])
    }
}

fn config(plans: &Plans, name: &str) -> Configuration {
    plans.resolve(name).expect("configuration resolves")
}

fn estimate(report: &PlanReport, name: &str) -> u64 {
    let found = report.configurations.iter().find(|c| c.name == name);
    found.expect("configuration in report").estimate
}

fn strides(c: &Configuration) -> Vec<Vec<usize>> {
    c.unet_spec()
        .stages
        .iter()
        .map(|s| s.stride.clone())
        .collect()
}

fn names(plans: &Plans) -> Vec<String> {
    plans.configuration_names()
}

#[test]
fn hippocampus_default() {
    let (plans, report) = hippocampus().plan(PlannerPreset::Default);
    assert_eq!(plans.transpose_forward, [0, 1, 2]);
    assert_eq!(names(&plans), ["2d", "3d_fullres"]);
    let full = config(&plans, "3d_fullres");
    assert_eq!(full.spacing, vec![1.0; 3]);
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![40, 56, 40], 9)
    );
    let mut want = vec![vec![1, 1, 1]];
    want.extend(vec![vec![2, 2, 2]; 3]);
    assert_eq!(strides(&full), want);
    assert!(full
        .unet_spec()
        .stages
        .iter()
        .all(|s| s.kernel == vec![3, 3, 3]));
    assert!(!full.batch_dice);
    let two_d = config(&plans, "2d");
    assert_eq!(two_d.spacing, vec![1.0, 1.0]);
    assert_eq!(
        (two_d.patch_size.clone(), two_d.batch_size),
        (vec![56, 40], 366)
    );
    assert_eq!(two_d.unet_spec().stages.len(), 4);
    assert!(two_d.batch_dice);
    assert_eq!(estimate(&report, "3d_fullres"), 19_174_400);
    assert_eq!(estimate(&report, "2d"), 651_840);
    assert_eq!(
        report.lowres,
        LowresDecision::NotNeeded {
            patch_fraction: 89600.0 / 63000.0
        }
    );
}

#[test]
fn hippocampus_resenc_presets() {
    let (plans, report) = hippocampus().plan(PlannerPreset::ResEncM);
    assert_eq!(estimate(&report, "3d_fullres"), 23_609_600);
    assert_eq!(estimate(&report, "2d"), 1_001_280);
    let full = config(&plans, "3d_fullres");
    assert_eq!(full.unet_spec().kind, NetworkKind::ResidualEncoderUNet);
    let blocks: Vec<usize> = full.unet_spec().stages.iter().map(|s| s.n_convs).collect();
    assert_eq!(blocks, [1, 3, 4, 6]);
    let decoder: Vec<_> = full
        .unet_spec()
        .stages
        .iter()
        .map(|s| s.n_convs_decoder)
        .collect();
    assert_eq!(decoder, [Some(1), Some(1), Some(1), None]);
    for (preset, bs_3d, bs_2d) in [
        (PlannerPreset::ResEncM, 58, 1618),
        (PlannerPreset::ResEncL, 178, 4554),
        (PlannerPreset::ResEncXL, 183, 6711),
    ] {
        let (plans, _) = hippocampus().plan(preset);
        assert_eq!(config(&plans, "3d_fullres").batch_size, bs_3d, "{preset}");
        assert_eq!(config(&plans, "2d").batch_size, bs_2d, "{preset}");
    }
}

#[test]
fn heart_default() {
    let (plans, report) = heart().plan(PlannerPreset::Default);
    assert_eq!(names(&plans), ["2d", "3d_fullres"]);
    let full = config(&plans, "3d_fullres");
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![80, 192, 160], 2)
    );
    assert_eq!(estimate(&report, "3d_fullres"), 528_211_200);
    let fullres_report = &report.configurations[0];
    assert_eq!(fullres_report.initial_patch_size, vec![115.0, 264.0, 232.0]);
    assert_eq!(fullres_report.padded_patch_size, vec![128, 320, 256]);
    assert_eq!(fullres_report.shrink_steps.len(), 10);
    let mut want = vec![vec![1, 1, 1]];
    want.extend(vec![vec![2, 2, 2]; 4]);
    want.push(vec![1, 2, 2]);
    assert_eq!(strides(&full), want);
    let two_d = config(&plans, "2d");
    assert_eq!(two_d.spacing, vec![1.25, 1.25]);
    assert_eq!(
        (two_d.patch_size.clone(), two_d.batch_size),
        (vec![320, 256], 40)
    );
    let features: Vec<usize> = two_d
        .unet_spec()
        .stages
        .iter()
        .map(|s| s.features)
        .collect();
    assert_eq!(features, [32, 64, 128, 256, 512, 512, 512]);
    assert_eq!(estimate(&report, "2d"), 25_784_320);
    assert_eq!(two_d.median_image_size_in_voxels, vec![320.0, 232.0]);
}

#[test]
fn heart_resenc_presets() {
    for (preset, patch_3d, bs_3d, n_stages_3d, bs_2d) in [
        (PlannerPreset::ResEncM, [80, 192, 160], 2, 6, 40),
        (PlannerPreset::ResEncL, [112, 288, 224], 2, 6, 113),
        (PlannerPreset::ResEncXL, [128, 320, 256], 3, 7, 166),
    ] {
        let (plans, _) = heart().plan(preset);
        let full = config(&plans, "3d_fullres");
        assert_eq!(full.patch_size, patch_3d, "{preset}");
        assert_eq!(full.batch_size, bs_3d, "{preset}");
        assert_eq!(full.unet_spec().stages.len(), n_stages_3d, "{preset}");
        let two_d = config(&plans, "2d");
        assert_eq!(
            (two_d.patch_size.clone(), two_d.batch_size),
            (vec![320, 256], bs_2d),
            "{preset}"
        );
    }
}

#[test]
fn prostate_default() {
    let (plans, report) = prostate().plan(PlannerPreset::Default);
    assert_eq!(names(&plans), ["2d", "3d_fullres"]);
    assert!(matches!(report.lowres, LowresDecision::NotNeeded { .. }));
    let full = config(&plans, "3d_fullres");
    assert_eq!(full.spacing, vec![3.0, 0.625, 0.625]);
    assert_eq!(full.median_image_size_in_voxels, vec![24.0, 320.0, 319.0]);
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![24, 256, 256], 2)
    );
    let s = |z, y| vec![z, y, y];
    assert_eq!(
        strides(&full),
        [
            s(1, 1),
            s(1, 2),
            s(1, 2),
            s(2, 2),
            s(2, 2),
            s(1, 2),
            s(1, 2)
        ]
    );
    let kernels: Vec<Vec<usize>> = full
        .unet_spec()
        .stages
        .iter()
        .map(|s| s.kernel.clone())
        .collect();
    let mut want = vec![vec![1, 3, 3]; 2];
    want.extend(vec![vec![3, 3, 3]; 5]);
    assert_eq!(kernels, want);
    assert_eq!(estimate(&report, "3d_fullres"), 463_982_592);
    assert!(full.do_dummy_2d_data_aug());
    let zscore = NormalizationScheme::ZScoreNormalization;
    assert_eq!(full.normalization_schemes, [zscore, zscore]);
    assert_eq!(full.use_mask_for_norm, [false, false]);
    let two_d = config(&plans, "2d");
    assert_eq!(two_d.spacing, vec![0.625, 0.625]);
    assert_eq!(
        (two_d.patch_size.clone(), two_d.batch_size),
        (vec![320, 320], 32)
    );
    assert!(!two_d.do_dummy_2d_data_aug());
}

#[test]
fn prostate_resenc_presets() {
    for (preset, bs_3d, bs_2d) in [
        (PlannerPreset::ResEncL, 4, 90),
        (PlannerPreset::ResEncXL, 7, 133),
    ] {
        let (plans, _) = prostate().plan(preset);
        let full = config(&plans, "3d_fullres");
        assert_eq!(
            (full.patch_size.clone(), full.batch_size),
            (vec![24, 320, 320], bs_3d)
        );
        assert!(full.do_dummy_2d_data_aug());
        assert_eq!(config(&plans, "2d").batch_size, bs_2d, "{preset}");
    }
}

fn assert_close(found: &[f64], want: &[f64]) {
    assert_eq!(found.len(), want.len());
    for (f, w) in found.iter().zip(want) {
        assert!((f - w).abs() < 1e-6, "{found:?} != {want:?}");
    }
}

#[test]
fn liver_default_with_lowres_cascade() {
    let (plans, report) = liver().plan(PlannerPreset::Default);
    assert_eq!(
        names(&plans),
        ["2d", "3d_cascade_fullres", "3d_fullres", "3d_lowres"]
    );
    let full = config(&plans, "3d_fullres");
    assert_eq!(full.spacing, vec![1.0, 0.767578125, 0.767578125]);
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![128, 128, 128], 2)
    );
    let mut want = vec![vec![1, 1, 1]];
    want.extend(vec![vec![2, 2, 2]; 5]);
    assert_eq!(strides(&full), want);
    assert_eq!(estimate(&report, "3d_fullres"), 452_796_416);
    assert!(full.batch_dice);
    assert_eq!(
        full.normalization_schemes,
        [NormalizationScheme::CTNormalization]
    );
    let low = config(&plans, "3d_lowres");
    assert_close(&low.spacing, &[2.427262, 1.863114, 1.863114]);
    assert_eq!(low.median_image_size_in_voxels, vec![178.0, 211.0, 211.0]);
    assert_eq!(
        (low.patch_size.clone(), low.batch_size),
        (vec![128, 128, 128], 2)
    );
    assert!(!low.batch_dice);
    assert_eq!(low.next_stage.as_deref(), Some("3d_cascade_fullres"));
    assert!(matches!(
        report.lowres,
        LowresDecision::Kept { n_steps: 30, .. }
    ));
    let cascade = config(&plans, "3d_cascade_fullres");
    assert_eq!(cascade.previous_stage.as_deref(), Some("3d_lowres"));
    assert_eq!(cascade.patch_size, full.patch_size);
    let two_d = config(&plans, "2d");
    assert_eq!(
        (two_d.patch_size.clone(), two_d.batch_size),
        (vec![512, 512], 12)
    );
    assert_eq!(two_d.unet_spec().stages.len(), 8);
    assert_eq!(estimate(&report, "2d"), 82_886_656);
}

#[test]
fn liver_resenc_presets() {
    let (plans, _) = liver().plan(PlannerPreset::ResEncL);
    let full = config(&plans, "3d_fullres");
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![160, 224, 192], 2)
    );
    let low = config(&plans, "3d_lowres");
    assert_close(&low.spacing, &[1.604706, 1.231738, 1.231738]);
    assert_eq!(low.median_image_size_in_voxels, vec![269.0, 319.0, 319.0]);
    assert_eq!(low.patch_size, vec![160, 224, 192]);
    assert_eq!(config(&plans, "2d").batch_size, 35);

    let (plans, _) = liver().plan(PlannerPreset::ResEncXL);
    let full = config(&plans, "3d_fullres");
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![192, 256, 256], 2)
    );
    assert_eq!(full.unet_spec().stages.len(), 7);
    let low = config(&plans, "3d_lowres");
    assert_close(&low.spacing, &[1.343916, 1.031561, 1.031561]);
    assert_eq!(low.median_image_size_in_voxels, vec![321.0, 381.0, 381.0]);
    assert_eq!(config(&plans, "2d").batch_size, 52);
}

#[test]
fn brats_default_uses_mask_for_norm() {
    let (plans, report) = brats().plan(PlannerPreset::Default);
    let full = config(&plans, "3d_fullres");
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![128, 128, 128], 2)
    );
    assert_eq!(full.use_mask_for_norm, [true; 4]);
    assert_eq!(estimate(&report, "3d_fullres"), 454_893_568);
    let two_d = config(&plans, "2d");
    assert_eq!(
        (two_d.patch_size.clone(), two_d.batch_size),
        (vec![192, 160], 105)
    );
    assert_eq!(two_d.use_mask_for_norm, [true; 4]);
}

#[test]
fn brats_resenc_presets() {
    let (plans, _) = brats().plan(PlannerPreset::ResEncL);
    let full = config(&plans, "3d_fullres");
    assert_eq!(
        (full.patch_size.clone(), full.batch_size),
        (vec![160, 192, 160], 3)
    );
    let (plans, _) = brats().plan(PlannerPreset::ResEncXL);
    assert_eq!(config(&plans, "3d_fullres").batch_size, 5);
}

#[test]
fn natural_2d_plans_only_2d_with_the_5_percent_cap() {
    let (plans, report) = natural_2d().plan(PlannerPreset::Default);
    assert_eq!(names(&plans), ["2d"]);
    assert_eq!(report.lowres, LowresDecision::No3d);
    let two_d = config(&plans, "2d");
    assert_eq!(two_d.spacing, vec![1.0, 1.0]);
    assert_eq!(
        (two_d.patch_size.clone(), two_d.batch_size),
        (vec![512, 512], 5)
    );
    assert_eq!(two_d.unet_spec().stages.len(), 8);
    assert_eq!(report.configurations[0].batch_size_cap, 5);
    for (preset, bs) in [
        (PlannerPreset::ResEncM, 13),
        (PlannerPreset::ResEncL, 35),
        (PlannerPreset::ResEncXL, 52),
    ] {
        let (plans, _) = natural_2d().plan(preset);
        assert_eq!(config(&plans, "2d").batch_size, bs, "{preset}");
    }
}

#[test]
fn report_explains_anisotropy_shrinking_and_lowres() {
    let (_, report) = prostate().plan(PlannerPreset::Default);
    let lines = report.lines();
    assert!(
        lines[0].contains("anisotropic: axis 0 spacing 3.6 > 3 x 0.625"),
        "{lines:?}"
    );
    assert!(lines[0].contains("10th percentile 3"), "{lines:?}");
    let (_, report) = heart().plan(PlannerPreset::Default);
    let text = report.lines().join("\n");
    assert!(text.contains("shrunk 10 times to [80, 192, 160]"), "{text}");
    let (_, report) = liver().plan(PlannerPreset::Default);
    let text = report.lines().join("\n");
    assert!(
        text.contains("3d_lowres kept after 30 spacing steps"),
        "{text}"
    );
}
