//! `autoseg predict -m <nnU-Net model folder>` on a model nnU-Net 2.8.1 trained
//! (`scripts/make_nnunet_model_fixture.sh`): the masks equal nnU-Net's own predictions of the
//! same inputs voxel for voxel, with and without mirroring, in 2d and 3d_fullres; and a folder
//! whose checkpoint would run a shell command is refused with nothing run.

use std::path::{Path, PathBuf};
use std::process::Command;

use autoseg_preprocessing::read_label_map;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/data/nnunet/model")
}

fn predict(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(["predict", "-i"])
        .arg(fixture().join("imagesTs"))
        .arg("-o")
        .arg(out)
        .arg("-m")
        .arg(model)
        .args(["--folds", "0", "--device", "cpu"])
        .args(extra)
        .output()
        .expect("the autoseg binary runs")
}

#[test]
fn an_nnunet_model_folder_predicts_nnunets_masks() {
    let tmp = tempfile::tempdir().unwrap();
    for config in ["3d_fullres", "2d"] {
        let model = fixture().join(format!(
            "nnUNetTrainer_autosegFixture__nnUNetPlans__{config}"
        ));
        for (suffix, extra) in [("", &[][..]), ("_no_tta", &["--no-tta"][..])] {
            let out = tmp.path().join(format!("{config}{suffix}"));
            let run = predict(&model, &out, extra);
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            for case in ["demo_010", "demo_011", "demo_012"] {
                let file = format!("{case}.nii.gz");
                let ours = read_label_map(&out.join(&file)).unwrap();
                let theirs =
                    read_label_map(&fixture().join(format!("predictions/{config}{suffix}/{file}")))
                        .unwrap();
                assert_eq!(ours.geometry.shape(), theirs.geometry.shape());
                let differ = ours
                    .data
                    .iter()
                    .zip(theirs.data.iter())
                    .filter(|(a, b)| a != b)
                    .count();
                assert_eq!(differ, 0, "{config}{suffix} {case}: {differ} voxels differ");
                assert!(
                    theirs.data.iter().any(|&l| l > 0),
                    "an all-background golden"
                );
            }
        }
    }
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
