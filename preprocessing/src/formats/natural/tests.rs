//! Known answers from nnU-Net 2.8.1 (`scripts/make_natural_fixtures.py` ran its own
//! `NaturalImage2DIO` and `Tiff3DIO` on every fixture), broken files, mutants, and write → read
//! round trips (also left, when `AUTOSEG_NATURAL_WRITES` names a folder, for
//! `scripts/check_natural_writes.py` to read with nnU-Net's readers).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::super::geometry::identity;
use super::*;
use crate::test_support::{self, element_of, floats, mutate, Rng};

fn fixture_dir() -> PathBuf {
    test_support::fixture_dir("natural")
}

fn cases() -> serde_json::Map<String, Value> {
    let all = test_support::json_object(&fixture_dir().join("expected.json"));
    all["cases"].as_object().unwrap().clone()
}

/// Fixtures where this crate knowingly differs from nnU-Net: `read_images` of a stack whose
/// sidecar has a zero spacing (nnU-Net takes it, [`RawImage`] needs positive spacings).
const DEVIATIONS: &[&str] = &["broken/zerospacing.tif"];

/// Compares a natural image with nnU-Net's `(c, 1, H, W)` array.
fn check_natural(name: &str, image: &RawImage, want: &Value, dtype: &str) {
    let shape: Vec<usize> = floats(&want["shape"]).iter().map(|&s| s as usize).collect();
    let [c, 1, h, w] = shape[..] else {
        panic!("{name}: shape {shape:?}")
    };
    assert_eq!(image.dims, vec![w, h, 1], "{name}");
    assert_eq!(image.components, c, "{name}");
    assert_eq!(image.spacing, vec![1.0, 1.0, 999.0], "{name}");
    assert_eq!(floats(&want["spacing"]), NATURAL_SPACING.to_vec(), "{name}");
    assert_eq!(image.origin, vec![0.0; 3], "{name}");
    assert_eq!(image.direction, identity(3), "{name}");
    assert_eq!(image.element, element_of(dtype), "{name}");
    let values = floats(&want["values"]);
    let ours = image.to_f64();
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let expected = values[(ch * h + y) * w + x];
                let got = ours[(y * w + x) * c + ch];
                assert_eq!(
                    got as f32, expected as f32,
                    "{name}: channel {ch} at ({y}, {x})"
                );
            }
        }
    }
}

/// Compares a 3-D TIFF with nnU-Net's `(1, Z, Y, X)` array and spacing.
fn check_tiff3d(name: &str, read: &Tiff3d, want: &Value, dtype: &str) {
    let shape: Vec<usize> = floats(&want["shape"]).iter().map(|&s| s as usize).collect();
    let [1, z, y, x] = shape[..] else {
        panic!("{name}: shape {shape:?}")
    };
    let image = &read.image;
    assert_eq!(image.dims, vec![x, y, z], "{name}");
    assert_eq!(image.components, 1, "{name}");
    let mut spacing = floats(&want["spacing"]);
    spacing.reverse();
    assert_eq!(image.spacing, spacing, "{name}");
    assert_eq!(image.element, element_of(dtype), "{name}");
    assert_eq!(
        read.sidecar.is_none(),
        want["warning"].as_bool().unwrap(),
        "{name}: the missing-sidecar warning"
    );
    let values = floats(&want["values"]);
    let ours = image.to_f64();
    assert_eq!(ours.len(), values.len(), "{name}");
    for (i, (a, b)) in ours.iter().zip(&values).enumerate() {
        assert_eq!(*a as f32, *b as f32, "{name}: value {i}");
    }
}

#[test]
fn fixtures_match_nnunet() {
    let cases = cases();
    let mut checked = 0;
    for (name, case) in &cases {
        let path = fixture_dir().join(name);
        let deviation = DEVIATIONS.contains(&name.as_str());
        if let Some(want) = case.get("natural_read_images") {
            let got = read_natural(&path);
            match (want.get("error"), got) {
                (None, Ok(image)) => {
                    check_natural(name, &image, want, case["source_dtype"].as_str().unwrap());
                    checked += 1;
                }
                (Some(_), Err(e)) => {
                    assert!(e.to_string().contains(name.rsplit('/').next().unwrap()));
                    checked += 1;
                }
                (want, got) => panic!("{name}: nnU-Net {want:?}, here {got:?}"),
            }
        }
        for (key, seg) in [("tiff3d_read_images", false), ("tiff3d_read_seg", true)] {
            let Some(want) = case.get(key) else { continue };
            let got = if seg {
                read_tiff3d_seg(&path)
            } else {
                read_tiff3d(&path)
            };
            match (want.get("error"), got) {
                (None, Ok(read)) => {
                    let dtype = case["tiff3d_source_dtype"].as_str().unwrap();
                    check_tiff3d(name, &read, want, dtype);
                    checked += 1;
                }
                (Some(_), Err(e)) => {
                    assert!(e.to_string().contains(name.rsplit('/').next().unwrap()));
                    checked += 1;
                }
                (None, Err(_)) if deviation && !seg => {}
                (want, got) => panic!("{name} {key}: nnU-Net {want:?}, here {got:?}"),
            }
        }
        let registry = match reader_for(&path) {
            Ok(NaturalReader::NaturalImage2D) => Value::from("NaturalImage2DIO"),
            Ok(NaturalReader::Tiff3D) => Value::from("Tiff3DIO"),
            Err(_) => Value::Null,
        };
        if !deviation {
            assert_eq!(registry, case["registry"], "{name}: the registry's choice");
        }
    }
    assert!(checked >= 60, "only {checked} reads checked");
}

fn broken(name: &str) -> PathBuf {
    fixture_dir().join("broken").join(name)
}

#[test]
fn broken_files_give_named_errors() {
    let e = read_natural(&broken("truncated.png")).unwrap_err();
    assert!(matches!(e, FormatError::Decode { .. }), "{e}");
    let e = read_natural(&broken("bad_crc.png")).unwrap_err();
    assert!(matches!(e, FormatError::Decode { .. }), "{e}");
    let e = read_natural(&broken("huge.png")).unwrap_err();
    assert!(e.to_string().contains("Pillow's limit"), "{e}");
    let e = read_natural(&broken("huge.bmp")).unwrap_err();
    assert!(e.to_string().contains("Pillow's limit"), "{e}");
    let e = read_natural(&broken("truncated.bmp")).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    for name in ["huge.tif", "huge_0000.tif"] {
        let e = read_tiff3d(&broken(name)).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::TooManyVoxels { .. }
                    | FormatError::OverCeiling { .. }
                    | FormatError::Decode { .. }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(name), "{e}");
    }
    let e = read_tiff3d(&broken("badkey_0000.tif")).unwrap_err();
    assert!(e.to_string().contains("no key \"spacing\""), "{e}");
    assert!(e.to_string().contains("badkey.json"), "{e}");
    let e = read_tiff3d(&broken("twovalues_0000.tif")).unwrap_err();
    assert!(e.to_string().contains("3 entries"), "{e}");
    let e = read_tiff3d_seg(&broken("zerospacing.tif")).unwrap_err();
    assert!(e.to_string().contains("Spacing must be > 0"), "{e}");
    let e = read_natural(&fixture_dir().join("grey_alpha.png")).unwrap_err();
    assert!(matches!(e, FormatError::NotAccepted { .. }), "{e}");
    let e = read_tiff3d(&fixture_dir().join("grey_u8.tif")).unwrap_err();
    assert!(e.to_string().contains("only 3D images"), "{e}");
    let e = read_natural(Path::new("x.tiff")).unwrap_err();
    assert!(matches!(e, FormatError::Extension { .. }), "{e}");
    let e = read_natural(&fixture_dir().join("missing.png")).unwrap_err();
    assert!(matches!(e, FormatError::Io { .. }), "{e}");
}

#[test]
fn sidecar_names_follow_nnunet() {
    let p = |s: &str, cut: usize| sidecar_path(Path::new(s), cut).unwrap();
    assert_eq!(p("/d/case_0000.tif", 4 + 5), PathBuf::from("/d/case.json"));
    assert_eq!(p("/d/case.tiff", 5), PathBuf::from("/d/case.json"));
    // nnU-Net cuts five characters whether or not they are `_0000`.
    assert_eq!(p("/d/ab.tif", 9), PathBuf::from(".json"));
    assert_eq!(py_float(1.0), "1.0");
    assert_eq!(py_float(0.75), "0.75");
    assert_eq!(py_float(1e-5), "1e-05");
    assert_eq!(py_float(2e16), "2e+16");
}

#[test]
fn mutants_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_2026_1207);
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "json"))
        .collect();
    files.sort();
    let sidecar = std::fs::read(fixture_dir().join("stack.json")).unwrap();
    let mut reads = 0;
    let mut ok = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap();
        for _ in 0..150 {
            let target = dir.path().join(name);
            std::fs::write(&target, mutate(&bytes, &mut rng)).unwrap();
            if rng.below(4) == 0 {
                let json = mutate(&sidecar, &mut rng);
                std::fs::write(dir.path().join("stack.json"), json).unwrap();
                std::fs::copy(&target, dir.path().join("stack_0000.tif")).unwrap();
                reads += 1;
                ok += usize::from(read_tiff3d(&dir.path().join("stack_0000.tif")).is_ok());
            }
            for result in [
                read_natural(&target).map(|_| ()),
                read_tiff3d(&target).map(|_| ()),
                read_tiff3d_seg(&target).map(|_| ()),
            ] {
                reads += 1;
                ok += usize::from(result.is_ok());
            }
        }
    }
    assert!(reads >= 3000, "{reads} reads");
    assert!(ok > 0, "no mutant read at all");
}

/// A segmentation of `dims` (`[W, H, 1]` or `[X, Y, Z]`) whose labels run up to `max`.
fn labels(dims: &[usize], max: u16, spacing: Vec<f64>) -> RawImage {
    let n: usize = dims.iter().product();
    let values: Vec<u16> = (0..n)
        .map(|i| ((i * 37) % (usize::from(max) + 1)) as u16)
        .chain([max])
        .skip(1)
        .collect();
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    RawImage::new(
        dims.to_vec(),
        spacing,
        vec![0.0; dims.len()],
        identity(dims.len()),
        1,
        ElementType::U16,
        data,
    )
    .unwrap()
}

/// The folder writes go to: `AUTOSEG_NATURAL_WRITES` (for `scripts/check_natural_writes.py`)
/// or a temporary one.
fn write_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("AUTOSEG_NATURAL_WRITES") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            (None, PathBuf::from(dir))
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

#[test]
fn writes_read_back() {
    let (_keep, dir) = write_dir();
    let mut manifest = serde_json::Map::new();
    for (ending, max) in [
        ("png", 3u16),
        ("png", 255),
        ("png", 40000),
        ("bmp", 254),
        ("tif", 7),
        ("tif", 300),
    ] {
        let seg = labels(&[7, 5, 1], max, vec![1.0, 1.0, 999.0]);
        let path = dir.join(format!("seg_{max}.{ending}"));
        write_natural_seg(&seg, &path).unwrap();
        let back = read_natural(&path).unwrap();
        assert_eq!(back.dims, seg.dims);
        assert_eq!(back.to_f64(), seg.to_f64(), "{}", path.display());
        let element = if max < 255 {
            ElementType::U8
        } else {
            ElementType::U16
        };
        assert_eq!(back.element, element, "{}", path.display());
        manifest.insert(
            path.file_name().unwrap().to_string_lossy().into(),
            serde_json::json!({"reader": "NaturalImage2DIO", "shape": [1, 1, 5, 7],
                "dtype": if max < 255 { "uint8" } else { "uint16" }, "values": seg.to_f64()}),
        );
    }
    let e = write_natural_seg(&labels(&[7, 5], 255, vec![1.0, 1.0]), &dir.join("x.bmp"));
    assert!(matches!(e, Err(FormatError::Unsupported { .. })));
    for (ending, max, dims) in [
        ("tif", 2u16, [7usize, 5, 6]),
        ("tiff", 255, [7, 5, 3]),
        ("tif", 9, [4, 3, 1]),
    ] {
        let seg = labels(&dims, max, vec![0.75, 0.5, 3.0]);
        let path = dir.join(format!("stack_{max}_{}.{ending}", dims[2]));
        write_tiff3d_seg(&seg, &path).unwrap();
        let back = read_tiff3d_seg(&path).unwrap();
        assert!(back.sidecar.is_some());
        assert_eq!(back.image.dims, seg.dims);
        assert_eq!(back.image.spacing, seg.spacing);
        assert_eq!(back.image.to_f64(), seg.to_f64());
        manifest.insert(
            path.file_name().unwrap().to_string_lossy().into(),
            serde_json::json!({"reader": "Tiff3DIO", "shape": [1, dims[2], dims[1], dims[0]],
                "spacing": [3.0, 0.5, 0.75], "dtype": if max < 255 { "uint8" } else { "uint16" },
                "values": seg.to_f64()}),
        );
    }
    let bad = labels(&[7, 5, 1], 3, vec![1.0, 1.0, 999.0]);
    let mut frac = bad.clone();
    frac.element = ElementType::F32;
    frac.data = (0..35)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let e = write_natural_seg(&frac, &dir.join("frac.png")).unwrap_err();
    assert!(matches!(e, FormatError::InvalidImage { .. }), "{e}");
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}
