//! `autoseg train --nproc N`: starts N local ranks of the same command, as torchrun's
//! `--standalone --nproc-per-node N` would, and watches them.
//!
//! Each rank is this binary with the same arguments and torchrun's variables (`MASTER_ADDR`
//! 127.0.0.1, a free `MASTER_PORT`, `RANK` = `LOCAL_RANK` = i, `WORLD_SIZE` =
//! `LOCAL_WORLD_SIZE` = N) plus [`CHILD_MARKER`], so the rank does not launch again. The ranks
//! run in a process group of their own: SIGINT/SIGTERM reach this launcher once, and it passes
//! the signal on to every rank once (each stops after its current iteration, rank 0 writing the
//! checkpoint). When a rank fails, the others stop by themselves (their next collective names
//! it); any still running after [`GRACE`] are terminated. The exit code is the first failed
//! rank's (1 for a rank killed by a signal), or the stop's.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Set in the environment of the ranks a launcher starts.
pub const CHILD_MARKER: &str = "AUTOSEG_LAUNCHED_RANK";

/// How long the other ranks get to end by themselves after one failed.
const GRACE: Duration = Duration::from_secs(60);

/// Whether this process is a rank a launcher started.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}

/// Starts `n` ranks of this command line and waits for them (see the module docs).
///
/// # Errors
/// When a rank cannot be started or the signal handlers cannot be installed.
pub fn run_ranks(n: u32) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the autoseg executable")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = free_port()?;
    let stop = crate::signals::stop_on_signals()?;
    let mut ranks = Vec::new();
    for rank in 0..n {
        let child = Command::new(&exe)
            .args(&args)
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env(CHILD_MARKER, "1")
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start rank {rank} ({})", exe.display()))?;
        ranks.push(Rank {
            rank,
            child,
            status: None,
        });
    }
    eprintln!("autoseg: started {n} ranks (c10d over 127.0.0.1:{port})");
    Ok(watch(&mut ranks, &stop))
}

/// One started rank.
struct Rank {
    rank: u32,
    child: Child,
    status: Option<ExitStatus>,
}

/// Waits for every rank, passing a stop on and ending stragglers after a failure.
fn watch(ranks: &mut [Rank], stop: &autoseg_trainer::train::StopRequest) -> ExitCode {
    let mut forwarded = false;
    let mut first_failure: Option<(u32, ExitStatus, Instant)> = None;
    loop {
        for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
            if let Ok(Some(status)) = r.child.try_wait() {
                r.status = Some(status);
                if !status.success() && stop.requested().is_none() {
                    eprintln!("autoseg: rank {} {}", r.rank, describe(status));
                    first_failure.get_or_insert((r.rank, status, Instant::now()));
                }
            }
        }
        if ranks.iter().all(|r| r.status.is_some()) {
            break;
        }
        if let Some(code) = stop.requested().filter(|_| !forwarded) {
            forwarded = true;
            let signal = if code == 130 {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            signal_running(ranks, signal);
        }
        if let Some((_, _, when)) = first_failure {
            if when.elapsed() > GRACE {
                eprintln!(
                    "autoseg: ranks still running {} s after the failure: terminating them",
                    GRACE.as_secs()
                );
                signal_running(ranks, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some((rank, status, _)) = first_failure {
        eprintln!(
            "autoseg: the data-parallel run failed: rank {rank} {}",
            describe(status)
        );
        return ExitCode::from(
            status
                .code()
                .map_or(1, |c| u8::try_from(c).unwrap_or(1).max(1)),
        );
    }
    if let Some(code) = stop.requested() {
        return ExitCode::from(code);
    }
    match ranks.iter().find_map(|r| r.status.filter(|s| !s.success())) {
        Some(status) => ExitCode::from(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1))),
        None => ExitCode::SUCCESS,
    }
}

/// Sends `signal` to every rank still running.
fn signal_running(ranks: &[Rank], signal: i32) {
    for r in ranks.iter().filter(|r| r.status.is_none()) {
        if let Ok(pid) = i32::try_from(r.child.id()) {
            // SAFETY: kill(2) on a child this process started and has not reaped.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// "exited with code 3" / "was killed by signal 9".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended".to_string(),
    }
}

/// A free TCP port on loopback (bound, then released for rank 0's store).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port on 127.0.0.1 for the ranks to meet")?;
    Ok(listener.local_addr()?.port())
}
