//! Deterministic mutation testing: every fixture (header file and detached data file) with
//! bytes flipped, replaced, inserted (digits, to grow sizes), duplicated or cut, read a few
//! thousand times in all. Each read must return `Ok` or `Err`; a panic fails the test. Some
//! images that still read are written again, fresh and through their source, and read back.

use std::path::Path;

use super::super::{read_image, write_image};
use super::{data_files_of, expected, fixture_dir};
use crate::test_support::{mutate, Rng};

/// Mutants per fixture file.
const MUTANTS: usize = 250;
/// Every how many mutants one that reads is also written.
const WRITE_EVERY: usize = 4;

/// Reads a mutant; when it reads and `write` is set, writes it back through its source and
/// fresh, and reads again (writes are synced to disk, so only some mutants are written).
fn exercise(path: &Path, out: &Path, write: bool) -> bool {
    let Ok(image) = read_image(path) else {
        return false;
    };
    if !write {
        return true;
    }
    let name = path.file_name().unwrap();
    if write_image(&image, &out.join(name)).is_ok() {
        let _ = read_image(&out.join(name));
    }
    let mut fresh = image;
    fresh.forget_source();
    for ext in ["nrrd", "mha"] {
        let target = out.join(format!("fresh.{ext}"));
        write_image(&fresh, &target).unwrap();
        let back = read_image(&target).unwrap();
        assert_eq!(back.data, fresh.data, "{}", path.display());
    }
    true
}

/// A temporary folder, in memory where Linux offers one (`/dev/shm`): thousands of small
/// rewrites are slow on some disks.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let work = scratch_dir();
    let out = scratch_dir();
    let (mut n_read, mut n_ok) = (0, 0);
    for name in expected().keys() {
        let data_files = data_files_of(name);
        // Mutate the header, then each data file it names.
        let targets: Vec<&String> = std::iter::once(name).chain(&data_files).collect();
        for target in targets {
            for other in std::iter::once(name).chain(&data_files) {
                std::fs::copy(fixture_dir().join(other), work.path().join(other)).unwrap();
            }
            let original = std::fs::read(fixture_dir().join(target)).unwrap();
            for _ in 0..MUTANTS {
                std::fs::write(work.path().join(target), mutate(&original, &mut rng)).unwrap();
                let write = n_read % WRITE_EVERY == 0;
                n_ok += usize::from(exercise(&work.path().join(name), out.path(), write));
                n_read += 1;
            }
        }
    }
    assert!(n_read >= 3000, "only {n_read} mutants read");
    // Both outcomes are exercised: many mutants still read (comments, values), most do not.
    assert!(
        n_ok * 20 > n_read && n_ok * 2 < n_read,
        "{n_ok} of {n_read} mutants read"
    );
}
