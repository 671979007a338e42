"""Golden values for network/tests/resenc.rs: dna's ResidualEncoderUNet as nnU-Net 2.8.1 builds it.

Run with the peer venv (torch 2.11, dynamic_network_architectures as installed with nnunetv2 2.8.1):
    PYTHONPATH= /work/peer-venv/bin/python network/tests/golden/resenc_dna.py
Prints, per case, the parameter names and shapes (`named_parameters()`, which leaves out the
`all_modules.*` aliases that `state_dict()` repeats), the norms that the initialisation zeroes, and
for the deterministic fill below the checksum sum(out * cos(0.7 k)) and std of every
deep-supervision output.
"""
import torch
from torch import nn
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

CASES = {
    # dim, features, kernels, strides, blocks, decoder convs (bottom-up), in, classes, input shape
    "3d": (3, [4, 8, 16, 32], [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
           [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], [1, 2, 2, 2], [1, 1, 1], 1, 3, [1, 1, 8, 16, 16]),
    "2d": (2, [4, 8, 8], [[3, 3], [3, 3], [3, 3]], [[1, 1], [2, 1], [2, 2]], [2, 1, 2], [1, 2], 2, 4,
           [1, 2, 8, 4]),
}


def build(dim, features, kernels, strides, blocks, decoder_convs, in_ch, n_classes):
    conv = nn.Conv3d if dim == 3 else nn.Conv2d
    norm = nn.InstanceNorm3d if dim == 3 else nn.InstanceNorm2d
    net = ResidualEncoderUNet(in_ch, len(features), features, conv, kernels, strides, blocks, n_classes,
                              decoder_convs, conv_bias=True, norm_op=norm,
                              norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None,
                              nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
    net.apply(ResidualEncoderUNet.initialize)
    return net


def fill(net):
    with torch.no_grad():
        for i, (_, p) in enumerate(sorted(net.named_parameters())):
            p.copy_(((torch.arange(p.numel(), dtype=torch.float32) * 0.37 + i).sin() * 0.3).reshape(p.shape))


def checksum(t):
    f = t.flatten()
    return float((f * (torch.arange(f.numel(), dtype=torch.float32) * 0.7).cos()).sum())


for key, (dim, f, k, s, b, d, in_ch, n_cls, shape) in CASES.items():
    net = build(dim, f, k, s, b, d, in_ch, n_cls)
    print(f"const PARAMS_{key.upper()}: &[(&str, &[i64])] = &[")
    for name, p in net.named_parameters():
        print(f'    ("{name}", &{list(p.shape)}),')
    print("];")
    print("zeroed weights:", [n for n, p in net.named_parameters() if n.endswith("norm.weight") and p.abs().sum() == 0])
    fill(net)
    xs = (torch.arange(torch.Size(shape).numel(), dtype=torch.float32) * 0.11).cos().reshape(shape)
    with torch.no_grad():
        for out in net(xs):
            print("output", list(out.shape), repr(checksum(out)), repr(float(out.std())))
