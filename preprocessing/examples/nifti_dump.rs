//! Dumps what autoseg reads from a NIfTI file, for `scripts/nibabel_check.py`:
//! `OUT.raw` (voxels, C order `(z, y, x)`, f32 little-endian, or u16 with `--labels`),
//! `OUT.json` (shape, spacing, affine, datatype) and `OUT.nii.gz` (the volume written back by
//! autoseg, level 1, so nibabel can check our writer).
//!
//! `cargo run --release --example nifti_dump -p autoseg-preprocessing -- IN OUT [--labels]`

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use autoseg_preprocessing::{
    read_header, read_image, read_label_map, write_image, write_label_map, Geometry,
};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, out, labels) = match args.as_slice() {
        [i, o] => (PathBuf::from(i), PathBuf::from(o), false),
        [i, o, flag] if flag == "--labels" => (PathBuf::from(i), PathBuf::from(o), true),
        _ => bail!("usage: nifti_dump IN OUT_PREFIX [--labels]"),
    };
    let info = read_header(&input)?;
    let with_ext = |ext: &str| PathBuf::from(format!("{}.{ext}", out.display()));
    let geometry = if labels {
        let map = read_label_map(&input)?;
        let bytes: Vec<u8> = map.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(with_ext("raw"), bytes)?;
        write_label_map(&with_ext("nii.gz"), &map, 1)?;
        map.geometry
    } else {
        let img = read_image(&input)?;
        let bytes: Vec<u8> = img.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(with_ext("raw"), bytes)?;
        write_image(&with_ext("nii.gz"), &img, 1)?;
        img.geometry
    };
    write_json(
        &with_ext("json"),
        &geometry,
        &format!("{:?}", info.datatype),
    )
    .with_context(|| format!("writing {}", out.display()))
}

fn write_json(path: &Path, g: &Geometry, datatype: &str) -> Result<()> {
    let json = serde_json::json!({
        "shape_zyx": g.shape().0,
        "spacing_zyx": g.spacing().0,
        "affine": g.affine().0,
        "datatype": datatype,
    });
    std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    Ok(())
}
