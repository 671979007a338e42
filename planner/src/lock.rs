//! One writer per work folder: every command that writes into `<work>/<dataset>/` holds an
//! advisory lock on its `.autoseg.lock` for as long as it runs. A second writer does not wait:
//! it stops at once with an error naming the process that holds the folder. The operating
//! system releases the lock when its process ends, however it ends (`kill -9` included), so a
//! stale lock cannot block the next run.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use crate::{PlanError, WorkLayout};

/// The held lock of a work folder; released on drop.
#[derive(Debug)]
pub struct WorkLock {
    file: File,
    path: PathBuf,
}

impl WorkLock {
    /// Takes the lock of `layout`'s folder (creating the folder) for `command`, whose name and
    /// process id are written into the lock file for a second writer's error message.
    ///
    /// # Errors
    /// [`PlanError::InUse`] when another process holds it; [`PlanError::Io`] when the folder or
    /// the lock file cannot be created or locked.
    pub fn acquire(layout: &WorkLayout, command: &str) -> Result<WorkLock, PlanError> {
        let path = layout.lock_file();
        let io = |action| {
            let path = path.clone();
            move |source| PlanError::Io {
                path,
                action,
                source,
            }
        };
        fs::create_dir_all(layout.root()).map_err(io("create the folder of"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    text => text.to_string(),
                };
                return Err(PlanError::InUse {
                    folder: layout.root().to_path_buf(),
                    holder,
                });
            }
            Err(fs::TryLockError::Error(source)) => return Err(io("lock")(source)),
        }
        // Who holds it, for a second writer's message; best effort: on a full disk the lock
        // still holds and the run's first real write reports the disk.
        let holder = format!("process {} (autoseg {command})", std::process::id());
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|()| file.flush());
        Ok(WorkLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for WorkLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
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
}
