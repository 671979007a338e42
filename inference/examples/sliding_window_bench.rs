//! Benchmark (report only): the sliding window with fold ensembling on the CPU, split into time
//! inside the network and everything else ("accumulation": tiling, mirroring flips, Gaussian
//! weighting, the float16 sums, division, fold averaging), as `Predictor::phase_times` splits
//! it.
//!
//! The network is a 1x1x1 convolution (1 channel in, 3 classes out), so that the network's time
//! is small and the accumulation dominates. Each configuration runs `--repeats` times (after one
//! warm-up) and the median of each column is printed.
//!
//! Run: `cargo run --release -p autoseg-inference --example sliding_window_bench -- [--shape
//! 128,256,256] [--patch 112,112,112] [--folds 1,5] [--tta off,on] [--repeats 3]`.

use std::cell::Cell;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use autoseg_inference::{ensemble_logits, InferenceError, Segmenter, SlidingWindowSettings};
use tch::{Device, Kind, Tensor};

/// A model wrapper that adds up the time spent inside the wrapped model.
struct Timed<'a> {
    model: &'a dyn Segmenter,
    spent: &'a Cell<Duration>,
}

impl Segmenter for Timed<'_> {
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError> {
        let start = Instant::now();
        let out = self.model.logits(batch);
        self.spent.set(self.spent.get() + start.elapsed());
        out
    }
}

/// What to run: every combination of `folds` and `tta`.
struct Args {
    shape: Vec<i64>,
    patch: Vec<usize>,
    folds: Vec<usize>,
    tta: Vec<bool>,
    repeats: usize,
}

/// A comma list of numbers.
fn list<T: FromStr>(text: &str) -> Option<Vec<T>> {
    text.split(',').map(|v| v.trim().parse().ok()).collect()
}

fn parse_args() -> Option<Args> {
    let mut args = Args {
        shape: vec![128, 256, 256],
        patch: vec![112, 112, 112],
        folds: vec![1, 5],
        tta: vec![false, true],
        repeats: 3,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let [flag, value] = pair else { return None };
        match flag.as_str() {
            "--shape" => args.shape = list(value)?,
            "--patch" => args.patch = list(value)?,
            "--folds" => args.folds = list(value)?,
            "--tta" => {
                args.tta = value
                    .split(',')
                    .map(|v| match v {
                        "on" => Some(true),
                        "off" => Some(false),
                        _ => None,
                    })
                    .collect::<Option<_>>()?
            }
            "--repeats" => args.repeats = value.parse().ok()?,
            _ => return None,
        }
    }
    Some(args)
}

/// `(total, network)` seconds of one ensemble prediction.
fn measure(
    models: &[&dyn Segmenter],
    image: &Tensor,
    settings: &SlidingWindowSettings,
) -> Result<(f64, f64), InferenceError> {
    let spent = Cell::new(Duration::ZERO);
    let timed: Vec<Timed> = models
        .iter()
        .map(|&model| Timed {
            model,
            spent: &spent,
        })
        .collect();
    let timed: Vec<&dyn Segmenter> = timed.iter().map(|t| t as &dyn Segmenter).collect();
    let start = Instant::now();
    let logits = ensemble_logits(&timed, image, settings)?;
    let total = start.elapsed().as_secs_f64();
    drop(logits);
    Ok((total, spent.get().as_secs_f64()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn run(args: &Args) -> Result<(), InferenceError> {
    tch::manual_seed(0);
    let image = Tensor::randn(
        [&[1], args.shape.as_slice()].concat(),
        (Kind::Float, Device::Cpu),
    );
    let weight = Tensor::randn([3, 1, 1, 1, 1], (Kind::Float, Device::Cpu));
    let conv1x1 =
        |b: &Tensor| b.f_conv3d::<&Tensor>(&weight, None, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1);
    println!(
        "threads {}, image {:?}, patch {:?}, loadavg {}",
        tch::get_num_threads(),
        args.shape,
        args.patch,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for &n_folds in &args.folds {
        for &tta in &args.tta {
            let axes = [0, 1, 2];
            let mirror = tta.then_some(&axes[..args.patch.len()]);
            let settings = SlidingWindowSettings::nnunet(&args.patch, mirror, Device::Cpu);
            let models: Vec<&dyn Segmenter> = vec![&conv1x1; n_folds];
            measure(&models, &image, &settings)?;
            let runs = (0..args.repeats.max(1))
                .map(|_| measure(&models, &image, &settings))
                .collect::<Result<Vec<_>, _>>()?;
            let total = median(runs.iter().map(|r| r.0).collect());
            let network = median(runs.iter().map(|r| r.1).collect());
            let other = median(runs.iter().map(|r| r.0 - r.1).collect());
            println!(
                "folds {n_folds}  tta {:<3}  total {total:>7.3} s  network {network:>7.3} s  accumulation {other:>7.3} s",
                if tta { "on" } else { "off" }
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!(
            "usage: sliding_window_bench [--shape Z,Y,X] [--patch Z,Y,X] [--folds 1,5] [--tta off,on] [--repeats N]"
        );
        return ExitCode::from(2);
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sliding_window_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
