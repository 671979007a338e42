//! nnU-Net 2.8.1's trainer variants against autoseg's `training` settings of the same name:
//! from the same weights, two training steps on the same two batches give the same losses and
//! the same weights (`fixtures/data/training_variants/`, made by
//! `scripts/make_training_variant_fixture.py`, which runs nnU-Net's own trainer classes).

use std::path::PathBuf;

use autoseg_planner::{nnunet_trainer, Dim, Plans};
use tch::{Device, Tensor};

use super::model::Model;
use super::RunOptions;
use crate::schedule::LrSchedule;

/// The epoch whose learning rate the steps use (the script's `EPOCH`).
const EPOCH: usize = 10;

pub(super) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data/training_variants")
        .join(name)
}

pub(super) fn tensors(name: &str) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(fixture(name)).unwrap()
}

pub(super) fn get<'a>(named: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &named.iter().find(|(n, _)| n == name).unwrap().1
}

/// A convolution's bias right before an instance norm: the norm subtracts it again, so its
/// gradient is zero up to rounding noise.
fn is_bias_before_norm(param: &str) -> bool {
    param.contains(".convs.") && param.ends_with(".conv.bias")
}

/// The largest weight differences to nnU-Net's after the steps: over the parameters with a
/// gradient, and over the biases before a norm (whose gradient is rounding noise).
struct Differences {
    loss: f64,
    learned: f64,
    noise_only: f64,
    lr: f64,
}

/// Runs nnU-Net trainer `name`'s two steps in autoseg, checking the learning rate and the
/// losses; returns how far the weights end from nnU-Net's.
fn compare(name: &str) -> Differences {
    let text = std::fs::read_to_string(fixture("plans.json")).unwrap();
    let plans = Plans::from_nnunet_json(&text).unwrap();
    let config = plans.resolve("3d_fullres").unwrap();
    let training = nnunet_trainer(name).unwrap().resolve(Dim::Three).unwrap();
    let run = RunOptions {
        n_loader_workers: 1,
        ..RunOptions::new(Device::Cpu, 0)
    };
    let mut model = Model::new(&config, 1, 3, None, false, &training, &run).unwrap();
    let start = tensors("start.safetensors");
    let _no_grad = tch::no_grad_guard();
    for (param_name, mut param) in model.vs.variables() {
        // Batch norm's running statistics keep torch's initial 0 and 1 (as in the script).
        if let Some((_, value)) = start.iter().find(|(n, _)| *n == param_name) {
            param.copy_(value);
        }
    }
    drop(_no_grad);
    let golden = tensors(&format!("{name}.safetensors"));
    let lr = LrSchedule::of(&training).lr(EPOCH);
    let want_lr = get(&golden, "lr").double_value(&[0]);
    assert!(
        (lr - want_lr).abs() < 1e-12 * want_lr,
        "{name}: lr {lr} vs {want_lr}"
    );
    model.optimizer.set_lr(lr);
    let want_losses = Vec::<f64>::try_from(get(&golden, "loss")).unwrap();
    let mut loss_diff: f64 = 0.0;
    for (b, want) in want_losses.iter().enumerate() {
        let data = get(&start, &format!("batch{b}.data"));
        let targets: Vec<Tensor> = (0..3)
            .map(|s| get(&start, &format!("batch{b}.target{s}")).shallow_clone())
            .collect();
        let loss = model.step_on(data, &targets).unwrap();
        loss_diff = loss_diff.max((loss - want).abs());
        assert!(
            (loss - want).abs() < 1e-5 * want.abs().max(1.0),
            "{name} step {b}: loss {loss} vs nnU-Net's {want}"
        );
    }
    let mut differences = Differences {
        loss: loss_diff,
        learned: 0.0,
        noise_only: 0.0,
        lr,
    };
    for (param_name, param) in model.vs.variables() {
        let want = get(&golden, &param_name).to_kind(param.kind());
        let diff = (&param - want).abs().max().double_value(&[]);
        let worst = if is_bias_before_norm(&param_name) {
            &mut differences.noise_only
        } else {
            &mut differences.learned
        };
        *worst = worst.max(diff);
    }
    // The figures of BENCHMARKS.md (`cargo test ... steps_as_nnunet -- --nocapture`).
    println!(
        "{name}: lr {lr:e}; losses within {:.1e}; weights within {:.1e} (biases before a norm \
         {:.1e})",
        differences.loss, differences.learned, differences.noise_only
    );
    differences
}

// One test per trainer: each is a few hundred milliseconds on the CPU. Every weight with a
// gradient ends within 1e-5 of nnU-Net's. The biases before a norm do too under SGD; Adam divides
// their noise gradients by the noise's own magnitude, so any rounding difference becomes a step
// of up to about lr in either direction, and for them the test only bounds the two steps.
macro_rules! same_steps_as_nnunet {
    ($($test:ident: $name:literal,)*) => {$(
        #[test]
        fn $test() {
            let d = compare($name);
            assert!(d.learned < 1e-5, "{}: weights differ from nnU-Net's by up to {}", $name, d.learned);
            let adam = $name.contains("Adam");
            let bound = if adam { 2.0 * 3.2 * d.lr } else { 1e-5 };
            assert!(
                d.noise_only < bound,
                "{}: biases before a norm differ by up to {}",
                $name,
                d.noise_only
            );
        }
    )*};
}

same_steps_as_nnunet! {
    default_trainer_steps_as_nnunet: "nnUNetTrainer",
    ce_loss_steps_as_nnunet: "nnUNetTrainerCELoss",
    topk_loss_steps_as_nnunet: "nnUNetTrainerTopk10Loss",
    dice_loss_steps_as_nnunet: "nnUNetTrainerDiceLoss",
    adamw_amsgrad_steps_as_nnunet: "nnUNetTrainerAdam",
    adam_steps_as_nnunet: "nnUNetTrainerVanillaAdam",
    cosine_schedule_steps_as_nnunet: "nnUNetTrainerCosAnneal",
    warm_up_steps_as_nnunet: "nnUNetTrainer_warmup",
    no_deep_supervision_steps_as_nnunet: "nnUNetTrainerNoDeepSupervision",
    batch_norm_steps_as_nnunet: "nnUNetTrainerBN",
}
