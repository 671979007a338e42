//! Tests of the DICOM series reader: every good fixture against what SimpleITK 2.5.7 read
//! (`fixtures/data/dicom/expected.json`, made by `scripts/make_dicom_fixtures.py`), every
//! broken one against the fault it must be refused for, the SeriesInfo of one series, the
//! voxel-type rule on synthetic headers, and byte mutations of one slice file (no panic).

use std::path::PathBuf;

use serde_json::Value;

use super::super::{ElementType, FormatError};
use super::multiframe::FrameGeometry;
use super::{output_type, read_dicom_series, SeriesFault, Slice, SourceSlice};
use crate::test_support::{self, element_of, floats, Rng};

/// `fixtures/data/dicom/`.
fn fixture_dir() -> PathBuf {
    test_support::fixture_dir("dicom")
}

fn expected() -> serde_json::Map<String, Value> {
    test_support::json_object(&fixture_dir().join("expected.json"))
}

fn assert_close(name: &str, what: &str, got: &[f64], want: &[f64]) {
    test_support::assert_close(&format!("{name}: {what}"), got, want, 1e-9);
}

#[test]
fn good_series_match_simpleitk() {
    let expected = expected();
    let mut checked = 0;
    for (name, want) in &expected {
        if name.starts_with('_') {
            continue;
        }
        let series =
            read_dicom_series(&fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let image = &series.image;
        let size: Vec<usize> = floats(&want["size"]).iter().map(|&v| v as usize).collect();
        assert_eq!(image.dims, size, "{name}: size");
        assert_close(name, "spacing", &image.spacing, &floats(&want["spacing"]));
        assert_close(name, "origin", &image.origin, &floats(&want["origin"]));
        assert_close(
            name,
            "direction",
            &image.direction,
            &floats(&want["direction"]),
        );
        assert_eq!(
            image.components as u64,
            want["components"].as_u64().unwrap(),
            "{name}: components"
        );
        assert_eq!(
            image.element,
            element_of(want["dtype"].as_str().unwrap()),
            "{name}: element type"
        );
        let values = floats(&want["values"]);
        assert_eq!(image.to_f64(), values, "{name}: voxels");
        assert_eq!(series.info.slices.len(), size[2], "{name}: slice list");
        assert_eq!(
            image.to_f64().len(),
            size.iter().product::<usize>() * image.components,
            "{name}: voxel count"
        );
        checked += 1;
    }
    assert_eq!(checked, 14, "every good fixture is checked");
}

#[test]
fn series_info_of_one_fixture() {
    let series = read_dicom_series(&fixture_dir().join("oblique")).unwrap();
    let info = &series.info;
    let root = "1.2.826.0.1.3680043.8.498.4242.5";
    assert_eq!(info.patient_id, "AUTOSEG-0001");
    assert_eq!(info.patient_name, "Doe^Jane");
    assert_eq!(info.patient_birth_date, "19700101");
    assert_eq!(info.patient_sex, "F");
    assert_eq!(info.study_instance_uid, format!("{root}.1"));
    assert_eq!(info.study_id, "S42");
    assert_eq!(info.study_date, "20240102");
    assert_eq!(info.study_time, "101112");
    assert_eq!(info.accession_number, "ACC42");
    assert_eq!(info.referring_physician_name, "Who^Doctor");
    assert_eq!(info.series_instance_uid, format!("{root}.2"));
    assert_eq!(info.frame_of_reference_uid, format!("{root}.4"));
    assert_eq!(info.modality, "CT");
    // Positions descend with the instance index (steps 10, 7, 4, 1, -2 along the normal), so
    // z order is the files in reverse: instance 4 first.
    let want: Vec<SourceSlice> = (0..5)
        .rev()
        .map(|k| SourceSlice {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".to_string(),
            sop_instance_uid: format!("{root}.3.{k}"),
            frame: None,
        })
        .collect();
    assert_eq!(info.slices, want);
}

/// The error of a broken fixture, checked to name its folder.
fn broken(name: &str) -> FormatError {
    let folder = fixture_dir().join("broken").join(name);
    let err = read_dicom_series(&folder).expect_err(name);
    let text = err.to_string();
    assert!(
        text.contains(&folder.display().to_string()),
        "{name}: the error names the folder: {text}"
    );
    err
}

fn fault(name: &str) -> SeriesFault {
    match broken(name) {
        FormatError::Series { fault, .. } => *fault,
        other => panic!("{name}: expected a series fault, got {other}"),
    }
}

#[test]
fn broken_series_are_refused() {
    match fault("two_series") {
        SeriesFault::TwoSeries {
            first_uid,
            second_uid,
            ..
        } => {
            let uids = [first_uid, second_uid];
            let root = "1.2.826.0.1.3680043.8.498.4242.20";
            assert!(uids.contains(&format!("{root}.2")) && uids.contains(&format!("{root}.102")));
        }
        other => panic!("two_series: {other}"),
    }
    match fault("missing_slice") {
        SeriesFault::MissingSlice {
            before,
            after,
            gap,
            median,
        } => {
            assert_eq!((before[2], after[2], gap, median), (34.25, 38.25, 4.0, 2.0));
        }
        other => panic!("missing_slice: {other}"),
    }
    assert!(matches!(fault("gantry_tilt"), SeriesFault::Tilted { .. }));
    assert!(matches!(
        fault("orientation_differs"),
        SeriesFault::Differs {
            field: "ImageOrientationPatient",
            ..
        }
    ));
    match fault("uneven_spacing") {
        SeriesFault::UnevenSpacing { gap, mean, .. } => assert_eq!((gap, mean), (2.5, 2.0)),
        other => panic!("uneven_spacing: {other}"),
    }
    match fault("rows_differ") {
        SeriesFault::Differs {
            field: "Rows",
            first_value,
            value,
            ..
        } => assert_eq!((first_value.as_str(), value.as_str()), ("6", "4")),
        other => panic!("rows_differ: {other}"),
    }
    match broken("truncated") {
        FormatError::BadHeader { path, .. } | FormatError::DataTooShort { path, .. } => {
            assert!(path.ends_with("IM0002"), "{}", path.display())
        }
        other => panic!("truncated: {other}"),
    }
    // Found by `cargo fuzz` (read_dicom; kept in `fuzz/`, which the fixture script leaves
    // alone): an AT element 2 bytes long put dicom-rs out of step with the file (it reads
    // whole tags, then moves on by the length), and a later "length" made it reserve 4 GiB.
    // The pre-scan refuses lengths that are not whole values.
    match read_dicom_series(&fixture_dir().join("fuzz/odd_length_at")) {
        Err(FormatError::BadHeader { reason, .. }) => {
            assert!(reason.contains("not whole 4-byte values"), "{reason}")
        }
        other => panic!("odd_length_at: {other:?}"),
    }
    // Found by `cargo fuzz` too: elements that run past the end of their defined-length
    // sequence item (dicom-rs counts the item's bytes, goes out of step and reserves 2.4 GB).
    match read_dicom_series(&fixture_dir().join("fuzz/item_overrun")) {
        Err(FormatError::BadHeader { reason, .. }) => assert!(
            reason.contains("runs past the end") || reason.contains("remain"),
            "{reason}"
        ),
        other => panic!("item_overrun: {other:?}"),
    }
    // And a file meta group holding a second copy of itself within its group length: dicom-rs
    // reads the meta group by its length (the first transfer syntax counts), the scan read it
    // while the group was 0002 (the second), so the two walked the data set differently.
    assert!(read_dicom_series(&fixture_dir().join("fuzz/meta_group_length")).is_err());
    // And a (FFFE,FFFF) "delimiter" the scan stepped over, which dicom-rs reads as an element
    // of 0xFFFDFFFF bytes.
    match read_dicom_series(&fixture_dir().join("fuzz/fffe_element")) {
        Err(FormatError::BadHeader { reason, .. }) => {
            assert!(
                reason.contains("neither an item nor a delimiter"),
                "{reason}"
            )
        }
        other => panic!("fffe_element: {other:?}"),
    }
    match broken("not_dicom") {
        FormatError::NotFormat { path, format, .. } => {
            assert!(path.ends_with("README") && format == "DICOM")
        }
        other => panic!("not_dicom: {other}"),
    }
}

#[test]
fn empty_folder_and_missing_geometry_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    match read_dicom_series(dir.path()) {
        Err(FormatError::Series { path, fault }) if *fault == SeriesFault::Empty => {
            assert_eq!(path, dir.path())
        }
        other => panic!("empty folder: {other:?}"),
    }
    // Two slices of a series with ImagePositionPatient removed from one: the tag's bytes are
    // renamed to a private tag of the same length, so the file stays valid.
    let src = fixture_dir().join("ct_uint12");
    for name in ["IM0000", "IM0001"] {
        std::fs::copy(src.join(name), dir.path().join(name)).unwrap();
    }
    let path = dir.path().join("IM0001");
    let mut bytes = std::fs::read(&path).unwrap();
    let tag = [0x20u8, 0x00, 0x32, 0x00, b'D', b'S'];
    let at = bytes.windows(6).position(|w| w == tag).unwrap();
    bytes[at..at + 4].copy_from_slice(&[0x21, 0x00, 0x32, 0x00]);
    std::fs::write(&path, bytes).unwrap();
    let fault = match read_dicom_series(dir.path()) {
        Err(FormatError::Series { fault, .. }) => *fault,
        other => panic!("missing position: {other:?}"),
    };
    assert_eq!(
        fault,
        SeriesFault::MissingGeometry {
            file: path,
            field: "ImagePositionPatient"
        }
    );
}

/// A header-only slice for the type rule.
fn header(
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    slope: f64,
    intercept: f64,
) -> Slice {
    Slice {
        strings: Default::default(),
        frame: None,
        rows: 1,
        cols: 1,
        samples: 1,
        bits_allocated,
        bits_stored,
        signed,
        geometry: FrameGeometry {
            position: None,
            orientation: None,
            pixel_spacing: None,
            spacing_between_slices: None,
            slope,
            intercept,
        },
        pixels: vec![],
    }
}

/// The rule against what SimpleITK 2.5.7 gave for the same headers (probed with pydicom).
#[test]
fn voxel_type_follows_simpleitk() {
    use ElementType::*;
    #[rustfmt::skip]
    let cases: &[(u16, u16, bool, f64, f64, ElementType)] = &[
        (8, 8, false, 1.0, 0.0, U8), (8, 8, false, 1.0, -1024.0, I16), (8, 8, false, 2.0, 0.0, U16),
        (8, 8, false, 1.0, 1024.0, U16), (8, 8, false, 1.0, -1.0, I16), (8, 8, false, 0.5, 0.0, F64),
        (8, 8, false, -1.0, 0.0, I16), (8, 8, true, 1.0, 0.0, I8), (8, 8, true, 2.0, 0.0, I16),
        (8, 8, true, 1.0, 1024.0, U16), (16, 12, false, 1.0, -1024.0, I16),
        (16, 12, false, 2.0, 0.0, U16), (16, 12, false, 1.0, 0.5, F64), (16, 12, false, 0.0, 5.0, U16),
        (16, 12, false, 3.0, -7.0, I16), (16, 16, false, 1.0, -1024.0, I32),
        (16, 16, false, 2.0, 0.0, U32), (16, 16, false, 1.0, 1024.0, U32), (16, 12, true, 1.0, 1024.0, I16),
        (16, 12, true, -1.0, 0.0, I16), (16, 16, true, 1.0, -1024.0, I32), (16, 16, true, 1.0, 0.0, I16),
        (16, 8, false, 1.0, -100.0, I16), (32, 32, false, 1.0, 0.0, U32), (32, 32, false, 1.0, -1024.0, F64),
        (32, 32, true, 2.0, 0.0, F64), (32, 32, true, -1.0, 0.0, F64), (32, 16, false, 1.0, -1024.0, I32),
        (32, 16, true, 1.0, -1024.0, I32),
    ];
    for &(ba, bs, signed, slope, intercept, want) in cases {
        let slices = vec![(
            PathBuf::new(),
            Box::new(header(ba, bs, signed, slope, intercept)),
        )];
        assert_eq!(
            output_type(&slices),
            want,
            "BitsAllocated {ba} BitsStored {bs} signed {signed} slope {slope} intercept {intercept}"
        );
    }
}

/// Truncations and random byte edits of one slice (in a folder with two intact ones, so that
/// the series checks run too; a multi-frame file alone), half of the edits in the file's last
/// quarter, where the (compressed) pixel data lies: every read returns `Ok` or `Err`, none
/// panics.
#[test]
fn mutated_slices_never_panic() {
    let mut rng = Rng(0x5eed_d1c0_u64);
    let dir = tempfile::tempdir().unwrap();
    let mut ok = 0;
    for (fixture, mutants) in [
        ("ct_int16", 1200),
        ("mr_uint16_implicit", 800),
        ("deflated", 800),
        ("rle_ct_int16", 600),
        ("rle_rgb", 300),
        ("jpeg_lossless_sv1_ct_int16", 600),
        ("jpeg_baseline_uint8", 300),
        ("j2k_lossless_ct_int16", 600),
        ("j2k_lossy_mr_uint16", 300),
        ("legacy_ct_int16", 400),
        ("legacy_ct_int16_rle", 400),
        ("legacy_ct_oblique_j2k", 400),
    ] {
        let src = fixture_dir().join(fixture);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let keep = names.len().min(3) - 1;
        for file in &names[..keep] {
            std::fs::copy(file, dir.path().join(file.file_name().unwrap())).unwrap();
        }
        let original = std::fs::read(&names[keep]).unwrap();
        let target = dir.path().join("mutant");
        for i in 0..mutants {
            let mut bytes = original.clone();
            if i % 5 == 0 {
                bytes.truncate(rng.below(original.len()));
            } else {
                for _ in 0..1 + rng.below(4) {
                    let at = if rng.below(2) == 0 {
                        rng.below(bytes.len())
                    } else {
                        bytes.len() - 1 - rng.below(bytes.len() / 4)
                    };
                    match rng.below(3) {
                        0 => bytes[at] ^= 1 << rng.below(8),
                        1 => bytes[at] = rng.next() as u8,
                        _ => bytes[at] = [0x00, 0xff, 0x7f, 0x80][rng.below(4)],
                    }
                }
            }
            std::fs::write(&target, &bytes).unwrap();
            let t = std::time::Instant::now();
            let r = read_dicom_series(dir.path());
            // A forged length that dicom-rs zero-fills takes seconds (4 GiB); the pre-scan
            // refuses it first.
            assert!(
                t.elapsed().as_secs_f64() < 5.0,
                "{fixture} mutant {i}: {:?} for {:?}",
                t.elapsed(),
                r.as_ref().err()
            );
            if r.is_ok() {
                ok += 1;
            }
        }
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    // Flips inside the pixel data leave a readable series: the loop reaches the reader's end.
    assert!(ok > 20, "only {ok} mutants read");
}

/// A copy of a slice under another name is two slices at one position; a DICOMDIR under
/// another name is recognised by its SOP class and skipped.
#[test]
fn duplicate_slices_are_refused_and_renamed_dicomdirs_skipped() {
    let src = fixture_dir().join("coronal");
    let dir = tempfile::tempdir().unwrap();
    for name in ["IM0000", "IM0001", "IM0002", "IM0003", "IM0004"] {
        std::fs::copy(src.join(name), dir.path().join(name)).unwrap();
    }
    std::fs::copy(src.join("DICOMDIR"), dir.path().join("index")).unwrap();
    let series = read_dicom_series(dir.path()).unwrap();
    assert_eq!(series.image.dims, vec![8, 6, 5]);
    std::fs::copy(src.join("IM0002"), dir.path().join("copy_of_2")).unwrap();
    let fault = match read_dicom_series(dir.path()) {
        Err(FormatError::Series { fault, .. }) => *fault,
        other => panic!("duplicate slice: {other:?}"),
    };
    match fault {
        SeriesFault::DuplicatePosition {
            first_file,
            second_file,
            position,
        } => {
            let names = [first_file, second_file].map(|f| f.file_name().unwrap().to_owned());
            assert!(names.contains(&"IM0002".into()) && names.contains(&"copy_of_2".into()));
            assert_eq!(position, [-20.0, 8.0, 30.25]);
        }
        other => panic!("duplicate slice: {other}"),
    }
}

/// MONOCHROME1 (which SimpleITK inverts) is refused naming the file, not read as stored.
#[test]
fn monochrome1_is_refused() {
    let src = fixture_dir().join("ct_uint12");
    let dir = tempfile::tempdir().unwrap();
    for name in ["IM0000", "IM0001"] {
        std::fs::copy(src.join(name), dir.path().join(name)).unwrap();
    }
    let path = dir.path().join("IM0001");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(11).position(|w| w == b"MONOCHROME2").unwrap();
    bytes[at + 10] = b'1';
    std::fs::write(&path, bytes).unwrap();
    match read_dicom_series(dir.path()) {
        Err(FormatError::Unsupported { path: file, what }) => {
            assert_eq!(file, path);
            assert!(what.contains("MONOCHROME1"), "{what}");
        }
        other => panic!("MONOCHROME1: {other:?}"),
    }
}

/// `fixtures/data/dicom/encoded.json`: the encoded series, their sources and SimpleITK's reads.
fn encoded() -> serde_json::Map<String, Value> {
    test_support::json_object(&fixture_dir().join("encoded.json"))
}

/// Reads an encoded series and the series it was made from.
fn with_source(name: &str, want: &Value) -> (super::DicomSeries, super::DicomSeries) {
    let source = want["source"].as_str().unwrap();
    let got =
        read_dicom_series(&fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference = read_dicom_series(&fixture_dir().join(source)).unwrap();
    (got, reference)
}

fn assert_same_grid(name: &str, got: &super::RawImage, want: &super::RawImage) {
    assert_eq!(got.dims, want.dims, "{name}: size");
    assert_eq!(got.components, want.components, "{name}: components");
    assert_eq!(got.element, want.element, "{name}: element type");
    assert_close(name, "spacing", &got.spacing, &want.spacing);
    assert_close(name, "origin", &got.origin, &want.origin);
    assert_close(name, "direction", &got.direction, &want.direction);
}

/// Every lossless encoding (RLE, JPEG lossless, JPEG 2000 lossless; Legacy Converted Enhanced
/// multi-frame files, native and compressed) reads voxel for voxel and with the geometry of
/// the single-frame native series it was made from.
#[test]
fn lossless_encodings_read_as_their_source() {
    let mut checked = 0;
    for (name, want) in &encoded() {
        if name.starts_with('_') || !want["lossless"].as_bool().unwrap() {
            continue;
        }
        let (got, reference) = with_source(name, want);
        assert_same_grid(name, &got.image, &reference.image);
        assert_eq!(got.image.data, reference.image.data, "{name}: voxels");
        assert_eq!(
            got.info.slices.len(),
            got.image.dims[2],
            "{name}: slice list"
        );
        checked += 1;
    }
    assert_eq!(checked, 11, "every lossless encoded fixture is checked");
}

/// Lossy JPEG 2000 and JPEG baseline: the source's grid, and voxels within the stored
/// tolerance of pydicom's decode (OpenJPEG, libjpeg-turbo).
#[test]
fn lossy_encodings_match_pydicom_within_tolerance() {
    let mut checked = 0;
    for (name, want) in &encoded() {
        if name.starts_with('_') || want["lossless"].as_bool().unwrap() {
            continue;
        }
        let (got, reference) = with_source(name, want);
        assert_same_grid(name, &got.image, &reference.image);
        let tolerance = want["tolerance"].as_f64().unwrap();
        let pydicom = floats(&want["pydicom"]);
        let values = got.image.to_f64();
        assert_eq!(values.len(), pydicom.len(), "{name}: voxel count");
        let worst = values
            .iter()
            .zip(&pydicom)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= tolerance,
            "{name}: off pydicom by {worst} (tolerance {tolerance})"
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "every lossy encoded fixture is checked");
}

/// What SimpleITK 2.5.7 read (encoded.json): single-frame compressed series as their sources
/// (both RLE series fail in it: "Failed to change to Implicit Transfer Syntax"); Legacy
/// Converted Enhanced files as a 4-D image of frames in file order, origin at the first frame
/// and the normal turned to follow them, where this reader sorts frames as slices.
#[test]
fn simpleitk_reads_are_recorded() {
    for (name, want) in &encoded() {
        if name.starts_with('_') {
            continue;
        }
        let sitk = &want["simpleitk"];
        let multi_frame = name.starts_with("legacy");
        if name.starts_with("rle_") {
            assert!(sitk["error"].is_string(), "{name}: {sitk}");
            continue;
        }
        let size = floats(&sitk["size"]);
        if multi_frame {
            assert_eq!(size.len(), 4, "{name}: SimpleITK's 4-D size");
            assert_eq!(sitk["values_equal_source_z_reversed"], true, "{name}");
            continue;
        }
        let got = read_dicom_series(&fixture_dir().join(name)).unwrap();
        let dims: Vec<f64> = got.image.dims.iter().map(|&d| d as f64).collect();
        assert_eq!(dims, size, "{name}: size");
        assert_close(
            name,
            "spacing",
            &got.image.spacing,
            &floats(&sitk["spacing"]),
        );
        assert_close(name, "origin", &got.image.origin, &floats(&sitk["origin"]));
        assert_close(
            name,
            "direction",
            &got.image.direction,
            &floats(&sitk["direction"]),
        );
        assert_eq!(
            got.image.element,
            element_of(sitk["dtype"].as_str().unwrap()),
            "{name}"
        );
        assert_eq!(sitk["values_equal_source"], want["lossless"], "{name}");
    }
}

#[test]
fn broken_encodings_are_refused() {
    match broken("jpeg_ls") {
        FormatError::Unsupported { what, .. } => assert!(what.contains("JPEG-LS"), "{what}"),
        other => panic!("jpeg_ls: {other}"),
    }
    match broken("rle_truncated_fragment") {
        FormatError::Decode { path, format, .. } => {
            assert!(
                path.ends_with("3.dcm") && format == "DICOM RLE",
                "{}",
                path.display()
            )
        }
        other => panic!("rle_truncated_fragment: {other}"),
    }
    match broken("frames_beyond_data") {
        FormatError::DataTooShort {
            expected, found, ..
        } => assert_eq!((expected, found), (6 * 96, 5 * 96)),
        other => panic!("frames_beyond_data: {other}"),
    }
    match broken("frames_beyond_fragments") {
        FormatError::BadField { field, reason, .. } => {
            assert!(
                field == "PixelData" && reason.contains("NumberOfFrames 6"),
                "{reason}"
            )
        }
        other => panic!("frames_beyond_fragments: {other}"),
    }
    match fault("frame_orientation_differs") {
        SeriesFault::Differs {
            field: "ImageOrientationPatient",
            file,
            ..
        } => assert!(
            file.to_string_lossy().ends_with("MF0000 (frame 3)"),
            "{}",
            file.display()
        ),
        other => panic!("frame_orientation_differs: {other}"),
    }
    match fault("multiframe_mixed") {
        SeriesFault::MultiFrameMixed {
            multi_frame_file,
            other_file,
        } => assert!(multi_frame_file.ends_with("MF0000") && other_file.ends_with("IM0000")),
        other => panic!("multiframe_mixed: {other}"),
    }
}

/// The decoded size of a file's frames is taken from the folder's budget before decoding.
#[test]
fn decoded_size_is_checked_against_the_ceiling() {
    use super::slice::{read_file, DecodeBudget};
    let path = fixture_dir().join("legacy_ct_int16_rle").join("MF0000");
    let len = std::fs::metadata(&path).unwrap().len();
    // Five 8 x 6 frames of 2 bytes: 480 bytes, from a file of a few hundred.
    let mut budget = DecodeBudget {
        used: 100,
        ceiling: 579,
    };
    match read_file(&path, len, &mut budget) {
        Err(FormatError::OverCeiling { dims, memory, .. }) => {
            assert_eq!(
                (dims, memory.bytes, memory.ceiling),
                (vec![8, 6, 5], 580, 579)
            )
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("read past the ceiling"),
    }
    budget.ceiling = 580;
    assert!(read_file(&path, len, &mut budget).is_ok());
    assert_eq!(budget.used, 580);
}
