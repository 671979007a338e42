//! The cascade end to end on a tiny budget: plans for the demo fixture with a `3d_lowres` stage
//! and the `3d_cascade_fullres` stage added (the fixture is too small for the planner to want
//! them), the 5 folds of the first stage, one fold of the cascade, then `predict` with it; and
//! a cascade whose stages have names of the user's choosing, ordered by the plan.

use std::path::{Path, PathBuf};

use crate::pipeline::autoseg;

/// The demo fixture written and planned under `tmp` (`raw/`, `work/`), with a first stage
/// `low` at twice the fullres spacing and the cascade stage `high` after it appended to the
/// plans, laid out as the planner writes them for large images. Returns the dataset folder,
/// the work folder and the model folder.
fn planned_with_cascade(tmp: &Path, low: &str, high: &str) -> (String, String, PathBuf) {
    let dataset = autoseg_fixtures::write("demo3d", &tmp.join("raw")).unwrap();
    let dataset = dataset.to_str().unwrap().to_string();
    let work = tmp.join("work");
    let work_s = work.to_str().unwrap().to_string();
    autoseg(&[
        "plan",
        &dataset,
        "--work",
        &work_s,
        "--gpu-memory-gb",
        "0.3",
    ]);
    let model = work.join("Dataset901_Demo3d");
    add_cascade(&model.join("plans.toml"), low, high);
    (dataset, work_s, model)
}

/// Appends the stages `low` and `high` (see [`planned_with_cascade`]) to `plans`.
fn add_cascade(plans: &Path, low: &str, high: &str) {
    let text = std::fs::read_to_string(plans).unwrap();
    let spacing_line = text
        .lines()
        .skip_while(|l| *l != "[configurations.3d_fullres]")
        .find(|l| l.starts_with("spacing = "))
        .unwrap();
    let spacing: Vec<f64> = spacing_line
        .trim_start_matches("spacing = [")
        .trim_end_matches(']')
        .split(", ")
        .map(|v| v.parse::<f64>().unwrap() * 2.0)
        .collect();
    let stages = format!(
        "\n[configurations.{low}]\ninherits_from = \"3d_fullres\"\nspacing = {spacing:?}\n\
         batch_dice = false\nnext_stage = \"{high}\"\n\n\
         [configurations.{high}]\ninherits_from = \"3d_fullres\"\n\
         previous_stage = \"{low}\"\n"
    );
    std::fs::write(plans, text + &stages).unwrap();
}

#[test]
fn lowres_then_cascade_trains_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let (dataset, work_s, model) =
        planned_with_cascade(tmp.path(), "3d_lowres", "3d_cascade_fullres");
    let (dataset, work_s) = (dataset.as_str(), work_s.as_str());
    // Every fold of the first stage (its validation writes the cascade's inputs), then one
    // fold of the cascade.
    autoseg(&[
        "plan-and-train",
        dataset,
        "--work",
        work_s,
        "-c",
        "3d_lowres",
        "--epochs",
        "1",
        "--iters-per-epoch",
        "1",
        "--device",
        "cpu",
    ]);
    autoseg(&[
        "train",
        dataset,
        "3d_cascade_fullres",
        "0",
        "--work",
        work_s,
        "--epochs",
        "1",
        "--iters-per-epoch",
        "1",
        "--device",
        "cpu",
    ]);
    // Every training case got its first-stage segmentation on the 3d_fullres grid.
    let next = model.join("results/3d_lowres/predicted_next_stage/3d_cascade_fullres");
    let cases: Vec<_> = std::fs::read_dir(model.join("preprocessed/3d_fullres"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".case").map(str::to_string)
        })
        .collect();
    assert_eq!(cases.len(), 10);
    for case in &cases {
        assert!(next.join(format!("{case}.nii.gz")).is_file(), "{case}");
    }
    let summary = model.join("results/3d_cascade_fullres/fold_0/validation/summary.json");
    assert!(summary.is_file(), "{}", summary.display());
    let checkpoint = std::fs::read_to_string(
        model.join("results/3d_cascade_fullres/fold_0/checkpoint_final.toml"),
    )
    .unwrap();
    // One image channel plus the one-hot maps of labels 1 and 2.
    assert!(checkpoint.contains("in_channels = 3"), "{checkpoint}");

    let pred = tmp.path().join("pred");
    let images_ts = format!("{dataset}/imagesTs");
    autoseg(&[
        "predict",
        "-i",
        &images_ts,
        "-o",
        pred.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-c",
        "3d_cascade_fullres",
        "--folds",
        "0",
        "--no-tta",
        "--device",
        "cpu",
    ]);
    let input =
        autoseg_preprocessing::read_image(&Path::new(&images_ts).join("demo_010_0000.nii.gz"))
            .unwrap();
    let mask = autoseg_preprocessing::read_label_map(&pred.join("demo_010.nii.gz")).unwrap();
    assert_eq!(mask.geometry.shape(), input.geometry.shape());
    assert!(mask.geometry.affine().allclose(&input.geometry.affine()));
}

/// Stages named `low` and `high` (`high` sorts first by name, and the order given puts it
/// first too): `plan-and-train -c high low` trains `low` first, whose validation writes the
/// inputs `high` trains on. Before the plan owned the order, unknown names kept the order given
/// and `high` failed for want of `low`'s segmentations.
#[test]
fn custom_named_cascade_trains_its_first_stage_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (dataset, work_s, model) = planned_with_cascade(tmp.path(), "low", "high");
    let (dataset, work_s) = (dataset.as_str(), work_s.as_str());
    let out = autoseg(&[
        "plan-and-train",
        dataset,
        "--work",
        work_s,
        "-c",
        "high",
        "low",
        "--folds",
        "all",
        "--epochs",
        "1",
        "--iters-per-epoch",
        "1",
        "--device",
        "cpu",
    ]);
    let out = String::from_utf8_lossy(&out.stdout);
    let low_at = out.find("== train low fold all").expect("low trained");
    let high_at = out.find("== train high fold all").expect("high trained");
    assert!(low_at < high_at, "{out}");
    let next = model.join("results/low/predicted_next_stage/high");
    assert_eq!(std::fs::read_dir(&next).unwrap().count(), 10);
    for config in ["low", "high"] {
        let summary = model.join(format!("results/{config}/fold_all/validation/summary.json"));
        assert!(summary.is_file(), "{}", summary.display());
    }
}
