//! Times `autoseg evaluate`'s folder evaluation (Dice and counts plus HD95/ASSD/NSD) on
//! synthetic CT-like label maps: ellipsoid "organs" of three classes, the predictions perturbed
//! (shifted, rescaled, bumpy surfaces, a stray false-positive blob).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p autoseg-evaluation --example bench_evaluate -- \
//!     /tmp/bench_eval [n_cases] [z] [y] [x] [repeats]
//! ```
//! Writes `<dir>/pred/case_XXX.nii.gz` and `<dir>/ref/case_XXX.nii.gz` unless they exist, then
//! prints the wall time of reading only, of the voxel-count metrics, and of the full evaluation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use autoseg_evaluation::{
    evaluate_folder, EvaluationSettings, LabelValue, SurfaceSettings, DEFAULT_NSD_TOLERANCE_MM,
};
use autoseg_preprocessing::{
    read_label_map, write_label_map, Geometry, HeaderGeometry, LabelMap, Shape3, Spacing,
};
use ndarray::{Array3, Axis};
use rayon::prelude::*;

const SPACING: [f64; 3] = [2.0, 0.78, 0.78];

/// A deterministic pseudo-random number in [0, 1) from a seed.
fn unit(seed: u64) -> f64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// An ellipsoid with a bumpy surface: centre and radii in voxels `(z, y, x)`.
#[derive(Clone, Copy)]
struct Blob {
    label: u16,
    centre: [f64; 3],
    radii: [f64; 3],
    bump: f64,
    freq: f64,
}

impl Blob {
    fn contains(&self, v: [f64; 3]) -> bool {
        let d: Vec<f64> = (0..3)
            .map(|a| (v[a] - self.centre[a]) / self.radii[a])
            .collect();
        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        let angle = d[1].atan2(d[2]);
        let r = 1.0 + self.bump * (self.freq * angle).sin() * (self.freq * d[0]).cos();
        r2 <= r * r
    }

    /// Perturbed copy: shifted and rescaled by up to `amount` of the radii, bumpier.
    fn perturbed(&self, seed: u64, amount: f64) -> Blob {
        let mut b = *self;
        for a in 0..3 {
            b.centre[a] += (unit(seed + a as u64) - 0.5) * 2.0 * amount * self.radii[a];
            b.radii[a] *= 1.0 + (unit(seed + 3 + a as u64) - 0.5) * 2.0 * amount;
        }
        b.bump = 0.03 + 0.05 * unit(seed + 7);
        b.freq = 3.0 + (unit(seed + 8) * 5.0).floor();
        b
    }
}

fn paint(shape: [usize; 3], blobs: &[Blob]) -> Array3<u16> {
    let mut labels = Array3::<u16>::zeros((shape[0], shape[1], shape[2]));
    labels
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(z, mut slice)| {
            for blob in blobs {
                let reach: Vec<f64> = blob.radii.iter().map(|r| r * (1.0 + blob.bump)).collect();
                if (z as f64 - blob.centre[0]).abs() > reach[0] {
                    continue;
                }
                let y0 = (blob.centre[1] - reach[1]).floor().max(0.0) as usize;
                let y1 = ((blob.centre[1] + reach[1]).ceil() as usize).min(shape[1] - 1);
                let x0 = (blob.centre[2] - reach[2]).floor().max(0.0) as usize;
                let x1 = ((blob.centre[2] + reach[2]).ceil() as usize).min(shape[2] - 1);
                for y in y0..=y1 {
                    for x in x0..=x1 {
                        if blob.contains([z as f64, y as f64, x as f64]) {
                            slice[[y, x]] = blob.label;
                        }
                    }
                }
            }
        });
    labels
}

fn reference_blobs(case: u64, shape: [usize; 3]) -> Vec<Blob> {
    let s = |a: usize| shape[a] as f64;
    let jitter = |k: u64| 0.9 + 0.2 * unit(case * 100 + k);
    let organ = |label, c: [f64; 3], r: [f64; 3], k| Blob {
        label,
        centre: c,
        radii: [r[0] * jitter(k), r[1] * jitter(k + 1), r[2] * jitter(k + 2)],
        bump: 0.02,
        freq: 4.0,
    };
    vec![
        // "Liver", "kidney", and a "tumour" inside the liver (painted last).
        organ(
            1,
            [s(0) * 0.5, s(1) * 0.45, s(2) * 0.35],
            [s(0) * 0.22, s(1) * 0.18, s(2) * 0.2],
            0,
        ),
        organ(
            2,
            [s(0) * 0.5, s(1) * 0.6, s(2) * 0.7],
            [s(0) * 0.12, s(1) * 0.07, s(2) * 0.06],
            3,
        ),
        organ(
            3,
            [s(0) * 0.52, s(1) * 0.42, s(2) * 0.33],
            [s(0) * 0.05, s(1) * 0.04, s(2) * 0.04],
            6,
        ),
    ]
}

fn write(path: &Path, labels: Array3<u16>) {
    let (z, y, x) = labels.dim();
    let map = LabelMap {
        data: labels.insert_axis(Axis(0)),
        geometry: Geometry::new(
            Shape3([z, y, x]),
            HeaderGeometry::axis_aligned(Spacing(SPACING), [0.0; 3]),
        ),
    };
    write_label_map(path, &map, 1).expect("write label map");
}

fn generate(dir: &Path, n_cases: u64, shape: [usize; 3]) {
    for sub in ["pred", "ref"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create dir");
    }
    for case in 0..n_cases {
        let name = format!("case_{case:03}.nii.gz");
        let reference = reference_blobs(case, shape);
        let mut prediction: Vec<Blob> = reference
            .iter()
            .enumerate()
            .map(|(i, b)| b.perturbed(case * 1000 + i as u64 * 10, 0.04))
            .collect();
        // A stray false positive of class 2 far from the kidney.
        let mut stray = reference[1];
        stray.centre = [
            shape[0] as f64 * 0.3,
            shape[1] as f64 * 0.7,
            shape[2] as f64 * 0.3,
        ];
        stray.radii = [4.0, 10.0, 10.0];
        prediction.push(stray);
        write(&dir.join("ref").join(&name), paint(shape, &reference));
        write(&dir.join("pred").join(&name), paint(shape, &prediction));
    }
}

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat` (Linux); 0
/// elsewhere.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs `f` `repeats` times; prints the best wall time and the least CPU time of a run (CPU
/// time is steadier than wall time on a shared machine).
fn time<T>(label: &str, repeats: usize, mut f: impl FnMut() -> T) -> T {
    let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
    let mut out = None;
    for _ in 0..repeats {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        out = Some(f());
        best = best.min(start.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - cpu);
    }
    println!("{label}: {best:.3} s wall, {best_cpu:.2} s CPU (best of {repeats})");
    out.expect("at least one repeat")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().map_or("/tmp/bench_eval", String::as_str));
    let num =
        |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect("number"));
    let n_cases = num(1, 5) as u64;
    let shape = [num(2, 200), num(3, 512), num(4, 512)];
    let repeats = num(5, 3);
    if !dir.join("ref").join("case_000.nii.gz").exists() {
        let start = Instant::now();
        generate(&dir, n_cases, shape);
        println!("generated in {:.1} s", start.elapsed().as_secs_f64());
    }
    println!("threads: {}", rayon::current_num_threads());
    let (pred, reference) = (dir.join("pred"), dir.join("ref"));
    let classes: Vec<LabelValue> = (1..=3).map(LabelValue::Single).collect();
    let counts_only = EvaluationSettings {
        classes: classes.clone(),
        ignore_label: None,
        surface: None,
    };
    let with_surface = EvaluationSettings {
        classes,
        ignore_label: None,
        surface: Some(SurfaceSettings {
            nsd_tolerance_mm: DEFAULT_NSD_TOLERANCE_MM,
        }),
    };
    time("read only", repeats, || {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&pred)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files.par_iter().for_each(|f| {
            read_label_map(f).expect("read");
            read_label_map(&reference.join(f.file_name().expect("name"))).expect("read");
        });
    });
    time("evaluate_folder, counts only", repeats, || {
        evaluate_folder(&pred, &reference, &counts_only, ".nii.gz").expect("evaluate")
    });
    let summary = time("evaluate_folder, with surface metrics", repeats, || {
        evaluate_folder(&pred, &reference, &with_surface, ".nii.gz").expect("evaluate")
    });
    for (class, values) in &summary.mean {
        let pick: Vec<String> = values
            .iter()
            .map(|(m, v)| format!("{}={v:.6}", m.name()))
            .collect();
        println!("{class:?}: {}", pick.join(" "));
    }
}
