//! Augmentation throughput on one core: nnU-Net's training pipeline turning 205³ crops into 128³
//! patches (one channel, a label sphere, deep-supervision targets for 5 levels), a per-step
//! breakdown of the same draws, and the spatial transform alone with rotation and scaling
//! forced on.
//!
//! Run: `cargo run --release --example augment_bench -p autoseg-trainer [-- N_PATCHES]`;
//! `-- N spatial` runs only N rotation+scaling resamples (no output), for profilers.

use std::time::Instant;

use autoseg_preprocessing::recycle::filled_array;
use autoseg_trainer::augment::{
    downsample_seg, mask_outside, outside_to_background, AugmentParams, DaSetup, Pipeline, Spatial,
    SpatialMode,
};
use autoseg_trainer::sampling::Patch;
use ndarray::Array4;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const DS_SCALES: [[f64; 3]; 5] = [[1.0; 3], [0.5; 3], [0.25; 3], [0.125; 3], [0.0625; 3]];

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

/// `crop` copied into buffers from this thread's pool, as `PatchSampler::read` fills them.
fn pooled_copy(crop: &Patch) -> Patch {
    let shape = |a: &[usize]| [a[0], a[1], a[2], a[3]];
    let mut data = filled_array(shape(crop.data.shape()), 0.0f32);
    data.assign(&crop.data);
    let mut seg = filled_array(shape(crop.seg.shape()), -1i16);
    seg.assign(&crop.seg);
    Patch { data, seg }
}

/// Time spent in one pipeline step over all draws, and how often it fired.
#[derive(Default)]
struct StepTime {
    fired: usize,
    seconds: f64,
}

/// The pipeline's steps in order, as the breakdown reports them.
const STEPS: [&str; 13] = [
    "spatial: centre crop",
    "spatial: rotate/scale",
    "noise",
    "blur",
    "brightness",
    "contrast",
    "low resolution",
    "gamma (inverted)",
    "gamma",
    "mirror",
    "mask outside",
    "-1 -> 0",
    "DS targets (5 levels)",
];

/// Runs `f` and books its time to step `idx`.
fn timed<T>(steps: &mut [StepTime], idx: usize, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    steps[idx].seconds += start.elapsed().as_secs_f64();
    steps[idx].fired += 1;
    out
}

/// Runs the intensity transforms that fire, each timed on its own.
fn intensity_steps(steps: &mut [StepTime], params: &AugmentParams, data: &mut Array4<f32>) {
    macro_rules! step {
        ($idx:expr, $field:ident) => {
            if let Some(t) = &params.$field {
                timed(steps, $idx, || t.apply(data.view_mut()));
            }
        };
    }
    step!(2, noise);
    step!(3, blur);
    step!(4, brightness);
    step!(5, contrast);
    step!(6, low_resolution);
    step!(7, gamma_inverted);
    step!(8, gamma);
}

/// The pipeline's `apply` unrolled (same order, same public transforms), every step timed.
fn breakdown_one(steps: &mut [StepTime], params: &AugmentParams, input: Patch) {
    let spatial = params
        .spatial
        .as_ref()
        .expect("training draws a spatial step");
    let idx = usize::from(spatial.resamples());
    let (mut data, mut seg) = timed(steps, idx, || {
        spatial.apply(input.data.view(), input.seg.view())
    });
    intensity_steps(steps, params, &mut data);
    if let Some(mirror) = &params.mirror {
        timed(steps, 9, || {
            mirror.apply(data.view_mut());
            mirror.apply(seg.view_mut());
        });
    }
    timed(steps, 10, || mask_outside(data.view_mut(), seg.view(), &[]));
    timed(steps, 11, || outside_to_background(seg.view_mut()));
    let targets = timed(steps, 12, || {
        DS_SCALES
            .iter()
            .map(|&s| {
                if s == [1.0; 3] {
                    seg.clone()
                } else {
                    downsample_seg(seg.view(), s)
                }
            })
            .collect::<Vec<_>>()
    });
    std::hint::black_box((data, targets));
}

fn print_breakdown(steps: &[StepTime], n: usize) {
    println!("per-step breakdown over the same {n} draws (ms per patch = total / draws):");
    println!(
        "  {:<24} {:>6} {:>12} {:>12}",
        "step", "fired", "ms/firing", "ms/patch"
    );
    let mut sum = 0.0;
    for (name, s) in STEPS.iter().zip(steps) {
        let per_fire = if s.fired > 0 {
            s.seconds / s.fired as f64
        } else {
            0.0
        };
        sum += s.seconds / n as f64;
        println!(
            "  {:<24} {:>6} {:>12.2} {:>12.2}",
            name,
            s.fired,
            per_fire * 1e3,
            s.seconds / n as f64 * 1e3
        );
    }
    println!(
        "  {:<24} {:>6} {:>12} {:>12.2}",
        "sum of steps",
        "",
        "",
        sum * 1e3
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(40), |s| s.parse())?;
    // As the autoseg binary does at start.
    autoseg_trainer::loader::keep_freed_blocks();
    let setup = DaSetup::nnunet(&[128, 128, 128])?;
    let pipeline = Pipeline::nnunet_training(&setup, &[false], &DS_SCALES)?;
    let crop = synthetic_crop(setup.crop);
    let spatial =
        Spatial::rotate_scale(setup.patch, SpatialMode::Volumetric, [0.3, -0.2, 0.4], 1.2);
    if std::env::args().nth(2).as_deref() == Some("spatial") {
        for _ in 0..n {
            std::hint::black_box(spatial.apply(crop.data.view(), crop.seg.view()));
        }
        return Ok(());
    }

    // The crop is copied outside the timed region: reading it is the sampler's cost. As the
    // sampler does, the copy goes into this thread's recycled buffers (`recycle` docs), which
    // the pipeline gives back when the spatial transform is done with them.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut total = 0.0;
    for _ in 0..n {
        let input = pooled_copy(&crop);
        let start = Instant::now();
        std::hint::black_box(pipeline.run(&mut rng, input)?);
        total += start.elapsed().as_secs_f64();
    }
    let full = total / n as f64;

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut steps: Vec<StepTime> = STEPS.iter().map(|_| StepTime::default()).collect();
    for _ in 0..n {
        let params = pipeline.sample(&mut rng, 1);
        breakdown_one(&mut steps, &params, crop.clone());
    }

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
    print_breakdown(&steps, n);
    Ok(())
}
