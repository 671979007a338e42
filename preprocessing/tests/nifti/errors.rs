//! Broken and unsupported files give the right error variant, never a panic.

use std::path::Path;

use autoseg_preprocessing::{
    read_header, read_image, read_image_from_bytes, read_label_map_from_bytes, write_image,
    write_label_map, Geometry, HeaderGeometry, Image, ImageError, LabelMap, NiftiIoError, Shape3,
    Spacing,
};
use ndarray::Array4;

use super::{gzip, Spec};

fn read(bytes: &[u8]) -> NiftiIoError {
    read_image_from_bytes(bytes, Path::new("case_0000.nii.gz")).unwrap_err()
}

fn valid() -> Vec<u8> {
    Spec::new(4, [4, 3, 2]).file(&[1.0; 24])
}

#[test]
fn truncated_files() {
    let plain = valid();
    // Data block one byte short: header/data size mismatch, before anything is decoded.
    let e = read(&plain[..plain.len() - 1]);
    assert!(
        matches!(
            e,
            NiftiIoError::DataSizeMismatch {
                expected: 48,
                found: 47,
                ..
            }
        ),
        "{e}"
    );
    let e = read(&plain[..100]);
    assert!(
        matches!(
            e,
            NiftiIoError::TruncatedHeader {
                len: 100,
                expected: 348,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        read(&[]),
        NiftiIoError::TruncatedHeader { len: 0, .. }
    ));
    // A gzip stream cut inside the deflate data or trailer.
    let gz = gzip(&plain);
    for cut in [gz.len() - 4, gz.len() / 2, 30] {
        let e = read(&gz[..cut]);
        assert!(
            matches!(
                e,
                NiftiIoError::Gzip { .. } | NiftiIoError::TruncatedHeader { .. }
            ),
            "cut {cut}: {e}"
        );
    }
    // A complete gzip stream holding too little data.
    let e = read(&gzip(&plain[..plain.len() - 2]));
    assert!(
        matches!(
            e,
            NiftiIoError::DataSizeMismatch {
                expected: 48,
                found: 46,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn corrupt_gzip_checksum_is_detected() {
    let mut gz = gzip(&valid());
    let n = gz.len();
    gz[n - 8] ^= 0xff; // CRC32 of the trailer
    assert!(matches!(read(&gz), NiftiIoError::Gzip { .. }));
}

#[test]
fn wrong_magic_and_not_nifti() {
    let mut spec = Spec::new(4, [4, 3, 2]);
    spec.magic = *b"ni1\0";
    let e = read(&spec.file(&[1.0; 24]));
    assert!(
        matches!(&e, NiftiIoError::BadMagic { found, .. } if found == "ni1\\x00"),
        "{e}"
    );
    let mut bytes = valid();
    bytes[0] = 0;
    assert!(matches!(
        read(&bytes),
        NiftiIoError::NotNifti {
            sizeof_hdr: 256,
            ..
        }
    ));
    // A message names the file and the fault.
    assert!(
        e.to_string()
            .starts_with("case_0000.nii.gz: wrong NIfTI magic"),
        "{e}"
    );
}

#[test]
fn bad_dims_four_d_and_unsupported_dimensionality() {
    let with_dim = |dim: [i16; 8]| {
        let mut spec = Spec::new(4, [4, 3, 2]);
        spec.dim = dim;
        read(&spec.file(&[1.0; 48]))
    };
    assert!(matches!(
        with_dim([3, 4, 0, 2, 1, 1, 1, 1]),
        NiftiIoError::BadDims { .. }
    ));
    assert!(matches!(
        with_dim([3, 4, -3, 2, 1, 1, 1, 1]),
        NiftiIoError::BadDims { .. }
    ));
    assert!(matches!(
        with_dim([0, 4, 3, 2, 1, 1, 1, 1]),
        NiftiIoError::BadDims { .. }
    ));
    assert!(matches!(
        with_dim([8, 4, 3, 2, 1, 1, 1, 1]),
        NiftiIoError::BadDims { .. }
    ));
    let e = with_dim([4, 4, 3, 2, 2, 1, 1, 1]);
    assert!(matches!(e, NiftiIoError::FourD { volumes: 2, .. }), "{e}");
    assert!(e.to_string().contains("4-D image with 2 volumes"));
    assert!(matches!(
        with_dim([1, 24, 1, 1, 1, 1, 1, 1]),
        NiftiIoError::UnsupportedDims { .. }
    ));
    assert!(matches!(
        with_dim([5, 4, 3, 2, 1, 2, 1, 1]),
        NiftiIoError::UnsupportedDims { .. }
    ));
}

#[test]
fn unsupported_datatype_bad_scaling_and_bad_spacing() {
    let mut spec = Spec::new(128, [4, 3, 2]); // RGB24
    spec.bitpix = 24;
    let e = read(&spec.file(&[]));
    assert!(
        matches!(e, NiftiIoError::UnsupportedDatatype { code: 128, .. }),
        "{e}"
    );
    let mut spec = Spec::new(4, [4, 3, 2]);
    spec.slope = 2.0;
    spec.inter = f32::INFINITY;
    assert!(matches!(
        read(&spec.file(&[1.0; 24])),
        NiftiIoError::BadScaling { .. }
    ));
    let mut spec = Spec::new(4, [4, 3, 2]);
    spec.pixdim[2] = f32::NAN;
    assert!(matches!(
        read(&spec.file(&[1.0; 24])),
        NiftiIoError::BadSpacing { .. }
    ));
}

#[test]
fn forged_huge_dims_fail_before_allocating() {
    let mut spec = Spec::new(64, [32767, 32767, 32767]);
    spec.dim[4] = 1;
    let plain = spec.file(&[0.0; 8]);
    assert!(matches!(
        read(&plain),
        NiftiIoError::DataSizeMismatch { .. }
    ));
    // A gzip file is judged by what its compressed size can expand to, and says so.
    let packed = gzip(&plain);
    let err = read(&packed);
    let expected = 32767u128.pow(3) * 8;
    let most = packed.len() as u128 * 1032;
    assert!(
        matches!(err, NiftiIoError::GzipTooSmall { expected: e, compressed, most: m, .. }
            if e == expected && compressed == packed.len() as u64 && m == most),
        "{err}"
    );
    assert!(err.to_string().contains(&format!(
        "a gzip file of {} bytes can hold at most {most}",
        packed.len()
    )));
}

#[test]
fn label_maps_refuse_negative_and_fractional_values() {
    for (code, bad) in [(4i16, -1.0), (16, 2.5), (16, f64::NAN), (8, 70_000.0)] {
        let spec = Spec::new(code, [2, 1, 1]);
        let e =
            read_label_map_from_bytes(&spec.file(&[1.0, bad]), Path::new("lab.nii")).unwrap_err();
        assert!(
            matches!(e, NiftiIoError::BadLabel { value, .. } if value.is_nan() == bad.is_nan() && (bad.is_nan() || value == bad)),
            "{e}"
        );
    }
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = read_image(Path::new("/nonexistent/x.nii.gz")).unwrap_err();
    assert!(matches!(e, ImageError::Nifti(NiftiIoError::Io { .. })));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/x.nii.gz: cannot read"));
    assert!(matches!(
        read_header(Path::new("/nonexistent/x.nii")),
        Err(NiftiIoError::Io { .. })
    ));
}

fn small_image(c: usize) -> Image {
    let shape = Shape3([2, 2, 2]);
    Image {
        data: Array4::zeros((c, 2, 2, 2)),
        geometry: Geometry::new(
            shape,
            HeaderGeometry::axis_aligned(Spacing([1.0; 3]), [0.0; 3]),
        ),
    }
}

#[test]
fn writer_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.nii.gz");
    assert!(matches!(
        write_image(&p, &small_image(2), 1),
        Err(ImageError::Nifti(NiftiIoError::ShapeMismatch {
            data: [2, 2, 2, 2],
            ..
        }))
    ));
    assert!(matches!(
        write_image(&p, &small_image(1), 10),
        Err(ImageError::Nifti(NiftiIoError::GzipLevel { level: 10, .. }))
    ));
    assert!(matches!(
        write_image(&dir.path().join("x.gipl.gz"), &small_image(1), 1),
        Err(ImageError::Ending { .. })
    ));
    let mut wrong = small_image(1);
    wrong.data = Array4::zeros((1, 2, 2, 3));
    assert!(matches!(
        write_image(&p, &wrong, 1),
        Err(ImageError::Nifti(NiftiIoError::ShapeMismatch { .. }))
    ));
    let labels = LabelMap {
        data: Array4::zeros((1, 2, 2, 2)),
        geometry: small_image(1).geometry,
    };
    let missing = dir.path().join("no_such_dir/l.nii.gz");
    assert!(matches!(
        write_label_map(&missing, &labels, 1),
        Err(ImageError::Nifti(NiftiIoError::Write { .. }))
    ));
}

#[test]
fn failed_write_leaves_the_target_and_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    // The target is a non-empty folder: the final rename fails after all data was written.
    let target = dir.path().join("busy.nii.gz");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    let e = write_image(&target, &small_image(1), 1).unwrap_err();
    assert!(
        matches!(e, ImageError::Nifti(NiftiIoError::Write { .. })),
        "{e}"
    );
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot write", target.display())));
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"x");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("busy.nii.gz")]);
}

#[test]
fn written_files_take_the_umasks_permissions_like_any_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    let mask = dir.path().join("mask.nii.gz");
    write_image(&mask, &small_image(1), 1).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A temp-file crate would give 0600 whatever the umask says.
    assert_eq!(mode(&mask), mode(&plain));
}
