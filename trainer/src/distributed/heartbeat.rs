//! Each rank's heartbeat in the rendezvous store, and who went silent.
//!
//! A thread of each rank adds 1 to `alive/<rank>` every [`HEARTBEAT`] and reads the other ranks'
//! counters, remembering when each last moved. When a collective fails, [`Heartbeat::culprit`]
//! waits [`SILENCE`] and names the ranks whose counter has not moved for that long; when the
//! store itself stops answering, its host is named instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ffi::Store;
use super::Culprit;

/// How often each rank beats.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long a counter must stand still for its rank to be called silent.
const SILENCE: Duration = Duration::from_millis(2500);

/// What the beating thread has seen.
#[derive(Debug)]
struct Seen {
    /// Per rank: its counter and when it last moved.
    last_moved: Vec<(i64, Instant)>,
    /// The store's message once it stopped answering.
    store_lost: Option<String>,
}

/// The beating thread of this rank.
pub(super) struct Heartbeat {
    rank: usize,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts beating as `rank` of `world_size` on `store` (a connection of its own).
    pub fn start(store: Store, rank: usize, world_size: usize) -> Heartbeat {
        let now = Instant::now();
        let seen = Arc::new(Mutex::new(Seen {
            last_moved: vec![(0, now); world_size],
            store_lost: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("autoseg-heartbeat-{rank}"))
                .spawn(move || beat(&store, rank, world_size, &seen, &stop))
                .ok()
        };
        Heartbeat {
            rank,
            seen,
            stop,
            thread,
        }
    }

    /// Who a failed collective is blamed on: waits until every counter has had [`SILENCE`] to
    /// move, then names the ranks whose counter stood still.
    pub fn culprit(&self, rank0_hosts_store: bool) -> Culprit {
        std::thread::sleep(SILENCE + HEARTBEAT);
        let Ok(seen) = self.seen.lock() else {
            return Culprit::Unknown;
        };
        if let Some(message) = &seen.store_lost {
            return Culprit::StoreHost {
                rank0: rank0_hosts_store,
                message: message.clone(),
            };
        }
        let now = Instant::now();
        let silent: Vec<usize> = seen
            .last_moved
            .iter()
            .enumerate()
            .filter(|&(r, &(_, moved))| r != self.rank && now.duration_since(moved) >= SILENCE)
            .map(|(r, _)| r)
            .collect();
        if silent.is_empty() {
            Culprit::Unknown
        } else {
            Culprit::Ranks(silent)
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn key(rank: usize) -> String {
    format!("alive/{rank}")
}

/// The thread's loop: beat, read the others, sleep, until stopped or the store is lost.
fn beat(store: &Store, rank: usize, world_size: usize, seen: &Mutex<Seen>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let round = (0..world_size)
            .map(|r| store.add(&key(r), i64::from(r == rank)))
            .collect::<Result<Vec<i64>, String>>();
        let Ok(mut seen) = seen.lock() else { return };
        match round {
            Ok(values) => {
                let now = Instant::now();
                for (last, value) in seen.last_moved.iter_mut().zip(values) {
                    if last.0 != value {
                        *last = (value, now);
                    }
                }
            }
            Err(message) => {
                seen.store_lost = Some(message);
                return;
            }
        }
        drop(seen);
        std::thread::sleep(HEARTBEAT);
    }
}
