//! The binary's command contract as a user meets it: exit codes and messages.

use std::process::Command;

fn autoseg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(args)
        .output()
        .expect("the autoseg binary runs")
}

#[test]
fn version_names_libtorch_and_cuda() {
    let out = autoseg(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(concat!("autoseg ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("libtorch 2.11.0"), "{text}");
    assert!(text.contains("CUDA") || text.contains("CPU only"), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(autoseg(&[]).status.code(), Some(2));
    assert_eq!(
        autoseg(&["train", "ds", "2d", "seven"]).status.code(),
        Some(2)
    );
    assert_eq!(autoseg(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn help_documents_every_command() {
    let out = autoseg(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "verify",
        "fingerprint",
        "plan",
        "preprocess",
        "train",
        "plan-and-train",
        "predict",
        "ensemble",
        "evaluate",
        "find-best",
        "report",
        "fixtures",
    ] {
        assert!(text.contains(cmd), "--help does not mention {cmd}:\n{text}");
    }
}

#[test]
fn predict_help_offers_the_float32_accumulator_its_error_recommends() {
    let out = autoseg(&["predict", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--accumulate-fp32"), "{text}");
    let out = autoseg(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--max-volume-gb"));
}

#[test]
fn train_and_plan_help_explain_fine_tuning() {
    let out = autoseg(&["train", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--pretrained-weights <FILE>"), "{text}");
    assert!(text.contains("segmentation heads"), "{text}");
    let out = autoseg(&["plan", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--plans-from <OTHER>"), "{text}");
    assert!(
        text.contains("nnUNetv2_move_plans_between_datasets"),
        "{text}"
    );
}
