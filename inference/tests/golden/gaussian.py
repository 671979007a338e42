# Run from inference/ with numpy, scipy and torch 2.11: python tests/golden/gaussian.py
# nnU-Net 2.8.1 compute_gaussian (sliding_window_prediction.py), run with scipy + torch 2.11 on CPU.
import numpy as np, torch
from scipy.ndimage import gaussian_filter
def compute_gaussian(tile_size, sigma_scale=1./8, value_scaling_factor=10, dtype=torch.float16):
    tmp = np.zeros(tile_size)
    center_coords = [i // 2 for i in tile_size]
    sigmas = [i * sigma_scale for i in tile_size]
    tmp[tuple(center_coords)] = 1
    g = gaussian_filter(tmp, sigmas, 0, mode='constant', cval=0)
    g /= (np.max(g) / value_scaling_factor)
    g = torch.from_numpy(g).to(dtype=dtype)
    mask = g == 0
    g[mask] = torch.min(g[~mask])
    return g
for p in [(40,56,40), (128,128,128), (80,192,160), (56,40), (5,7,6), (1, 9)]:
    g = compute_gaussian(p)
    bits = g.view(torch.int16).to(torch.int64) & 0xFFFF
    w = (torch.arange(bits.numel()) % 1000) + 1
    checksum = int((bits.flatten() * w).sum())
    print(p, 'checksum', checksum, 'min', g.min().item(), 'max', g.max().item(), 'n_min', int((g == g.min()).sum()))
