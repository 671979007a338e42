"""Writes the committed pickle fixtures of issue 17 into fixtures/data/nnunet/.

- tiny_checkpoint.pth: torch.save of a checkpoint dict laid out as nnU-Net 2.8.1's
  nnUNetTrainer.save_checkpoint writes it (network_weights, optimizer_state, grad_scaler_state,
  logging with numpy float64 values, _best_ema, current_epoch, init_args, trainer_name,
  inference_allowed_mirroring_axes), with small tensors of known values.
- tiny_checkpoint.data.pkl: the archive's data.pkl alone (the pickle the reader parses).
- malicious_*.pkl: pickles that would run a shell command, evaluate code or start a process
  when Python unpickles them (never load them with pickle.load).

Run once, with torch 2.11 and numpy importable (e.g. the CI venv plus numpy):
    PYTHONPATH=~/.cache/autoseg-ci/venv/lib/python3.11/site-packages:/tmp/pyenv/lib/python3.11/site-packages \
        /tmp/pyenv/bin/python scripts/make_nnunet_pickle_fixtures.py
"""

import os
import pickle
import subprocess
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "nnunet"


def checkpoint():
    weights = OrderedDict()
    weights["encoder.stages.0.0.convs.0.conv.weight"] = torch.arange(24, dtype=torch.float32).reshape(2, 1, 3, 4) / 8
    weights["encoder.stages.0.0.convs.0.conv.bias"] = torch.tensor([-1.5, 2.25])
    weights["decoder.seg_layers.0.weight"] = torch.arange(6, dtype=torch.float32).reshape(3, 2, 1, 1) - 2
    weights["norm.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    weights["half"] = torch.tensor([0.5, -3.0], dtype=torch.float16)
    # A view into the middle of a bigger storage (offset and strides), as slicing leaves.
    base = torch.arange(20, dtype=torch.float32)
    weights["view"] = base[4:16].view(3, 4)[:, 1:3]
    plans = {
        "dataset_name": "Dataset001_Tiny",
        "configurations": {"3d_fullres": {"patch_size": [8, 16, 16], "batch_size": 2}},
        "transpose_forward": [0, 1, 2],
    }
    return {
        "network_weights": weights,
        "optimizer_state": {"state": {0: {"momentum_buffer": torch.zeros(2)}}, "param_groups": [{"lr": 0.01, "params": [0]}]},
        "grad_scaler_state": None,
        "logging": {
            "mean_fg_dice": [np.float64(0.25), np.float64(0.5)],
            "ema_fg_dice": [np.float64(0.25), np.float64(0.275)],
            "dice_per_class_or_region": [[np.float64(0.5), np.float64(0.0)]],
            "epoch_start_timestamps": [1.0, 2.0],
            "lrs": [0.01, 0.00991],
        },
        "_best_ema": np.float64(0.275),
        "current_epoch": 2,
        "init_args": {
            "plans": plans,
            "configuration": "3d_fullres",
            "fold": 0,
            "dataset_json": {"labels": {"background": 0, "a": 1}, "file_ending": ".nii.gz"},
            "device": torch.device("cpu"),
        },
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }


class Shell:
    def __reduce__(self):
        return (os.system, ("touch /tmp/autoseg-pickle-was-run",))


class Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch /tmp/autoseg-pickle-was-run')",))


class Popen:
    def __reduce__(self):
        return (subprocess.Popen, (["touch", "/tmp/autoseg-pickle-was-run"],))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "tiny_checkpoint.pth"
    torch.save(checkpoint(), path)
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        (OUT / "tiny_checkpoint.data.pkl").write_bytes(archive.read(name))
    for name, obj in [("shell", Shell()), ("eval", Eval()), ("popen", Popen())]:
        # Inside a dict, as a checkpoint's entry would be.
        (OUT / f"malicious_{name}.pkl").write_bytes(pickle.dumps({"network_weights": obj}, protocol=2))
    # The same attack inside a torch checkpoint archive.
    torch.save({"network_weights": Shell()}, OUT / "malicious_shell.pth")
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
