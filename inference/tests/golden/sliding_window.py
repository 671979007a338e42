# Golden values for inference/tests/tests.rs: nnU-Net 2.8.1's own code, imported, not re-typed:
# compute_steps_for_sliding_window and nnUNetPredictor.predict_sliding_window_return_logits
# (padding, slicers, Gaussian, mirroring TTA, float16 buffers), on the CPU with torch 2.11,
# around a fixed toy model. Run with the peer venv, from the repository root:
#   /work/peer-venv/bin/python inference/tests/golden/sliding_window.py
from types import SimpleNamespace

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window


class GoldenModel(torch.nn.Module):
    """Channel 0 = x - mean(tile), channel 1 = 0.5 mean(tile) + 0.25 x^2 (first input channel)."""

    def forward(self, x):
        dims = tuple(range(2, x.ndim))
        mean = x.mean(dim=dims, keepdim=True)[:, :1]
        x0 = x[:, :1]
        return torch.cat([x0 - mean, 0.5 * mean + 0.25 * x0 * x0], 1)


def predictor(patch, mirror_axes):
    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror_axes is not None,
                        perform_everything_on_device=False, device=torch.device('cpu'),
                        verbose=False, allow_tqdm=False)
    p.network = GoldenModel()
    p.configuration_manager = SimpleNamespace(patch_size=list(patch))
    p.label_manager = SimpleNamespace(num_segmentation_heads=2)
    p.allowed_mirroring_axes = mirror_axes
    return p


def checksum(t):
    """Sum of (fp16 bits of element i) * (i mod 1000 + 1), in C order."""
    bits = t.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF
    w = (torch.arange(bits.numel()) % 1000) + 1
    return int((bits.flatten() * w).sum())


if __name__ == '__main__':
    for size, patch, step in [((110,), (64,), 0.5), ((432,), (128,), 0.5), ((9,), (4,), 0.5),
                              ((10,), (4,), 1.0), ((5,), (2,), 1.0), ((64, 65), (64, 64), 0.5)]:
        print('steps', size, patch, step, compute_steps_for_sliding_window(size, patch, step))
    for name, shape, patch, mirror in [
            ('3d', (1, 11, 23, 30), (8, 16, 16), (0, 1, 2)),
            ('2d', (1, 3, 23, 30), (16, 16), (0, 1)),
            ('3d_notta', (1, 20, 20, 20), (8, 12, 16), None)]:
        n = 1
        for s in shape:
            n *= s
        data = torch.sin(torch.arange(n, dtype=torch.float32) * 0.37).reshape(shape)
        out = predictor(patch, mirror).predict_sliding_window_return_logits(data)
        print(name, list(out.shape), out.dtype, 'checksum', checksum(out),
              'first', out.flatten()[:3].tolist(), 'sum', out.double().sum().item())
