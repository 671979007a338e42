# Golden values for inference/src/gaussian.rs: nnU-Net 2.8.1's own compute_gaussian
# (nnunetv2/inference/sliding_window_prediction.py), imported, not re-typed; scipy, torch 2.11,
# CPU. Run with the peer venv: /work/peer-venv/bin/python inference/tests/golden/gaussian.py
import torch
from nnunetv2.inference.sliding_window_prediction import compute_gaussian


def checksum(t):
    """Sum of (fp16 bits of element i) * (i mod 1000 + 1), in C order."""
    bits = t.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF
    w = (torch.arange(bits.numel()) % 1000) + 1
    return int((bits.flatten() * w).sum())


if __name__ == '__main__':
    for p in [(40, 56, 40), (128, 128, 128), (80, 192, 160), (56, 40), (5, 7, 6), (1, 9)]:
        g = compute_gaussian(p, sigma_scale=1. / 8, value_scaling_factor=10, dtype=torch.float16,
                             device=torch.device('cpu'))
        print(p, 'checksum', checksum(g), 'min', g.min().item(), 'max', g.max().item(),
              'n_min', int((g == g.min()).sum()))
