//! Bad files: each is a specific error (naming the fault) and never a panic or a large
//! allocation: truncated data, decompression bombs, headers promising 10^12 voxels or sizes
//! that overflow, unknown types and encodings, missing fields, multi-file forms, garbage.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

use super::super::{read_image, FormatError};
use super::fixture_dir;

/// Writes `bytes` as `name` in `dir` and reads it.
fn read_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<super::super::RawImage, FormatError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    read_image(&path)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

fn nrrd(fields: &str) -> String {
    format!("NRRD0004\n{fields}\n")
}

#[test]
fn truncated_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ct_raw.nrrd", "ct.mha", "ct_z.mha", "bigendian.nrrd"] {
        let bytes = fixture(name);
        let err = read_bytes(dir.path(), name, &bytes[..bytes.len() - 7]).unwrap_err();
        assert!(
            matches!(err, FormatError::DataTooShort { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    // A gzip stream cut short: the decoder reports a corrupt (truncated) stream.
    let bytes = fixture("ct_gzip.nrrd");
    let err = read_bytes(dir.path(), "ct_gzip.nrrd", &bytes[..bytes.len() - 20]).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Corrupt { .. } | FormatError::DataTooShort { .. }
        ),
        "{err}"
    );
    // A detached data file shorter than its header promises.
    std::fs::copy(
        fixture_dir().join("ct_detached.nhdr"),
        dir.path().join("d.nhdr"),
    )
    .unwrap();
    let header = std::fs::read_to_string(dir.path().join("d.nhdr")).unwrap();
    let data_name = header
        .lines()
        .last()
        .unwrap()
        .trim_start_matches("data file: ");
    std::fs::write(dir.path().join(data_name), [0u8; 50]).unwrap();
    let err = read_image(&dir.path().join("d.nhdr")).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::DataTooShort {
                expected: 120,
                found: 50,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_decompression_bomb_stops_at_the_promised_size() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = vec![0u8; 20 << 20];
    let header = nrrd("type: uchar\ndimension: 2\nsizes: 4 2\nencoding: gzip\n");
    let mut file = header.into_bytes();
    file.extend(gzip(&bomb));
    let err = read_bytes(dir.path(), "bomb.nrrd", &file).unwrap_err();
    assert!(
        matches!(err, FormatError::DataTooLong { expected: 8, .. }),
        "{err}"
    );
    let header = "ObjectType = Image\nNDims = 2\nDimSize = 4 2\nCompressedData = True\n\
                  ElementType = MET_UCHAR\nElementDataFile = LOCAL\n";
    let mut file = header.as_bytes().to_vec();
    file.extend(zlib(&bomb));
    let err = read_bytes(dir.path(), "bomb.mha", &file).unwrap_err();
    assert!(
        matches!(err, FormatError::DataTooLong { expected: 8, .. }),
        "{err}"
    );
}

#[test]
fn a_trillion_voxels_fail_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = "sizes: 10000 10000 10000";
    let raw = nrrd(&format!(
        "type: uchar\ndimension: 3\n{sizes}\nencoding: raw\n"
    ));
    let err = read_bytes(dir.path(), "t.nrrd", raw.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::DataTooShort {
                expected: 1_000_000_000_000,
                ..
            }
        ),
        "{err}"
    );
    let gz = nrrd(&format!(
        "type: uchar\ndimension: 3\n{sizes}\nencoding: gzip\n"
    ));
    let mut file = gz.into_bytes();
    file.extend(gzip(b"tiny"));
    let err = read_bytes(dir.path(), "t.nrrd", &file).unwrap_err();
    assert!(
        matches!(err, FormatError::CompressedTooSmall { .. }),
        "{err}"
    );
    let text = nrrd(&format!(
        "type: uchar\ndimension: 3\n{sizes}\nencoding: ascii\n"
    ));
    let err = read_bytes(dir.path(), "t.nrrd", format!("{text}1 2 3").as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::OverCeiling { .. } | FormatError::TooFewValues { .. }
        ),
        "{err}"
    );
    let mha = "NDims = 3\nDimSize = 10000 10000 10000\nElementType = MET_FLOAT\n\
               ElementDataFile = LOCAL\n";
    let err = read_bytes(dir.path(), "t.mha", mha.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::DataTooShort { .. }), "{err}");
    let zmha = mha.replace("NDims", "CompressedData = True\nNDims");
    let err = read_bytes(dir.path(), "t.mha", format!("{zmha}xx").as_bytes()).unwrap_err();
    assert!(
        matches!(err, FormatError::CompressedTooSmall { .. }),
        "{err}"
    );
}

#[test]
fn sizes_that_overflow_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = "sizes: 4294967296 4294967296 2";
    let header = nrrd(&format!(
        "type: float\ndimension: 3\n{big}\nendian: little\nencoding: raw\n"
    ));
    let err = read_bytes(dir.path(), "o.nrrd", header.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::TooManyVoxels { .. }), "{err}");
    let mha = "NDims = 2\nDimSize = 18446744073709551615 3\nElementType = MET_UCHAR\n\
               ElementDataFile = LOCAL\n";
    let err = read_bytes(dir.path(), "o.mha", mha.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::TooManyVoxels { .. }), "{err}");
    let err = read_bytes(
        dir.path(),
        "o.mha",
        mha.replace("18446744073709551615", "1e99").as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::BadField { .. }), "{err}");
}

#[test]
fn unknown_types_encodings_and_spaces_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("type: complex\ndimension: 1\nsizes: 2\nencoding: raw\n", "type"),
        ("type: block\ndimension: 1\nsizes: 2\nencoding: raw\n", "type"),
        ("type: uchar\ndimension: 1\nsizes: 2\nencoding: bzip2\n", "encoding"),
        ("type: uchar\ndimension: 1\nsizes: 2\nencoding: hex\n", "encoding"),
        ("type: uchar\ndimension: 2\nspace: right-up-forward\nsizes: 2 2\nencoding: raw\n", "space"),
        ("type: uchar\ndimension: 3\nsizes: 7 2 2\nkinds: 3D-masked-symmetric-matrix domain domain\nencoding: raw\n", "kind"),
        ("type: uchar\ndimension: 3\nsizes: 2 2 2\nkinds: vector list domain\nencoding: raw\n", "non-domain"),
    ];
    for (fields, what) in cases {
        let err = read_bytes(dir.path(), "u.nrrd", nrrd(fields).as_bytes()).unwrap_err();
        assert!(
            matches!(err, FormatError::Unsupported { .. }),
            "{fields}: {err}"
        );
        assert!(err.to_string().contains(what), "{err}");
    }
    let mha = "NDims = 2\nDimSize = 2 2\nElementType = MET_COMPLEX\nElementDataFile = LOCAL\n";
    let err = read_bytes(dir.path(), "u.mha", mha.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::Unsupported { .. }), "{err}");
    let mesh = "ObjectType = Mesh\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n";
    let err = read_bytes(dir.path(), "u.mha", mesh.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::Unsupported { .. }), "{err}");
}

#[test]
fn missing_and_duplicated_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = [
        ("type: uchar\ndimension: 1\nencoding: raw\n", "sizes"),
        ("dimension: 1\nsizes: 2\nencoding: raw\n", "type"),
        ("type: uchar\ndimension: 1\nsizes: 2\n", "encoding"),
        (
            "type: short\ndimension: 1\nsizes: 2\nencoding: raw\n",
            "endian",
        ),
    ];
    for (fields, field) in missing {
        let err = read_bytes(dir.path(), "m.nrrd", nrrd(fields).as_bytes()).unwrap_err();
        assert!(
            matches!(&err, FormatError::MissingField { field: f, .. } if *f == field),
            "{err}"
        );
    }
    let dup = nrrd("type: uchar\ndimension: 1\nsizes: 2\nsizes: 2\nencoding: raw\n");
    let err = read_bytes(dir.path(), "m.nrrd", dup.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::DuplicateField { .. }), "{err}");
    let unknown = nrrd("type: uchar\ndimension: 1\nsizes: 2\nfoo: bar\nencoding: raw\n");
    let err = read_bytes(dir.path(), "m.nrrd", unknown.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::BadHeader { .. }), "{err}");
    let mha = "NDims = 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n";
    let err = read_bytes(dir.path(), "m.mha", mha.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::MissingField {
                field: "DimSize",
                ..
            }
        ),
        "{err}"
    );
    let no_end = "NDims = 2\nDimSize = 1 1\nElementType = MET_UCHAR\n";
    let err = read_bytes(dir.path(), "m.mha", no_end.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::MissingField {
                field: "ElementDataFile",
                ..
            }
        ),
        "{err}"
    );
    let no_blank = "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw";
    let err = read_bytes(dir.path(), "m.nrrd", no_blank.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::BadHeader { .. }), "{err}");
}

#[test]
fn multi_file_data_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let base = "type: uchar\ndimension: 2\nsizes: 2 2\nencoding: raw\n";
    for data_file in [
        "LIST",
        "LIST 1",
        "slice%03d.raw 1 2 1",
        "slice%03d.raw 1 2 1 1",
    ] {
        let header = format!("NRRD0004\n{base}data file: {data_file}\n");
        let err = read_bytes(dir.path(), "l.nhdr", header.as_bytes()).unwrap_err();
        assert!(
            matches!(err, FormatError::Unsupported { .. }),
            "{data_file}: {err}"
        );
        assert!(err.to_string().contains("multi-file"), "{err}");
    }
    for data_file in ["LIST 2D", "slice%03d.raw 1 4 1"] {
        let mhd = format!(
            "NDims = 3\nDimSize = 2 2 4\nElementType = MET_UCHAR\nElementDataFile = {data_file}\n"
        );
        let err = read_bytes(dir.path(), "l.mhd", mhd.as_bytes()).unwrap_err();
        assert!(
            matches!(err, FormatError::Unsupported { .. }),
            "{data_file}: {err}"
        );
    }
    let missing = format!("NRRD0004\n{base}data file: nowhere.raw\n");
    let err = read_bytes(dir.path(), "l.nhdr", missing.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, FormatError::Io { path, .. } if path.ends_with("nowhere.raw")),
        "{err}"
    );
}

#[test]
fn unusable_geometry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zero = "type: uchar\ndimension: 2\nspace dimension: 2\nsizes: 1 1\n\
                space directions: (0,0) (0,1)\nencoding: raw\n";
    let mut file = nrrd(zero).into_bytes();
    file.push(7);
    let err = read_bytes(dir.path(), "g.nrrd", &file).unwrap_err();
    assert!(matches!(err, FormatError::BadField { .. }), "{err}");
    let singular = "NDims = 2\nDimSize = 1 1\nTransformMatrix = 1 2 2 4\nElementType = MET_UCHAR\n\
                    ElementDataFile = LOCAL\n\x07";
    let err = read_bytes(dir.path(), "g.mha", singular.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::BadGeometry { .. }), "{err}");
    let spacing = singular.replace("TransformMatrix = 1 2 2 4", "ElementSpacing = 0 1");
    let err = read_bytes(dir.path(), "g.mha", spacing.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::BadGeometry { .. }), "{err}");
}

#[test]
fn garbage_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let err = read_bytes(dir.path(), "x.nrrd", &garbage).unwrap_err();
    assert!(matches!(err, FormatError::NotFormat { .. }), "{err}");
    let err = read_bytes(dir.path(), "x.nhdr", b"").unwrap_err();
    assert!(matches!(err, FormatError::NotFormat { .. }), "{err}");
    let err = read_bytes(dir.path(), "x.mha", &garbage).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::MissingField { .. } | FormatError::BadField { .. }
        ),
        "{err}"
    );
    let err = read_image(&PathBuf::from("image.nii.gz")).unwrap_err();
    assert!(matches!(err, FormatError::Extension { .. }), "{err}");
}

#[test]
fn an_endless_header_stops_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = b"NRRD0004\ntype: uchar\n# ".to_vec();
    file.resize(17 << 20, b'a');
    let err = read_bytes(dir.path(), "h.nrrd", &file).unwrap_err();
    assert!(matches!(err, FormatError::BadHeader { .. }), "{err}");
    let lines = "Comment = x\n".repeat(1_500_000);
    let err = read_bytes(dir.path(), "h.mha", lines.as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::BadHeader { .. }), "{err}");
}
