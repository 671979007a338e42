//! Times `read_dicom_series` on a folder: `cargo run --release -p autoseg-preprocessing
//! --example dicom_bench -- FOLDER [REPEATS]`; prints the size, type and the best of the runs.

use std::path::PathBuf;
use std::time::Instant;

use autoseg_preprocessing::formats::read_dicom_series;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let folder = PathBuf::from(args.next().ok_or("usage: dicom_bench FOLDER [REPEATS]")?);
    let repeats: usize = args.next().map_or(Ok(3), |r| r.parse())?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        let series = read_dicom_series(&folder)?;
        let seconds = start.elapsed().as_secs_f64();
        best = best.min(seconds);
        println!(
            "{:?} {:?} {} slices: {seconds:.3} s",
            series.image.dims,
            series.image.element,
            series.info.slices.len()
        );
    }
    println!("best {best:.3} s");
    Ok(())
}
