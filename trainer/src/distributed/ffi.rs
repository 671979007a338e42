//! The C ABI of `csrc/c10d_shim.cpp` (libtorch's c10d `TCPStore`, `PrefixStore` and
//! `ProcessGroupGloo`) and safe owners of its handles: [`Store`] and [`Group`]. Every call
//! returns libtorch's message on failure; nothing here retries or interprets it.

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use tch::Tensor;

#[repr(C)]
struct AutosegStore {
    _private: [u8; 0],
}

#[repr(C)]
struct AutosegGroup {
    _private: [u8; 0],
}

/// torch-sys' tensor handle (`at::Tensor*`).
type CTensor = torch_sys::C_tensor;

extern "C" {
    fn autoseg_free_message(message: *mut c_char);
    fn autoseg_store_connect(
        host: *const c_char,
        port: u16,
        is_server: c_int,
        timeout_ms: i64,
        prefix: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut AutosegStore;
    fn autoseg_store_clone(store: *mut AutosegStore, err: *mut *mut c_char) -> *mut AutosegStore;
    fn autoseg_store_add(
        store: *mut AutosegStore,
        key: *const c_char,
        delta: i64,
        value: *mut i64,
        err: *mut *mut c_char,
    ) -> c_int;
    fn autoseg_store_free(store: *mut AutosegStore);
    fn autoseg_gloo_new(
        store: *mut AutosegStore,
        rank: c_int,
        world_size: c_int,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> *mut AutosegGroup;
    fn autoseg_group_allreduce_sum(
        group: *mut AutosegGroup,
        tensor: *mut CTensor,
        err: *mut *mut c_char,
    ) -> c_int;
    fn autoseg_group_broadcast(
        group: *mut AutosegGroup,
        tensor: *mut CTensor,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn autoseg_group_barrier(group: *mut AutosegGroup, err: *mut *mut c_char) -> c_int;
    fn autoseg_group_free(group: *mut AutosegGroup);
}

/// Takes ownership of a message the shim allocated.
fn take_message(err: *mut c_char) -> String {
    if err.is_null() {
        return "libtorch's c10d failed without a message".to_string();
    }
    // SAFETY: the shim hands out NUL-terminated strings from strdup, freed once here.
    let text = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: allocated by the shim's strdup, not freed before.
    unsafe { autoseg_free_message(err) };
    text.trim().to_string()
}

/// Runs a shim call returning a status code (0: success).
fn status(call: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<(), String> {
    let mut err: *mut c_char = std::ptr::null_mut();
    match call(&mut err) {
        0 => Ok(()),
        _ => Err(take_message(err)),
    }
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} holds a NUL byte"))
}

fn millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

/// A client of a c10d `TCPStore` (and its server, in the process that hosts it), under a key
/// prefix.
pub(super) struct Store(NonNull<AutosegStore>);

// SAFETY: c10d's TCPStore client serialises its own operations (a lock per client); a handle is
// used by one thread at a time here (`&mut self` where it matters is not needed).
unsafe impl Send for Store {}
// SAFETY: as above.
unsafe impl Sync for Store {}

impl Store {
    /// Connects to `host:port` (hosting the store there when `is_server`), retrying until
    /// `timeout`.
    pub fn connect(
        host: &str,
        port: u16,
        is_server: bool,
        timeout: Duration,
        prefix: &str,
    ) -> Result<Store, String> {
        let host = c_string(host)?;
        let prefix = c_string(prefix)?;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid C strings for the call's duration; err is an out pointer.
        let handle = unsafe {
            autoseg_store_connect(
                host.as_ptr(),
                port,
                c_int::from(is_server),
                millis(timeout),
                prefix.as_ptr(),
                &mut err,
            )
        };
        NonNull::new(handle)
            .map(Store)
            .ok_or_else(|| take_message(err))
    }

    /// A second connection to the same store, for another thread.
    pub fn try_clone(&self) -> Result<Store, String> {
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: self.0 is a live handle.
        let handle = unsafe { autoseg_store_clone(self.0.as_ptr(), &mut err) };
        NonNull::new(handle)
            .map(Store)
            .ok_or_else(|| take_message(err))
    }

    /// Adds `delta` to the counter `key` and returns its new value (`delta` 0 reads it).
    pub fn add(&self, key: &str, delta: i64) -> Result<i64, String> {
        let key = c_string(key)?;
        let mut value = 0_i64;
        // SAFETY: live handle, valid C string, out pointers valid for the call.
        status(|err| unsafe {
            autoseg_store_add(self.0.as_ptr(), key.as_ptr(), delta, &mut value, err)
        })?;
        Ok(value)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and freed once.
        unsafe { autoseg_store_free(self.0.as_ptr()) }
    }
}

/// A c10d Gloo process group.
pub(super) struct Group(NonNull<AutosegGroup>);

// SAFETY: collectives are issued from one thread at a time (the training loop); the group's own
// worker threads are libtorch's.
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

impl Group {
    /// Joins the group of `world_size` ranks as `rank`, meeting the others through `store`
    /// (waits for all of them, up to `timeout`).
    pub fn gloo(
        store: &Store,
        rank: usize,
        world_size: usize,
        timeout: Duration,
    ) -> Result<Group, String> {
        let rank = c_int::try_from(rank).map_err(|_| format!("rank {rank} is too large"))?;
        let world = c_int::try_from(world_size)
            .map_err(|_| format!("world size {world_size} is too large"))?;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: live store handle; err is an out pointer.
        let handle =
            unsafe { autoseg_gloo_new(store.0.as_ptr(), rank, world, millis(timeout), &mut err) };
        NonNull::new(handle)
            .map(Group)
            .ok_or_else(|| take_message(err))
    }

    /// Sums `tensor` over the ranks in place.
    pub fn all_reduce_sum(&self, tensor: &mut Tensor) -> Result<(), String> {
        // SAFETY: live handles; the tensor outlives the (blocking) call.
        status(|err| unsafe {
            autoseg_group_allreduce_sum(self.0.as_ptr(), tensor.as_mut_ptr(), err)
        })
    }

    /// Copies rank `root`'s `tensor` into every rank's, in place.
    pub fn broadcast(&self, tensor: &mut Tensor, root: usize) -> Result<(), String> {
        let root = c_int::try_from(root).map_err(|_| format!("rank {root} is too large"))?;
        // SAFETY: live handles; the tensor outlives the (blocking) call.
        status(|err| unsafe {
            autoseg_group_broadcast(self.0.as_ptr(), tensor.as_mut_ptr(), root, err)
        })
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<(), String> {
        // SAFETY: live handle.
        status(|err| unsafe { autoseg_group_barrier(self.0.as_ptr(), err) })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and freed once.
        unsafe { autoseg_group_free(self.0.as_ptr()) }
    }
}
