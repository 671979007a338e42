//! Fine-tuning from nnU-Net's weights, as nnU-Net's pretraining documentation does it: `plan
//! --plans-from` the plans nnU-Net 2.8.1 trained the fixture model with (moved to another
//! dataset, equal to nnU-Net's own move of them), `preprocess`, then `train
//! --pretrained-weights` its `checkpoint_final.pth` with 0 epochs, so the fold's final weights
//! are the starting weights: nnU-Net's bit for bit but the segmentation heads (4 here, 3 in
//! the source). A network of another shape and `--resume` with pretrained weights are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use autoseg_network::checkpoint::is_segmentation_head;
use autoseg_network::torch_file::TorchArchive;
use autoseg_planner::pickle::{Policy, Value};
use autoseg_planner::Plans;
use tch::{Kind, Tensor};

fn autoseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(args)
        .output()
        .expect("the autoseg binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = autoseg(args);
    assert!(
        out.status.success(),
        "autoseg {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nnunet_model(configuration: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "fixtures/data/nnunet/model/nnUNetTrainer_autosegFixture__nnUNetPlans__{configuration}"
    ))
}

/// The `network_weights` of an nnU-Net checkpoint, as float32.
fn nnunet_weights(pth: &Path) -> HashMap<String, Tensor> {
    let mut archive = TorchArchive::open(pth, &Policy::default()).unwrap();
    let Some(Value::Dict(entries)) = archive.object().get("network_weights").cloned() else {
        panic!("{}: no network_weights", pth.display());
    };
    entries
        .into_iter()
        .map(|(name, value)| {
            let (Value::Str(name), Value::Tensor(r)) = (name, value) else {
                panic!("not a named tensor");
            };
            (name, archive.tensor(&r).unwrap().to_kind(Kind::Float))
        })
        .collect()
}

#[test]
fn fine_tuning_from_nnunet_plans_and_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = autoseg_fixtures::write("demo3d", &tmp.path().join("raw")).unwrap();
    // The target: the same images under another name, with a label more than the source had.
    let dataset = tmp.path().join("raw/Dataset902_Target");
    std::fs::rename(&demo, &dataset).unwrap();
    let json_path = dataset.join("dataset.json");
    let json = std::fs::read_to_string(&json_path).unwrap();
    let json = json.replace("\"lesion\": 2", "\"lesion\": 2,\n    \"cyst\": 3");
    assert!(json.contains("\"cyst\": 3"), "{json}");
    std::fs::write(&json_path, json).unwrap();
    let work = tmp.path().join("work");
    let (dataset_s, work_s) = (dataset.to_str().unwrap(), work.to_str().unwrap());

    let nnunet_plans = nnunet_model("2d").join("plans.json");
    let out = ok(&[
        "plan",
        dataset_s,
        "--work",
        work_s,
        "--plans-from",
        nnunet_plans.to_str().unwrap(),
    ]);
    assert!(out.contains("used for Dataset902_Target"), "{out}");
    let moved = Plans::read(&work.join("Dataset902_Target/plans.toml")).unwrap();
    // nnU-Net's own nnUNetv2_move_plans_between_datasets of the same plans onto the same
    // dataset (scripts/make_nnunet_moved_plans_fixture.sh): the same plans, and written in
    // nnU-Net's format the same file.
    let theirs_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/data/nnunet/moved_plans_Dataset902_Target.json"),
    )
    .unwrap();
    assert_eq!(moved, Plans::from_nnunet_json(&theirs_text).unwrap());
    let theirs: serde_json::Value = serde_json::from_str(&theirs_text).unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&moved.to_nnunet_json(".nii.gz").unwrap()).unwrap();
    assert_eq!(ours, theirs);

    let out = ok(&["preprocess", dataset_s, "--work", work_s, "-c", "2d"]);
    assert!(out.contains("2d: 10 cases (10 preprocessed"), "{out}");

    let pth = nnunet_model("2d").join("fold_0/checkpoint_final.pth");
    let pth_s = pth.to_str().unwrap();
    let train = |extra: &[&str]| {
        let args = [
            &[
                "train", dataset_s, "2d", "0", "--work", work_s, "--epochs", "0", "--device", "cpu",
            ][..],
            extra,
        ]
        .concat();
        autoseg(&args)
    };
    let out = train(&["--pretrained-weights", pth_s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("started from the pretrained weights"),
        "{stdout}"
    );
    let fold = work.join("Dataset902_Target/results/2d/fold_0");
    let log = std::fs::read_to_string(fold.join("train.log")).unwrap();
    assert!(
        log.contains(&format!("Loaded pretrained weights from {pth_s}")),
        "{log}"
    );
    let theirs = nnunet_weights(&pth);
    let ours = Tensor::read_safetensors(fold.join("checkpoint_final.safetensors")).unwrap();
    let mut n_heads = 0;
    for (name, tensor) in &ours {
        if is_segmentation_head(name) {
            n_heads += 1;
            // 4 classes here, 3 in nnU-Net's model.
            assert_eq!(tensor.size()[0], 4, "{name}");
        } else {
            assert!(
                tensor.equal(&theirs[name]),
                "{name} is not nnU-Net's weight"
            );
        }
    }
    assert_eq!(n_heads, 6);

    // --resume and pretrained weights exclude each other (a usage error).
    let out = train(&["--resume", "--pretrained-weights", pth_s]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");

    // The 3d_fullres weights do not fit the 2d network: refused naming file and parameter.
    let pth_3d = nnunet_model("3d_fullres").join("fold_0/checkpoint_final.pth");
    let out = train(&["--pretrained-weights", pth_3d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(pth_3d.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains(
            "'decoder.stages.0.convs.0.conv.weight' has shape [8, 16, 3, 3, 3] in the file, \
             [8, 16, 3, 3] in the network"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
