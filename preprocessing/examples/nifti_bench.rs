//! Times autoseg's NIfTI reading and writing of one file; `scripts/nifti_bench.py` runs it beside
//! nibabel on the same files. Prints one JSON line: best-of-`REPS` read and write seconds and the
//! file's uncompressed size (header + data as stored), from which MB/s are computed.
//!
//! `cargo run --release --example nifti_bench -p autoseg-preprocessing -- FILE [LEVEL] [REPS]`
//! (LEVEL: gzip level of the write, default 1 as nibabel's `nib.save`; REPS default 5).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use autoseg_preprocessing::{read_header, read_image, write_image};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first().map(PathBuf::from) else {
        bail!("usage: nifti_bench FILE [LEVEL] [REPS]");
    };
    let level: u32 = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let reps: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let info = read_header(&file)?;
    let n_voxels = info.geometry.shape().n_voxels();
    let stored_bytes = 352 + n_voxels * info.datatype.size();
    let mut read_s = f64::INFINITY;
    let mut image = None;
    for _ in 0..reps {
        let t = Instant::now();
        let img = read_image(&file)?;
        read_s = read_s.min(t.elapsed().as_secs_f64());
        image = Some(img);
    }
    let image = image.expect("reps >= 1 reads at least once");
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out.nii.gz");
    let mut write_s = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        write_image(&out, &image, level)?;
        write_s = write_s.min(t.elapsed().as_secs_f64());
    }
    let json = serde_json::json!({
        "file": file.display().to_string(),
        "datatype": format!("{:?}", info.datatype),
        "shape_zyx": info.geometry.shape().0,
        "stored_bytes": stored_bytes,
        "f32_bytes": 352 + n_voxels * 4,
        "read_s": read_s,
        "write_s": write_s,
        "level": level,
    });
    println!("{json}");
    Ok(())
}
