//! Benchmark (report only): the sliding window over a 128³ image with a 64³ patch, on the CPU,
//! split into time inside the network and everything else (tiling, Gaussian weighting,
//! accumulation, division).
//!
//! Run: `cargo run --release -p autoseg-inference --example sliding_window_bench`.

use std::cell::Cell;
use std::time::{Duration, Instant};

use autoseg_inference::{
    sliding_window_logits, Accumulator, InferenceError, Segmenter, SlidingWindowSettings,
};
use autoseg_network::UNet;
use autoseg_planner::{Dim, NetworkKind, StageSpec, UNetSpec};
use tch::{nn, Device, Kind, Tensor};

/// A model wrapper that adds up the time spent inside the wrapped model.
struct Timed<'a> {
    model: &'a dyn Segmenter,
    spent: Cell<Duration>,
}

impl Segmenter for Timed<'_> {
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError> {
        let start = Instant::now();
        let out = self.model.logits(batch);
        self.spent.set(self.spent.get() + start.elapsed());
        out
    }
}

/// A 3-stage PlainConvUNet with 8, 16, 32 features: tiny, but a real U-Net.
fn tiny_unet(vs: &nn::VarStore) -> UNet {
    let stage = |features, stride, decoder| StageSpec {
        features,
        kernel: vec![3, 3, 3],
        stride: vec![stride; 3],
        n_convs: 2,
        n_convs_decoder: decoder,
    };
    let spec = UNetSpec {
        dim: Dim::Three,
        kind: NetworkKind::PlainConvUNet,
        stages: vec![
            stage(8, 1, Some(2)),
            stage(16, 2, Some(2)),
            stage(32, 2, None),
        ],
    };
    UNet::new(&vs.root(), &spec, 1, 3).expect("the tiny spec is valid")
}

/// Runs one configuration and prints total, network and other time.
fn run(name: &str, model: &dyn Segmenter, image: &Tensor, settings: &SlidingWindowSettings) {
    let timed = Timed {
        model,
        spent: Cell::new(Duration::ZERO),
    };
    let start = Instant::now();
    let logits = sliding_window_logits(&timed, image, settings).expect("the benchmark runs");
    let total = start.elapsed();
    let network = timed.spent.get();
    println!(
        "{name:<40} total {:>7.2} s  network {:>7.2} s  other {:>6.2} s  ({:?})",
        total.as_secs_f64(),
        network.as_secs_f64(),
        (total - network).as_secs_f64(),
        logits.size()
    );
}

fn main() {
    tch::manual_seed(0);
    println!("threads: {}", tch::get_num_threads());
    let image = Tensor::randn([1, 128, 128, 128], (Kind::Float, Device::Cpu));
    let vs = nn::VarStore::new(Device::Cpu);
    let unet = tiny_unet(&vs);
    let weight = Tensor::randn([3, 1, 1, 1, 1], (Kind::Float, Device::Cpu));
    let conv1x1 =
        |b: &Tensor| b.f_conv3d::<&Tensor>(&weight, None, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1);
    let base = SlidingWindowSettings::nnunet(&[64, 64, 64], None, Device::Cpu);
    let float = SlidingWindowSettings {
        accumulator: Accumulator::Float,
        ..base.clone()
    };
    let tta = SlidingWindowSettings {
        mirror_axes: Some(vec![0, 1, 2]),
        ..base.clone()
    };
    run("1x1 conv, no TTA, fp16 buffers", &conv1x1, &image, &base);
    run("1x1 conv, no TTA, fp32 buffers", &conv1x1, &image, &float);
    run(
        "1x1 conv, TTA (8 passes), fp16 buffers",
        &conv1x1,
        &image,
        &tta,
    );
    run("tiny U-Net, no TTA, fp16 buffers", &unet, &image, &base);
    run("tiny U-Net, no TTA, fp32 buffers", &unet, &image, &float);
}
