//! Seconds per training step (forward with deep supervision, Dice + CE loss, backward, clip to
//! 12, SGD-Nesterov) on the CPU in fp32, for a 3D PlainConvUNet with patch 64³, batch 2 and 5
//! stages (features 32..320), the network nnU-Net plans for small 3D patches. Random inputs;
//! no data loading, so it compares with `nnUNetTrainer.train_step` on the same network.
//!
//! With `resenc` the network is nnU-Net's ResEnc-M ResidualEncoderUNet of the same stages (1, 3,
//! 4, 6, 6 residual blocks, one decoder conv per stage).
//!
//! Usage: `cargo run --release -p autoseg-trainer --example train_step_bench -- [ITERS] [resenc]`

use autoseg_network::UNet;
use autoseg_planner::{Dim, NetworkKind, StageSpec, Training, UNetSpec};
use autoseg_trainer::loss::{
    deep_supervision_scales, deep_supervision_weights, downsample_target, DeepSupervisionLoss,
    DiceCeLoss, SegLoss,
};
use autoseg_trainer::optim::{optimizer_step, LossScaler, Optimizer};
use tch::{nn, Device, Kind, Tensor};

fn spec(kind: NetworkKind) -> UNetSpec {
    let features = [32, 64, 128, 256, 320];
    let resenc = kind == NetworkKind::ResidualEncoderUNet;
    let stages = features
        .iter()
        .enumerate()
        .map(|(s, &f)| StageSpec {
            features: f,
            kernel: vec![3; 3],
            stride: vec![if s == 0 { 1 } else { 2 }; 3],
            n_convs: if resenc { [1, 3, 4, 6, 6][s] } else { 2 },
            n_convs_decoder: (s + 1 < features.len()).then_some(if resenc { 1 } else { 2 }),
        })
        .collect();
    UNetSpec {
        dim: Dim::Three,
        kind,
        stages,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_iters: usize = std::env::args().nth(1).map_or(Ok(10), |a| a.parse())?;
    tch::manual_seed(0);
    let kind = match std::env::args().nth(2).as_deref() {
        Some("resenc") => NetworkKind::ResidualEncoderUNet,
        _ => NetworkKind::PlainConvUNet,
    };
    let spec = spec(kind);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(&vs.root(), &spec, 1, 3)?;
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sgd = Optimizer::new(params, &Training::nnunet_default());
    let mut scaler = LossScaler::disabled();
    let loss = DeepSupervisionLoss {
        loss: SegLoss::DiceCe(DiceCeLoss {
            batch_dice: false,
            ignore_label: None,
        }),
        weights: deep_supervision_weights(net.n_outputs_ds()),
    };
    let data = Tensor::randn([2, 1, 64, 64, 64], (Kind::Float, Device::Cpu));
    let target = Tensor::randint(3, [2, 1, 64, 64, 64], (Kind::Int64, Device::Cpu));
    let targets = downsample_target(&target, &deep_supervision_scales(&spec))?;
    let mut step = || -> Result<f64, Box<dyn std::error::Error>> {
        sgd.zero_grad();
        let value = loss.forward(&net.forward_ds(&data)?, &targets)?;
        value.f_backward()?;
        optimizer_step(&mut sgd, &mut scaler, 12.0)?;
        Ok(value.f_double_value(&[])?)
    };
    step()?;
    step()?;
    let start = std::time::Instant::now();
    for _ in 0..n_iters {
        step()?;
    }
    let per_iter = start.elapsed().as_secs_f64() / n_iters as f64;
    println!(
        "autoseg train_step ({kind:?}): {per_iter:.3} s/iter over {n_iters} iters, threads {}",
        tch::get_num_threads()
    );
    Ok(())
}
