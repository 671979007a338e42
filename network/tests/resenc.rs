//! ResidualEncoderUNet against dna's, as nnU-Net 2.8.1 builds it: parameter names and shapes,
//! the initialisation, deep-supervision shapes, and the outputs for the same weights.
//!
//! Golden values: `PYTHONPATH= /work/peer-venv/bin/python network/tests/golden/resenc_dna.py`
//! (torch 2.11, dynamic_network_architectures as installed with nnunetv2 2.8.1).

use autoseg_network::UNet;
use autoseg_planner::{Dim, NetworkKind, StageSpec, UNetSpec};
use tch::{nn, Device, Kind, Tensor};

/// A ResidualEncoderUNet spec; `decoder_convs[s]` is the decoder conv count at stage `s`'s
/// resolution (dna's `n_conv_per_stage_decoder` runs bottom-up, so it is this list reversed).
fn resenc_spec(
    dim: Dim,
    features: &[usize],
    kernels: &[&[usize]],
    strides: &[&[usize]],
    blocks: &[usize],
    decoder_convs: &[usize],
) -> UNetSpec {
    let stages = (0..features.len())
        .map(|s| StageSpec {
            features: features[s],
            kernel: kernels[s].to_vec(),
            stride: strides[s].to_vec(),
            n_convs: blocks[s],
            n_convs_decoder: decoder_convs.get(s).copied(),
        })
        .collect();
    UNetSpec {
        dim,
        kind: NetworkKind::ResidualEncoderUNet,
        stages,
    }
}

/// The script's "3d" case: in 1, 3 classes.
fn spec_3d() -> UNetSpec {
    let k: &[usize] = &[3, 3, 3];
    let strides: [&[usize]; 4] = [&[1, 1, 1], &[1, 2, 2], &[2, 2, 2], &[2, 2, 2]];
    let kernels = [&[1, 3, 3], k, k, k];
    resenc_spec(
        Dim::Three,
        &[4, 8, 16, 32],
        &kernels,
        &strides,
        &[1, 2, 2, 2],
        &[1, 1, 1],
    )
}

/// The script's "2d" case: in 2, 4 classes; stage 2 keeps 8 channels (a pool-only skip).
fn spec_2d() -> UNetSpec {
    let k: &[usize] = &[3, 3];
    let strides: [&[usize]; 3] = [&[1, 1], &[2, 1], &[2, 2]];
    resenc_spec(
        Dim::Two,
        &[4, 8, 8],
        &[k, k, k],
        &strides,
        &[2, 1, 2],
        &[2, 1],
    )
}

fn build(spec: &UNetSpec, in_channels: i64, n_classes: i64) -> (nn::VarStore, UNet) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(&vs.root(), spec, in_channels, n_classes).expect("a valid ResEnc spec");
    (vs, net)
}

fn sorted_shapes(vs: &nn::VarStore) -> Vec<(String, Vec<i64>)> {
    let mut vars: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect();
    vars.sort();
    vars
}

fn sorted_golden(golden: &[(&str, &[i64])]) -> Vec<(String, Vec<i64>)> {
    let mut vars: Vec<_> = golden
        .iter()
        .map(|(name, shape)| (name.to_string(), shape.to_vec()))
        .collect();
    vars.sort();
    vars
}

#[test]
fn parameter_names_and_shapes_equal_dnas() {
    let (vs, _net) = build(&spec_3d(), 1, 3);
    assert_eq!(sorted_shapes(&vs), sorted_golden(PARAMS_3D));
    let (vs, _net) = build(&spec_2d(), 2, 4);
    assert_eq!(sorted_shapes(&vs), sorted_golden(PARAMS_2D));
}

fn abs_sum(t: &Tensor) -> f64 {
    t.abs().sum(Kind::Double).double_value(&[])
}

#[test]
fn init_zeroes_the_last_norm_before_each_addition() {
    // The script's "zeroed weights": every block's conv2.norm.weight (dna
    // init_last_bn_before_add_to_0; the biases start at 0 anyway). Other norms keep weight 1.
    let (vs, _net) = build(&spec_3d(), 1, 3);
    let vars = vs.variables();
    let mut zeroed: Vec<&str> = Vec::new();
    for (name, t) in &vars {
        if name.ends_with("norm.weight") && abs_sum(t) == 0.0 {
            zeroed.push(name);
        }
        if name.ends_with("norm.bias") {
            assert_eq!(abs_sum(t), 0.0, "{name}");
        }
    }
    zeroed.sort_unstable();
    let blocks = [
        "0.blocks.0",
        "1.blocks.0",
        "1.blocks.1",
        "2.blocks.0",
        "2.blocks.1",
    ];
    let blocks = blocks.into_iter().chain(["3.blocks.0", "3.blocks.1"]);
    let expected: Vec<String> = blocks
        .map(|b| format!("encoder.stages.{b}.conv2.norm.weight"))
        .collect();
    assert_eq!(zeroed, expected);
    let skip_norm = &vars["encoder.stages.1.blocks.0.skip.1.norm.weight"];
    assert_eq!(skip_norm.sum(Kind::Double).double_value(&[]), 8.0);
    // He init reached the residual convs: conv2 of a block is not zero.
    assert!(abs_sum(&vars["encoder.stages.2.blocks.1.conv2.conv.weight"]) > 0.0);
}

#[test]
fn deep_supervision_outputs_have_the_stage_shapes() {
    let (_vs, net) = build(&spec_3d(), 1, 3);
    let xs = Tensor::randn([2, 1, 8, 16, 16], (Kind::Float, Device::Cpu));
    let outputs = net.forward_ds(&xs).unwrap();
    let shapes: Vec<Vec<i64>> = outputs.iter().map(Tensor::size).collect();
    let expected = [[2, 3, 8, 16, 16], [2, 3, 8, 8, 8], [2, 3, 4, 4, 4]];
    assert_eq!(shapes, expected);
    assert_eq!(net.n_outputs_ds(), 3);
    let top = net.forward(&xs).unwrap();
    assert!(top.allclose(&outputs[0], 1e-6, 1e-6, false));
    let (_vs, net) = build(&spec_2d(), 2, 4);
    let xs = Tensor::randn([1, 2, 8, 4], (Kind::Float, Device::Cpu));
    let shapes: Vec<Vec<i64>> = net
        .forward_ds(&xs)
        .unwrap()
        .iter()
        .map(Tensor::size)
        .collect();
    assert_eq!(shapes, [[1, 4, 8, 4], [1, 4, 4, 4]]);
}

#[test]
fn at_init_the_residual_branches_pass_no_gradient_to_their_first_conv() {
    // With conv2.norm's weight 0 (dna init_last_bn_before_add_to_0) a block's branch outputs
    // its norm bias only, so conv1 and conv2 get exactly zero gradient while conv2.norm.bias
    // does not; this also runs backward through the in-place addition and LeakyReLU.
    let (vs, net) = build(&spec_2d(), 2, 4);
    let xs = Tensor::randn([1, 2, 8, 4], (Kind::Float, Device::Cpu));
    let loss = net
        .forward_ds(&xs)
        .unwrap()
        .iter()
        .map(|out| out.square().sum(Kind::Float))
        .fold(Tensor::from(0f32), |acc, l| acc + l);
    loss.backward();
    let vars = vs.variables();
    let grad = |name: &str| abs_sum(&vars[name].grad());
    let block = "encoder.stages.1.blocks.0";
    assert_eq!(grad(&format!("{block}.conv1.conv.weight")), 0.0);
    assert_eq!(grad(&format!("{block}.conv2.conv.weight")), 0.0);
    assert!(grad(&format!("{block}.conv2.norm.bias")) > 0.0);
    assert!(grad(&format!("{block}.skip.1.conv.weight")) > 0.0);
    assert!(grad("encoder.stem.convs.0.conv.weight") > 0.0);
}

/// Fills every variable, in name order, with `sin(0.37 k + i) * 0.3` (k the element index, i
/// the variable's rank), as the script's `fill`.
fn fill_deterministically(vs: &nn::VarStore) {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (_, mut var)) in vars.into_iter().enumerate() {
        let k = Tensor::arange(var.numel() as i64, (Kind::Float, Device::Cpu));
        let values = ((k * 0.37 + i as f64).sin() * 0.3).reshape(var.size());
        tch::no_grad(|| var.copy_(&values));
    }
}

/// The script's `checksum`: `sum(out * cos(0.7 k))` over the flattened output.
fn checksum(t: &Tensor) -> f64 {
    let flat = t.flatten(0, -1);
    let weights = (Tensor::arange(flat.numel() as i64, (Kind::Float, Device::Cpu)) * 0.7).cos();
    (flat * weights).sum(Kind::Float).double_value(&[])
}

/// Runs `spec` with the deterministic weights on `cos(0.11 k)` shaped `input_shape`, and
/// compares every deep-supervision output's checksum and std with dna's.
fn assert_outputs_match(spec: &UNetSpec, input_shape: &[i64], n_classes: i64, dna: &[(f64, f64)]) {
    let (vs, net) = build(spec, input_shape[1], n_classes);
    fill_deterministically(&vs);
    let n: i64 = input_shape.iter().product();
    let xs = (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.11)
        .cos()
        .reshape(input_shape);
    let outputs = net.forward_ds(&xs).unwrap();
    assert_eq!(outputs.len(), dna.len());
    for (level, (output, &(sum, std))) in outputs.iter().zip(dna).enumerate() {
        let (got_sum, got_std) = (checksum(output), output.std(true).double_value(&[]));
        assert!(
            (got_sum - sum).abs() < 1e-4,
            "level {level}: checksum {got_sum} vs {sum}"
        );
        assert!(
            (got_std / std - 1.0).abs() < 1e-4,
            "level {level}: std {got_std} vs {std}"
        );
    }
}

#[test]
fn outputs_equal_dnas_for_the_same_weights_3d() {
    // The script's "3d" output lines: (checksum, std) per level, highest resolution first.
    let dna = [
        (5.037801742553711, 0.04771781712770462),
        (-1.0821377038955688, 0.36291202902793884),
        (0.22818928956985474, 0.1646624207496643),
    ];
    assert_outputs_match(&spec_3d(), &[1, 1, 8, 16, 16], 3, &dna);
}

#[test]
fn outputs_equal_dnas_for_the_same_weights_2d() {
    let dna = [
        (0.25222158432006836, 0.14515864849090576),
        (0.4903466999530792, 0.2847723960876465),
    ];
    assert_outputs_match(&spec_2d(), &[1, 2, 8, 4], 4, &dna);
}

// Parameter names and shapes from dna's `named_parameters()` (the script's PARAMS_* lines).
const PARAMS_3D: &[(&str, &[i64])] = &[
    ("encoder.stem.convs.0.conv.weight", &[4, 1, 1, 3, 3]),
    ("encoder.stem.convs.0.conv.bias", &[4]),
    ("encoder.stem.convs.0.norm.weight", &[4]),
    ("encoder.stem.convs.0.norm.bias", &[4]),
    (
        "encoder.stages.0.blocks.0.conv1.conv.weight",
        &[4, 4, 1, 3, 3],
    ),
    ("encoder.stages.0.blocks.0.conv1.conv.bias", &[4]),
    ("encoder.stages.0.blocks.0.conv1.norm.weight", &[4]),
    ("encoder.stages.0.blocks.0.conv1.norm.bias", &[4]),
    (
        "encoder.stages.0.blocks.0.conv2.conv.weight",
        &[4, 4, 1, 3, 3],
    ),
    ("encoder.stages.0.blocks.0.conv2.conv.bias", &[4]),
    ("encoder.stages.0.blocks.0.conv2.norm.weight", &[4]),
    ("encoder.stages.0.blocks.0.conv2.norm.bias", &[4]),
    (
        "encoder.stages.1.blocks.0.conv1.conv.weight",
        &[8, 4, 3, 3, 3],
    ),
    ("encoder.stages.1.blocks.0.conv1.conv.bias", &[8]),
    ("encoder.stages.1.blocks.0.conv1.norm.weight", &[8]),
    ("encoder.stages.1.blocks.0.conv1.norm.bias", &[8]),
    (
        "encoder.stages.1.blocks.0.conv2.conv.weight",
        &[8, 8, 3, 3, 3],
    ),
    ("encoder.stages.1.blocks.0.conv2.conv.bias", &[8]),
    ("encoder.stages.1.blocks.0.conv2.norm.weight", &[8]),
    ("encoder.stages.1.blocks.0.conv2.norm.bias", &[8]),
    (
        "encoder.stages.1.blocks.0.skip.1.conv.weight",
        &[8, 4, 1, 1, 1],
    ),
    ("encoder.stages.1.blocks.0.skip.1.norm.weight", &[8]),
    ("encoder.stages.1.blocks.0.skip.1.norm.bias", &[8]),
    (
        "encoder.stages.1.blocks.1.conv1.conv.weight",
        &[8, 8, 3, 3, 3],
    ),
    ("encoder.stages.1.blocks.1.conv1.conv.bias", &[8]),
    ("encoder.stages.1.blocks.1.conv1.norm.weight", &[8]),
    ("encoder.stages.1.blocks.1.conv1.norm.bias", &[8]),
    (
        "encoder.stages.1.blocks.1.conv2.conv.weight",
        &[8, 8, 3, 3, 3],
    ),
    ("encoder.stages.1.blocks.1.conv2.conv.bias", &[8]),
    ("encoder.stages.1.blocks.1.conv2.norm.weight", &[8]),
    ("encoder.stages.1.blocks.1.conv2.norm.bias", &[8]),
    (
        "encoder.stages.2.blocks.0.conv1.conv.weight",
        &[16, 8, 3, 3, 3],
    ),
    ("encoder.stages.2.blocks.0.conv1.conv.bias", &[16]),
    ("encoder.stages.2.blocks.0.conv1.norm.weight", &[16]),
    ("encoder.stages.2.blocks.0.conv1.norm.bias", &[16]),
    (
        "encoder.stages.2.blocks.0.conv2.conv.weight",
        &[16, 16, 3, 3, 3],
    ),
    ("encoder.stages.2.blocks.0.conv2.conv.bias", &[16]),
    ("encoder.stages.2.blocks.0.conv2.norm.weight", &[16]),
    ("encoder.stages.2.blocks.0.conv2.norm.bias", &[16]),
    (
        "encoder.stages.2.blocks.0.skip.1.conv.weight",
        &[16, 8, 1, 1, 1],
    ),
    ("encoder.stages.2.blocks.0.skip.1.norm.weight", &[16]),
    ("encoder.stages.2.blocks.0.skip.1.norm.bias", &[16]),
    (
        "encoder.stages.2.blocks.1.conv1.conv.weight",
        &[16, 16, 3, 3, 3],
    ),
    ("encoder.stages.2.blocks.1.conv1.conv.bias", &[16]),
    ("encoder.stages.2.blocks.1.conv1.norm.weight", &[16]),
    ("encoder.stages.2.blocks.1.conv1.norm.bias", &[16]),
    (
        "encoder.stages.2.blocks.1.conv2.conv.weight",
        &[16, 16, 3, 3, 3],
    ),
    ("encoder.stages.2.blocks.1.conv2.conv.bias", &[16]),
    ("encoder.stages.2.blocks.1.conv2.norm.weight", &[16]),
    ("encoder.stages.2.blocks.1.conv2.norm.bias", &[16]),
    (
        "encoder.stages.3.blocks.0.conv1.conv.weight",
        &[32, 16, 3, 3, 3],
    ),
    ("encoder.stages.3.blocks.0.conv1.conv.bias", &[32]),
    ("encoder.stages.3.blocks.0.conv1.norm.weight", &[32]),
    ("encoder.stages.3.blocks.0.conv1.norm.bias", &[32]),
    (
        "encoder.stages.3.blocks.0.conv2.conv.weight",
        &[32, 32, 3, 3, 3],
    ),
    ("encoder.stages.3.blocks.0.conv2.conv.bias", &[32]),
    ("encoder.stages.3.blocks.0.conv2.norm.weight", &[32]),
    ("encoder.stages.3.blocks.0.conv2.norm.bias", &[32]),
    (
        "encoder.stages.3.blocks.0.skip.1.conv.weight",
        &[32, 16, 1, 1, 1],
    ),
    ("encoder.stages.3.blocks.0.skip.1.norm.weight", &[32]),
    ("encoder.stages.3.blocks.0.skip.1.norm.bias", &[32]),
    (
        "encoder.stages.3.blocks.1.conv1.conv.weight",
        &[32, 32, 3, 3, 3],
    ),
    ("encoder.stages.3.blocks.1.conv1.conv.bias", &[32]),
    ("encoder.stages.3.blocks.1.conv1.norm.weight", &[32]),
    ("encoder.stages.3.blocks.1.conv1.norm.bias", &[32]),
    (
        "encoder.stages.3.blocks.1.conv2.conv.weight",
        &[32, 32, 3, 3, 3],
    ),
    ("encoder.stages.3.blocks.1.conv2.conv.bias", &[32]),
    ("encoder.stages.3.blocks.1.conv2.norm.weight", &[32]),
    ("encoder.stages.3.blocks.1.conv2.norm.bias", &[32]),
    ("decoder.stages.0.convs.0.conv.weight", &[16, 32, 3, 3, 3]),
    ("decoder.stages.0.convs.0.conv.bias", &[16]),
    ("decoder.stages.0.convs.0.norm.weight", &[16]),
    ("decoder.stages.0.convs.0.norm.bias", &[16]),
    ("decoder.stages.1.convs.0.conv.weight", &[8, 16, 3, 3, 3]),
    ("decoder.stages.1.convs.0.conv.bias", &[8]),
    ("decoder.stages.1.convs.0.norm.weight", &[8]),
    ("decoder.stages.1.convs.0.norm.bias", &[8]),
    ("decoder.stages.2.convs.0.conv.weight", &[4, 8, 1, 3, 3]),
    ("decoder.stages.2.convs.0.conv.bias", &[4]),
    ("decoder.stages.2.convs.0.norm.weight", &[4]),
    ("decoder.stages.2.convs.0.norm.bias", &[4]),
    ("decoder.transpconvs.0.weight", &[32, 16, 2, 2, 2]),
    ("decoder.transpconvs.0.bias", &[16]),
    ("decoder.transpconvs.1.weight", &[16, 8, 2, 2, 2]),
    ("decoder.transpconvs.1.bias", &[8]),
    ("decoder.transpconvs.2.weight", &[8, 4, 1, 2, 2]),
    ("decoder.transpconvs.2.bias", &[4]),
    ("decoder.seg_layers.0.weight", &[3, 16, 1, 1, 1]),
    ("decoder.seg_layers.0.bias", &[3]),
    ("decoder.seg_layers.1.weight", &[3, 8, 1, 1, 1]),
    ("decoder.seg_layers.1.bias", &[3]),
    ("decoder.seg_layers.2.weight", &[3, 4, 1, 1, 1]),
    ("decoder.seg_layers.2.bias", &[3]),
];
const PARAMS_2D: &[(&str, &[i64])] = &[
    ("encoder.stem.convs.0.conv.weight", &[4, 2, 3, 3]),
    ("encoder.stem.convs.0.conv.bias", &[4]),
    ("encoder.stem.convs.0.norm.weight", &[4]),
    ("encoder.stem.convs.0.norm.bias", &[4]),
    ("encoder.stages.0.blocks.0.conv1.conv.weight", &[4, 4, 3, 3]),
    ("encoder.stages.0.blocks.0.conv1.conv.bias", &[4]),
    ("encoder.stages.0.blocks.0.conv1.norm.weight", &[4]),
    ("encoder.stages.0.blocks.0.conv1.norm.bias", &[4]),
    ("encoder.stages.0.blocks.0.conv2.conv.weight", &[4, 4, 3, 3]),
    ("encoder.stages.0.blocks.0.conv2.conv.bias", &[4]),
    ("encoder.stages.0.blocks.0.conv2.norm.weight", &[4]),
    ("encoder.stages.0.blocks.0.conv2.norm.bias", &[4]),
    ("encoder.stages.0.blocks.1.conv1.conv.weight", &[4, 4, 3, 3]),
    ("encoder.stages.0.blocks.1.conv1.conv.bias", &[4]),
    ("encoder.stages.0.blocks.1.conv1.norm.weight", &[4]),
    ("encoder.stages.0.blocks.1.conv1.norm.bias", &[4]),
    ("encoder.stages.0.blocks.1.conv2.conv.weight", &[4, 4, 3, 3]),
    ("encoder.stages.0.blocks.1.conv2.conv.bias", &[4]),
    ("encoder.stages.0.blocks.1.conv2.norm.weight", &[4]),
    ("encoder.stages.0.blocks.1.conv2.norm.bias", &[4]),
    ("encoder.stages.1.blocks.0.conv1.conv.weight", &[8, 4, 3, 3]),
    ("encoder.stages.1.blocks.0.conv1.conv.bias", &[8]),
    ("encoder.stages.1.blocks.0.conv1.norm.weight", &[8]),
    ("encoder.stages.1.blocks.0.conv1.norm.bias", &[8]),
    ("encoder.stages.1.blocks.0.conv2.conv.weight", &[8, 8, 3, 3]),
    ("encoder.stages.1.blocks.0.conv2.conv.bias", &[8]),
    ("encoder.stages.1.blocks.0.conv2.norm.weight", &[8]),
    ("encoder.stages.1.blocks.0.conv2.norm.bias", &[8]),
    (
        "encoder.stages.1.blocks.0.skip.1.conv.weight",
        &[8, 4, 1, 1],
    ),
    ("encoder.stages.1.blocks.0.skip.1.norm.weight", &[8]),
    ("encoder.stages.1.blocks.0.skip.1.norm.bias", &[8]),
    ("encoder.stages.2.blocks.0.conv1.conv.weight", &[8, 8, 3, 3]),
    ("encoder.stages.2.blocks.0.conv1.conv.bias", &[8]),
    ("encoder.stages.2.blocks.0.conv1.norm.weight", &[8]),
    ("encoder.stages.2.blocks.0.conv1.norm.bias", &[8]),
    ("encoder.stages.2.blocks.0.conv2.conv.weight", &[8, 8, 3, 3]),
    ("encoder.stages.2.blocks.0.conv2.conv.bias", &[8]),
    ("encoder.stages.2.blocks.0.conv2.norm.weight", &[8]),
    ("encoder.stages.2.blocks.0.conv2.norm.bias", &[8]),
    ("encoder.stages.2.blocks.1.conv1.conv.weight", &[8, 8, 3, 3]),
    ("encoder.stages.2.blocks.1.conv1.conv.bias", &[8]),
    ("encoder.stages.2.blocks.1.conv1.norm.weight", &[8]),
    ("encoder.stages.2.blocks.1.conv1.norm.bias", &[8]),
    ("encoder.stages.2.blocks.1.conv2.conv.weight", &[8, 8, 3, 3]),
    ("encoder.stages.2.blocks.1.conv2.conv.bias", &[8]),
    ("encoder.stages.2.blocks.1.conv2.norm.weight", &[8]),
    ("encoder.stages.2.blocks.1.conv2.norm.bias", &[8]),
    ("decoder.stages.0.convs.0.conv.weight", &[8, 16, 3, 3]),
    ("decoder.stages.0.convs.0.conv.bias", &[8]),
    ("decoder.stages.0.convs.0.norm.weight", &[8]),
    ("decoder.stages.0.convs.0.norm.bias", &[8]),
    ("decoder.stages.1.convs.0.conv.weight", &[4, 8, 3, 3]),
    ("decoder.stages.1.convs.0.conv.bias", &[4]),
    ("decoder.stages.1.convs.0.norm.weight", &[4]),
    ("decoder.stages.1.convs.0.norm.bias", &[4]),
    ("decoder.stages.1.convs.1.conv.weight", &[4, 4, 3, 3]),
    ("decoder.stages.1.convs.1.conv.bias", &[4]),
    ("decoder.stages.1.convs.1.norm.weight", &[4]),
    ("decoder.stages.1.convs.1.norm.bias", &[4]),
    ("decoder.transpconvs.0.weight", &[8, 8, 2, 2]),
    ("decoder.transpconvs.0.bias", &[8]),
    ("decoder.transpconvs.1.weight", &[8, 4, 2, 1]),
    ("decoder.transpconvs.1.bias", &[4]),
    ("decoder.seg_layers.0.weight", &[4, 8, 1, 1]),
    ("decoder.seg_layers.0.bias", &[4]),
    ("decoder.seg_layers.1.weight", &[4, 4, 1, 1]),
    ("decoder.seg_layers.1.bias", &[4]),
];
