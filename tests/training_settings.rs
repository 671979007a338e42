//! Training settings from the command line as a user of nnU-Net gives them: `--trainer` with an
//! nnU-Net trainer name, the settings written beside the fold, an unknown name refused with the
//! known ones, and a batch-norm model (`nnUNetTrainerBN`) that validates, predicts and exports
//! to nnU-Net as such.

use std::process::Command;

use crate::pipeline::autoseg;

#[test]
fn an_nnunet_trainer_name_trains_validates_and_exports_as_nnunet_would() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = autoseg_fixtures::write("demo3d", &tmp.path().join("raw")).unwrap();
    let dataset = dataset.to_str().unwrap();
    let work = tmp.path().join("work");
    let work_s = work.to_str().unwrap();
    autoseg(&["plan", dataset, "--work", work_s]);
    let train = |trainer: &str| {
        Command::new(env!("CARGO_BIN_EXE_autoseg"))
            .args([
                "train",
                dataset,
                "2d",
                "0",
                "--work",
                work_s,
                "--trainer",
                trainer,
                "--epochs",
                "1",
                "--iters-per-epoch",
                "3",
                "--device",
                "cpu",
            ])
            .output()
            .unwrap()
    };
    let out = train("nnUNetTrainer_251epochs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nnUNetTrainer_250epochs"), "{stderr}");

    // Batch norm: the final validation runs the network with its running statistics.
    let out = train("nnUNetTrainerBN");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("validation foreground Dice"), "{stdout}");
    let fold = work.join("Dataset901_Demo3d/results/2d/fold_0");
    let settings = std::fs::read_to_string(fold.join("training.toml")).unwrap();
    assert!(
        settings.contains("norm = \"batch\"") && settings.contains("epochs = 1"),
        "{settings}"
    );
    let weights = tch::Tensor::read_safetensors(fold.join("checkpoint_final.safetensors")).unwrap();
    let tracked = weights
        .iter()
        .find(|(n, _)| n == "encoder.stages.0.0.convs.0.norm.num_batches_tracked")
        .map(|(_, t)| t.int64_value(&[]));
    assert_eq!(tracked, Some(3), "one count per training iteration");

    // nnU-Net builds the exported network through nnUNetTrainerBN.
    let exported = tmp.path().join("nnunet");
    let model = work.join("Dataset901_Demo3d");
    autoseg(&[
        "export",
        model.to_str().unwrap(),
        "-o",
        exported.to_str().unwrap(),
        "--format",
        "nnunet",
        "-c",
        "2d",
    ]);
    let folder = exported.join("Dataset901_Demo3d/nnUNetTrainerBN__nnUNetPlans__2d");
    assert!(folder.join("fold_0/checkpoint_final.pth").is_file());
    // And autoseg runs that nnU-Net folder back, batch norm included (on one held-out case).
    let input = tmp.path().join("one_case");
    std::fs::create_dir(&input).unwrap();
    let mut cases: Vec<_> = std::fs::read_dir(format!("{dataset}/imagesTs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    std::fs::copy(&cases[0], input.join(cases[0].file_name().unwrap())).unwrap();
    let pred = tmp.path().join("pred");
    autoseg(&[
        "predict",
        "-i",
        input.to_str().unwrap(),
        "-o",
        pred.to_str().unwrap(),
        "-m",
        folder.to_str().unwrap(),
        "--folds",
        "0",
        "--no-tta",
        "--device",
        "cpu",
    ]);
    let masks = std::fs::read_dir(&pred)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .ends_with(".nii.gz")
        })
        .count();
    assert_eq!(masks, 1);
}
