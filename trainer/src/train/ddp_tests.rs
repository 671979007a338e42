//! Data-parallel steps against single-process steps: one optimisation step of 2 ranks × batch b
//! ends with the weights of 1 process × batch 2b on the same samples (augmentation plays no
//! part: the batches are given), with and without batch Dice; and the ranks' mean loss is the
//! single process's loss. Ranks are threads over Gloo on loopback.

use autoseg_planner::{nnunet_trainer, Configuration, Dim, Plans};
use tch::{Device, Tensor};

use super::ddp::DataParallel;
use super::model::Model;
use super::variant_golden::{fixture, get, tensors};
use super::RunOptions;
use crate::distributed::tests::loopback_group;

/// The fixture's 3d_fullres plan (batch 2, three deep-supervision outputs).
fn config(batch_dice: bool) -> Configuration {
    let text = std::fs::read_to_string(fixture("plans.json")).unwrap();
    let plans = Plans::from_nnunet_json(&text).unwrap();
    let mut config = plans.resolve("3d_fullres").unwrap();
    config.batch_dice = batch_dice;
    config
}

/// The fixture's batch `b` (2 samples) and its three targets.
fn batch(start: &[(String, Tensor)], b: usize) -> (Tensor, Vec<Tensor>) {
    let data = get(start, &format!("batch{b}.data")).shallow_clone();
    let targets = (0..3)
        .map(|s| get(start, &format!("batch{b}.target{s}")).shallow_clone())
        .collect();
    (data, targets)
}

/// A model of `config` with the fixture's start weights; one step on `data`; its loss and
/// weights.
fn one_step(
    config: &Configuration,
    run: &RunOptions,
    data: &Tensor,
    targets: &[Tensor],
) -> (f64, Vec<(String, Tensor)>) {
    let training = nnunet_trainer("nnUNetTrainer")
        .unwrap()
        .resolve(Dim::Three)
        .unwrap();
    let mut model = Model::new(config, 1, 3, None, false, &training, run).unwrap();
    let start = tensors("start.safetensors");
    tch::no_grad(|| {
        for (name, mut param) in model.vs.variables() {
            param.copy_(get(&start, &name));
        }
    });
    model.optimizer.set_lr(0.01);
    let loss = model.step_on(data, targets).unwrap();
    let mut weights: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    (loss, weights)
}

#[test]
fn two_ranks_of_b_step_as_one_process_of_2b() {
    let start = tensors("start.safetensors");
    let run = RunOptions {
        n_loader_workers: 1,
        ..RunOptions::new(Device::Cpu, 0)
    };
    for batch_dice in [false, true] {
        let config = config(batch_dice);
        let (d0, t0) = batch(&start, 0);
        let (d1, t1) = batch(&start, 1);
        let data = Tensor::cat(&[&d0, &d1], 0);
        let targets: Vec<Tensor> = t0
            .iter()
            .zip(&t1)
            .map(|(a, b)| Tensor::cat(&[a, b], 0))
            .collect();
        let (single_loss, single) = one_step(&config, &run, &data, &targets);

        let ranks: Vec<_> = loopback_group(2)
            .into_iter()
            .map(|group| {
                let (config, run) = (config.clone(), run.clone());
                let (data, targets) = batch(&tensors("start.safetensors"), group.rank());
                std::thread::spawn(move || {
                    let run = RunOptions {
                        group: Some(DataParallel(group)),
                        ..run
                    };
                    one_step(&config, &run, &data, &targets)
                })
            })
            .collect();
        let ranks: Vec<(f64, Vec<(String, Tensor)>)> =
            ranks.into_iter().map(|r| r.join().unwrap()).collect();

        let mean_loss = (ranks[0].0 + ranks[1].0) / 2.0;
        assert!(
            (mean_loss - single_loss).abs() < 1e-5 * single_loss.abs().max(1.0),
            "batch_dice {batch_dice}: ranks' mean loss {mean_loss} vs {single_loss}"
        );
        for (rank, (_, weights)) in ranks.iter().enumerate() {
            for ((name, got), (_, want)) in weights.iter().zip(&single) {
                let scale = want.abs().max().double_value(&[]);
                let diff = (got - want).abs().max().double_value(&[]);
                // The convolution biases before an instance norm start at 0 and get only
                // rounding-noise gradients (about 1e-11 after the step): bounded absolutely.
                let bound = if scale < 1e-6 { 1e-9 } else { 1e-5 * scale };
                assert!(
                    diff <= bound,
                    "batch_dice {batch_dice}, rank {rank}, {name}: differs by {diff:e} \
                     (largest weight {scale:e})"
                );
            }
        }
        // The step did move the weights (the comparison is not of untouched starts).
        let moved = single
            .iter()
            .map(|(n, w)| (w - get(&start, n)).abs().max().double_value(&[]))
            .fold(0.0, f64::max);
        assert!(
            moved > 1e-4,
            "batch_dice {batch_dice}: the step moved nothing ({moved})"
        );
    }
}
