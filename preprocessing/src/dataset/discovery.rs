//! Case discovery in `imagesTr`/`imagesTs`, exactly as nnU-Net does it.
//!
//! nnU-Net: `utilities/utils.py` (`get_identifiers_from_splitted_dataset_folder`,
//! `create_lists_from_splitted_dataset_folder`, `get_filenames_of_train_images_and_targets`).
//! Case ids are the unique names (minus `_XXXX{file_ending}`) of the files with the ending,
//! sorted; a case's channel files match `^{case}_\d\d\d\d{ending}$`, sorted by name.
//!
//! autoseg's addition: a folder named `{case}_{XXXX}` (no ending) holding a DICOM series is a
//! channel too ([`crate::is_dicom_folder`]), so scans come straight from the scanner; the
//! case's label stays `{case}{ending}` in `labelsTr` (on the series' grid). A case's channels
//! are sorted by their index.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{Case, CaseEntry, CaseId, NotAFile};

/// What a folder of images holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Discovered {
    /// Cases, sorted by id, each with its channel files sorted by name.
    pub cases: Vec<Case>,
    /// Files with the ending whose name is not `{CASE}_{XXXX}{ending}` (nnU-Net would turn each
    /// into a bogus case id; autoseg reports them instead).
    pub misnamed: Vec<PathBuf>,
    /// Entries with the ending that are not regular files (and test-case label paths that hold
    /// something else than a file), sorted by path: nnU-Net skips them silently, autoseg names
    /// them.
    pub skipped: Vec<Skipped>,
}

/// An entry discovery skipped because it is not a regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skipped {
    /// The entry.
    pub path: PathBuf,
    /// What it is instead.
    pub reason: NotAFile,
}

/// Logs one warning per skipped entry (the commands other than `verify`, which reports them).
pub(crate) fn warn_skipped(skipped: &[Skipped]) {
    for Skipped { path, reason } in skipped {
        tracing::warn!(
            "{}: skipped: it {reason} (nnU-Net skips it too)",
            path.display()
        );
    }
}

/// `errno` for "too many levels of symbolic links" (`ELOOP`): 40 on Linux, 62 on macOS and
/// FreeBSD. `io::ErrorKind::FilesystemLoop` is not stable on Rust 1.95, and libc is not worth a
/// dependency for one constant.
const ELOOP: i32 = if cfg!(any(target_os = "macos", target_os = "freebsd")) {
    62
} else {
    40
};

/// `Ok` when `path` is (or links to) a regular file, otherwise what is there instead. Follows
/// symlinks, as nnU-Net's `os.path.isfile` does.
pub(crate) fn regular_file(path: &Path) -> Result<(), NotAFile> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_dir() => Err(NotAFile::Directory),
        Ok(_) => Err(NotAFile::NotRegularFile),
        Err(err) if err.raw_os_error() == Some(ELOOP) => Err(NotAFile::SymlinkLoop),
        // The link itself exists when its target does not.
        Err(err) if err.kind() == io::ErrorKind::NotFound => match std::fs::read_link(path) {
            Ok(target) => Err(NotAFile::DanglingSymlink { target }),
            Err(_) => Err(NotAFile::Missing),
        },
        Err(err) => Err(NotAFile::Unreadable {
            reason: err.to_string(),
        }),
    }
}

/// The size and modification time that stand for a case file's content in the stamps that
/// notice stale fingerprints and cache files: a file's own; for a DICOM series folder the sum
/// of its files' sizes and the latest time of the folder and its files (a slice rewritten,
/// added or removed changes one of them).
///
/// # Errors
/// The metadata of `path` (or of a file in the folder) cannot be read.
pub(crate) fn content_stamp(path: &Path) -> io::Result<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path)?;
    let mut stamp = (meta.len(), meta.modified()?);
    if meta.is_dir() {
        stamp.0 = 0;
        for entry in std::fs::read_dir(path)? {
            let meta = std::fs::metadata(entry?.path())?;
            if meta.is_file() {
                stamp.0 += meta.len();
                stamp.1 = stamp.1.max(meta.modified()?);
            }
        }
    }
    Ok(stamp)
}

/// What [`files_with_ending`] finds in one folder.
struct Listing {
    /// Names of the regular files, sorted.
    names: Vec<String>,
    /// Names of the DICOM series folders named like a channel (`{CASE}_{XXXX}`), sorted.
    series: Vec<String>,
    /// Regular files whose names are not UTF-8 (whatever their ending), sorted.
    misnamed: Vec<PathBuf>,
    /// Entries that are not regular files, in listing order.
    skipped: Vec<Skipped>,
}

/// The regular files in `dir` that end with `ending` (nnU-Net: `subfiles`), and the entries
/// with the ending that nnU-Net skips because they are not regular files.
fn files_with_ending(dir: &Path, ending: &str) -> io::Result<Listing> {
    let mut listing = Listing {
        names: Vec::new(),
        series: Vec::new(),
        misnamed: Vec::new(),
        skipped: Vec::new(),
    };
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        let has_ending = name.as_encoded_bytes().ends_with(ending.as_bytes());
        match (regular_file(&path), name.to_str()) {
            (Ok(()), Some(name)) if has_ending => listing.names.push(name.to_string()),
            (Err(NotAFile::Directory), Some(name))
                if split_channel_name(name, "").is_some() && crate::is_dicom_folder(&path) =>
            {
                listing.series.push(name.to_string());
            }
            (Ok(()), None) => listing.misnamed.push(path),
            // Gone since the listing, or not named like a case file.
            (Err(NotAFile::Missing), _) | (Ok(()), Some(_)) => {}
            (Err(reason), _) if has_ending => listing.skipped.push(Skipped { path, reason }),
            (Err(_), _) => {}
        }
    }
    listing.names.sort();
    listing.series.sort();
    listing.misnamed.sort();
    Ok(listing)
}

/// The case id and channel index of `name`, if it is `{CASE}_{XXXX}{ending}` with a non-empty
/// case id and four ASCII digits.
pub fn split_channel_name<'a>(name: &'a str, ending: &str) -> Option<(&'a str, u16)> {
    let stem = name.strip_suffix(ending)?;
    let (case, digits) = stem.rsplit_once('_')?;
    let is_index = digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit());
    if case.is_empty() || !is_index {
        return None;
    }
    Some((case, digits.parse().ok()?))
}

/// The channel index of a case's image path: `{CASE}_{XXXX}{ending}`, or a DICOM series
/// folder's `{CASE}_{XXXX}`.
pub(crate) fn channel_index(path: &Path, ending: &str) -> Option<u16> {
    let name = path.file_name()?.to_str()?;
    split_channel_name(name, ending)
        .or_else(|| split_channel_name(name, ""))
        .map(|(_, index)| index)
}

/// Discovers the cases of an image folder. `label_dir` gives each case's label path
/// `{label_dir}/{case}{ending}`; with `labels_must_exist == false` only label paths that hold a
/// regular file are kept (test cases; other entries there are skipped), otherwise the expected
/// path is always set (training cases).
pub(crate) fn discover(
    image_dir: &Path,
    label_dir: &Path,
    ending: &str,
    labels_must_exist: bool,
) -> io::Result<Discovered> {
    let Listing {
        names,
        series,
        mut misnamed,
        mut skipped,
    } = files_with_ending(image_dir, ending)?;
    let mut by_case: BTreeMap<&str, Vec<(u16, PathBuf)>> = BTreeMap::new();
    for name in &names {
        match split_channel_name(name, ending) {
            Some((case, index)) => by_case
                .entry(case)
                .or_default()
                .push((index, image_dir.join(name))),
            None => misnamed.push(image_dir.join(name)),
        }
    }
    for name in &series {
        if let Some((case, index)) = split_channel_name(name, "") {
            let channels = by_case.entry(case).or_default();
            channels.push((index, image_dir.join(name)));
        }
    }
    let mut cases = Vec::with_capacity(by_case.len());
    for (id, mut channels) in by_case {
        // Stable: files of one index keep their name order (only a file and a series folder
        // can share an index, and verify reports that).
        channels.sort_by_key(|&(index, _)| index);
        let images = channels.into_iter().map(|(_, path)| path).collect();
        let path = label_dir.join(format!("{id}{ending}"));
        let label = if labels_must_exist {
            Some(path)
        } else {
            match regular_file(&path) {
                Ok(()) => Some(path),
                Err(NotAFile::Missing) => None,
                Err(reason) => {
                    skipped.push(Skipped { path, reason });
                    None
                }
            }
        };
        cases.push(Case {
            id: id.to_string(),
            images,
            label,
        });
    }
    misnamed.sort();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    // A test case's label path is in the image folder when both folders are one.
    skipped.dedup();
    Ok(Discovered {
        cases,
        misnamed,
        skipped,
    })
}

/// The cases of a folder of `{CASE}_{XXXX}{ending}` images without labels (e.g. `imagesTs`, or
/// the input of `predict`): cases sorted by id, channels by name, as nnU-Net's
/// `create_lists_from_splitted_dataset_folder`; plus the files with the ending whose names do
/// not follow the pattern. Entries with the ending that are not regular files are skipped, as
/// nnU-Net does, with a logged warning each.
///
/// # Errors
/// The folder cannot be listed.
pub fn discover_image_cases(
    image_dir: &Path,
    ending: &str,
) -> io::Result<(Vec<Case>, Vec<PathBuf>)> {
    let found = discover(image_dir, image_dir, ending, false)?;
    warn_skipped(&found.skipped);
    let cases = found
        .cases
        .into_iter()
        .map(|case| Case {
            label: None,
            ..case
        })
        .collect();
    Ok((cases, found.misnamed))
}

/// The cases of a `dataset` mapping, with paths resolved against the dataset folder.
pub(crate) fn cases_from_entries(root: &Path, entries: &[CaseEntry]) -> Vec<Case> {
    entries
        .iter()
        .map(|e| Case {
            id: CaseId::clone(&e.id),
            images: e.images.iter().map(|p| root.join(p)).collect(),
            label: Some(root.join(&e.label)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(dir.join(n), b"").expect("write test file");
        }
    }

    #[test]
    fn channel_name_rules() {
        assert_eq!(
            split_channel_name("la_003_0000.nii.gz", ".nii.gz"),
            Some(("la_003", 0))
        );
        assert_eq!(split_channel_name("a_0012.nii", ".nii"), Some(("a", 12)));
        assert_eq!(split_channel_name("a_012.nii.gz", ".nii.gz"), None);
        assert_eq!(split_channel_name("_0000.nii.gz", ".nii.gz"), None);
        assert_eq!(split_channel_name("a_00x0.nii.gz", ".nii.gz"), None);
        assert_eq!(split_channel_name("a_0000.nii.gz", ".nii"), None);
    }

    #[test]
    fn cases_are_sorted_and_channels_matched_exactly() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let img = tmp.path().join("imagesTr");
        let lab = tmp.path().join("labelsTr");
        std::fs::create_dir_all(&img).expect("mkdir");
        std::fs::create_dir_all(&lab).expect("mkdir");
        // "case_1" must not take "case_10"'s files, "B" sorts before "a" (code point order, as
        // np.unique), and "a_0000_0000" is a case of its own, as in nnU-Net.
        touch(
            &img,
            &[
                "case_10_0000.nii.gz",
                "case_1_0001.nii.gz",
                "case_1_0000.nii.gz",
                "B_0000.nii.gz",
                "a_0000.nii.gz",
                "a_0000_0000.nii.gz",
                "notes.txt",
                "bad.nii.gz",
            ],
        );
        touch(&lab, &["case_1.nii.gz"]);
        let d = discover(&img, &lab, ".nii.gz", true).expect("discover");
        let ids: Vec<&str> = d.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["B", "a", "a_0000", "case_1", "case_10"]);
        let case_1 = &d.cases[3];
        assert_eq!(
            case_1.images,
            [
                img.join("case_1_0000.nii.gz"),
                img.join("case_1_0001.nii.gz")
            ]
        );
        assert_eq!(d.cases[4].images, [img.join("case_10_0000.nii.gz")]);
        assert_eq!(d.misnamed, [img.join("bad.nii.gz")]);
        assert_eq!(d.cases[0].label, Some(lab.join("B.nii.gz")));

        let t = discover(&img, &lab, ".nii.gz", false).expect("discover");
        let with_label: Vec<&str> = t
            .cases
            .iter()
            .filter(|c| c.label.is_some())
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(with_label, ["case_1"]);
    }

    /// Makes `dir` unsearchable and says whether that locks this process out of `inside`
    /// (root reads anything, so the unreadable cases cannot be built as root).
    fn lock(dir: &Path, inside: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        std::fs::metadata(inside).is_err()
    }

    fn unlock(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }

    #[test]
    fn entries_that_are_not_regular_files_are_skipped_and_named() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().expect("tempdir");
        let img = tmp.path().join("imagesTr");
        let locked = tmp.path().join("locked");
        std::fs::create_dir_all(&img).expect("mkdir");
        std::fs::create_dir_all(&locked).expect("mkdir");
        touch(&img, &["case_0000.nii.gz"]);
        touch(&locked, &["x.nii.gz"]);
        std::fs::create_dir(img.join("dir_0000.nii.gz")).expect("mkdir");
        std::fs::create_dir(img.join("notes")).expect("mkdir");
        symlink("self_0000.nii.gz", img.join("self_0000.nii.gz")).expect("symlink");
        symlink("b_0000.nii.gz", img.join("a_0000.nii.gz")).expect("symlink");
        symlink("a_0000.nii.gz", img.join("b_0000.nii.gz")).expect("symlink");
        symlink("gone.nii.gz", img.join("dangling_0000.nii.gz")).expect("symlink");
        symlink(locked.join("x.nii.gz"), img.join("locked_0000.nii.gz")).expect("symlink");
        let _socket =
            std::os::unix::net::UnixListener::bind(img.join("sock_0000.nii.gz")).expect("bind");

        let locked_out = lock(&locked, &locked.join("x.nii.gz"));
        let found = discover(&img, &img, ".nii.gz", true);
        unlock(&locked);
        let found = found.expect("discover");

        let ids: Vec<&str> = found.cases.iter().map(|c| c.id.as_str()).collect();
        // Root can follow the link into the locked folder: then it is a case like any other.
        let expected_ids: &[&str] = if locked_out {
            &["case"]
        } else {
            &["case", "locked"]
        };
        assert_eq!(ids, expected_ids);
        assert_eq!(found.misnamed, Vec::<PathBuf>::new());
        let skipped: Vec<(&str, &NotAFile)> = found
            .skipped
            .iter()
            .map(|s| {
                let name = s.path.file_name().and_then(|n| n.to_str()).expect("utf-8");
                (name, &s.reason)
            })
            .collect();
        let dangling = NotAFile::DanglingSymlink {
            target: PathBuf::from("gone.nii.gz"),
        };
        let mut expected = vec![
            ("a_0000.nii.gz", &NotAFile::SymlinkLoop),
            ("b_0000.nii.gz", &NotAFile::SymlinkLoop),
            ("dangling_0000.nii.gz", &dangling),
            ("dir_0000.nii.gz", &NotAFile::Directory),
            ("self_0000.nii.gz", &NotAFile::SymlinkLoop),
            ("sock_0000.nii.gz", &NotAFile::NotRegularFile),
        ];
        let permission = NotAFile::Unreadable {
            reason: "Permission denied (os error 13)".into(),
        };
        if locked_out {
            expected.insert(4, ("locked_0000.nii.gz", &permission));
        }
        assert_eq!(skipped, expected);
        assert_eq!(dangling.to_string(), "is a dangling symlink to gone.nii.gz");
        assert_eq!(
            permission.to_string(),
            "cannot be read: Permission denied (os error 13)"
        );
    }

    /// A file that DICOM readers take for DICOM: 128 bytes of preamble, then `DICM`.
    fn dicom_file(path: &Path, extra: usize) {
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(b"DICM");
        bytes.resize(132 + extra, 7);
        std::fs::write(path, bytes).expect("write test file");
    }

    #[test]
    fn dicom_series_folders_named_like_channels_are_channels() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let img = tmp.path().join("imagesTr");
        for dir in [
            "ct_0000",
            "mr_0001",
            "notes_0000",
            "x_0000.nii.gz",
            "series",
        ] {
            std::fs::create_dir_all(img.join(dir)).expect("mkdir");
        }
        for dir in ["ct_0000", "mr_0001", "x_0000.nii.gz", "series"] {
            dicom_file(&img.join(dir).join("IM1"), 0);
        }
        touch(&img, &["mr_0000.nii.gz", "mr_0002.nii.gz"]);
        let found = discover(&img, &img, ".nii.gz", false).expect("discover");
        let cases: Vec<(&str, &[PathBuf])> = found
            .cases
            .iter()
            .map(|c| (c.id.as_str(), &c.images[..]))
            .collect();
        // A series folder sorts among a case's files by its channel index; a folder without
        // DICOM files, or not named `{CASE}_{XXXX}`, is no channel.
        let mr = [
            img.join("mr_0000.nii.gz"),
            img.join("mr_0001"),
            img.join("mr_0002.nii.gz"),
        ];
        assert_eq!(cases, [("ct", &[img.join("ct_0000")][..]), ("mr", &mr[..])]);
        assert_eq!(channel_index(&img.join("mr_0001"), ".nii.gz"), Some(1));
        assert_eq!(
            channel_index(&img.join("mr_0002.nii.gz"), ".nii.gz"),
            Some(2)
        );
        assert_eq!(channel_index(&img.join("series"), ".nii.gz"), None);
        // The folder named with the ending is still reported as a directory.
        assert_eq!(found.skipped.len(), 1);
        assert_eq!(found.skipped[0].path, img.join("x_0000.nii.gz"));
    }

    #[test]
    fn a_series_folders_stamp_changes_with_its_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let series = tmp.path().join("ct_0000");
        std::fs::create_dir_all(&series).expect("mkdir");
        dicom_file(&series.join("IM1"), 10);
        dicom_file(&series.join("IM2"), 20);
        let (size, _) = content_stamp(&series).expect("stamp");
        assert_eq!(size, 2 * 132 + 30);
        // A slice rewritten in place (same size) leaves the folder's own time alone; its
        // file's time moves the stamp.
        let before = content_stamp(&series).expect("stamp");
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        let file = std::fs::File::options()
            .write(true)
            .open(series.join("IM2"))
            .expect("open");
        file.set_modified(later).expect("set mtime");
        let after = content_stamp(&series).expect("stamp");
        assert_eq!(after.0, before.0);
        assert!(after.1 > before.1);
        let (file_size, _) = content_stamp(&series.join("IM1")).expect("stamp");
        assert_eq!(file_size, 142);
    }

    #[test]
    fn test_label_paths_that_are_not_files_are_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let img = tmp.path().join("imagesTs");
        let lab = tmp.path().join("labelsTs");
        std::fs::create_dir_all(&img).expect("mkdir");
        std::fs::create_dir_all(lab.join("t.nii.gz")).expect("mkdir");
        touch(&img, &["t_0000.nii.gz"]);
        let found = discover(&img, &lab, ".nii.gz", false).expect("discover");
        assert_eq!(found.cases[0].label, None);
        assert_eq!(
            found.skipped,
            [Skipped {
                path: lab.join("t.nii.gz"),
                reason: NotAFile::Directory
            }]
        );
    }
}
