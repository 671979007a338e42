//! Case discovery in `imagesTr`/`imagesTs`, exactly as nnU-Net does it.
//!
//! nnU-Net: `utilities/utils.py` (`get_identifiers_from_splitted_dataset_folder`,
//! `create_lists_from_splitted_dataset_folder`, `get_filenames_of_train_images_and_targets`).
//! Case ids are the unique names (minus `_XXXX{file_ending}`) of the files with the ending,
//! sorted; a case's channel files match `^{case}_\d\d\d\d{ending}$`, sorted by name.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{Case, CaseEntry, CaseId};

/// What a folder of images holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Discovered {
    /// Cases, sorted by id, each with its channel files sorted by name.
    pub cases: Vec<Case>,
    /// Files with the ending whose name is not `{CASE}_{XXXX}{ending}` (nnU-Net would turn each
    /// into a bogus case id; autoseg reports them instead).
    pub misnamed: Vec<PathBuf>,
}

/// Names of the regular files in `dir` that end with `ending`, sorted (nnU-Net: `subfiles`).
/// Names that are not UTF-8 are returned in `misnamed`.
pub(crate) fn files_with_ending(
    dir: &Path,
    ending: &str,
) -> io::Result<(Vec<String>, Vec<PathBuf>)> {
    let mut names = Vec::new();
    let mut misnamed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.path().is_file() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) if name.ends_with(ending) => names.push(name),
            Ok(_) => {}
            Err(_) => misnamed.push(entry.path()),
        }
    }
    names.sort();
    misnamed.sort();
    Ok((names, misnamed))
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

/// Discovers the cases of an image folder. `label_dir` gives each case's label path
/// `{label_dir}/{case}{ending}`; with `labels_must_exist == false` only existing label files are
/// kept (test cases), otherwise the expected path is always set (training cases).
pub(crate) fn discover(
    image_dir: &Path,
    label_dir: &Path,
    ending: &str,
    labels_must_exist: bool,
) -> io::Result<Discovered> {
    let (names, mut misnamed) = files_with_ending(image_dir, ending)?;
    // Names are sorted, so each case's channel files arrive in name order.
    let mut by_case: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    for name in &names {
        match split_channel_name(name, ending) {
            Some((case, _)) => by_case.entry(case).or_default().push(image_dir.join(name)),
            None => misnamed.push(image_dir.join(name)),
        }
    }
    let cases = by_case
        .into_iter()
        .map(|(id, images)| {
            let label = label_dir.join(format!("{id}{ending}"));
            let label = (labels_must_exist || label.is_file()).then_some(label);
            Case {
                id: id.to_string(),
                images,
                label,
            }
        })
        .collect();
    misnamed.sort();
    Ok(Discovered { cases, misnamed })
}

/// The cases of a folder of `{CASE}_{XXXX}{ending}` images without labels (e.g. `imagesTs`, or
/// the input of `predict`): cases sorted by id, channels by name, as nnU-Net's
/// `create_lists_from_splitted_dataset_folder`; plus the files with the ending whose names do
/// not follow the pattern.
///
/// # Errors
/// The folder cannot be listed.
pub fn discover_image_cases(
    image_dir: &Path,
    ending: &str,
) -> io::Result<(Vec<Case>, Vec<PathBuf>)> {
    let found = discover(image_dir, image_dir, ending, false)?;
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
}
