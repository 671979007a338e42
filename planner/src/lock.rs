//! One writer per work folder: every command that writes into `<work>/<dataset>/` holds an
//! advisory lock on its `.autoseg.lock` for as long as it runs. A second writer does not wait:
//! it stops at once with an error naming the process that holds the folder. The operating
//! system releases the lock when its process ends, however it ends (`kill -9` included), so a
//! stale lock cannot block the next run.
//!
//! `train` writes only its fold (and brings shared caches up to date with atomic writes), so
//! the folds of one dataset train at the same time, as nnU-Net users run them (one per GPU or
//! cluster task): each holds the folder's lock shared, which keeps the exclusive writers
//! (plan, preprocess, find-best, ...) out, and its fold's own lock exclusively, which keeps a
//! second run of the same fold out.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{PlanError, WorkLayout};

/// The held lock of a work folder (or of one fold); released on drop.
#[derive(Debug)]
pub struct WorkLock {
    file: File,
    path: PathBuf,
    shared: bool,
    held: bool,
}

impl WorkLock {
    /// Takes the lock of `layout`'s folder (creating the folder) for `command`, whose name and
    /// process id are written into the lock file for a second writer's error message.
    ///
    /// # Errors
    /// [`PlanError::InUse`] when another process holds it; [`PlanError::Io`] when the folder or
    /// the lock file cannot be created or locked.
    pub fn acquire(layout: &WorkLayout, command: &str) -> Result<WorkLock, PlanError> {
        take(&layout.lock_file(), layout.root(), command, false)
    }

    /// Takes the folder's lock shared, for the runs that may write into it together (`train`
    /// of different folds): any number of them at once, no exclusive writer meanwhile.
    ///
    /// # Errors
    /// As [`WorkLock::acquire`], when an exclusive writer holds it.
    pub fn acquire_shared(layout: &WorkLayout, command: &str) -> Result<WorkLock, PlanError> {
        take(&layout.lock_file(), layout.root(), command, true)
    }

    /// Takes the lock of one fold of `configuration` exclusively: one run per fold.
    ///
    /// # Errors
    /// As [`WorkLock::acquire`], naming the fold's folder, when another run trains that fold.
    pub fn acquire_fold(
        layout: &WorkLayout,
        configuration: &str,
        fold: impl std::fmt::Display + Copy,
        command: &str,
    ) -> Result<WorkLock, PlanError> {
        take(
            &layout.fold_lock_file(configuration, fold),
            &layout.fold(configuration, fold),
            command,
            false,
        )
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False when the filesystem supports no locks and the run goes on unguarded (the caller
    /// should say so).
    pub fn is_held(&self) -> bool {
        self.held
    }
}

/// Locks `path` (`shared` or exclusively) for `command`; `folder` is what the error names.
fn take(path: &Path, folder: &Path, command: &str, shared: bool) -> Result<WorkLock, PlanError> {
    let io = |action| {
        let path = path.to_path_buf();
        move |source| PlanError::Io {
            path,
            action,
            source,
        }
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io("create the folder of"))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open"))?;
    let locked = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                // Shared holders leave the file empty (there may be several).
                "" => "another process (e.g. `autoseg train` of one or more folds)".to_string(),
                text => text.to_string(),
            };
            return Err(PlanError::InUse {
                folder: folder.to_path_buf(),
                holder,
            });
        }
        // A filesystem without locks (NFS without its lock service, Lustre mounted without
        // `flock`): run unguarded rather than not at all; the caller warns (`is_held`).
        Err(fs::TryLockError::Error(source)) if locks_unsupported(&source) => {
            return Ok(WorkLock {
                file,
                path: path.to_path_buf(),
                shared,
                held: false,
            })
        }
        Err(fs::TryLockError::Error(source)) => return Err(io("lock")(source)),
    }
    if !shared {
        // Who holds it, for a second writer's message; best effort: on a full disk the lock
        // still holds and the run's first real write reports the disk.
        let holder = format!("process {} (autoseg {command})", std::process::id());
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|()| file.flush());
    }
    Ok(WorkLock {
        file,
        path: path.to_path_buf(),
        shared,
        held: true,
    })
}

/// Whether a lock error says the filesystem has no locks at all: `ENOSYS`/`EOPNOTSUPP`
/// (std's `Unsupported`) or Linux's `ENOLCK` (no lock service), rather than a real fault.
fn locks_unsupported(error: &std::io::Error) -> bool {
    const ENOLCK: i32 = 37;
    error.kind() == std::io::ErrorKind::Unsupported
        || (cfg!(target_os = "linux") && error.raw_os_error() == Some(ENOLCK))
}

impl Drop for WorkLock {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        if !self.shared {
            let _ = self.file.set_len(0);
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_until_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let layout = WorkLayout::new(dir.path().join("Dataset001"));
        let first = WorkLock::acquire(&layout, "preprocess").unwrap();
        assert_eq!(first.path(), layout.lock_file());
        // A second open file description conflicts as a second process would.
        let err = WorkLock::acquire(&layout, "train").unwrap_err();
        let text = err.to_string();
        let expected = format!("process {} (autoseg preprocess)", std::process::id());
        assert!(
            matches!(&err, PlanError::InUse { holder, .. } if *holder == expected),
            "{text}"
        );
        assert!(
            text.contains("Dataset001") && text.contains(&expected),
            "{text}"
        );
        drop(first);
        let again = WorkLock::acquire(&layout, "train").unwrap();
        drop(again);
    }

    #[test]
    fn filesystems_without_locks_are_told_from_real_faults() {
        use std::io::{Error, ErrorKind};
        for errno in [38, 95, 37] {
            // ENOSYS, EOPNOTSUPP, ENOLCK
            assert!(
                locks_unsupported(&Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        assert!(locks_unsupported(&Error::from(ErrorKind::Unsupported)));
        for errno in [13, 5, 28] {
            // EACCES, EIO, ENOSPC
            assert!(
                !locks_unsupported(&Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let lock = WorkLock::acquire(&WorkLayout::new(dir.path().join("D")), "test").unwrap();
        assert!(lock.is_held());
    }

    /// The folds of one dataset train together; a second run of one fold, or an exclusive
    /// writer while any fold trains, is refused; and the other way round.
    #[test]
    fn folds_train_together_but_not_twice_and_not_beside_an_exclusive_writer() {
        let dir = tempfile::tempdir().unwrap();
        let layout = WorkLayout::new(dir.path().join("Dataset001"));
        let train = |fold: usize| {
            let shared = WorkLock::acquire_shared(&layout, "train")?;
            let own = WorkLock::acquire_fold(&layout, "2d", fold, "train")?;
            Ok::<_, PlanError>((shared, own))
        };
        let zero = train(0).unwrap();
        let one = train(1).unwrap();
        let err = train(0).unwrap_err().to_string();
        let expected = format!("process {} (autoseg train)", std::process::id());
        assert!(
            err.contains(&layout.fold("2d", 0).display().to_string()) && err.contains(&expected),
            "{err}"
        );
        let err = WorkLock::acquire(&layout, "preprocess")
            .unwrap_err()
            .to_string();
        assert!(err.contains("autoseg train` of one or more folds"), "{err}");
        drop((zero, one));
        let exclusive = WorkLock::acquire(&layout, "preprocess").unwrap();
        let err = train(2).unwrap_err().to_string();
        assert!(err.contains("(autoseg preprocess)"), "{err}");
        drop(exclusive);
        drop(train(2).unwrap());
        assert!(
            !layout.fold("2d", 0).exists(),
            "the lock stays outside the fold folder"
        );
    }
}
