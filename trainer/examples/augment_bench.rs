//! Augmentation throughput on one core: nnU-Net's training pipeline turning 205³ crops into 128³
//! patches (one channel, a label sphere, deep-supervision targets for 5 levels), plus the
//! spatial transform alone with rotation and scaling forced on.
//!
//! Run: `cargo run --release --example augment_bench -p autoseg-trainer [-- N_PATCHES]`.

use std::time::Instant;

use autoseg_trainer::augment::{DaSetup, Pipeline, Spatial, SpatialMode};
use autoseg_trainer::sampling::Patch;
use ndarray::Array4;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn synthetic_crop(crop: [usize; 3]) -> Patch {
    let [z, y, x] = crop;
    let c = [z, y, x].map(|n| (n as f64 - 1.0) / 2.0);
    let r2 = (z.min(y).min(x) as f64 / 4.0).powi(2);
    let d2 = |z: usize, y: usize, x: usize| {
        (z as f64 - c[0]).powi(2) + (y as f64 - c[1]).powi(2) + (x as f64 - c[2]).powi(2)
    };
    Patch {
        data: Array4::from_shape_fn((1, z, y, x), |(_, z, y, x)| {
            ((z * 7 + y * 3 + x) % 17) as f32 / 17.0 + f32::from(d2(z, y, x) <= r2)
        }),
        seg: Array4::from_shape_fn((1, z, y, x), |(_, z, y, x)| i16::from(d2(z, y, x) <= r2)),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(40), |s| s.parse())?;
    let setup = DaSetup::nnunet(&[128, 128, 128])?;
    let scales = [[1.0; 3], [0.5; 3], [0.25; 3], [0.125; 3], [0.0625; 3]];
    let pipeline = Pipeline::nnunet_training(&setup, &[false], &scales)?;
    let crop = synthetic_crop(setup.crop);
    let mut rng = ChaCha8Rng::seed_from_u64(0);

    // The crop is copied outside the timed region: reading it is the sampler's cost.
    let mut total = 0.0;
    for _ in 0..n {
        let input = crop.clone();
        let start = Instant::now();
        std::hint::black_box(pipeline.run(&mut rng, input)?);
        total += start.elapsed().as_secs_f64();
    }
    let full = total / n as f64;

    let spatial =
        Spatial::rotate_scale(setup.patch, SpatialMode::Volumetric, [0.3, -0.2, 0.4], 1.2);
    let n_spatial = n.div_ceil(4);
    let start = Instant::now();
    for _ in 0..n_spatial {
        std::hint::black_box(spatial.apply(crop.data.view(), crop.seg.view()));
    }
    let resample = start.elapsed().as_secs_f64() / n_spatial as f64;

    println!(
        "crop {:?} -> patch {:?}, 1 channel, 1 thread",
        setup.crop, setup.patch
    );
    println!(
        "full nnU-Net pipeline: {:.1} ms/patch, {:.2} patches/s/core",
        full * 1e3,
        1.0 / full
    );
    println!(
        "rotation+scaling resample only: {:.1} ms/patch",
        resample * 1e3
    );
    Ok(())
}
