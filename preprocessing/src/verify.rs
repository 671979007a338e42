//! `verify`: checks a raw dataset folder and reports every problem in one pass.
//!
//! nnU-Net: `experiment_planning/verify_dataset_integrity.py`, with its asserts and prints
//! turned into a [`Report`] that lists every fault with its case and file. Errors and warnings
//! are kept apart (origin/direction differences are warnings, as in nnU-Net). Cases are checked
//! in parallel; nothing here panics on what it reads.
//!
//! Beyond nnU-Net: unreadable files (truncated, corrupt, empty) are reported per file instead of
//! aborting; files in `imagesTr/` whose names are not `{CASE}_{XXXX}{ending}` are reported
//! (nnU-Net silently makes a bogus case of them); entries named like case files that are not
//! regular files (directories, symlink loops, dangling symlinks) are named, as warnings where
//! nnU-Net accepts the dataset anyway; channel files must be numbered `0000..n-1`;
//! infinite voxels are reported along with NaN. `imagesTs/` is not checked (nor is it by
//! nnU-Net).

mod fault;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use fault::Fault;

use crate::dataset::{
    channel_index, discover_listed, regular_file, split_channel_name, Case, CaseId, DatasetError,
    DatasetJson, NotAFile, Skipped,
};
use crate::{
    is_dicom_folder, read_dataset_json, read_image, read_label_map, Geometry, ImageError,
    ImageFormat,
};

/// One problem: the case and file it concerns (where it concerns one) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// The case, if the problem belongs to one.
    pub case: Option<CaseId>,
    /// The file at fault (or, for a missing file, where it should be).
    pub file: Option<PathBuf>,
    /// What is wrong and what to do.
    pub fault: Fault,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(case) = &self.case {
            write!(f, "case {case}: ")?;
        }
        write!(f, "{}", self.fault)
    }
}

/// Everything `verify` found. The dataset is usable when `errors` is empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Problems that make the dataset unusable.
    pub errors: Vec<Issue>,
    /// Problems worth a look that nnU-Net tolerates (geometry offsets, entries named like case
    /// files that are not regular files).
    pub warnings: Vec<Issue>,
}

impl Report {
    /// True when no error was found (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    fn error(&mut self, case: Option<&str>, file: Option<PathBuf>, fault: Fault) {
        self.errors.push(issue(case, file, fault));
    }

    fn warning(&mut self, case: Option<&str>, file: Option<PathBuf>, fault: Fault) {
        self.warnings.push(issue(case, file, fault));
    }

    fn append(&mut self, other: Report) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
}

fn issue(case: Option<&str>, file: Option<PathBuf>, fault: Fault) -> Issue {
    Issue {
        case: case.map(str::to_string),
        file,
        fault,
    }
}

/// Checks the dataset folder `dataset_dir` with `threads` worker threads (0: one per core) and
/// returns every problem found. Never fails: an unreadable dataset is a report full of errors.
///
/// nnU-Net: `verify_dataset_integrity`.
pub fn verify(dataset_dir: &Path, threads: usize) -> Report {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(|| verify_folder(dataset_dir)),
        // Without a pool of our own, rayon's global pool does the work.
        Err(_) => verify_folder(dataset_dir),
    }
}

fn verify_folder(root: &Path) -> Report {
    let mut report = Report::default();
    let json = match read_dataset_json(&root.join("dataset.json")) {
        Ok(json) => Some(json),
        Err(err) => {
            report_json_error(err, &mut report);
            None
        }
    };
    let uses_mapping = json.as_ref().is_some_and(|j| j.cases.is_some());
    let mut label_dir_exists = true;
    if !uses_mapping {
        for folder in ["imagesTr", "labelsTr"] {
            let path = root.join(folder);
            if !path.is_dir() {
                label_dir_exists &= folder != "labelsTr";
                report.error(None, Some(path), Fault::MissingFolder { folder });
            }
        }
    }
    let Some(json) = json else {
        return report;
    };
    let cases = training_cases(root, &json, &mut report);
    check_dataset_level(&root.join("dataset.json"), &json, &cases, &mut report);
    let ctx = CaseContext {
        json: &json,
        expected_labels: json.labels.expected_labels(),
        image_dir: root.join("imagesTr"),
        check_channel_names: !uses_mapping,
        label_dir_exists,
    };
    let per_case: Vec<Report> = cases
        .par_iter()
        .map(|case| check_case(case, &ctx))
        .collect();
    for case_report in per_case {
        report.append(case_report);
    }
    report
}

fn report_json_error(err: DatasetError, report: &mut Report) {
    match err {
        DatasetError::ReadJson { path, source } => report.error(
            None,
            Some(path),
            Fault::DatasetJsonUnreadable {
                reason: source.to_string(),
            },
        ),
        DatasetError::EmptyJson { path } => report.error(None, Some(path), Fault::DatasetJsonEmpty),
        DatasetError::ByteOrderMark { path } => {
            report.error(None, Some(path), Fault::DatasetJsonBom);
        }
        DatasetError::MalformedJson { path, source } => report.error(
            None,
            Some(path),
            Fault::DatasetJsonMalformed {
                reason: source.to_string(),
            },
        ),
        DatasetError::InvalidJson { path, faults } => {
            for fault in faults {
                report.error(None, Some(path.clone()), Fault::DatasetJson(fault));
            }
        }
        other => report.error(
            None,
            None,
            Fault::DatasetJsonUnreadable {
                reason: other.to_string(),
            },
        ),
    }
}

/// The training cases as nnU-Net finds them; misnamed files, skipped entries and listing
/// failures are reported.
fn training_cases(root: &Path, json: &DatasetJson, report: &mut Report) -> Vec<Case> {
    if let Some(entries) = &json.cases {
        return crate::dataset::cases_from_entries(root, entries);
    }
    let image_dir = root.join("imagesTr");
    if !image_dir.is_dir() {
        return Vec::new();
    }
    match discover_listed(&image_dir, &root.join("labelsTr"), &json.file_ending, true) {
        Ok(found) => {
            for file in found.misnamed {
                let fault = Fault::MisnamedFile {
                    file_ending: json.file_ending.clone(),
                };
                report.error(None, Some(file), fault);
            }
            report_skipped(found.skipped, &found.cases, json, report);
            found.cases
        }
        Err(err) => {
            let reason = error_chain(&err, &image_dir);
            report.error(None, Some(image_dir), Fault::UnreadableFolder { reason });
            Vec::new()
        }
    }
}

/// Entries of `imagesTr/` that discovery skipped because they are not regular files: a warning
/// where nnU-Net accepts the dataset anyway (the cases add up to `numTraining` and the entry is
/// no declared channel of a case that exists), otherwise an error.
fn report_skipped(skipped: Vec<Skipped>, cases: &[Case], json: &DatasetJson, report: &mut Report) {
    let count_matches = !cases.is_empty() && cases.len() == json.num_training;
    for Skipped { path, reason } in skipped {
        // The case this entry would give a declared channel to, if that case exists.
        let case = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| split_channel_name(name, &json.file_ending))
            .filter(|&(id, idx)| {
                usize::from(idx) < json.n_channels() && cases.iter().any(|c| c.id == id)
            })
            .map(|(id, _)| id.to_string());
        if count_matches && case.is_none() {
            report.warning(None, Some(path), Fault::SkippedEntry { found: reason });
        } else {
            report.error(
                case.as_deref(),
                Some(path),
                Fault::SkippedCaseFile { found: reason },
            );
        }
    }
}

/// Case count and label numbering. nnU-Net: the `numTraining` and `ediff1d` asserts.
fn check_dataset_level(json_path: &Path, json: &DatasetJson, cases: &[Case], report: &mut Report) {
    if cases.len() != json.num_training {
        let fault = Fault::CaseCount {
            declared: json.num_training,
            found: cases.len(),
        };
        report.error(None, Some(json_path.to_path_buf()), fault);
    } else if cases.is_empty() {
        report.error(None, None, Fault::NoTrainingCases);
    }
    let gaps = json.labels.non_consecutive();
    if !gaps.is_empty() {
        let fault = Fault::NonConsecutiveLabels {
            offending: gaps,
            expected: json.labels.expected_labels(),
        };
        report.error(None, Some(json_path.to_path_buf()), fault);
    }
}

/// What every case check needs to know about the dataset.
struct CaseContext<'a> {
    json: &'a DatasetJson,
    expected_labels: Vec<u16>,
    image_dir: PathBuf,
    /// Channel files follow `{CASE}_{XXXX}` (not with a `dataset` mapping).
    check_channel_names: bool,
    /// `labelsTr/` exists (if not, that is reported once, not per case).
    label_dir_exists: bool,
}

/// All checks of one case. nnU-Net: `verify_labels` and `check_cases`.
fn check_case(case: &Case, ctx: &CaseContext<'_>) -> Report {
    let mut report = Report::default();
    // Natural images may hold several channels per file (RGB): count what the files hold.
    let channels_per_file_vary = ImageFormat::from_ending(&ctx.json.file_ending)
        .is_some_and(ImageFormat::may_hold_several_channels);
    if !channels_per_file_vary {
        check_channel_count(case, ctx, &mut report);
    }
    let (reference, channels) = check_images(case, &mut report);
    let expected = ctx.json.n_channels();
    if let Some(found) = channels.filter(|&n| channels_per_file_vary && n != expected) {
        let fault = Fault::ChannelsInFiles {
            expected,
            found,
            n_files: case.images.len(),
        };
        report.error(Some(&case.id), case.images.first().cloned(), fault);
    }
    check_label(case, ctx, reference.as_ref(), &mut report);
    report
}

/// One file per declared channel, numbered `0000..n-1` in the discovered layout.
fn check_channel_count(case: &Case, ctx: &CaseContext<'_>, report: &mut Report) {
    let expected = ctx.json.n_channels();
    let ending = &ctx.json.file_ending;
    let (mut missing, mut unexpected) = (Vec::new(), Vec::new());
    if ctx.check_channel_names {
        let indices: Vec<usize> = case
            .images
            .iter()
            .filter_map(|path| channel_index(path, ending).map(usize::from))
            .collect();
        let file = |idx: usize| ctx.image_dir.join(format!("{}_{idx:04}{ending}", case.id));
        missing = (0..expected)
            .filter(|i| !indices.contains(i))
            .map(file)
            .collect();
        unexpected = indices
            .iter()
            .filter(|&&i| i >= expected)
            .map(|&i| file(i))
            .collect();
    }
    if missing.is_empty() && unexpected.is_empty() && case.images.len() == expected {
        return;
    }
    let file = missing
        .first()
        .or(unexpected.first())
        .or(case.images.first())
        .cloned();
    let fault = Fault::ChannelCount {
        expected,
        found: case.images.len(),
        missing,
        unexpected,
    };
    report.error(Some(&case.id), file, fault);
}

/// Reads every channel file; reports unreadable files, non-finite voxels and channels that do
/// not share channel 0's grid. Returns the first readable channel's file and geometry, and the
/// channels the files hold when every file could be read.
fn check_images(case: &Case, report: &mut Report) -> (Option<(PathBuf, Geometry)>, Option<usize>) {
    let mut reference: Option<(PathBuf, Geometry)> = None;
    let mut channels = Some(0);
    for path in &case.images {
        let fault = match regular_file(path) {
            Ok(()) => None,
            Err(NotAFile::Directory) if is_dicom_folder(path) => None,
            Err(NotAFile::Missing) => Some(Fault::MissingImage),
            Err(found) => Some(Fault::ImageNotAFile { found }),
        };
        let read = match fault {
            Some(fault) => Err(fault),
            None => read_image(path)
                .map_err(|err| unreadable(&err, path, |found| Fault::ImageNotAFile { found })),
        };
        let image = match read {
            Ok(image) => image,
            Err(fault) => {
                report.error(Some(&case.id), Some(path.clone()), fault);
                channels = None;
                continue;
            }
        };
        channels = channels.map(|n| n + image.n_channels());
        let n_nan = image.data.iter().filter(|v| v.is_nan()).count();
        let n_inf = image.data.iter().filter(|v| v.is_infinite()).count();
        if n_nan + n_inf > 0 {
            report.error(
                Some(&case.id),
                Some(path.clone()),
                Fault::NonFinite { n_nan, n_inf },
            );
        }
        match &reference {
            Some((ref_path, ref_geom)) => {
                compare_geometry(&case.id, path, &image.geometry, ref_path, ref_geom, report);
            }
            None => reference = Some((path.clone(), image.geometry)),
        }
    }
    (reference, channels)
}

/// The label file: present, readable, declared values only, on the image's grid.
fn check_label(
    case: &Case,
    ctx: &CaseContext<'_>,
    reference: Option<&(PathBuf, Geometry)>,
    report: &mut Report,
) {
    let Some(path) = case.label.as_ref() else {
        return;
    };
    match regular_file(path) {
        Ok(()) => {}
        Err(NotAFile::Missing) => {
            if ctx.label_dir_exists {
                report.error(Some(&case.id), Some(path.clone()), Fault::MissingLabel);
            }
            return;
        }
        Err(found) => {
            let fault = Fault::LabelNotAFile { found };
            return report.error(Some(&case.id), Some(path.clone()), fault);
        }
    }
    let labels = match read_label_map(path) {
        Ok(labels) => labels,
        Err(err) => {
            let fault = unreadable(&err, path, |found| Fault::LabelNotAFile { found });
            return report.error(Some(&case.id), Some(path.clone()), fault);
        }
    };
    let mut present = vec![false; usize::from(u16::MAX) + 1];
    for &v in labels.data.iter() {
        present[usize::from(v)] = true;
    }
    let undeclared: Vec<u16> = (0..=u16::MAX)
        .filter(|&v| present[usize::from(v)] && !ctx.expected_labels.contains(&v))
        .collect();
    if !undeclared.is_empty() {
        let fault = Fault::UndeclaredLabels {
            found: undeclared,
            declared: ctx.expected_labels.clone(),
        };
        report.error(Some(&case.id), Some(path.clone()), fault);
    }
    if let Some((image_path, image_geom)) = reference {
        compare_geometry(
            &case.id,
            path,
            &labels.geometry,
            image_path,
            image_geom,
            report,
        );
    }
}

/// Shape and spacing must match `reference` (errors); origin and direction should (warnings).
fn compare_geometry(
    case: &str,
    path: &Path,
    geom: &Geometry,
    ref_path: &Path,
    ref_geom: &Geometry,
    report: &mut Report,
) {
    let reference = ref_path.to_path_buf();
    if geom.shape() != ref_geom.shape() {
        let fault = Fault::ShapeMismatch {
            reference,
            expected: ref_geom.shape(),
            found: geom.shape(),
        };
        return report.error(Some(case), Some(path.to_path_buf()), fault);
    }
    if !geom.spacing().allclose(&ref_geom.spacing()) {
        let fault = Fault::SpacingMismatch {
            reference: reference.clone(),
            expected: ref_geom.spacing(),
            found: geom.spacing(),
        };
        report.error(Some(case), Some(path.to_path_buf()), fault);
    }
    if !allclose(&geom.origin(), &ref_geom.origin()) {
        let fault = Fault::OriginMismatch {
            reference: reference.clone(),
            expected: ref_geom.origin(),
            found: geom.origin(),
        };
        report.warning(Some(case), Some(path.to_path_buf()), fault);
    }
    let (dir, ref_dir) = (geom.direction(), ref_geom.direction());
    if !allclose(dir.as_flattened(), ref_dir.as_flattened()) {
        let max_diff = dir
            .as_flattened()
            .iter()
            .zip(ref_dir.as_flattened())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let fault = Fault::DirectionMismatch {
            reference,
            max_diff,
        };
        report.warning(Some(case), Some(path.to_path_buf()), fault);
    }
}

/// numpy `allclose` with its defaults (`rtol = 1e-5`, `atol = 1e-8`), as nnU-Net compares
/// SimpleITK origins and directions.
fn allclose(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-8 + 1e-5 * y.abs())
}

/// A reader failure as a fault: a file this process may not open is `not_a_file` (what is there
/// cannot be read), any other failure the reader's message without its leading `path: `.
fn unreadable(err: &ImageError, path: &Path, not_a_file: fn(NotAFile) -> Fault) -> Fault {
    if let Some(source) = err.io_error() {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            let reason = source.to_string();
            return not_a_file(NotAFile::Unreadable { reason });
        }
    }
    Fault::Unreadable {
        reason: error_chain(err, path),
    }
}

/// The error's message without a leading `path: ` (the issue shows the file), followed by
/// those of its sources that the message does not already contain.
fn error_chain(err: &dyn std::error::Error, path: &Path) -> String {
    let text = err.to_string();
    let prefix = format!("{}: ", path.display());
    let mut out = text
        .strip_prefix(&prefix)
        .map_or(text.clone(), str::to_string);
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out = format!("{out}: {s_text}");
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{write_image, write_label_map, HeaderGeometry, Shape3, Spacing, Volume};
    use ndarray::Array4;

    const JSON: &str = r#"{"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1},
        "numTraining": 2, "file_ending": ".nii.gz"}"#;

    fn geometry() -> Geometry {
        let header = HeaderGeometry::axis_aligned(Spacing([2.0, 1.0, 1.0]), [0.0; 3]);
        Geometry::new(Shape3([2, 3, 4]), header)
    }

    fn write_case(root: &Path, image: &str, label: Option<&str>) {
        let data = Array4::from_shape_fn((1, 2, 3, 4), |(_, z, y, x)| (z + y + x) as f32);
        let volume = Volume {
            data,
            geometry: geometry(),
        };
        let path = root.join(image);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        write_image(&path, &volume, 1).expect("write image");
        if let Some(label) = label {
            let data = Array4::from_shape_fn((1, 2, 3, 4), |(_, _, _, x)| u16::from(x == 0));
            let labels = Volume {
                data,
                geometry: geometry(),
            };
            let path = root.join(label);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            write_label_map(&path, &labels, 1).expect("write label");
        }
    }

    /// A clean dataset of the one-channel cases `a` and `b`, declaring `num_training` cases.
    fn two_cases(num_training: usize) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let json = JSON.replace(
            "\"numTraining\": 2",
            &format!("\"numTraining\": {num_training}"),
        );
        std::fs::write(tmp.path().join("dataset.json"), json).expect("json");
        for id in ["a", "b"] {
            let label = format!("labelsTr/{id}.nii.gz");
            write_case(
                tmp.path(),
                &format!("imagesTr/{id}_0000.nii.gz"),
                Some(&label),
            );
        }
        tmp
    }

    fn issue(case: Option<&str>, file: PathBuf, fault: Fault) -> Issue {
        super::issue(case, Some(file), fault)
    }

    #[test]
    fn clean_dataset_gives_an_empty_report() {
        let tmp = two_cases(2);
        let report = verify(tmp.path(), 2);
        assert_eq!(report, Report::default());
        assert!(report.is_ok());
    }

    #[test]
    fn missing_labels_folder_is_one_error_not_one_per_case() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("dataset.json"), JSON).expect("json");
        write_case(tmp.path(), "imagesTr/a_0000.nii.gz", None);
        write_case(tmp.path(), "imagesTr/b_0000.nii.gz", None);
        let report = verify(tmp.path(), 1);
        assert_eq!(report.errors.len(), 1, "{report:#?}");
        assert_eq!(
            report.errors[0].fault,
            Fault::MissingFolder { folder: "labelsTr" }
        );
    }

    #[test]
    fn dataset_mapping_reports_missing_files_by_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let json = JSON.replace(
            "\"numTraining\": 2",
            r#""numTraining": 1, "dataset": {"c": {"images": ["img/c.nii.gz"], "label": "seg/c.nii.gz"}}"#,
        );
        std::fs::write(tmp.path().join("dataset.json"), json).expect("json");
        let report = verify(tmp.path(), 1);
        let found: Vec<(Fault, PathBuf)> = report
            .errors
            .iter()
            .map(|i| (i.fault.clone(), i.file.clone().expect("names a file")))
            .collect();
        assert_eq!(
            found,
            [
                (Fault::MissingImage, tmp.path().join("img/c.nii.gz")),
                (Fault::MissingLabel, tmp.path().join("seg/c.nii.gz")),
            ]
        );
    }

    #[test]
    fn issue_message_names_file_then_case_then_fault() {
        let issue = Issue {
            case: Some("la_003".into()),
            file: Some(PathBuf::from("ds/labelsTr/la_003.nii.gz")),
            fault: Fault::MissingLabel,
        };
        let text = issue.to_string();
        assert!(
            text.starts_with("ds/labelsTr/la_003.nii.gz: case la_003: label file is missing"),
            "{text}"
        );
    }

    #[test]
    fn reader_messages_lose_their_leading_path_only() {
        let path = Path::new("x/a.nii.gz");
        let err = ImageError::from(crate::NiftiIoError::NotNifti {
            path: path.to_path_buf(),
            sizeof_hdr: 7,
        });
        assert_eq!(
            error_chain(&err, path),
            "not a NIfTI file (sizeof_hdr is 7, expected 348 or 540)"
        );
    }

    #[test]
    fn skipped_entry_is_a_warning_when_the_cases_add_up() {
        let tmp = two_cases(2);
        let path = tmp.path().join("imagesTr/loop_0000.nii.gz");
        std::os::unix::fs::symlink("loop_0000.nii.gz", &path).expect("symlink");
        let report = verify(tmp.path(), 1);
        assert_eq!(report.errors, []);
        let fault = Fault::SkippedEntry {
            found: NotAFile::SymlinkLoop,
        };
        assert_eq!(report.warnings, [issue(None, path.clone(), fault)]);
        assert_eq!(
            report.warnings[0].to_string(),
            format!(
                "{}: skipped: it is a symlink loop (nnU-Net skips it too); remove it if it is not \
                 meant to be a case file",
                path.display()
            )
        );
    }

    #[test]
    fn skipped_entry_is_an_error_when_the_cases_fall_short_of_num_training() {
        let tmp = two_cases(3);
        let path = tmp.path().join("imagesTr/c_0000.nii.gz");
        std::os::unix::fs::symlink("gone.nii.gz", &path).expect("symlink");
        let report = verify(tmp.path(), 1);
        let found = NotAFile::DanglingSymlink {
            target: PathBuf::from("gone.nii.gz"),
        };
        let count = Fault::CaseCount {
            declared: 3,
            found: 2,
        };
        assert_eq!(
            report.errors,
            [
                issue(None, path.clone(), Fault::SkippedCaseFile { found }),
                issue(None, tmp.path().join("dataset.json"), count),
            ]
        );
        assert_eq!(
            report.errors[0].to_string(),
            format!(
                "{}: not read as a case file: it is a dangling symlink to gone.nii.gz (nnU-Net \
                 skips it too), which leaves its case without this channel or the training cases \
                 short of numTraining; put the image file there",
                path.display()
            )
        );
        assert_eq!(report.warnings, []);
    }

    #[test]
    fn skipped_channel_of_an_existing_case_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let json = JSON
            .replace(r#"{"0": "CT"}"#, r#"{"0": "CT", "1": "PET"}"#)
            .replace("\"numTraining\": 2", "\"numTraining\": 1");
        std::fs::write(tmp.path().join("dataset.json"), json).expect("json");
        write_case(
            tmp.path(),
            "imagesTr/a_0000.nii.gz",
            Some("labelsTr/a.nii.gz"),
        );
        let path = tmp.path().join("imagesTr/a_0001.nii.gz");
        std::fs::create_dir(&path).expect("mkdir");
        let report = verify(tmp.path(), 1);
        let skipped = Fault::SkippedCaseFile {
            found: NotAFile::Directory,
        };
        let channels = Fault::ChannelCount {
            expected: 2,
            found: 1,
            missing: vec![path.clone()],
            unexpected: vec![],
        };
        assert_eq!(
            report.errors,
            [
                issue(Some("a"), path.clone(), skipped),
                issue(Some("a"), path.clone(), channels),
            ]
        );
    }

    #[test]
    fn label_path_that_is_a_directory_is_named() {
        let tmp = two_cases(2);
        let path = tmp.path().join("labelsTr/b.nii.gz");
        std::fs::remove_file(&path).expect("rm");
        std::fs::create_dir(&path).expect("mkdir");
        let report = verify(tmp.path(), 1);
        let fault = Fault::LabelNotAFile {
            found: NotAFile::Directory,
        };
        assert_eq!(report.errors, [issue(Some("b"), path.clone(), fault)]);
        assert_eq!(
            report.errors[0].to_string(),
            format!(
                "{}: case b: label file is a directory; the case's label map must be a \
                 readable image file at this path",
                path.display()
            )
        );
    }

    #[test]
    fn dataset_mapping_names_what_is_at_its_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let json = JSON.replace(
            "\"numTraining\": 2",
            r#""numTraining": 1, "dataset": {"c": {"images": ["c.nii.gz"], "label": "s.nii.gz"}}"#,
        );
        std::fs::write(tmp.path().join("dataset.json"), json).expect("json");
        let (image, label) = (tmp.path().join("c.nii.gz"), tmp.path().join("s.nii.gz"));
        std::os::unix::fs::symlink("gone.nii.gz", &image).expect("symlink");
        std::os::unix::fs::symlink("s.nii.gz", &label).expect("symlink");
        let report = verify(tmp.path(), 1);
        let dangling = NotAFile::DanglingSymlink {
            target: PathBuf::from("gone.nii.gz"),
        };
        let image_fault = Fault::ImageNotAFile { found: dangling };
        let label_fault = Fault::LabelNotAFile {
            found: NotAFile::SymlinkLoop,
        };
        assert_eq!(
            report.errors,
            [
                issue(Some("c"), image.clone(), image_fault),
                issue(Some("c"), label, label_fault),
            ]
        );
        assert!(report.errors[0]
            .to_string()
            .ends_with("case c: image file is a dangling symlink to gone.nii.gz; the channel's image must be a readable image file at this path"));
    }

    #[test]
    fn unreadable_label_file_names_the_permission() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = two_cases(2);
        let path = tmp.path().join("labelsTr/b.nii.gz");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        if std::fs::read(&path).is_ok() {
            // Root reads anything: there is nothing unreadable to report.
            return;
        }
        let report = verify(tmp.path(), 1);
        let found = NotAFile::Unreadable {
            reason: "Permission denied (os error 13)".into(),
        };
        let fault = Fault::LabelNotAFile { found };
        assert_eq!(report.errors, [issue(Some("b"), path.clone(), fault)]);
        assert_eq!(
            report.errors[0].to_string(),
            format!(
                "{}: case b: label file cannot be read: Permission denied (os error 13); the \
                 case's label map must be a readable image file at this path",
                path.display()
            )
        );
    }

    #[test]
    fn dataset_json_with_a_byte_order_mark_is_named() {
        let tmp = two_cases(2);
        let json_path = tmp.path().join("dataset.json");
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend(std::fs::read(&json_path).expect("read"));
        std::fs::write(&json_path, bytes).expect("write");
        let report = verify(tmp.path(), 1);
        assert_eq!(
            report.errors,
            [issue(None, json_path, Fault::DatasetJsonBom)]
        );
        assert!(report.errors[0].to_string().ends_with(
            "dataset.json: dataset.json starts with a UTF-8 byte-order mark (BOM), which \
             nnU-Net's JSON reader refuses too; save it as UTF-8 without BOM"
        ));
    }
}
