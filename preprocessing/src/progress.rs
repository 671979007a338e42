//! How long-running library work reports progress without printing.

/// Receives progress of a long operation. The binary renders it (indicatif); tests pass `&()`.
///
/// Call order: `start(what, total)`, then `advance(n)` any number of times, then `finish()`,
/// also when the operation fails.
pub trait Progress: Sync {
    /// A new operation named `what` with `total` units of work begins.
    fn start(&self, what: &str, total: u64);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The operation ended (successfully or not).
    fn finish(&self);
}

/// No progress reporting.
impl Progress for () {
    fn start(&self, _what: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
