//! A request to stop training cleanly, made from outside the loop (the binary's signal
//! handlers): the loop finishes the iteration it is in, writes `checkpoint_latest` and returns
//! [`super::TrainError::Stopped`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared between the training loop and whoever may ask it to stop. Holds 0 until a stop is
/// asked for, then the exit code the process should end with (130 for SIGINT, 143 for
/// SIGTERM).
#[derive(Clone, Debug, Default)]
pub struct StopRequest(Arc<AtomicUsize>);

impl StopRequest {
    /// No stop asked for yet.
    pub fn new() -> StopRequest {
        StopRequest::default()
    }

    /// The flag itself, for a signal handler to store the exit code into.
    pub fn flag(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.0)
    }

    /// Asks the loop to stop; `exit_code` (non-zero) is what the process should exit with.
    pub fn request(&self, exit_code: u8) {
        self.0
            .store(usize::from(exit_code.max(1)), Ordering::SeqCst);
    }

    /// The exit code of the stop asked for, if any.
    pub fn requested(&self) -> Option<u8> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            code => Some(u8::try_from(code).unwrap_or(1)),
        }
    }
}

/// Two requests are equal when they are the same shared flag.
impl PartialEq for StopRequest {
    fn eq(&self, other: &StopRequest) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_through_every_clone() {
        let stop = StopRequest::new();
        let seen = stop.clone();
        assert_eq!(seen.requested(), None);
        stop.flag().store(143, Ordering::SeqCst);
        assert_eq!(seen.requested(), Some(143));
        assert_eq!(stop, seen);
        assert_ne!(stop, StopRequest::new());
    }
}
