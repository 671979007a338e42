# Run from inference/ with numpy, scipy and torch 2.11: python tests/golden/sliding_window.py
# Golden values for inference/tests: nnU-Net 2.8.1's CPU sliding window
# (predict_from_raw_data.py::_internal_predict_sliding_window_return_logits with use_gaussian,
# results on CPU, no autocast; _internal_maybe_mirror_and_predict; pad_nd_image constant 0),
# re-typed from the source with a fixed "model", run on torch 2.11 (CPU).
import itertools, numpy as np, torch
from scipy.ndimage import gaussian_filter
exec(open('tests/golden/gaussian.py').read().split('for p in')[0])

def steps_for(image_size, tile_size, step):
    t = [i * step for i in tile_size]
    n = [int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, t, tile_size)]
    out = []
    for d in range(len(tile_size)):
        m = image_size[d] - tile_size[d]
        a = m / (n[d] - 1) if n[d] > 1 else 99999999999
        out.append([int(np.round(a * i)) for i in range(n[d])])
    return out

def model(x):
    dims = tuple(range(2, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    c0 = x[:, :1] - mean[:, :1]
    c1 = 0.5 * mean[:, :1] + 0.25 * x[:, :1] * x[:, :1]
    return torch.cat([c0, c1], 1)

def mirror_predict(x, mirror_axes):
    prediction = model(x)
    if mirror_axes is not None:
        mirror_axes = [m + 2 for m in mirror_axes]
        combos = [c for i in range(len(mirror_axes)) for c in itertools.combinations(mirror_axes, i + 1)]
        for axes in combos:
            prediction += torch.flip(model(torch.flip(x, axes)), axes)
        prediction /= (len(combos) + 1)
    return prediction

def sliding(data, patch, step, mirror_axes):
    n = len(patch)
    old = data.shape[-n:]
    diff = [max(p - o, 0) for p, o in zip(patch, old)]
    pad = []
    for d in reversed(diff):
        pad += [d // 2, d // 2 + d % 2]
    data = torch.nn.functional.pad(data, pad)
    shape = data.shape[1:]
    slicers = []
    if n < 3:
        st = steps_for(shape[1:], patch, step)
        for d in range(shape[0]):
            for sx in st[0]:
                for sy in st[1]:
                    slicers.append((slice(None), d, *[slice(s, s + t) for s, t in zip((sx, sy), patch)]))
    else:
        st = steps_for(shape, patch, step)
        for sx in st[0]:
            for sy in st[1]:
                for sz in st[2]:
                    slicers.append((slice(None), *[slice(s, s + t) for s, t in zip((sx, sy, sz), patch)]))
    logits = torch.zeros((2, *shape), dtype=torch.half)
    npred = torch.zeros(shape, dtype=torch.half)
    g = compute_gaussian(tuple(patch))
    for sl in slicers:
        w = torch.clone(data[sl][None], memory_format=torch.contiguous_format)
        p = mirror_predict(w, mirror_axes)[0]
        p *= g
        logits[sl] += p
        npred[sl[1:]] += g
    torch.div(logits, npred, out=logits)
    crop = [slice(None)] + [slice(0, s) for s in shape[:len(shape) - n]] + \
           [slice(d // 2, d // 2 + o) for d, o in zip(diff, old)]
    return logits[tuple(crop)]

def report(name, out):
    bits = out.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF
    w = (torch.arange(bits.numel()) % 1000) + 1
    print(name, list(out.shape), 'checksum', int((bits.flatten() * w).sum()),
          'first', out.flatten()[:3].tolist(), 'sum', out.double().sum().item())

for name, shape, patch, mirror in [
        ('3d', (1, 11, 23, 30), (8, 16, 16), (0, 1, 2)),
        ('2d', (1, 3, 23, 30), (16, 16), (0, 1)),
        ('3d_notta', (1, 20, 20, 20), (8, 12, 16), None)]:
    n = int(np.prod(shape))
    data = torch.sin(torch.arange(n, dtype=torch.float32) * 0.37).reshape(shape)
    report(name, sliding(data, patch, 0.5, mirror))
