//! Data-parallel training as a user runs it: `train --nproc 2` (two ranks over Gloo on
//! loopback) trains, checkpoints, resumes with the same or another number of ranks, validates,
//! and reaches the Dice of one process; a rank killed mid-epoch stops its peer within a minute
//! with an error naming it, and `--resume` completes the run. The one-step equivalence of 2
//! ranks × b and 1 process × 2b is the trainer's unit test (`two_ranks_of_b_step_as_one_process_of_2b`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::pipeline::autoseg;

/// A planned demo3d dataset in a fresh work folder: (tempdir, dataset, work).
fn planned() -> (tempfile::TempDir, String, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = autoseg_fixtures::write("demo3d", &tmp.path().join("raw")).unwrap();
    let dataset = dataset.to_str().unwrap().to_string();
    let work = tmp.path().join("work");
    autoseg(&["plan", &dataset, "--work", work.to_str().unwrap()]);
    (tmp, dataset, work)
}

/// `train DATASET 2d 0` on the CPU with two threads in all and `extra` flags.
fn train_args(dataset: &str, work: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--threads",
        "2",
        "train",
        dataset,
        "2d",
        "0",
        "--work",
        work.to_str().unwrap(),
        "--device",
        "cpu",
        "--iters-per-epoch",
        "10",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn run(args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    autoseg(&args)
}

/// The final validation's foreground Dice `train` printed.
fn validation_dice(out: &Output) -> f64 {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("validation foreground Dice"))
        .unwrap_or_else(|| panic!("no validation line in:\n{text}"));
    let value = line
        .split("Dice ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    value.parse().unwrap()
}

fn fold_dir(work: &Path) -> PathBuf {
    work.join("Dataset901_Demo3d/results/2d/fold_0")
}

#[test]
fn two_ranks_train_resume_with_either_count_and_reach_one_process_dice() {
    let (_tmp1, dataset1, work1) = planned();
    let single = run(&train_args(&dataset1, &work1, &["--epochs", "4"]));
    let single_dice = validation_dice(&single);

    let (_tmp2, dataset, work) = planned();
    // Two ranks for two epochs, one rank for the third (another world size), two for the last.
    let first = run(&train_args(
        &dataset,
        &work,
        &["--epochs", "2", "--nproc", "2"],
    ));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("started 2 ranks"), "{stderr}");
    let log = fold_dir(&work).join("train.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("Epoch time").count(), 2, "{text}");
    // Rank 0 alone writes: one start line, one line per epoch event.
    assert_eq!(text.matches("Training configuration").count(), 1, "{text}");
    run(&train_args(&dataset, &work, &["--epochs", "3", "--resume"]));
    let last = run(&train_args(
        &dataset,
        &work,
        &["--epochs", "4", "--resume", "--nproc", "2"],
    ));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("Epoch time").count(), 4, "{text}");
    assert_eq!(text.matches("Resuming configuration").count(), 2, "{text}");
    let final_meta =
        std::fs::read_to_string(fold_dir(&work).join("checkpoint_final.toml")).unwrap();
    assert!(final_meta.contains("epochs_done = 4"), "{final_meta}");
    // Both ranks predicted their share of the validation cases; rank 0 evaluated them all.
    let summary = fold_dir(&work).join("validation/summary.json");
    assert!(summary.is_file());
    let ddp_dice = validation_dice(&last);
    assert!(
        ddp_dice >= single_dice - 0.05,
        "2 ranks reached a validation Dice of {ddp_dice}, one process {single_dice}"
    );
}

/// The pid of the rank `rank` the launcher `launcher` started (read from /proc).
fn rank_pid(launcher: u32, rank: u32) -> Option<u32> {
    let children = std::fs::read_dir(format!("/proc/{launcher}/task")).ok()?;
    for task in children.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let wanted = format!("RANK={rank}");
            if env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
                return Some(pid);
            }
        }
    }
    None
}

#[test]
fn a_killed_rank_is_named_by_its_peer_and_resume_completes_the_run() {
    let (_tmp, dataset, work) = planned();
    let args = train_args(&dataset, &work, &["--epochs", "3", "--nproc", "2"]);
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill rank 1 once epoch 0's checkpoint is written: it dies in the middle of epoch 1.
    let meta = fold_dir(&work).join("checkpoint_latest.toml");
    let start = Instant::now();
    while !std::fs::read_to_string(&meta).is_ok_and(|t| t.contains("epochs_done = 1")) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "epoch 0 never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rank_pid(launcher.id(), 1).expect("rank 1 runs");
    let killed = Instant::now();
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let out = loop {
        if launcher.try_wait().unwrap().is_some() {
            break launcher.wait_with_output().unwrap();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the run did not stop within 60 s of rank 1's death"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rank 1 stopped answering"),
        "rank 0 does not name rank 1:\n{stderr}"
    );
    assert!(stderr.contains("rank 1 was killed by signal 9"), "{stderr}");
    // The last checkpoint is valid: the run resumes and completes.
    let resumed = run(&train_args(
        &dataset,
        &work,
        &["--epochs", "3", "--resume", "--nproc", "2"],
    ));
    assert!(resumed.status.success());
    let final_meta =
        std::fs::read_to_string(fold_dir(&work).join("checkpoint_final.toml")).unwrap();
    assert!(final_meta.contains("epochs_done = 3"), "{final_meta}");
}

#[test]
fn bad_launches_are_clear_errors() {
    let (_tmp, dataset, work) = planned();
    let fails = |args: Vec<String>, envs: &[(&str, &str)], needle: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_autoseg"))
            .args(&args)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    let args = |extra: &[&str]| train_args(&dataset, &work, extra);
    fails(
        args(&["--epochs", "1", "--backend", "nccl"]),
        &[],
        "ProcessGroupNCCL is not built",
    );
    fails(
        args(&["--epochs", "1"]),
        &[
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "1"),
        ],
        "RANK is not set",
    );
    fails(
        args(&["--epochs", "1", "--nproc", "2"]),
        &[
            ("WORLD_SIZE", "2"),
            ("RANK", "0"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "1"),
        ],
        "--nproc starts the ranks itself",
    );
    // Rank 1 of a group whose store nobody hosts: a bounded wait, then an error naming the
    // address.
    fails(
        args(&["--epochs", "1", "--dist-timeout", "2"]),
        &[
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "9"),
        ],
        "could not meet the other ranks at 127.0.0.1:9",
    );
}
