//! Hostile input through the binary, as a user meets it: forged headers, gzip bombs, spacings
//! that explode a resample, a second run on a busy work folder. Each must end with exit code 1
//! and one clean error line naming the file, case or process; never a panic or an abort.
//!
//! Commands run under an 8 GB address-space cap (`prlimit`, as the reliability sweep does), so
//! the default memory ceiling is 2 GB whatever the machine; without `prlimit` the ceiling is set
//! to 2 GB through the environment instead.

use std::process::{Command, Output};

use autoseg_fixtures::HOSTILE;
use autoseg_planner::{WorkLayout, WorkLock};

/// 8 GiB, the address-space cap of the sweep.
const ADDRESS_SPACE: &str = "--as=8589934592";

fn capped(args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_autoseg");
    let has_prlimit = Command::new("prlimit").arg("--version").output().is_ok();
    let mut cmd = if has_prlimit {
        let mut cmd = Command::new("prlimit");
        cmd.arg(ADDRESS_SPACE).arg(bin);
        cmd
    } else {
        let mut cmd = Command::new(bin);
        cmd.env("AUTOSEG_MAX_VOLUME_GB", "2");
        cmd
    };
    cmd.args(args).output().expect("the autoseg binary runs")
}

/// Stdout and stderr of a run that must fail cleanly: exit 1, no panic or abort, and exactly
/// one `autoseg:` error line (for commands that report through it).
fn failed_cleanly(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{what}: {text}");
    for bad in ["panicked", "memory allocation of", "RUST_BACKTRACE", "   |"] {
        assert!(!text.contains(bad), "{what}: {bad}: {text}");
    }
    text
}

fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("autoseg:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn forged_headers_and_bombs_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let work = work.to_str().unwrap();
    let expected = [
        ("dims_overflow", "more voxels than can be addressed"),
        ("dims_wrap", "more voxels than can be addressed"),
        (
            "gzip_bomb_u8",
            "needs 80.0 GB of memory, above the per-volume ceiling",
        ),
        (
            "gzip_bomb_f32",
            "needs 10.0 GB of memory, above the per-volume ceiling",
        ),
        ("huge_claim", "can hold at most"),
    ];
    for (name, message) in expected {
        let entry = HOSTILE.iter().find(|e| e.name == name).unwrap();
        let root = autoseg_fixtures::write_broken(entry, tmp.path()).unwrap();
        let file = entry.file.unwrap();
        let dataset = root.to_str().unwrap();
        let verify = capped(&["verify", dataset]);
        let text = failed_cleanly(&verify, name);
        assert!(
            text.contains(file) && text.contains(message),
            "{name}: {text}"
        );
        let fingerprint = capped(&["fingerprint", dataset, "--work", work]);
        let text = failed_cleanly(&fingerprint, name);
        let lines = error_lines(&fingerprint);
        assert_eq!(lines.len(), 1, "{name}: {text}");
        assert!(
            lines[0].contains(file) && lines[0].contains(message),
            "{name}: {}",
            lines[0]
        );
    }
}

#[test]
fn resamples_past_the_ceiling_are_refused_naming_the_case() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let entry = HOSTILE.iter().find(|e| e.name == "coarse_spacing").unwrap();
    let root = autoseg_fixtures::write_broken(entry, tmp.path()).unwrap();
    let (dataset, work_arg) = (root.to_str().unwrap(), work.to_str().unwrap());
    // A valid dataset: it verifies and plans (nnU-Net would plan it too).
    assert!(capped(&["verify", dataset]).status.success());
    assert!(capped(&["plan", dataset, "--work", work_arg])
        .status
        .success());
    let args = [
        "preprocess",
        dataset,
        "--work",
        work_arg,
        "-c",
        "3d_fullres",
    ];
    let out = capped(&args);
    failed_cleanly(&out, "coarse_spacing");
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("case case_001")
            && lines[0].contains("to shape [400, 900, 900]")
            && lines[0].contains("above the per-volume ceiling"),
        "{}",
        lines[0]
    );

    // A target spacing edited to 1 µm: 131 TB asked for, refused before allocating.
    let layout = WorkLayout::new(work.join("coarse_spacing"));
    let plans = std::fs::read_to_string(layout.plans()).unwrap();
    let edited = plans.replacen(
        "spacing = [2.5, 1.5, 1.5]",
        "spacing = [0.001, 0.001, 0.001]",
        1,
    );
    assert_ne!(
        edited, plans,
        "the 3d_fullres spacing line is where the test expects it"
    );
    std::fs::write(layout.plans(), edited).unwrap();
    let out = capped(&args);
    failed_cleanly(&out, "spacing edit");
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("above the per-volume ceiling"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_busy_work_folder_is_refused_naming_its_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let work = tmp.path().join("work");
    let entry = HOSTILE.iter().find(|e| e.name == "coarse_spacing").unwrap();
    let root = autoseg_fixtures::write_broken(entry, &raw).unwrap();
    let layout = WorkLayout::new(work.join("coarse_spacing"));
    let held = WorkLock::acquire(&layout, "test").unwrap();
    let (dataset, work_arg) = (root.to_str().unwrap(), work.to_str().unwrap());
    for command in ["fingerprint", "plan", "preprocess"] {
        let out = capped(&[command, dataset, "--work", work_arg]);
        failed_cleanly(&out, command);
        let lines = error_lines(&out);
        let holder = format!("in use by process {} (autoseg test)", std::process::id());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(&holder), "{command}: {}", lines[0]);
        assert!(
            !layout.fingerprint().exists(),
            "{command} wrote while locked out"
        );
    }
    let train = |fold: &str| capped(&["train", dataset, "3d_fullres", fold, "--work", work_arg]);
    let out = train("0");
    failed_cleanly(&out, "train beside an exclusive writer");
    assert!(
        error_lines(&out)[0].contains("(autoseg test)"),
        "{:?}",
        error_lines(&out)
    );
    drop(held);
    assert!(capped(&["fingerprint", dataset, "--work", work_arg])
        .status
        .success());

    // `train` holds the folder shared and its fold exclusively, so the folds of a dataset
    // train at once: a run of the same fold is refused, another fold's run is not stopped
    // (it goes on to fail here for want of plans).
    let other = (
        WorkLock::acquire_shared(&layout, "train").unwrap(),
        WorkLock::acquire_fold(&layout, "3d_fullres", 0, "test").unwrap(),
    );
    let out = train("0");
    failed_cleanly(&out, "train of a fold in training");
    let line = &error_lines(&out)[0];
    let fold_dir = layout.fold("3d_fullres", 0);
    assert!(
        line.contains(&fold_dir.display().to_string()) && line.contains("(autoseg test)"),
        "{line}"
    );
    let out = train("1");
    failed_cleanly(&out, "train of another fold");
    let line = &error_lines(&out)[0];
    assert!(
        line.contains("plans.toml") && !line.contains("in use"),
        "{line}"
    );
    drop(other);
}

#[test]
fn a_broken_plans_edit_reads_as_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let entry = HOSTILE.iter().find(|e| e.name == "coarse_spacing").unwrap();
    let root = autoseg_fixtures::write_broken(entry, tmp.path()).unwrap();
    let (dataset, work_arg) = (root.to_str().unwrap(), work.to_str().unwrap());
    assert!(capped(&["plan", dataset, "--work", work_arg])
        .status
        .success());
    let plans = WorkLayout::new(work.join("coarse_spacing")).plans();
    let text = std::fs::read_to_string(&plans).unwrap();
    std::fs::write(
        &plans,
        text.replacen("patch_size = [", "patch_size = [[", 1),
    )
    .unwrap();
    let out = capped(&["preprocess", dataset, "--work", work_arg]);
    failed_cleanly(&out, "plans edit");
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    // The TOML error once, on one line, with its position.
    assert_eq!(
        lines[0].matches("TOML parse error").count(),
        1,
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("plans.toml") && lines[0].contains("at line"),
        "{}",
        lines[0]
    );
}
