//! `plan-and-train --parallel-folds DEVICES`: the folds of every chosen configuration train at
//! the same time, one `autoseg train` process of this very binary per slot (each listed device
//! is a slot; a device listed twice is two), each with its share of `--threads` and the
//! training flags plan-and-train was given.
//!
//! Order of work and locks:
//! 1. Under the work folder's exclusive lock (plan-and-train took it to verify and plan), the
//!    caches every chosen configuration needs ([`Plans::caches_for_training`]) are brought up
//!    to date here, once, so that the folds find them current instead of each writing them.
//! 2. The exclusive lock is let go and the folder's lock taken shared, as every `train` holds it
//!    (each also locks its own fold exclusively): exclusive writers (`plan`, `preprocess`,
//!    `find-best`, another plan-and-train) stay out while the folds train. A writer that takes
//!    the folder in the instant between is named by the refusal of the shared lock.
//! 3. Each free slot starts the next fold, in the plan's training order, whose configuration
//!    may start: one whose `previous_stage` trains in this run waits until every fold of that
//!    stage is done, since their final validations write its inputs. A fold with a checkpoint
//!    goes on from it (`train --resume`).
//! 4. After the last fold the exclusive lock is taken again for find-best.
//!
//! Faults: a fold that fails stops new folds from starting; the running ones finish; then the
//! command fails naming every failed fold and its output (`WorkLayout::train_output`).
//! SIGINT/SIGTERM (`crate::signals`) are forwarded once to every running fold, which stops after
//! its iteration with a checkpoint, and the command exits with the signal's code once they
//! have ended. The folds run in their own process group, so a Ctrl-C in the terminal reaches
//! them once, through this process. On Linux each gets SIGTERM when this process dies (a
//! second signal, `kill -9`), possibly more than once (the kernel signals again as each of
//! this process's threads ends), so they stop at once as on a second signal, with their last
//! checkpoint valid: none is left training on its own.

mod child;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context;
use autoseg_planner::{Plans, WorkLock};
use autoseg_trainer::splits::Fold;
use autoseg_trainer::train::{resume_checkpoint, StopRequest};

use crate::cli::{DeviceArg, PlanAndTrainArgs};
use crate::commands::plan_and_train::{stage, FoldsJob};
use crate::commands::preprocess::preprocess_and_print;
use child::{exit_reason, last_lines, signal_child, spawn_train, took, train_args, Passed};

/// How often the running folds are looked at (their exits, a stop request).
const POLL: Duration = Duration::from_millis(100);
/// Lines of a failed fold's output printed with its failure.
const TAIL_LINES: usize = 12;

/// How the folds ended when no fold failed.
pub enum Trained {
    /// Every fold trained and validated; the work folder's exclusive lock, taken again for
    /// find-best.
    Locked(WorkLock),
    /// A signal stopped the run; the exit code the signal asks for (130 or 143).
    Stopped(ExitCode),
}

/// Trains every fold of `job` in `autoseg train` processes, one per slot of `devices` at a
/// time (see the module docs); `lock` is the work folder's exclusive lock, let go while the
/// folds train.
///
/// # Errors
/// When a cache cannot be preprocessed, a fold's checkpoint cannot be read, the folder's lock
/// cannot be taken (shared, then exclusively again), or a fold failed (every failed fold named
/// with its output log).
pub fn train_in_parallel(
    job: &FoldsJob<'_>,
    devices: &[DeviceArg],
    lock: WorkLock,
    stop: &StopRequest,
) -> anyhow::Result<Trained> {
    stage("preprocess every configuration's data before the folds start");
    let caches = caches_to_prepare(job.plans, job.configurations)?;
    preprocess_and_print(job.dataset, job.plans, job.layout, &caches)?;
    let runs = fold_runs(job)?;
    if let Some(code) = stop.requested() {
        eprintln!(
            "autoseg: stopped on request before any fold started; run the same plan-and-train \
             again to go on"
        );
        return Ok(Trained::Stopped(ExitCode::from(code)));
    }
    let mut scheduler = Scheduler::new(job, devices, &runs)?;
    drop(lock);
    let shared = WorkLock::acquire_shared(job.layout, "plan-and-train")
        .context("cannot hold the work folder (shared with the folds' `train`) for the folds")?;
    stage(&format!(
        "train {} folds at the same time on {} slots: {}",
        runs.len(),
        devices.len(),
        scheduler.labels().join(", ")
    ));
    scheduler.run_all(stop);
    drop(shared);
    scheduler.outcome(job, stop)
}

/// One fold of one configuration, trained by one `autoseg train` process.
#[derive(Debug, Clone, PartialEq)]
struct FoldRun {
    configuration: String,
    fold: Fold,
    /// The previous stage trained in this run: every fold of it must be done first.
    after: Option<String>,
    /// Whether the fold has a checkpoint to go on from (`train --resume`).
    resume: bool,
}

impl FoldRun {
    /// `2d fold 3`.
    fn name(&self) -> String {
        format!("{} fold {}", self.configuration, self.fold)
    }
}

/// Where a fold is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done,
    /// Stopped by the forwarded signal, with a checkpoint.
    Stopped,
    Failed,
}

/// Every cache the configurations train and validate on, each once, in the order to prepare.
fn caches_to_prepare(plans: &Plans, configurations: &[String]) -> anyhow::Result<Vec<String>> {
    let mut caches: Vec<String> = Vec::new();
    for configuration in configurations {
        for cache in plans.caches_for_training(configuration)? {
            if !caches.contains(&cache) {
                caches.push(cache);
            }
        }
    }
    Ok(caches)
}

/// Every fold of every configuration, configurations in the plan's training order, each fold
/// once.
fn fold_runs(job: &FoldsJob<'_>) -> anyhow::Result<Vec<FoldRun>> {
    let mut runs = Vec::new();
    for configuration in job.configurations {
        let after = job
            .plans
            .resolve(configuration)?
            .previous_stage
            .filter(|previous| job.configurations.contains(previous));
        let mut seen = Vec::new();
        for &fold in &job.args.folds {
            if seen.contains(&fold) {
                continue;
            }
            seen.push(fold);
            let resume = resume_checkpoint(&job.layout.fold(configuration, fold))?.is_some();
            runs.push(FoldRun {
                configuration: configuration.clone(),
                fold,
                after: after.clone(),
                resume,
            });
        }
    }
    Ok(runs)
}

/// The first waiting fold whose previous stage (if it trains in this run) is done in every
/// fold.
fn next_ready(runs: &[FoldRun], states: &[State]) -> Option<usize> {
    let stage_done = |configuration: &str| {
        runs.iter()
            .zip(states)
            .all(|(run, state)| run.configuration != configuration || *state == State::Done)
    };
    (0..runs.len())
        .find(|&i| states[i] == State::Waiting && runs[i].after.as_deref().is_none_or(stage_done))
}

/// `--threads` (0: `cores`) split between `slots`, at least 1 each.
fn threads_per_slot(threads: usize, cores: usize, slots: usize) -> usize {
    let total = if threads == 0 { cores } else { threads };
    (total / slots.max(1)).max(1)
}

/// Each slot's name in the messages: its device, numbered where a device is listed more than
/// once (`cpu #1`, `cpu #2`).
fn slot_labels(devices: &[DeviceArg]) -> Vec<String> {
    devices
        .iter()
        .enumerate()
        .map(|(i, device)| {
            let count = |list: &[DeviceArg]| list.iter().filter(|d| *d == device).count();
            match count(devices) {
                1 => device.to_string(),
                _ => format!("{device} #{}", count(&devices[..=i])),
            }
        })
        .collect()
}

/// A fold's process.
struct Running {
    run: usize,
    child: Child,
    started: Instant,
    output: PathBuf,
}

/// A fold that failed: what, why, and where its output is.
struct Failure {
    name: String,
    reason: String,
    output: PathBuf,
}

/// The slots and the folds' states while they train.
struct Scheduler<'a> {
    args: &'a PlanAndTrainArgs,
    layout: &'a autoseg_planner::WorkLayout,
    runs: &'a [FoldRun],
    states: Vec<State>,
    devices: Vec<DeviceArg>,
    labels: Vec<String>,
    slots: Vec<Option<Running>>,
    passed: Passed,
    exe: PathBuf,
    failures: Vec<Failure>,
    /// The signal forwarded to the running folds, once.
    forwarded: bool,
}

impl<'a> Scheduler<'a> {
    fn new(
        job: &'a FoldsJob<'a>,
        devices: &[DeviceArg],
        runs: &'a [FoldRun],
    ) -> anyhow::Result<Scheduler<'a>> {
        anyhow::ensure!(
            !devices.is_empty(),
            "--parallel-folds needs at least one device"
        );
        let exe = std::env::current_exe()
            .context("cannot find this program's file to start `autoseg train` from")?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = threads_per_slot(job.threads, cores, devices.len());
        Ok(Scheduler {
            args: job.args,
            layout: job.layout,
            runs,
            states: vec![State::Waiting; runs.len()],
            devices: devices.to_vec(),
            labels: slot_labels(devices),
            slots: devices.iter().map(|_| None).collect(),
            passed: Passed::of_this_process(threads),
            exe,
            failures: Vec::new(),
            forwarded: false,
        })
    }

    fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Starts and reaps folds until none runs and none may start (all done, a fold failed, or
    /// a stop was asked for).
    fn run_all(&mut self, stop: &StopRequest) {
        loop {
            if self.failures.is_empty() && stop.requested().is_none() {
                self.start_ready();
            }
            if self.slots.iter().all(Option::is_none) {
                return;
            }
            if let Some(code) = stop.requested() {
                self.forward(code);
            }
            if !self.reap(stop) {
                std::thread::sleep(POLL);
            }
        }
    }

    /// Fills the free slots with the folds that may start.
    fn start_ready(&mut self) {
        while let Some(slot) = self.slots.iter().position(Option::is_none) {
            if !self.failures.is_empty() {
                return;
            }
            let Some(next) = next_ready(self.runs, &self.states) else {
                return;
            };
            self.start(slot, next);
        }
    }

    fn start(&mut self, slot: usize, index: usize) {
        let run = &self.runs[index];
        let output = self.layout.train_output(&run.configuration, run.fold);
        let args = train_args(self.args, run, self.devices[slot], &self.passed);
        match spawn_train(&self.exe, &args, &output) {
            Ok(child) => {
                println!(
                    "[{}] {}: started{} (output: {})",
                    self.labels[slot],
                    run.name(),
                    if run.resume { ", resuming" } else { "" },
                    output.display()
                );
                self.states[index] = State::Running;
                self.slots[slot] = Some(Running {
                    run: index,
                    child,
                    started: Instant::now(),
                    output,
                });
            }
            Err(err) => {
                let reason = format!("could not start: {}", crate::error_line(&err));
                eprintln!("[{}] {}: {reason}", self.labels[slot], run.name());
                self.states[index] = State::Failed;
                self.failures.push(Failure {
                    name: run.name(),
                    reason,
                    output,
                });
            }
        }
    }

    /// Sends the stop (SIGINT for 130, else SIGTERM) to every running fold, once.
    fn forward(&mut self, code: u8) {
        if self.forwarded {
            return;
        }
        self.forwarded = true;
        let signal = if code == 130 {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        let mut n = 0;
        for running in self.slots.iter().flatten() {
            signal_child(&running.child, signal);
            n += 1;
        }
        println!("stop asked for: passed on to the {n} running folds; each ends with a checkpoint");
    }

    /// Collects the folds that ended; false when none did.
    fn reap(&mut self, stop: &StopRequest) -> bool {
        let mut any = false;
        for slot in 0..self.slots.len() {
            let Some(running) = self.slots[slot].as_mut() else {
                continue;
            };
            let status = match running.child.try_wait() {
                Ok(None) => continue,
                Ok(Some(status)) => Ok(status),
                Err(err) => Err(format!("cannot wait for its process: {err}")),
            };
            let running = self.slots[slot]
                .take()
                .expect("the slot was just seen running");
            self.ended(slot, running, status, stop);
            any = true;
        }
        any
    }

    /// Records and prints how the fold of `running` ended.
    fn ended(
        &mut self,
        slot: usize,
        running: Running,
        status: Result<ExitStatus, String>,
        stop: &StopRequest,
    ) {
        let run = &self.runs[running.run];
        let label = &self.labels[slot];
        let took = took(running.started.elapsed());
        let stopped = stop.requested().is_some();
        let (state, reason) = match status {
            Ok(status) if status.success() => (State::Done, None),
            // 130/143: the fold's own stop; SIGINT/SIGTERM themselves: it had not yet set up
            // its handlers (nothing was trained to lose).
            Ok(status)
                if stopped
                    && (matches!(status.code(), Some(130 | 143))
                        || matches!(status.signal(), Some(libc::SIGINT | libc::SIGTERM))) =>
            {
                (State::Stopped, None)
            }
            Ok(status) => (State::Failed, Some(exit_reason(status))),
            Err(reason) => (State::Failed, Some(reason)),
        };
        self.states[running.run] = state;
        match (state, reason) {
            (State::Done, _) => println!("[{label}] {}: done in {took}", run.name()),
            (State::Stopped, _) => println!(
                "[{label}] {}: stopped after {took} (the next run goes on from its checkpoint)",
                run.name()
            ),
            (_, reason) => {
                let reason = reason.unwrap_or_default();
                eprintln!(
                    "[{label}] {}: failed after {took} ({reason}); its output, {}, ends with:",
                    run.name(),
                    running.output.display()
                );
                for line in last_lines(&running.output, TAIL_LINES) {
                    eprintln!("    | {line}");
                }
                self.failures.push(Failure {
                    name: run.name(),
                    reason,
                    output: running.output,
                });
            }
        }
    }

    /// The end of the run, once no fold runs: an error naming every failed fold, the stop's
    /// exit code, or the exclusive lock again for find-best.
    fn outcome(&self, job: &FoldsJob<'_>, stop: &StopRequest) -> anyhow::Result<Trained> {
        let count = |s: State| self.states.iter().filter(|x| **x == s).count();
        let not_started = count(State::Waiting);
        if !self.failures.is_empty() {
            let failed: Vec<String> = self
                .failures
                .iter()
                .map(|f| format!("{} ({}; output: {})", f.name, f.reason, f.output.display()))
                .collect();
            anyhow::bail!(
                "{} of {} folds failed: {}; trained: {}, not started: {not_started}; fix the \
                 cause and run the same plan-and-train again (trained folds are kept, the \
                 others go on from their checkpoints)",
                failed.len(),
                self.runs.len(),
                failed.join(", "),
                count(State::Done),
            );
        }
        if count(State::Stopped) + not_started > 0 {
            let code = stop.requested().unwrap_or(1);
            eprintln!(
                "autoseg: stopped on request (folds stopped: {}, done: {}, \
                 not started: {not_started}); run the same plan-and-train again to go on",
                count(State::Stopped),
                count(State::Done)
            );
            return Ok(Trained::Stopped(ExitCode::from(code)));
        }
        let lock = WorkLock::acquire(job.layout, "plan-and-train").context(
            "every fold trained, but the work folder could not be taken back for find-best; \
             run `autoseg find-best` once it is free",
        )?;
        Ok(Trained::Locked(lock))
    }
}

/// A panic or an early return while folds run must not leave them training: each gets
/// SIGTERM (a graceful stop with a checkpoint) and is waited for.
impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        for running in self.slots.iter_mut().flatten() {
            signal_child(&running.child, libc::SIGTERM);
            let _ = running.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(configuration: &str, fold: u8, after: Option<&str>) -> FoldRun {
        FoldRun {
            configuration: configuration.into(),
            fold: Fold::Index(fold),
            after: after.map(str::to_string),
            resume: false,
        }
    }

    /// A cascade's folds wait for every fold of their previous stage; a configuration of its
    /// own meanwhile takes the free slots.
    #[test]
    fn a_cascade_stage_waits_for_every_fold_of_its_previous_stage() {
        use State::*;
        let runs = [
            run("2d", 0, None),
            run("3d_lowres", 0, None),
            run("3d_lowres", 1, None),
            run("3d_cascade_fullres", 0, Some("3d_lowres")),
            run("3d_cascade_fullres", 1, Some("3d_lowres")),
        ];
        assert_eq!(next_ready(&runs, &[Waiting; 5]), Some(0));
        let states = [Running, Running, Waiting, Waiting, Waiting];
        assert_eq!(next_ready(&runs, &states), Some(2));
        let states = [Running, Done, Running, Waiting, Waiting];
        assert_eq!(next_ready(&runs, &states), None);
        let states = [Running, Done, Failed, Waiting, Waiting];
        assert_eq!(next_ready(&runs, &states), None);
        let states = [Running, Done, Done, Waiting, Waiting];
        assert_eq!(next_ready(&runs, &states), Some(3));
        let states = [Done, Done, Done, Running, Waiting];
        assert_eq!(next_ready(&runs, &states), Some(4));
        assert_eq!(next_ready(&runs, &[Done, Done, Done, Done, Running]), None);
    }

    #[test]
    fn threads_are_split_between_the_slots_at_least_one_each() {
        assert_eq!(threads_per_slot(0, 16, 2), 8);
        assert_eq!(threads_per_slot(6, 16, 4), 1);
        assert_eq!(threads_per_slot(9, 16, 2), 4);
        assert_eq!(threads_per_slot(0, 2, 3), 1);
        assert_eq!(threads_per_slot(1, 1, 2), 1);
    }

    #[test]
    fn a_device_listed_twice_gets_numbered_slots() {
        let labels = slot_labels(&[DeviceArg::Cpu, DeviceArg::Cuda(0), DeviceArg::Cpu]);
        assert_eq!(labels, ["cpu #1", "cuda:0", "cpu #2"]);
        assert_eq!(slot_labels(&[DeviceArg::Cuda(1)]), ["cuda:1"]);
    }
}
