//! Times the image I/O interface's `read_image` (what every command reads through: decoding
//! and the conversion to `f32`) on each path given, a file or a DICOM series folder:
//! `cargo run --release -p autoseg-preprocessing --example image_read_bench -- [--repeats N]
//! PATH...`. Prints one line per path: `PATH<TAB>best seconds<TAB>shape`.
//! `scripts/image_read_bench.py` runs it beside nnU-Net's readers on the same files.

use std::path::PathBuf;
use std::time::Instant;

use autoseg_preprocessing::read_image;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut repeats = 5;
    if let Some(i) = args.iter().position(|a| a == "--repeats") {
        repeats = args.get(i + 1).ok_or("--repeats needs a number")?.parse()?;
        args.drain(i..i + 2);
    }
    if args.is_empty() {
        return Err("usage: image_read_bench [--repeats N] PATH...".into());
    }
    for path in args.into_iter().map(PathBuf::from) {
        let mut best = f64::INFINITY;
        let mut shape = Vec::new();
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            let image = read_image(&path)?;
            best = best.min(start.elapsed().as_secs_f64());
            shape = image.data.shape().to_vec();
        }
        println!("{}\t{best:.4}\t{shape:?}", path.display());
    }
    Ok(())
}
