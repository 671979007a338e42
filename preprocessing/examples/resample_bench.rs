//! Times nnU-Net-style image resampling of a synthetic CT: order 3, 0.7 mm -> 1 mm isotropic.
//!
//! Usage: `cargo run --release --example resample_bench -p autoseg-preprocessing -- [Z Y X]`
//! (default 400 512 512). Run under `/usr/bin/time -v` for peak memory. The volume is
//! `v(z, y, x) = 1000 sin(0.05 z) cos(0.03 y) + 0.5 x - 200` (f32). The Python side of the
//! comparison (throwaway venv with numpy, scikit-image), as nnU-Net resamples:
//!
//! ```python
//! import sys, time
//! import numpy as np
//! from skimage.transform import resize
//! nz, ny, nx = (int(a) for a in sys.argv[1:4])
//! z, y, x = np.ogrid[:nz, :ny, :nx]
//! img = (1000.0 * np.sin(0.05 * z) * np.cos(0.03 * y) + 0.5 * x - 200.0).astype(np.float32)
//! new_shape = [int(round(0.7 / 1.0 * s)) for s in img.shape]
//! t = time.time()
//! out = resize(img.astype(float), new_shape, 3, mode="edge", anti_aliasing=False).astype(np.float32)
//! print(time.time() - t, out.astype(float).mean())
//! ```

use std::time::Instant;

use autoseg_planner::compute_new_shape;
use autoseg_preprocessing::resample::{resample_data, ResampleSettings};
use ndarray::Array4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let [nz, ny, nx] = match args.as_slice() {
        [] => [400, 512, 512],
        [z, y, x] => [*z, *y, *x],
        _ => return Err("expected no arguments or Z Y X".into()),
    };
    let image = Array4::from_shape_fn((1, nz, ny, nx), |(_, z, y, x)| {
        (1000.0 * (0.05 * z as f64).sin() * (0.03 * y as f64).cos() + 0.5 * x as f64 - 200.0) as f32
    });
    let (from, to) = ([0.7; 3], [1.0; 3]);
    let new_shape = compute_new_shape([nz, ny, nx], from, to);
    let start = Instant::now();
    let out = resample_data(
        image.view(),
        new_shape,
        from,
        to,
        &ResampleSettings::nnunet_data(),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let sum: f64 = out.iter().map(|v| f64::from(*v)).sum();
    let (oz, oy, ox) = (new_shape[0] / 2, new_shape[1] / 3, new_shape[2] / 5);
    println!(
        "{nz}x{ny}x{nx} -> {new_shape:?} order 3 in {seconds:.2} s on {} threads; mean {:.6}, out[{oz},{oy},{ox}] = {}",
        rayon::current_num_threads(),
        sum / out.len() as f64,
        out[[0, oz, oy, ox]]
    );
    Ok(())
}
