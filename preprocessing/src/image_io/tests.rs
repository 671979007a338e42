//! Known answers: what nnU-Net 2.8.1's `SimpleITKIO` reads from the NRRD/MetaImage fixtures and
//! what its `write_seg` writes back (`fixtures/data/formats/nnunet_io.json`, made by
//! `scripts/make_image_io_goldens.py`), the voxels SimpleITK reads (`expected.json`), what the
//! reader nnU-Net's registry picks reads from the natural-image fixtures
//! (`fixtures/data/natural/expected.json`, `scripts/make_natural_fixtures.py`), and the
//! interface's own refusals.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use serde_json::Value;

use super::*;
use crate::formats::{self, ElementType, RawImage};
use crate::test_support::{self, floats};
use crate::volume::{Geometry, HeaderGeometry, Shape3, SourceGeometry, Spacing, Volume};

fn fixtures() -> PathBuf {
    test_support::fixture_dir("formats")
}

fn json(name: &str) -> serde_json::Map<String, Value> {
    test_support::json_object(&fixtures().join(name))
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    test_support::assert_close(what, got, want, 1e-12);
}

#[test]
fn every_scalar_fixture_reads_as_nnunets_simpleitkio_reads_it() {
    let sitk = json("expected.json");
    let goldens = json("nnunet_io.json");
    assert!(
        goldens.len() >= 20,
        "nnunet_io.json lists {}",
        goldens.len()
    );
    for (name, golden) in &goldens {
        let image = read_image(&fixtures().join(name)).unwrap_or_else(|e| panic!("{e}"));
        let shape: Vec<usize> = floats(&golden["shape"])
            .iter()
            .map(|&v| v as usize)
            .collect();
        assert_eq!(image.data.shape(), &shape[..], "{name}: shape");
        assert_close(
            &format!("{name}: spacing"),
            &image.geometry.spacing().0,
            &floats(&golden["spacing"]),
        );
        let want: Vec<f32> = floats(&sitk[name]["values"])
            .iter()
            .map(|&v| v as f32)
            .collect();
        let got: Vec<f32> = image.data.iter().copied().collect();
        assert_eq!(got, want, "{name}: voxels");
    }
}

#[test]
fn masks_are_written_in_their_sources_format_and_geometry_as_write_seg_writes_them() {
    let goldens = json("nnunet_io.json");
    let dir = tempfile::tempdir().unwrap();
    for (name, golden) in &goldens {
        let source = read_image(&fixtures().join(name)).unwrap();
        let mut labels = Volume {
            data: Array4::<u16>::zeros(source.data.raw_dim()),
            geometry: source.geometry.clone(),
        };
        let n = labels.data.len();
        labels.data.as_slice_mut().unwrap()[n / 2] = 3;
        let ext = Path::new(name).extension().unwrap().to_str().unwrap();
        let target = dir.path().join(format!("seg.{ext}"));
        write_label_map(&target, &labels, 1).unwrap();
        let back = formats::read_image(&target).unwrap();
        let want = &golden["seg_written"];
        let size: Vec<usize> = floats(&want["size"]).iter().map(|&v| v as usize).collect();
        assert_eq!(back.dims, size, "{name}: size");
        assert_close(
            &format!("{name}: spacing"),
            &back.spacing,
            &floats(&want["spacing"]),
        );
        assert_close(
            &format!("{name}: origin"),
            &back.origin,
            &floats(&want["origin"]),
        );
        let direction = floats(&want["direction"]);
        assert_close(&format!("{name}: direction"), &back.direction, &direction);
        assert_eq!(want["pixel"], "uint8", "{name}");
        assert_eq!(back.element, ElementType::U8, "{name}: pixel type");
        assert_eq!(back.data[n / 2], 3, "{name}: the labelled voxel");
        assert_eq!(back.data.iter().map(|&b| u32::from(b)).sum::<u32>(), 3);
        // And read back through the interface, the mask overlays its source.
        let again = read_label_map(&target).unwrap();
        assert!(
            again.geometry.compare(&source.geometry).is_match(),
            "{name}"
        );
        assert_eq!(again.data, labels.data, "{name}");
    }
}

#[test]
fn a_label_map_of_255_or_more_is_written_as_u16() {
    let source = read_image(&fixtures().join("flat.nrrd")).unwrap();
    let labels = Volume {
        data: source.data.mapv(|v| (v as u32 % 700) as u16),
        geometry: source.geometry.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("seg.mha");
    write_label_map(&target, &labels, 1).unwrap();
    let raw = formats::read_image(&target).unwrap();
    assert_eq!(raw.element, ElementType::U16);
    assert_eq!(raw.dims, [6, 4], "a 2-D source is written as a 2-D file");
    assert_eq!(read_label_map(&target).unwrap().data, labels.data);
}

#[test]
fn an_itk_source_written_as_nifti_and_a_nifti_source_written_as_nrrd_keep_their_placement() {
    let dir = tempfile::tempdir().unwrap();
    let ct = read_image(&fixtures().join("ct.mha")).unwrap();
    let nifti = dir.path().join("ct.nii.gz");
    write_image(&nifti, &ct, 1).unwrap();
    let back = read_image(&nifti).unwrap();
    assert_eq!(back.data, ct.data);
    assert_eq!(back.geometry.spacing(), ct.geometry.spacing());
    assert!(back.geometry.affine().max_abs_diff(&ct.geometry.affine()) < 1e-5);
    assert!(matches!(back.geometry.source(), SourceGeometry::Nifti(_)));

    let header = HeaderGeometry::axis_aligned(Spacing([3.0, 2.0, 1.5]), [10.0, -20.0, 30.0]);
    let source = Volume {
        data: Array4::from_shape_fn((1, 2, 3, 4), |(_, z, y, x)| (z * 12 + y * 4 + x) as u16),
        geometry: Geometry::new(Shape3([2, 3, 4]), header),
    };
    let nrrd = dir.path().join("labels.nrrd");
    write_label_map(&nrrd, &source, 1).unwrap();
    let raw = formats::read_image(&nrrd).unwrap();
    assert_eq!(raw.dims, [4, 3, 2]);
    assert_eq!(raw.spacing, [1.5, 2.0, 3.0]);
    // RAS (10, -20, 30) is LPS (-10, 20, 30); the identity direction flips x and y.
    assert_eq!(raw.origin, [-10.0, 20.0, 30.0]);
    assert_eq!(
        raw.direction,
        [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]
    );
    let back = read_label_map(&nrrd).unwrap();
    assert_eq!(back.data, source.data);
    assert!(back.geometry.compare(&source.geometry).is_match());
}

#[test]
fn what_the_interface_refuses_is_named() {
    let err = read_image(&fixtures().join("vec.nrrd")).unwrap_err();
    assert!(
        matches!(err, ImageError::Components { components: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("vec.nrrd"), "{err}");

    let err = read_image(Path::new("scan.gipl.gz")).unwrap_err();
    assert!(matches!(err, ImageError::Ending { .. }), "{err}");
    assert!(err.to_string().contains(".nii.gz, .nii, .nrrd"), "{err}");
    assert!(err.to_string().contains(".gipl"), "{err}");

    let err = read_label_map(&fixtures().join("ascii.nrrd")).unwrap_err();
    assert!(
        matches!(err, ImageError::BadLabel { value, .. } if value == 1.5),
        "{err}"
    );

    let missing = read_image(Path::new("/nonexistent/case_0000.mha")).unwrap_err();
    assert!(missing.io_error().is_some(), "{missing}");

    let dir = tempfile::tempdir().unwrap();
    let four_d = dir.path().join("t.nrrd");
    let raw = RawImage::new(
        vec![2, 2, 2, 2],
        vec![1.0; 4],
        vec![0.0; 4],
        (0..16).map(|i| f64::from(i % 5 == 0)).collect(),
        1,
        ElementType::U8,
        vec![0; 16],
    )
    .unwrap();
    formats::write_image(&raw, &four_d).unwrap();
    let err = read_image(&four_d).unwrap_err();
    assert!(matches!(err, ImageError::Dims { .. }), "{err}");

    let over = Volume {
        data: Array4::<f32>::zeros((1, 2, 2, 2)),
        geometry: Geometry::new(
            Shape3([2, 2, 3]),
            HeaderGeometry::axis_aligned(Spacing([1.0; 3]), [0.0; 3]),
        ),
    };
    let err = write_image(&dir.path().join("x.mha"), &over, 1).unwrap_err();
    assert!(matches!(err, ImageError::ShapeMismatch { .. }), "{err}");
}

#[test]
fn formats_are_named_by_their_endings() {
    assert_eq!(
        ImageFormat::from_ending(".nii.gz"),
        Some(ImageFormat::NiftiGz)
    );
    assert_eq!(ImageFormat::from_ending(".NRRD"), Some(ImageFormat::Nrrd));
    assert_eq!(ImageFormat::from_ending(".png"), Some(ImageFormat::Png));
    assert_eq!(ImageFormat::from_ending(".gipl"), Some(ImageFormat::Gipl));
    assert_eq!(ImageFormat::from_ending(".gipl.gz"), None);
    assert_eq!(
        ImageFormat::of_path(Path::new("a/b_0000.nii.gz")),
        Some(ImageFormat::NiftiGz)
    );
    assert_eq!(
        ImageFormat::of_path(Path::new("b.nii")),
        Some(ImageFormat::Nifti)
    );
    assert_eq!(
        ImageFormat::of_path(Path::new("b.MHD")),
        Some(ImageFormat::Mhd)
    );
    assert_eq!(ImageFormat::of_path(Path::new(".nrrd")), None);
    for (format, ending) in ImageFormat::ALL {
        assert_eq!(format.ending(), ending);
    }
}

/// `fixtures/data/natural/expected.json`'s cases.
fn natural_cases() -> serde_json::Map<String, Value> {
    let all = test_support::json_object(&test_support::fixture_dir("natural/expected.json"));
    all["cases"].as_object().unwrap().clone()
}

/// Whether nnU-Net's array for `read` matches the volume read: shape, spacing, every value.
fn assert_matches_nnunet<T: Copy + Into<f64>>(name: &str, want: &Value, volume: &Volume<T>) {
    let shape: Vec<usize> = floats(&want["shape"]).iter().map(|&v| v as usize).collect();
    assert_eq!(volume.data.shape(), &shape[..], "{name}: shape");
    assert_close(
        &format!("{name}: spacing"),
        &volume.geometry.spacing().0,
        &floats(&want["spacing"]),
    );
    let got: Vec<f64> = volume.data.iter().map(|&v| v.into()).collect();
    assert_eq!(got, floats(&want["values"]), "{name}: values");
}

#[test]
fn natural_images_read_as_the_reader_nnunets_registry_picks() {
    let natural = test_support::fixture_dir("natural");
    let mut checked = (0, 0, 0);
    for (name, case) in natural_cases() {
        let path = natural.join(&name);
        if ImageFormat::of_path(&path).is_none() {
            continue;
        }
        let (images, seg) = match case["registry"].as_str() {
            Some("NaturalImage2DIO") => ("natural_read_images", "natural_read_seg"),
            Some("Tiff3DIO") => ("tiff3d_read_images", "tiff3d_read_seg"),
            _ => {
                assert!(read_image(&path).is_err(), "{name}: nnU-Net reads none");
                checked.2 += 1;
                continue;
            }
        };
        match (read_image(&path), case[images].get("values")) {
            (Ok(image), Some(_)) => assert_matches_nnunet(&name, &case[images], &image),
            (Err(e), None) => assert!(e.to_string().contains(&name), "{e}"),
            (got, _) => panic!("{name}: {got:?} vs nnU-Net {}", case[images]),
        }
        checked.0 += 1;
        let want = &case[seg];
        let integral = want.get("values").is_some_and(|v| {
            floats(v)
                .iter()
                .all(|x| x.fract() == 0.0 && (0.0..65536.0).contains(x))
                && want["shape"][0] == 1
        });
        if integral {
            let labels = read_label_map(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_matches_nnunet(&name, want, &labels);
            checked.1 += 1;
        }
    }
    assert!(
        checked.0 >= 40 && checked.1 >= 15 && checked.2 >= 8,
        "{checked:?}"
    );
}

#[test]
fn natural_segmentations_are_written_as_their_sources_writer_writes_them() {
    let natural = test_support::fixture_dir("natural");
    let dir = tempfile::tempdir().unwrap();
    // (source, ending written, writer nnU-Net would use)
    for (source, ending) in [
        ("grey_u8.png", ".png"),
        ("rgb.bmp", ".bmp"),
        ("grey_u8.tif", ".tif"),
        ("stack_0000.tif", ".tif"),
        ("stack_lzw_0000.tiff", ".tiff"),
    ] {
        let image = read_image(&natural.join(source)).unwrap();
        let [_, z, y, x] = [0, 1, 2, 3].map(|a| image.data.shape()[a]);
        let labels = Volume {
            data: Array4::from_shape_fn((1, z, y, x), |(_, k, j, i)| ((k + j * 3 + i) % 4) as u16),
            geometry: image.geometry.clone(),
        };
        let target = dir.path().join(format!("case{ending}"));
        write_label_map(&target, &labels, 1).unwrap();
        let back = read_label_map(&target).unwrap();
        assert_eq!(back.data, labels.data, "{source}");
        assert_eq!(
            back.geometry.spacing(),
            labels.geometry.spacing(),
            "{source}"
        );
        let stack = z > 1;
        let sidecar = dir.path().join("case.json");
        assert_eq!(sidecar.is_file(), stack, "{source}: Tiff3DIO's sidecar");
        if stack {
            let text = std::fs::read_to_string(&sidecar).unwrap();
            let spacing: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                floats(&spacing["spacing"]),
                image.geometry.spacing().0.to_vec()
            );
            std::fs::remove_file(&sidecar).unwrap();
        }
    }
    let image = read_image(&natural.join("rgb.png")).unwrap();
    assert_eq!(image.data.shape(), [3, 1, 5, 7]);
    let err = write_image(&dir.path().join("x.png"), &image, 1).unwrap_err();
    assert!(matches!(err, ImageError::SegmentationOnly { .. }), "{err}");
}

#[test]
fn gipl_goes_through_the_itk_paths_with_its_geometry() {
    let gipl = test_support::fixture_dir("gipl");
    let dir = tempfile::tempdir().unwrap();
    // A label map SimpleITK wrote, read and written as nnU-Net's write_seg writes it (u8 for a
    // maximum below 255): the same file, byte for byte.
    let labels = read_label_map(&gipl.join("labels_u8.gipl")).unwrap();
    assert_eq!(labels.data.shape(), &[1, 4, 5, 6]);
    let target = dir.path().join("labels_u8.gipl");
    write_label_map(&target, &labels, 1).unwrap();
    assert!(std::fs::read(&target).unwrap() == std::fs::read(gipl.join("labels_u8.gipl")).unwrap());
    // Reversed axes (negative spacings) survive a mask written from the image.
    let image = read_image(&gipl.join("negative_spacing.gipl")).unwrap();
    let mask = Volume {
        data: image.data.mapv(|v| (v as u16) % 3),
        geometry: image.geometry.clone(),
    };
    let target = dir.path().join("mask.gipl");
    write_label_map(&target, &mask, 1).unwrap();
    let back = read_label_map(&target).unwrap();
    assert!(back.geometry.compare(&image.geometry).is_match());
    assert_eq!(back.data, mask.data);
    let raw = formats::read_image(&target).unwrap();
    assert_eq!(raw.direction[0], -1.0);
    assert_eq!(raw.element, ElementType::U8);
    // Float images are written as 32-bit floats.
    let target = dir.path().join("ct.gipl");
    let ct = read_image(&gipl.join("ct_i16.gipl")).unwrap();
    write_image(&target, &ct, 1).unwrap();
    assert_eq!(
        formats::read_image(&target).unwrap().element,
        ElementType::F32
    );
    assert_eq!(read_image(&target).unwrap().data, ct.data);
    // Four axes are refused by name.
    let err = read_image(&gipl.join("four_d.gipl")).unwrap_err();
    assert!(matches!(err, ImageError::Dims { .. }), "{err}");
}
