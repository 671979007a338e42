//! `autoseg predict -m <nnU-Net model folder or export zip>` on models nnU-Net 2.8.1 trained
//! (`scripts/make_nnunet_model_fixture.sh`): the masks equal nnU-Net's own predictions of the
//! same inputs voxel for voxel, with and without mirroring, in 2d and 3d_fullres, PlainConvUNet
//! and ResidualEncoderUNet; and a folder whose checkpoint would run a shell command is refused
//! with nothing run.

use std::path::{Path, PathBuf};
use std::process::Command;

use autoseg_evaluation::read_probabilities;
use autoseg_preprocessing::read_label_map;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/data/nnunet/model")
}

fn predict(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    predict_with(model, out, &[&["--folds", "0"], extra].concat())
}

/// `autoseg predict -i imagesTs -o out -m model --device cpu <args>`.
fn predict_with(model: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(["predict", "-i"])
        .arg(fixture().join("imagesTs"))
        .arg("-o")
        .arg(out)
        .arg("-m")
        .arg(model)
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .expect("the autoseg binary runs")
}

/// Asserts that an autoseg run succeeded, showing its stderr when it did not.
fn ok(run: std::process::Output) {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Every case of `out` equals nnU-Net's prediction in `predictions/<golden>`.
fn assert_same_masks(out: &Path, golden: &str) {
    assert_same_masks_as(out, &fixture().join("predictions").join(golden));
}

/// Every case of `out` equals nnU-Net's prediction in `golden`.
fn assert_same_masks_as(out: &Path, golden: &Path) {
    for case in ["demo_010", "demo_011", "demo_012"] {
        let file = format!("{case}.nii.gz");
        let ours = read_label_map(&out.join(&file)).unwrap();
        let theirs = read_label_map(&golden.join(&file)).unwrap();
        assert_eq!(ours.geometry.shape(), theirs.geometry.shape());
        let differ = ours
            .data
            .iter()
            .zip(theirs.data.iter())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differ,
            0,
            "{} {case}: {differ} voxels differ",
            golden.display()
        );
    }
}

fn assert_same_probabilities(out: &Path, golden: &str) {
    let ours = read_probabilities(&out.join("demo_010.npz")).unwrap();
    let theirs =
        read_probabilities(&fixture().join(format!("predictions/{golden}/demo_010.npz"))).unwrap();
    assert_eq!(ours.dim(), theirs.dim());
    let worst = ours
        .iter()
        .zip(theirs.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 2e-3,
        "{golden}: probabilities differ by up to {worst}"
    );
    let foreground = theirs
        .outer_iter()
        .skip(1)
        .any(|c| c.iter().any(|&p| p > 0.1));
    assert!(
        foreground,
        "{golden}: nnU-Net's probabilities are flat background"
    );
}

#[test]
fn an_nnunet_model_folder_predicts_nnunets_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let models = [
        ("nnUNetPlans", "3d_fullres", "3d_fullres"),
        ("nnUNetPlans", "2d", "2d"),
        ("nnUNetResEncUNetMPlans", "3d_fullres", "resenc_3d_fullres"),
    ];
    for (plans, config, golden) in models {
        let model = fixture().join(format!("nnUNetTrainer_autosegFixture__{plans}__{config}"));
        let modes = [
            ("", &["--save-probabilities"][..]),
            ("_no_tta", &["--no-tta"][..]),
        ];
        for (suffix, extra) in modes {
            let out = tmp.path().join(format!("{golden}{suffix}"));
            let run = predict(&model, &out, extra);
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            assert_same_masks(&out, &format!("{golden}{suffix}"));
            if suffix.is_empty() {
                assert_same_probabilities(&out, golden);
            }
        }
    }
}

#[test]
fn an_nnunet_export_zip_predicts_the_configuration_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = fixture().join("Dataset901_Demo3d_nnunet_export.zip");
    let out = tmp.path().join("zip");
    let run = predict(&zip, &out, &["-c", "3d_fullres"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_masks(&out, "3d_fullres");
    // Two configurations inside and none chosen: the error lists them.
    let run = predict(&zip, &tmp.path().join("none"), &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2d, 3d_fullres") && stderr.contains("-c"),
        "{stderr}"
    );
    // A checkpoint the folder lacks is named.
    let folder = fixture().join("nnUNetTrainer_autosegFixture__nnUNetPlans__2d");
    let run = predict(&folder, &tmp.path().join("best"), &["--checkpoint", "best"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("fold_0/checkpoint_best.pth"), "{stderr}");
}

#[test]
fn a_checkpoint_that_would_run_a_shell_command_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture().join("nnUNetTrainer_autosegFixture__nnUNetPlans__3d_fullres");
    let model = tmp.path().join("model");
    std::fs::create_dir_all(model.join("fold_0")).unwrap();
    for file in ["plans.json", "dataset.json"] {
        std::fs::copy(source.join(file), model.join(file)).unwrap();
    }
    let evil = fixture().join("../malicious_shell.pth");
    std::fs::copy(evil, model.join("fold_0/checkpoint_final.pth")).unwrap();
    let marker = Path::new("/tmp/autoseg-pickle-was-run");
    let _ = std::fs::remove_file(marker);
    let run = predict(&model, &tmp.path().join("out"), &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("posix.system") && stderr.contains("checkpoint_final.pth"),
        "{stderr}"
    );
    assert!(!marker.exists());
}

fn import(source: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .arg("import-nnunet")
        .arg(source)
        .arg("-o")
        .arg(out)
        .output()
        .expect("the autoseg binary runs")
}

#[test]
fn an_imported_model_predicts_what_its_source_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    for (plans, golden) in [
        ("nnUNetPlans", "3d_fullres"),
        ("nnUNetResEncUNetMPlans", "resenc_3d_fullres"),
    ] {
        let source = fixture().join(format!("nnUNetTrainer_autosegFixture__{plans}__3d_fullres"));
        let model = tmp.path().join(format!("imported_{golden}"));
        let run = import(&source, &model);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(model.join("plans.toml").is_file() && model.join("results/best.toml").is_file());
        // best.toml names the one configuration: no -c needed.
        let out = tmp.path().join(format!("pred_{golden}"));
        let run = predict(&model, &out, &[]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_same_masks(&out, golden);
        // A second import into the same folder is refused.
        let again = import(&source, &model);
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a model"));
    }
    // A model whose trainer allowed no mirroring (nnUNetTrainerNoMirroring: the checkpoint's
    // inference_allowed_mirroring_axes is None, imported as an empty list) predicts without
    // mirroring even when mirroring is on.
    let model = tmp.path().join("imported_3d_fullres");
    let meta = model.join("results/3d_fullres/fold_0/checkpoint_final.toml");
    let text = std::fs::read_to_string(&meta).unwrap();
    assert!(text.contains("mirror_axes = [0, 1, 2]"), "{text}");
    std::fs::write(
        &meta,
        text.replace("mirror_axes = [0, 1, 2]", "mirror_axes = []"),
    )
    .unwrap();
    let out = tmp.path().join("pred_no_mirroring");
    let run = predict(&model, &out, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_masks(&out, "3d_fullres_no_tta");

    // A zip with two configurations imports both; -c picks one.
    let model = tmp.path().join("imported_zip");
    let run = import(
        &fixture().join("Dataset901_Demo3d_nnunet_export.zip"),
        &model,
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = tmp.path().join("pred_zip_2d");
    let run = predict(&model, &out, &["-c", "2d", "--no-tta"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_masks(&out, "2d_no_tta");
}

#[test]
fn an_exported_model_zip_predicts_like_its_folder_and_refuses_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture().join("nnUNetTrainer_autosegFixture__nnUNetPlans__3d_fullres");
    let model = tmp.path().join("model");
    assert!(import(&source, &model).status.success());
    let zip = tmp.path().join("model.zip");
    let run = Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .arg("export")
        .arg(&model)
        .arg("-o")
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = tmp.path().join("pred");
    let run = predict(&zip, &out, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_masks(&out, "3d_fullres");
    // One flipped byte in the stored weights: the checkpoint's digest refuses it.
    let mut bytes = std::fs::read(&zip).unwrap();
    let marker = b"checkpoint_final.safetensors";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    // Past the local header's name, inside the stored tensor data.
    let target = at + marker.len() + 2000;
    bytes[target] ^= 0x40;
    let damaged = tmp.path().join("damaged.zip");
    std::fs::write(&damaged, bytes).unwrap();
    let run = predict(&damaged, &tmp.path().join("pred_damaged"), &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not match its metadata")
            || stderr.contains("checksum")
            || stderr.contains("CRC"),
        "{stderr}"
    );
}

fn export(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .arg("export")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .expect("the autoseg binary runs")
}

/// The `network_weights` of a `.pth`: name → (storage key, tensor).
fn state_dict(path: &Path) -> Vec<(String, String, Vec<f32>)> {
    use autoseg_network::torch_file::TorchArchive;
    use autoseg_planner::pickle::{Policy, Value};
    let mut archive = TorchArchive::open(path, &Policy::default()).unwrap();
    let Some(Value::Dict(weights)) = archive.object().get("network_weights").cloned() else {
        panic!("{}: no network_weights", path.display())
    };
    weights
        .iter()
        .map(|(name, value)| {
            let (Value::Str(name), Value::Tensor(t)) = (name, value) else {
                panic!("not a named tensor")
            };
            let tensor = archive.tensor(t).unwrap().flatten(0, -1);
            (
                name.clone(),
                t.storage.key.clone(),
                Vec::<f32>::try_from(&tensor).unwrap(),
            )
        })
        .collect()
}

/// nnU-Net → import-nnunet → export --format nnunet gives back nnU-Net's own model: the same
/// state dict (every alias, each sharing its parameter's storage), the same plans, and the
/// masks nnU-Net predicted with the source. (`nnUNetv2_predict_from_modelfolder` on these
/// exported folders gives the same masks too: `scripts/check_nnunet_export.sh`.)
#[test]
fn an_export_for_nnunet_is_nnunets_model_again() {
    let tmp = tempfile::tempdir().unwrap();
    for (plans, golden) in [
        ("nnUNetPlans", "3d_fullres"),
        ("nnUNetResEncUNetMPlans", "resenc_3d_fullres"),
    ] {
        let source = fixture().join(format!("nnUNetTrainer_autosegFixture__{plans}__3d_fullres"));
        let model = tmp.path().join(format!("model_{golden}"));
        assert!(import(&source, &model).status.success());
        let results = tmp.path().join(format!("results_{golden}"));
        let run = export(&model, &results, &["--format", "nnunet"]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let folder = results.join(format!(
            "Dataset901_Demo3d/nnUNetTrainer__{plans}__3d_fullres"
        ));

        let theirs = state_dict(&source.join("fold_0/checkpoint_final.pth"));
        let ours = state_dict(&folder.join("fold_0/checkpoint_final.pth"));
        assert_eq!(ours.len(), theirs.len());
        let mut keys = std::collections::HashMap::new();
        for (name, key, values) in &ours {
            let (_, their_key, their_values) = theirs
                .iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("{name} is not in nnU-Net's state dict"));
            assert_eq!(values, their_values, "{name}");
            // Aliases share a storage exactly where nnU-Net's do.
            let pair = keys.entry(their_key.clone()).or_insert_with(|| key.clone());
            assert_eq!(pair, key, "{name}");
        }

        let json = |path: PathBuf| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        assert_eq!(
            json(folder.join("plans.json")),
            json(source.join("plans.json"))
        );
        assert_eq!(
            json(folder.join("dataset.json")),
            json(source.join("dataset.json"))
        );

        let out = tmp.path().join(format!("pred_{golden}"));
        let run = predict(&folder, &out, &["--no-tta"]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_same_masks(&out, &format!("{golden}_no_tta"));
    }
    // The zip nnUNetv2_export_model_to_zip would write, run by predict -m as nnU-Net's zips are.
    let zip = tmp.path().join("export.zip");
    let run = export(
        &tmp.path().join("model_3d_fullres"),
        &zip,
        &["--format", "nnunet"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = tmp.path().join("pred_zip");
    let run = predict(&zip, &out, &["-c", "3d_fullres", "--no-tta"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_masks(&out, "3d_fullres_no_tta");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// nnU-Net's `postprocessing.pkl` in a model folder (`crossval_results_folds_0/`, where
/// `nnUNetv2_find_best_configuration` leaves it) is applied by `predict -m`: the masks equal
/// `nnUNetv2_apply_postprocessing` of nnU-Net's predictions
/// (`scripts/make_nnunet_postprocessing_fixtures.py`); import carries it into best.toml and
/// `export --format nnunet` writes it back; a file naming another function is refused by name.
#[test]
fn nnunets_postprocessing_is_applied_carried_and_written_back() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp
        .path()
        .join("nnUNetTrainer_autosegFixture__nnUNetResEncUNetMPlans__3d_fullres");
    copy_dir(
        &fixture().join("nnUNetTrainer_autosegFixture__nnUNetResEncUNetMPlans__3d_fullres"),
        &folder,
    );
    let pkl = folder.join("crossval_results_folds_0/postprocessing.pkl");
    std::fs::create_dir_all(pkl.parent().unwrap()).unwrap();
    std::fs::copy(fixture().join("../postprocessing_labels.pkl"), &pkl).unwrap();
    let out = tmp.path().join("pred_pp");
    ok(predict(&folder, &out, &["--no-tta"]));
    assert_same_masks(&out, "resenc_3d_fullres_no_tta_pp");
    let out = tmp.path().join("pred_no_pp");
    ok(predict(&folder, &out, &["--no-tta", "--no-postprocessing"]));
    assert_same_masks(&out, "resenc_3d_fullres_no_tta");

    let model = tmp.path().join("imported");
    ok(import(&folder, &model));
    let best = std::fs::read_to_string(model.join("results/best.toml")).unwrap();
    assert!(
        best.contains("keep_largest_component_of = [1, 2]"),
        "{best}"
    );
    let out = tmp.path().join("pred_imported");
    ok(predict(&model, &out, &["--no-tta"]));
    assert_same_masks(&out, "resenc_3d_fullres_no_tta_pp");

    let results = tmp.path().join("results");
    ok(export(&model, &results, &["--format", "nnunet"]));
    let exported =
        results.join("Dataset901_Demo3d/nnUNetTrainer__nnUNetResEncUNetMPlans__3d_fullres");
    assert!(exported
        .join("crossval_results_folds_0/postprocessing.pkl")
        .is_file());
    let out = tmp.path().join("pred_exported");
    ok(predict(&exported, &out, &["--no-tta"]));
    assert_same_masks(&out, "resenc_3d_fullres_no_tta_pp");

    std::fs::copy(fixture().join("../postprocessing_foreign.pkl"), &pkl).unwrap();
    let run = predict(&folder, &tmp.path().join("pred_foreign"), &["--no-tta"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("shutil.rmtree") && stderr.contains("postprocessing.pkl"),
        "{stderr}"
    );
}

fn predict_all_folds(model: &Path, out: &Path) -> std::process::Output {
    predict_with(model, out, &["--folds", "all", "--no-tta"])
}

/// nnU-Net's cascade (`scripts/make_nnunet_cascade_fixture.sh`): `-m <3d_cascade_fullres
/// folder>` runs the `3d_lowres` folder beside it first, and the masks equal nnU-Net's
/// `nnUNetv2_predict -c 3d_cascade_fullres -prev_stage_predictions <its 3d_lowres masks>`; the
/// lowres folder alone gives nnU-Net's lowres masks; `import-nnunet` of the cascade folder
/// brings the lowres folder along; without the lowres folder beside it the cascade is refused
/// naming the folder it needs.
#[test]
fn an_nnunet_cascade_runs_its_first_stage_from_the_folder_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let lowres = fixture().join("nnUNetTrainer_autosegFixtureCascade__nnUNetPlans__3d_lowres");
    let cascade =
        fixture().join("nnUNetTrainer_autosegFixtureCascade__nnUNetPlans__3d_cascade_fullres");
    let out = tmp.path().join("lowres");
    ok(predict_all_folds(&lowres, &out));
    assert_same_masks(&out, "lowres_3d_no_tta");
    let out = tmp.path().join("cascade");
    ok(predict_all_folds(&cascade, &out));
    assert_same_masks(&out, "cascade_3d_fullres_no_tta");
    // Imported, the cascade brings its first stage along and best.toml chooses the cascade.
    let model = tmp.path().join("imported");
    ok(import(&cascade, &model));
    let best = std::fs::read_to_string(model.join("results/best.toml")).unwrap();
    assert!(
        best.contains("configuration = \"3d_cascade_fullres\""),
        "{best}"
    );
    let out = tmp.path().join("imported_cascade");
    ok(predict_all_folds(&model, &out));
    assert_same_masks(&out, "cascade_3d_fullres_no_tta");

    let alone = tmp
        .path()
        .join("nnUNetTrainer_autosegFixtureCascade__nnUNetPlans__3d_cascade_fullres");
    copy_dir(&cascade, &alone);
    let run = predict_all_folds(&alone, &tmp.path().join("alone"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nnUNetTrainer_autosegFixtureCascade__nnUNetPlans__3d_lowres")
            && stderr.contains("is missing"),
        "{stderr}"
    );
}

/// `nnUNetv2_find_best_configuration`'s choice for the fixture models
/// (`scripts/make_nnunet_results_fixture.sh`): `predict -m <nnUNet_results>/<Dataset>` runs the
/// model or ensemble its `inference_information.json` chose, with its folds (none given here)
/// and its postprocessing, and the masks equal what nnU-Net's `inference_instructions.txt`
/// give (`nnUNetv2_predict` of each member, `nnUNetv2_ensemble`,
/// `nnUNetv2_apply_postprocessing`); the export zip made after the choice carries it and
/// predicts the same; `-c` with a results folder is refused, saying what to pass instead.
#[test]
fn an_nnunet_results_folder_runs_what_find_best_chose() {
    let results = fixture().join("../results");
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("Dataset901_Demo3d");
    copy_dir(&results.join("Dataset901_Demo3d"), &dataset);
    for config in ["2d", "3d_fullres"] {
        let folder = format!("nnUNetTrainer_autosegFixture__nnUNetPlans__{config}");
        copy_dir(&fixture().join(&folder), &dataset.join(&folder));
    }
    let golden = results.join("predictions/best");
    let out = tmp.path().join("from_folder");
    ok(predict_with(&dataset, &out, &[]));
    assert_same_masks_as(&out, &golden);
    let out = tmp.path().join("from_zip");
    ok(predict_with(
        &results.join("Dataset901_Demo3d_nnunet_export_best.zip"),
        &out,
        &[],
    ));
    assert_same_masks_as(&out, &golden);

    let run = predict_with(&dataset, &tmp.path().join("asked"), &["-c", "2d"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("inference_information.json") && stderr.contains("<Trainer>__<Plans>__2d"),
        "{stderr}"
    );
}

/// nnU-Net's batch controls: `--num-parts 2 --part-id K` predicts the sorted cases' every
/// second from the K-th (the parts together are the whole folder, masks equal to nnU-Net's);
/// `--continue` leaves a case whose mask is there untouched and predicts the rest; a part id
/// past the parts is refused.
#[test]
fn predict_splits_a_folder_into_parts_and_continues_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture().join("nnUNetTrainer_autosegFixture__nnUNetPlans__3d_fullres");
    let out = tmp.path().join("parts");
    let listed = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".nii.gz"))
            .collect();
        names.sort();
        names
    };
    let part = |k: &'static str| ["--no-tta", "--num-parts", "2", "--part-id", k];
    ok(predict(&model, &out, &part("0")));
    assert_eq!(listed(&out), ["demo_010.nii.gz", "demo_012.nii.gz"]);
    ok(predict(&model, &out, &part("1")));
    assert_same_masks(&out, "3d_fullres_no_tta");

    // A stand-in for a mask written before the run stopped: --continue keeps it.
    let kept = out.join("demo_011.nii.gz");
    std::fs::write(&kept, b"written before").unwrap();
    std::fs::remove_file(out.join("demo_012.nii.gz")).unwrap();
    let run = predict(&model, &out, &["--no-tta", "--continue"]);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    ok(run);
    assert!(stdout.contains("2 case(s) already in"), "{stdout}");
    assert_eq!(std::fs::read(&kept).unwrap(), b"written before");
    assert!(out.join("demo_012.nii.gz").is_file());
    // Without it, everything is predicted again.
    ok(predict(&model, &out, &["--no-tta"]));
    assert_same_masks(&out, "3d_fullres_no_tta");

    let run = predict(&model, &tmp.path().join("x"), &part("2"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--part-id 2 is not one of the 2 parts"),
        "{stderr}"
    );
}
