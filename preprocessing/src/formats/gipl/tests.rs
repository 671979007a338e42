//! Known answers from SimpleITK 2.5.7 (`scripts/make_gipl_fixtures.py`: files SimpleITK wrote
//! and files written by hand, with what SimpleITK reads from each), write-back, fresh writes
//! (byte for byte what SimpleITK writes for the same image), broken files, and mutants of every
//! fixture.
//!
//! With `AUTOSEG_GIPL_WRITES_DIR=<dir>` the fresh writes and an `expected.json` describing them
//! are also left in `<dir>`, for `scripts/check_gipl_writes.py <dir>` to read with SimpleITK.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::super::geometry::identity;
use super::super::{read_image, write_image, ElementType, FormatError};
use super::*;
use crate::test_support::{self, element_of, floats, mutate, Rng};

fn fixture_dir() -> PathBuf {
    test_support::fixture_dir("gipl")
}

fn section(name: &str) -> Map<String, Value> {
    let all = test_support::json_object(&fixture_dir().join("expected.json"));
    all[name].as_object().unwrap().clone()
}

fn read(name: &str) -> RawImage {
    read_gipl(&fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Asserts that `image` is what SimpleITK read from fixture `name`: geometry exactly (GIPL's
/// numbers are 32-bit spacings and 64-bit origins, converted without rounding), every voxel.
fn assert_like_simpleitk(name: &str, image: &RawImage, want: &Value) {
    let size: Vec<usize> = floats(&want["size"]).iter().map(|&s| s as usize).collect();
    assert_eq!(image.dims, size, "{name}: size");
    assert_eq!(image.components, 1, "{name}");
    assert_eq!(
        image.element,
        element_of(want["pixel"].as_str().unwrap()),
        "{name}"
    );
    assert_eq!(image.spacing, floats(&want["spacing"]), "{name}: spacing");
    assert_eq!(image.origin, floats(&want["origin"]), "{name}: origin");
    assert_eq!(
        image.direction,
        floats(&want["direction"]),
        "{name}: direction"
    );
    assert_eq!(image.to_f64(), floats(&want["values"]), "{name}: values");
}

#[test]
fn every_fixture_reads_as_simpleitk_reads_it() {
    let images = section("images");
    assert!(images.len() >= 13, "{} images", images.len());
    for (name, want) in &images {
        let image = read(name);
        assert_like_simpleitk(name, &image, want);
        assert!(image.has_source(), "{name}");
        assert_eq!(read_image(&fixture_dir().join(name)).unwrap(), image);
    }
    // What survives of the geometry SimpleITK was asked to write: spacing (as 32-bit floats)
    // and origin; the direction is lost (ct_i16 was rotated, pet_f32 flipped).
    let ct = &images["ct_i16.gipl"];
    assert_ne!(floats(&ct["written"]["direction"]), identity(3));
    assert_eq!(floats(&ct["direction"]), identity(3));
}

#[test]
fn every_fixture_writes_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for name in section("images").keys() {
        let target = dir.path().join(name);
        write_image(&read(name), &target).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = std::fs::read(fixture_dir().join(name)).unwrap();
        assert!(std::fs::read(&target).unwrap() == want, "{name}");
    }
}

#[test]
fn fresh_writes_are_what_simpleitk_writes() {
    // Every file SimpleITK wrote, read and written afresh, is the same file: header and data.
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for (name, want) in section("images") {
        if want.get("written").is_none() {
            continue;
        }
        let mut image = read(&name);
        image.forget_source();
        let target = dir.path().join(&name);
        write_gipl(&image, &target).unwrap();
        let theirs = std::fs::read(fixture_dir().join(&name)).unwrap();
        assert!(std::fs::read(&target).unwrap() == theirs, "{name}");
        n += 1;
    }
    assert_eq!(n, 7);
}

#[test]
fn changed_voxels_keep_the_header_and_trailing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["trailing.gipl", "magic2.gipl", "binary.gipl", "zero_z.gipl"] {
        let original = std::fs::read(fixture_dir().join(name)).unwrap();
        let mut image = read(name);
        for voxel in image.data.chunks_exact_mut(image.element.size()) {
            voxel[voxel.len() - 1] ^= 1;
        }
        let target = dir.path().join(name);
        write_gipl(&image, &target).unwrap();
        let written = std::fs::read(&target).unwrap();
        assert_eq!(written[..HEADER_LEN], original[..HEADER_LEN], "{name}");
        assert_eq!(written.len(), original.len(), "{name}");
        assert_eq!(read_gipl(&target).unwrap(), image, "{name}");
    }
}

/// What SimpleITK reads from a GIPL file written for `image`: at least three axes (the missing
/// ones of size 1, spacing 1, origin 0), spacings as 32-bit floats, and a direction that is
/// `image`'s when diagonal with entries ±1, else the identity.
fn simpleitk_view(image: &RawImage) -> (Vec<usize>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (d, n) = (image.dims.len(), image.dims.len().max(3));
    let diagonal = (0..d * d).all(|i| {
        let v = image.direction[i];
        if i / d == i % d {
            v.abs() == 1.0
        } else {
            v == 0.0
        }
    });
    let mut direction = identity(n);
    let (mut dims, mut spacing, mut origin) = (vec![1; n], vec![1.0; n], vec![0.0; n]);
    for axis in 0..d {
        dims[axis] = image.dims[axis];
        spacing[axis] = f64::from(image.spacing[axis].abs() as f32);
        origin[axis] = image.origin[axis];
        let sign = image.spacing[axis].signum();
        direction[axis * n + axis] = if diagonal {
            sign * image.direction[axis * d + axis]
        } else {
            sign
        };
    }
    (dims, spacing, origin, direction)
}

/// Images to write afresh: every fixture image, and new ones (label maps with a rotated, a
/// flipped and a swapped direction, 1-D and 2-D images, doubles with awkward spacings).
fn fresh_images() -> Vec<(String, RawImage)> {
    let mut out: Vec<(String, RawImage)> = section("images")
        .keys()
        .map(|name| {
            let mut image = read(name);
            image.forget_source();
            (format!("fresh_{name}"), image)
        })
        .collect();
    let (c, s) = (0.6f64.cos(), 0.6f64.sin());
    let rotated = vec![c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
    let flipped = vec![-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    let swapped = vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0];
    let labels_u8: Vec<u8> = (0..60u8).map(|i| i % 5).collect();
    let labels_u16: Vec<u8> = (0..60u16)
        .flat_map(|i| (i * 97 % 700).to_le_bytes())
        .collect();
    let new = |dims: Vec<usize>, spacing, origin, direction, element, data| {
        RawImage::new(dims, spacing, origin, direction, 1, element, data).unwrap()
    };
    let spacing = vec![0.8, 0.8, 3.0];
    let origin = vec![-120.5, 33.0, 7.25];
    for (name, direction) in [
        ("rotated", rotated),
        ("flipped", flipped),
        ("swapped", swapped),
    ] {
        let image = new(
            vec![5, 4, 3],
            spacing.clone(),
            origin.clone(),
            direction.clone(),
            ElementType::U8,
            labels_u8.clone(),
        );
        out.push((format!("labels_u8_{name}.gipl"), image));
        let image = new(
            vec![3, 4, 5],
            spacing.clone(),
            origin.clone(),
            direction,
            ElementType::U16,
            labels_u16.clone(),
        );
        out.push((format!("labels_u16_{name}.gipl"), image));
    }
    let floats: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.3 - 1.0).to_le_bytes())
        .collect();
    let planar = new(
        vec![4, 3],
        vec![0.1, 1.0 / 3.0],
        vec![-5.0, 1e-3],
        vec![-1.0, 0.0, 0.0, 1.0],
        ElementType::F32,
        floats.clone(),
    );
    out.push(("planar_f32.gipl".to_string(), planar));
    let line = new(
        vec![12],
        vec![2.5],
        vec![4.0],
        vec![1.0],
        ElementType::F32,
        floats,
    );
    out.push(("line_f32.gipl".to_string(), line));
    let doubles: Vec<u8> = (0..24)
        .flat_map(|i| (f64::from(i) / 3.0).to_le_bytes())
        .collect();
    let doubles = new(
        vec![2, 3, 4],
        vec![0.123456789, 1e-3, 7.7],
        vec![1e6, -1e-6, 0.0],
        identity(3),
        ElementType::F64,
        doubles,
    );
    out.push(("doubles_f64.gipl".to_string(), doubles));
    out
}

fn describe(dims: &[usize], spacing: &[f64], origin: &[f64], direction: &[f64]) -> Value {
    json!({"size": dims, "spacing": spacing, "origin": origin, "direction": direction})
}

#[test]
fn fresh_writes_read_back_as_simpleitk_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let export = std::env::var_os("AUTOSEG_GIPL_WRITES_DIR").map(PathBuf::from);
    let mut manifest = Map::new();
    for (name, image) in fresh_images() {
        let path = dir.path().join(&name);
        write_gipl(&image, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = read_gipl(&path).unwrap();
        let (dims, spacing, origin, direction) = simpleitk_view(&image);
        assert_eq!(
            (&back.dims, &back.spacing, &back.origin, &back.direction),
            (&dims, &spacing, &origin, &direction),
            "{name}"
        );
        assert_eq!((back.element, &back.data), (image.element, &image.data));
        if let Some(out) = &export {
            std::fs::create_dir_all(out).unwrap();
            std::fs::copy(&path, out.join(&name)).unwrap();
            let mut entry = describe(&dims, &spacing, &origin, &direction);
            entry["pixel"] = json!(format!("{:?}", image.element).to_lowercase());
            entry["values"] = json!(image.to_f64());
            entry["written"] =
                describe(&image.dims, &image.spacing, &image.origin, &image.direction);
            manifest.insert(name, entry);
        }
    }
    if let Some(out) = export {
        let text = serde_json::to_string_pretty(&Value::Object(manifest)).unwrap();
        std::fs::write(out.join("expected.json"), text).unwrap();
    }
}

#[test]
fn broken_files_are_refused_naming_the_file() {
    let broken = section("broken");
    assert!(broken.len() >= 10);
    for (name, want) in broken {
        let err = read_image(&fixture_dir().join(&name)).unwrap_err();
        let variant = want["refused_as"].as_str().unwrap();
        assert!(
            format!("{err:?}").starts_with(variant),
            "{name}: {err:?}, not {variant}"
        );
        assert!(err.to_string().contains(&name), "{err}");
    }
    // SimpleITK reads a truncated file without complaint; the fixture records it.
    assert!(section("broken")["broken_truncated.gipl"]["sitk"].is_null());
}

#[test]
fn messages_name_the_fault() {
    let message = |name: &str| {
        read_gipl(&fixture_dir().join(name))
            .unwrap_err()
            .to_string()
    };
    assert!(message("broken_little_endian_magic.gipl").contains("little-endian"));
    assert!(message("broken_int32.gipl").contains("Pixel Type Unknown"));
    assert!(message("broken_short_header.gipl").contains("256-byte header"));
    assert!(message("broken_zero_size.gipl").contains("[0, 3, 2, 1]"));
}

#[test]
fn sizes_over_the_ceiling_are_refused_before_allocation() {
    // 65535 x 65535 x 64 doubles (2.2 TB) in a sparse file of that length: the ceiling refuses
    // it before anything is reserved. Where the file system holds no such file, a short one.
    let dir = tempfile::tempdir().unwrap();
    let mut header = std::fs::read(fixture_dir().join("dose_f64.gipl")).unwrap();
    header.truncate(HEADER_LEN);
    for (axis, size) in [65535u16, 65535, 64, 1].into_iter().enumerate() {
        header[2 * axis..2 * axis + 2].copy_from_slice(&size.to_be_bytes());
    }
    let path = dir.path().join("huge.gipl");
    std::fs::write(&path, &header).unwrap();
    let n_bytes = 65535u64 * 65535 * 64 * 8;
    let sparse = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(HEADER_LEN as u64 + n_bytes))
        .is_ok();
    let err = read_gipl(&path).unwrap_err();
    if sparse {
        assert!(matches!(err, FormatError::OverCeiling { .. }), "{err}");
    } else {
        assert!(matches!(err, FormatError::DataTooShort { .. }), "{err}");
    }
}

#[test]
fn what_gipl_cannot_hold_is_refused_on_writing() {
    let dir = tempfile::tempdir().unwrap();
    let base = read("labels_u8.gipl");
    let with = |f: &dyn Fn(&mut RawImage)| {
        let mut image = base.clone();
        image.forget_source();
        f(&mut image);
        image
    };
    let vector = with(&|i| {
        i.components = 2;
        i.data = [i.data.clone(), i.data.clone()].concat();
    });
    let int32 = with(&|i| {
        i.element = ElementType::I32;
        i.data = i
            .data
            .iter()
            .flat_map(|&v| i32::from(v).to_le_bytes())
            .collect();
    });
    let wide = with(&|i| {
        i.dims = vec![70000, 1, 1];
        i.data = vec![0; 70000];
    });
    let five_d = with(&|i| {
        i.dims = vec![2, 2, 2, 2, 2];
        i.spacing = vec![1.0; 5];
        i.origin = vec![0.0; 5];
        i.direction = identity(5);
        i.data = vec![0; 32];
    });
    let tiny = with(&|i| i.spacing[0] = 1e-50);
    for (what, image) in [
        ("component", vector),
        ("I32", int32),
        ("65535", wide),
        ("4 axes", five_d),
        ("32-bit floats", tiny),
    ] {
        let path = dir.path().join("x.gipl");
        let err = write_gipl(&image, &path).unwrap_err();
        assert!(matches!(err, FormatError::InvalidImage { .. }), "{err}");
        assert!(err.to_string().contains(what), "{err}");
        assert!(!path.exists());
    }
    for name in ["x.gipl.gz", "x.nii"] {
        let err = write_gipl(&base, &dir.path().join(name)).unwrap_err();
        assert!(matches!(err, FormatError::Extension { .. }), "{err}");
    }
}

/// A temporary folder, in memory where Linux offers one (`/dev/shm`).
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// Reads a mutant; when it reads and `write` is set, writes it through its source and afresh
/// and reads both back.
fn exercise(path: &Path, out: &Path, write: bool) -> bool {
    let Ok(image) = read_image(path) else {
        return false;
    };
    if write {
        let target = out.join("back.gipl");
        write_image(&image, &target).unwrap();
        assert_eq!(read_gipl(&target).unwrap(), image, "{}", path.display());
        let mut fresh = image;
        fresh.forget_source();
        let target = out.join("fresh.gipl");
        if write_gipl(&fresh, &target).is_ok() {
            assert_eq!(read_gipl(&target).unwrap().data, fresh.data);
        }
    }
    true
}

#[test]
fn mutated_fixtures_never_panic() {
    const MUTANTS: usize = 160;
    let mut rng = Rng(0x6e70_1a2b_3c4d_5e6f);
    let (work, out) = (scratch_dir(), scratch_dir());
    let names: Vec<String> = section("images")
        .keys()
        .chain(section("broken").keys())
        .cloned()
        .collect();
    let (mut n_read, mut n_ok) = (0, 0);
    for name in &names {
        let original = std::fs::read(fixture_dir().join(name)).unwrap();
        let target = work.path().join(name);
        for _ in 0..MUTANTS {
            std::fs::write(&target, mutate(&original, &mut rng)).unwrap();
            n_ok += usize::from(exercise(&target, out.path(), n_read % 4 == 0));
            n_read += 1;
        }
    }
    assert!(n_read >= 3000, "only {n_read} mutants read");
    assert!(
        n_ok * 20 > n_read && n_ok * 2 < n_read,
        "{n_ok} of {n_read} mutants read"
    );
}
