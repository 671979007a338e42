//! Stopping `train` with signals, as a user (Ctrl-C) or a cluster (`scancel`: SIGTERM) does:
//! the first signal ends the run after its iteration with a checkpoint and exit 130 / 143 and
//! says how to resume; a second one stops at once; the checkpoint stays valid and `--resume`
//! finishes the run. Bitwise equality of a resumed run is the trainer's unit test
//! (`a_run_stopped_inside_an_epoch_resumes_bitwise`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pipeline::autoseg;

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the autoseg binary runs")
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{name} failed");
}

/// Waits until `path`'s text contains `needle` (the run got that far).
fn wait_for(path: &Path, needle: &str) {
    let start = Instant::now();
    while !std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{} never got {needle:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_signal_stops_training_with_a_checkpoint_and_resume_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = autoseg_fixtures::write("demo3d", &tmp.path().join("raw")).unwrap();
    let dataset = dataset.to_str().unwrap();
    let work = tmp.path().join("work");
    let work_s = work.to_str().unwrap();
    autoseg(&["plan", dataset, "--work", work_s]);
    let fold_dir = work.join("Dataset901_Demo3d/results/2d/fold_0");
    let train = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "train",
            dataset,
            "2d",
            "0",
            "--work",
            work_s,
            "--epochs",
            "2",
            "--iters-per-epoch",
            "40",
            "--device",
            "cpu",
            "--threads",
            "2",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };

    // SIGINT once epoch 0 is done: the run stops inside or right after epoch 1's first steps.
    let child = spawn(&train(&[]));
    wait_for(&fold_dir.join("checkpoint_latest.toml"), "epochs_done = 1");
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped on request") && stderr.contains("--resume"),
        "{stderr}"
    );
    assert!(!fold_dir.join("checkpoint_final.toml").exists());
    let log = std::fs::read_to_string(fold_dir.join("train.log")).unwrap();
    assert!(log.contains("Stopped on request"), "{log}");

    // Two SIGTERMs: the second exits at once, with SIGTERM's code.
    let child = spawn(&train(&["--resume"]));
    wait_for(&fold_dir.join("train.log"), "Resuming configuration");
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(20));
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The checkpoint left behind is valid: resuming finishes the run and validates it.
    let args = train(&["--resume"]);
    let done = autoseg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(stdout.contains("2d fold 0: 2 epochs"), "{stdout}");
    assert!(fold_dir.join("checkpoint_final.toml").is_file());
    assert!(fold_dir.join("validation/summary.json").is_file());
    let settings = std::fs::read_to_string(fold_dir.join("training.toml")).unwrap();
    assert!(settings.contains("epochs = 2"), "{settings}");
}
