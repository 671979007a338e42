//! The main job end to end on a tiny budget: `plan-and-train` on the demo fixture, a re-run that
//! redoes nothing, then `predict` on held-out cases and `evaluate`.

use std::path::Path;
use std::process::{Command, Output};

pub(crate) fn autoseg(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(args)
        .output()
        .expect("the autoseg binary runs");
    assert!(
        out.status.success(),
        "autoseg {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn plan_and_train_then_predict_and_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let dataset = autoseg_fixtures::write("demo3d", &raw).unwrap();
    let dataset = dataset.to_str().unwrap();
    let work = tmp.path().join("work");
    let work_s = work.to_str().unwrap();
    let train = [
        "plan-and-train",
        dataset,
        "--work",
        work_s,
        "-c",
        "2d",
        "--folds",
        "0,1",
        "--epochs",
        "1",
        "--iters-per-epoch",
        "2",
        "--device",
        "cpu",
    ];
    autoseg(&train);
    let model = work.join("Dataset901_Demo3d");
    let final_weights = model.join("results/2d/fold_1/checkpoint_final.safetensors");
    let summary = model.join("results/2d/fold_1/validation/summary.json");
    let best = model.join("results/best.toml");
    for file in [
        &final_weights,
        &summary,
        &best,
        &model.join("results/2d/crossval/summary.json"),
    ] {
        assert!(file.is_file(), "{} missing", file.display());
    }
    let best_text = std::fs::read_to_string(&best).unwrap();
    assert!(best_text.contains("configuration = \"2d\""), "{best_text}");

    // A second run finds everything done: no weights or validation are rewritten.
    let (weights_time, summary_time) = (modified(&final_weights), modified(&summary));
    let again = autoseg(&train);
    assert_eq!(modified(&final_weights), weights_time);
    assert_eq!(modified(&summary), summary_time);
    assert!(String::from_utf8_lossy(&again.stdout).contains("validation is up to date"));

    // Held-out cases: masks in the input's geometry, then evaluation against labelsTs.
    let pred = tmp.path().join("pred");
    let images_ts = format!("{dataset}/imagesTs");
    let pred_s = pred.to_str().unwrap();
    autoseg(&[
        "predict",
        "-i",
        &images_ts,
        "-o",
        pred_s,
        "-m",
        model.to_str().unwrap(),
        "--folds",
        "0,1",
        "--no-tta",
        "--device",
        "cpu",
    ]);
    let labels_ts = format!("{dataset}/labelsTs");
    let json = format!("{dataset}/dataset.json");
    let out = autoseg(&[
        "evaluate",
        "--pred",
        pred_s,
        "--ref",
        &labels_ts,
        "--dataset-json",
        &json,
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("Dice"), "{table}");
    assert!(pred.join("summary.json").is_file());
    let input =
        autoseg_preprocessing::read_image(&Path::new(&images_ts).join("demo_010_0000.nii.gz"))
            .unwrap();
    let mask = autoseg_preprocessing::read_label_map(&pred.join("demo_010.nii.gz")).unwrap();
    assert!(mask.geometry.affine().allclose(&input.geometry.affine()));
    assert_eq!(mask.geometry.shape(), input.geometry.shape());

    // An ensemble of configurations from best.toml (here 2d with itself: the averaged
    // probabilities are the member's, so the masks equal the single prediction).
    let single_line = "configuration = \"2d\"\n";
    assert!(best_text.contains("ensemble = [\"2d\"]"), "{best_text}");
    let ensemble_text = best_text
        .replace(single_line, "")
        .replace("ensemble = [\"2d\"]", "ensemble = [\"2d\", \"2d\"]");
    std::fs::write(&best, ensemble_text).unwrap();
    let ensembled = tmp.path().join("ensembled");
    let out = autoseg(&[
        "predict",
        "-i",
        &images_ts,
        "-o",
        ensembled.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "--folds",
        "0,1",
        "--no-tta",
        "--device",
        "cpu",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ensemble of 2d + 2d"));
    assert!(!ensembled.join(".ensemble_members").exists());
    let from_ensemble =
        autoseg_preprocessing::read_label_map(&ensembled.join("demo_010.nii.gz")).unwrap();
    assert_eq!(from_ensemble.data, mask.data);
    assert_eq!(from_ensemble.geometry, mask.geometry);
}
