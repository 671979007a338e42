//! A ceiling on single allocations, for code that trusts the lengths a file declares: dicom-rs
//! reserves each value's declared length before it reads the value. The DICOM pre-scan refuses
//! every length it cannot place, and this is the net under it: while the DICOM reader parses a
//! file, no single allocation on that thread may pass the file's size (plus a floor for
//! buffers), so a declared length the scan did not see fails as dicom-rs' own "cannot
//! allocate" error instead of reserving gigabytes.
//!
//! It takes effect where [`CappedAllocator`] is the global allocator: the `autoseg` binary, the
//! fuzz targets and this crate's unit tests install it; elsewhere [`with_allocation_cap`] runs
//! its closure uncapped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// The largest single allocation this thread may make now.
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Whether an allocation of `size` bytes passes this thread's cap (never during thread
/// teardown, when the cap is gone).
fn over_cap(size: usize) -> bool {
    CAP.try_with(|cap| size > cap.get()).unwrap_or(false)
}

/// The system allocator, except that a single allocation above the calling thread's cap (set by
/// [`with_allocation_cap`]) fails: fallible reservations (`try_reserve`) return an error,
/// infallible ones abort as on any out-of-memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct CappedAllocator;

// SAFETY: every call is forwarded unchanged to `System`, or fails with a null pointer, which
// `GlobalAlloc` allows for `alloc`, `alloc_zeroed` and `realloc` (the old block stays valid).
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if over_cap(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if over_cap(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if over_cap(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` with this thread's single allocations capped at `bytes` (or the cap already set, if
/// lower), restoring the previous cap afterwards, also when `f` panics. Set it only around code
/// that reserves large blocks fallibly, and high enough for its small infallible ones.
pub fn with_allocation_cap<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = CAP.try_with(|cap| cap.set(self.0));
        }
    }
    let previous = CAP.with(|cap| cap.replace(bytes.min(cap.get())));
    let _restore = Restore(previous);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_over_the_cap_fails_and_the_cap_is_restored() {
        let reserve = |n: usize| Vec::<u8>::new().try_reserve_exact(n).is_ok();
        assert!(with_allocation_cap(1 << 20, || reserve(1 << 10)));
        assert!(!with_allocation_cap(1 << 20, || reserve(64 << 20)));
        // Nested caps keep the lower one; the outer cap is back afterwards.
        assert!(!with_allocation_cap(1 << 20, || with_allocation_cap(
            1 << 30,
            || reserve(2 << 20)
        )));
        assert!(reserve(64 << 20));
    }
}
