//! SIGINT (Ctrl-C) and SIGTERM (Slurm's `scancel`, `kill`) during `train` and `plan-and-train`:
//! the first asks the training loop to stop after its current iteration (it writes
//! `checkpoint_latest`, and the command exits 130 or 143 saying how to resume); a second one
//! exits at once with that code. Checkpoints are written atomically, so the last one stays
//! valid either way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use autoseg_trainer::train::StopRequest;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The exit code of a stop by `signal`: 128 + its number, as a shell reports it.
fn exit_code(signal: i32) -> u8 {
    match signal {
        SIGINT => 130,
        _ => 143,
    }
}

/// Handles SIGINT and SIGTERM from now on for the rest of the process (see the module docs);
/// returns the request the training loop watches.
///
/// # Errors
/// When the handlers cannot be installed.
pub fn stop_on_signals() -> anyhow::Result<StopRequest> {
    let stop = StopRequest::new();
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).context("cannot install the SIGINT/SIGTERM handlers")?;
    let requested = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("autoseg-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let code = exit_code(signal);
                if requested.swap(true, Ordering::SeqCst) {
                    eprintln!(
                        "\nautoseg: second signal: stopping now (the last checkpoint stays valid)"
                    );
                    // `_exit`: no atexit handlers, which would tear libtorch down under the
                    // threads still running in it.
                    signal_hook::low_level::exit(i32::from(code));
                }
                flag.request(code);
                eprintln!(
                    "\nautoseg: stopping: training ends after its current iteration with a \
                     checkpoint (send the signal again to stop at once)"
                );
            }
        })
        .context("cannot start the signal thread")?;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(exit_code(SIGINT), 130);
        assert_eq!(exit_code(SIGTERM), 143);
    }
}
