//! `plan-and-train --parallel-folds`: the folds train at the same time in `autoseg train`
//! processes (seen in /proc, not taken from the command's own messages), a failed fold is named
//! with its output log after the others finish, a signal reaches every fold, and a bad device
//! entry is a usage error.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The demo fixture and a work folder in `tmp`: (dataset, work, the dataset's work folder).
fn demo(tmp: &Path) -> (String, String, PathBuf) {
    let dataset = autoseg_fixtures::write("demo3d", &tmp.join("raw")).unwrap();
    let work = tmp.join("work");
    let model = work.join("Dataset901_Demo3d");
    (
        dataset.to_str().unwrap().to_string(),
        work.to_str().unwrap().to_string(),
        model,
    )
}

/// Starts `autoseg plan-and-train` of the 2d configuration's folds 0 and 1 on `devices`, with
/// two threads in all, its stdout and stderr into files in `tmp`.
fn start(tmp: &Path, devices: &str, iters: &str, epochs: &str) -> (Child, PathBuf) {
    let (dataset, work, model) = demo(tmp);
    let log = tmp.join("plan_and_train.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args([
            "plan-and-train",
            &dataset,
            "--work",
            &work,
            "-c",
            "2d",
            "--folds",
            "0,1",
            "--epochs",
            epochs,
            "--iters-per-epoch",
            iters,
            "--parallel-folds",
            devices,
            "--threads",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("the autoseg binary runs");
    (child, model.join("results/2d"))
}

/// The ids of the live `autoseg train` processes whose parent is `parent`, from /proc.
fn train_children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: the comm may hold spaces, so split after its `)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            // A zombie's cmdline is empty: only processes still running count.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let second = cmdline.split(|b| *b == 0).nth(1).unwrap_or_default();
            ppid == Some(parent) && second == b"train"
        })
        .collect()
}

/// Waits for `child` to end, recording the most `train` children it had at once and their
/// ids.
fn watch(child: &mut Child, until: impl Fn(&[u32]) -> bool) -> (ExitStatus, usize, Vec<u32>) {
    let began = Instant::now();
    let (mut most, mut seen) = (0, Vec::new());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, most, seen);
        }
        let running = train_children(child.id());
        most = most.max(running.len());
        for pid in &running {
            if !seen.contains(pid) {
                seen.push(*pid);
            }
        }
        if until(&running) {
            return (child.wait().unwrap(), most, seen);
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "plan-and-train did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn folds_train_at_the_same_time_then_find_best_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, results) = start(tmp.path(), "cpu,cpu", "2", "1");
    let (status, most, seen) = watch(&mut child, |_| false);
    let log = text(&tmp.path().join("plan_and_train.log"));
    assert!(status.success(), "{log}");
    // Two `train` processes alive at the same moment: they cannot have run one after another.
    assert_eq!((most, seen.len()), (2, 2), "{log}");
    for fold in ["fold_0", "fold_1"] {
        let dir = results.join(fold);
        for file in [
            "checkpoint_final.safetensors",
            "checkpoint_final.toml",
            "validation/summary.json",
        ] {
            assert!(dir.join(file).is_file(), "{fold}/{file} missing: {log}");
        }
        // Each fold's own output, with the threads split between the two slots.
        let output = text(&dir.join("train_output.log"));
        assert!(
            output.starts_with("== ") && output.contains("--device cpu --threads 1 "),
            "{output}"
        );
        assert!(
            output.contains("--epochs 1 --iters-per-epoch 2"),
            "{output}"
        );
    }
    let best = results.parent().unwrap().join("best.toml");
    assert!(text(&best).contains("configuration = \"2d\""), "{log}");
    assert!(
        log.contains("[cpu #1] 2d fold 0: started") && log.contains("2d fold 1: done in"),
        "{log}"
    );
}

/// A fold whose device does not exist fails at once; the other fold still trains, and the
/// command then fails naming the failed fold and its output, without choosing a best model.
#[test]
fn a_failed_fold_is_named_with_its_output_after_the_others_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, results) = start(tmp.path(), "cpu,cuda:99", "2", "1");
    let (status, _, _) = watch(&mut child, |_| false);
    let log = text(&tmp.path().join("plan_and_train.log"));
    assert_eq!(status.code(), Some(1), "{log}");
    let output = results.join("fold_1/train_output.log");
    let failure = log
        .lines()
        .find(|l| l.starts_with("autoseg: "))
        .unwrap_or_else(|| panic!("no error line: {log}"));
    assert!(
        failure.contains("1 of 2 folds failed: 2d fold 1 (exit code 1; output: ")
            && failure.contains(&output.display().to_string())
            && failure.contains("trained: 1"),
        "{failure}"
    );
    // The failed fold's own error, quoted from its output.
    assert!(
        log.contains("    | autoseg: ") && log.contains("cuda:99"),
        "{log}"
    );
    assert!(results.join("fold_0/checkpoint_final.toml").is_file());
    assert!(!results.parent().unwrap().join("best.toml").exists());
}

/// SIGTERM to plan-and-train reaches both folds: each stops with a checkpoint, and the command
/// exits 143 once they have ended, leaving no `train` process behind.
#[test]
fn a_signal_stops_every_fold_with_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, results) = start(tmp.path(), "cpu,cpu", "40", "2");
    let training = |fold: &str| {
        std::fs::read_to_string(results.join(fold).join("train.log"))
            .is_ok_and(|t| t.contains("Training configuration"))
    };
    let parent = child.id().to_string();
    let signalled = std::cell::Cell::new(false);
    let (status, most, seen) = watch(&mut child, |running| {
        if !signalled.get() && running.len() == 2 && training("fold_0") && training("fold_1") {
            let sent = Command::new("kill").args(["-TERM", &parent]).status();
            assert!(
                sent.is_ok_and(|s| s.success()),
                "kill -TERM {parent} failed"
            );
            signalled.set(true);
        }
        false
    });
    let signalled = signalled.get();
    let log = text(&tmp.path().join("plan_and_train.log"));
    assert!(signalled, "both folds never trained at once: {log}");
    assert_eq!(status.code(), Some(143), "{log}");
    assert_eq!(most, 2, "{log}");
    assert!(log.contains("folds stopped: 2, done: 0"), "{log}");
    for fold in ["fold_0", "fold_1"] {
        let train_log = text(&results.join(fold).join("train.log"));
        assert!(train_log.contains("Stopped on request"), "{train_log}");
        assert!(results.join(fold).join("checkpoint_latest.toml").is_file());
    }
    for pid in seen {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "train process {pid} outlived plan-and-train"
        );
    }
}

#[test]
fn a_bad_device_entry_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let out = Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(["plan-and-train", "ds", "--parallel-folds", "cpu,gpu7"])
        .arg("--work")
        .arg(&work)
        .output()
        .expect("the autoseg binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--parallel-folds")
            && stderr.contains("device must be cpu, cuda or cuda:N; got `gpu7`"),
        "{stderr}"
    );
    assert!(!work.exists(), "nothing may be written on a usage error");
}
