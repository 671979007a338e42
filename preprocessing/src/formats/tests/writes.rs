//! Fresh writes: every fixture image, its source forgotten, written as `.nrrd`, `.nhdr`, `.mha`
//! and `.mhd` reads back with the same geometry and voxels; so do a 4-D image and re-encoded
//! write-backs.
//!
//! With `AUTOSEG_FORMAT_WRITES_DIR=<dir>` the same files and an `expected.json` describing them
//! are also written to `<dir>`, for `scripts/check_format_writes.py <dir>` to read with
//! SimpleITK.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::super::{read_image, write_image, ElementType, RawImage};
use super::{expected, fixture_dir};

/// The images to write: every fixture (fresh, and re-encoded through its source with changed
/// voxels) and a 4-D image.
fn images() -> Vec<(String, RawImage)> {
    let mut out = Vec::new();
    for name in expected().keys() {
        let image = read_image(&fixture_dir().join(name)).unwrap();
        let stem = name.replace('.', "_");
        if [
            "ct_gzip.nrrd",
            "ascii.nrrd",
            "vec_last.nrrd",
            "ct.mha",
            "ct_z.mha",
        ]
        .contains(&name.as_str())
        {
            let mut changed = image.clone();
            changed
                .data
                .iter_mut()
                .step_by(changed.element.size())
                .for_each(|b| *b ^= 3);
            out.push((format!("changed_{name}"), changed));
        }
        let mut fresh = image;
        fresh.forget_source();
        for ext in ["nrrd", "nhdr", "mha", "mhd"] {
            out.push((format!("{stem}.{ext}"), fresh.clone()));
        }
    }
    let data: Vec<u8> = (0..24)
        .flat_map(|i| (f64::from(i) * 0.25 - 2.0).to_le_bytes())
        .collect();
    let mut direction = vec![0.0; 16];
    for (row, col) in [(0, 1), (1, 0), (2, 2), (3, 3)] {
        direction[row * 4 + col] = if row == 2 { -1.0 } else { 1.0 };
    }
    let four_d = RawImage::new(
        vec![2, 3, 2, 2],
        vec![0.5, 1.0, 2.0, 4.0],
        vec![1.0, -1.0, 0.5, 10.0],
        direction,
        1,
        ElementType::F64,
        data,
    )
    .unwrap();
    for ext in ["nrrd", "mha"] {
        out.push((format!("four_d.{ext}"), four_d.clone()));
    }
    out
}

fn describe(image: &RawImage) -> Value {
    json!({
        "size": image.dims,
        "spacing": image.spacing,
        "origin": image.origin,
        "direction": image.direction,
        "components": image.components,
        "values": image.to_f64(),
    })
}

fn assert_same(name: &str, back: &RawImage, image: &RawImage) {
    assert_eq!(
        (&back.dims, back.components, back.element, &back.data),
        (&image.dims, image.components, image.element, &image.data),
        "{name}"
    );
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-12);
    assert!(
        close(&back.spacing, &image.spacing),
        "{name}: {:?} vs {:?}",
        back.spacing,
        image.spacing
    );
    assert!(
        close(&back.origin, &image.origin),
        "{name}: {:?} vs {:?}",
        back.origin,
        image.origin
    );
    assert!(
        close(&back.direction, &image.direction),
        "{name}: {:?}",
        back.direction
    );
    if name.ends_with(".mha") || name.ends_with(".mhd") {
        // MetaImage stores spacing and directions as they are: exact.
        assert_eq!(
            (&back.spacing, &back.direction),
            (&image.spacing, &image.direction),
            "{name}"
        );
    }
}

#[test]
fn fresh_writes_read_back_with_the_same_geometry_and_voxels() {
    let dir = tempfile::tempdir().unwrap();
    let export = std::env::var_os("AUTOSEG_FORMAT_WRITES_DIR").map(PathBuf::from);
    let mut manifest = Map::new();
    for (name, image) in images() {
        let path = dir.path().join(&name);
        write_image(&image, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = read_image(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same(&name, &back, &image);
        if let Some(out) = &export {
            std::fs::create_dir_all(out).unwrap();
            write_image(&image, &out.join(&name)).unwrap();
            manifest.insert(name, describe(&image));
        }
    }
    if let Some(out) = export {
        let text = serde_json::to_string_pretty(&Value::Object(manifest)).unwrap();
        std::fs::write(out.join("expected.json"), text).unwrap();
    }
}

#[test]
fn a_fresh_nrrd_header_is_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = read_image(&fixture_dir().join("vec.mha")).unwrap();
    image.forget_source();
    let path = dir.path().join("vec.nhdr");
    write_image(&image, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let want = "NRRD0004\n\
        # Complete NRRD file format specification at:\n\
        # http://teem.sourceforge.net/nrrd/format.html\n\
        type: unsigned char\n\
        dimension: 4\n\
        space: left-posterior-superior\n\
        sizes: 2 4 3 2\n\
        space directions: none (1,0,0) (0,0.75,0) (0,0,2)\n\
        kinds: vector domain domain domain\n\
        encoding: gzip\n\
        space origin: (1,2,3)\n\
        data file: vec.raw.gz\n";
    assert_eq!(text, want);
    assert!(Path::new(&dir.path().join("vec.raw.gz")).exists());
}

#[test]
fn a_fresh_metaimage_header_is_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = read_image(&fixture_dir().join("pet.nrrd")).unwrap();
    image.forget_source();
    let path = dir.path().join("pet.mhd");
    write_image(&image, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let size = std::fs::metadata(dir.path().join("pet.zraw"))
        .unwrap()
        .len();
    let want = format!(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n\
         CompressedData = True\nCompressedDataSize = {size}\n\
         TransformMatrix = -1 0 0 0 0 -1 0 1 0\nOffset = -100 50 0.125\n\
         CenterOfRotation = 0 0 0\nAnatomicalOrientation = LSA\nElementSpacing = 2 2 4.5\n\
         DimSize = 3 3 2\nElementType = MET_FLOAT\nElementDataFile = pet.zraw\n"
    );
    assert_eq!(text, want);
}
