//! One fold's `autoseg train` process for `plan-and-train --parallel-folds`: its arguments
//! (every training flag plan-and-train was given, its share of the threads), its start (output
//! appended to the fold's `train_output.log`, its own process group, ended with this process),
//! the signals sent to it, and the words for how it ended.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use tracing::level_filters::LevelFilter;

use super::FoldRun;
use crate::cli::{DeviceArg, PlanAndTrainArgs, TrainingArgs};

/// Bytes read from the end of an output log for its last lines.
const TAIL_BYTES: u64 = 16 * 1024;

/// The flags every fold's `train` gets besides its own: its share of the threads and what
/// this process was started with beyond plan-and-train's arguments.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Passed {
    threads: usize,
    /// `-v` count.
    verbose: u8,
    /// The memory ceiling in force, in GB (`--max-volume-gb`).
    max_volume_gb: String,
}

impl Passed {
    pub(super) fn of_this_process(threads: usize) -> Passed {
        let level = LevelFilter::current();
        let verbose = if level == LevelFilter::TRACE {
            2
        } else {
            u8::from(level == LevelFilter::DEBUG)
        };
        let ceiling = autoseg_preprocessing::limits::volume_ceiling();
        Passed {
            threads,
            verbose,
            max_volume_gb: (ceiling as f64 / 1e9).to_string(),
        }
    }
}

/// The arguments of `autoseg train` for `run` on `device`: the dataset and work folder, every
/// training flag plan-and-train was given, `--resume` when the fold has a checkpoint, and the
/// `passed` flags.
pub(super) fn train_args(
    args: &PlanAndTrainArgs,
    run: &FoldRun,
    device: DeviceArg,
    passed: &Passed,
) -> Vec<OsString> {
    // Every field named, so that a new training flag cannot be left out here unnoticed.
    let TrainingArgs {
        device: _,
        trainer,
        epochs,
        iters_per_epoch,
        patience,
    } = &args.training;
    let mut out: Vec<OsString> = vec![
        "train".into(),
        args.work.dataset.clone().into(),
        run.configuration.clone().into(),
        run.fold.to_string().into(),
        "--work".into(),
        args.work.work.clone().into(),
        "--device".into(),
        device.to_string().into(),
        "--threads".into(),
        passed.threads.to_string().into(),
        "--max-volume-gb".into(),
        passed.max_volume_gb.clone().into(),
    ];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            out.extend([name.into(), value.into()]);
        }
    };
    flag("--trainer", trainer.clone());
    flag("--epochs", epochs.map(|n| n.to_string()));
    flag("--iters-per-epoch", iters_per_epoch.map(|n| n.to_string()));
    flag("--patience", patience.map(|n| n.to_string()));
    if run.resume {
        out.push("--resume".into());
    }
    if passed.verbose > 0 {
        out.push(format!("-{}", "v".repeat(usize::from(passed.verbose))).into());
    }
    out
}

/// Starts `exe` with `args` (a `train` command line), its stdout and stderr appended to
/// `output` after a line with the command, in a process group of its own, and (on Linux) ended
/// with this process.
pub(super) fn spawn_train(exe: &Path, args: &[OsString], output: &Path) -> anyhow::Result<Child> {
    if let Some(folder) = output.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("{}: cannot create the fold folder", folder.display()))?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .with_context(|| format!("{}: cannot open for writing", output.display()))?;
    let command_line: Vec<String> = std::iter::once(exe.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    writeln!(log, "== {}", command_line.join(" "))
        .and_then(|()| log.flush())
        .with_context(|| format!("{}: cannot write", output.display()))?;
    let stdout = log
        .try_clone()
        .with_context(|| format!("{}: cannot share for stdout", output.display()))?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .process_group(0);
    end_with_this_process(&mut command);
    command
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))
}

/// Sends `signal` to `child`.
pub(super) fn signal_child(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions. `pid` is our child's and the child
    // has not been reaped (only the scheduler waits for it, and it drops reaped children), so
    // the id still names that process and no other.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Linux: the child gets SIGTERM (a graceful stop) when this process ends, however it ends.
#[cfg(target_os = "linux")]
fn end_with_this_process(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec; it calls only prctl(2) and
    // getppid(2), which are async-signal-safe, and allocates nothing (its errors are OS codes).
    unsafe {
        command.pre_exec(move || die_with_parent(parent));
    }
}

/// In a child before exec: asks for SIGTERM when the parent ends, and fails if `parent` has
/// already ended (the child then has another parent).
#[cfg(target_os = "linux")]
fn die_with_parent(parent: u32) -> std::io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    let set = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: getppid has no preconditions.
    if u32::try_from(unsafe { libc::getppid() }) != Ok(parent) {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Elsewhere the children's own process group is the only guard.
#[cfg(not(target_os = "linux"))]
fn end_with_this_process(_command: &mut Command) {}

/// `exit code 1`, or `killed by signal 9`.
pub(super) fn exit_reason(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// `12 s`, `7 min`, `2 h 05 min`.
pub(super) fn took(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {:02} min", secs / 3600, secs / 60 % 60),
    }
}

/// The last `n` non-empty lines of the file at `path` (of its last [`TAIL_BYTES`]); none when
/// it cannot be read.
pub(super) fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    if file
        .seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .is_err()
        || file.read_to_end(&mut bytes).is_err()
    {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        // A progress bar's redraws: keep what it showed last.
        .filter_map(|l| l.rsplit('\r').next())
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_trainer::splits::Fold;
    use clap::Parser;

    #[test]
    fn every_training_flag_reaches_the_folds_train() {
        let cli = crate::cli::Cli::try_parse_from([
            "autoseg",
            "plan-and-train",
            "data/Dataset001_X",
            "--work",
            "w",
            "-c",
            "2d",
            "--parallel-folds",
            "cpu,cuda:1",
            "--trainer",
            "nnUNetTrainer_250epochs",
            "--epochs",
            "3",
            "--iters-per-epoch",
            "4",
            "--patience",
            "5",
        ])
        .unwrap();
        let Some(crate::cli::Command::PlanAndTrain(args)) = cli.command else {
            panic!("parsed another command")
        };
        let passed = Passed {
            threads: 2,
            verbose: 2,
            max_volume_gb: "4.5".into(),
        };
        let mut fold = FoldRun {
            configuration: "2d".into(),
            fold: Fold::Index(3),
            after: None,
            resume: false,
        };
        let text = |fold: &FoldRun| {
            train_args(&args, fold, DeviceArg::Cuda(1), &passed)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            text(&fold),
            "train data/Dataset001_X 2d 3 --work w --device cuda:1 --threads 2 --max-volume-gb \
             4.5 --trainer nnUNetTrainer_250epochs --epochs 3 --iters-per-epoch 4 --patience 5 \
             -vv"
        );
        fold.resume = true;
        let line = text(&fold);
        assert!(line.ends_with("--patience 5 --resume -vv"), "{line}");
        // What `train` itself parses from these arguments.
        let argv = std::iter::once(OsString::from("autoseg")).chain(train_args(
            &args,
            &fold,
            DeviceArg::Cpu,
            &passed,
        ));
        let train = crate::cli::Cli::try_parse_from(argv).unwrap();
        assert_eq!(train.threads, Some(2));
        assert_eq!(
            (train.verbose, train.max_volume_gb),
            (2, Some(4_500_000_000))
        );
        let Some(crate::cli::Command::Train(t)) = train.command else {
            panic!("parsed another command")
        };
        assert_eq!((t.fold, t.resume, t.seed), (Fold::Index(3), true, 0));
        assert_eq!(t.training.device, Some(DeviceArg::Cpu));
        assert_eq!(t.training.epochs, Some(3));
    }

    #[test]
    fn failures_show_the_end_of_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train_output.log");
        let mut text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        text.push_str("bar 1/4\rbar 4/4\n\nautoseg: training failed\n");
        std::fs::write(&path, text).unwrap();
        let lines = last_lines(&path, 3);
        assert_eq!(lines, ["line 99", "bar 4/4", "autoseg: training failed"]);
        assert!(last_lines(&dir.path().join("missing"), 3).is_empty());
        assert_eq!(took(Duration::from_secs(12)), "12 s");
        assert_eq!(took(Duration::from_secs(12 * 60 + 5)), "12 min");
        assert_eq!(took(Duration::from_secs(7500)), "2 h 05 min");
        assert_eq!(exit_reason(ExitStatus::from_raw(9)), "killed by signal 9");
        assert_eq!(exit_reason(ExitStatus::from_raw(1 << 8)), "exit code 1");
    }
}
