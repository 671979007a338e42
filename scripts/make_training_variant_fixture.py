"""Two training steps of nnU-Net 2.8.1's trainer variants on the same batches, from the same
weights: the golden values of trainer/src/train/variant_golden.rs (issue 20, "Measure").

For each trainer class below, nnU-Net's own class is instantiated on a small 3D plan (the
committed model fixture's PlainConvUNet, features 2-4-8-16, patch 16^3, batch 2), initialised
with the weights in start.safetensors, its schedule stepped to epoch 10 (on_train_epoch_start),
then `train_step` runs twice (batches 0 and 1: random images and labels 0..2, the targets
downsampled per deep-supervision scale as DownsampleSegForDSTransform does). The losses and the
weights after the second step go to <trainer>.safetensors (for nnUNetTrainerBN with the
running statistics, which start at torch's 0 and 1). Augmentation plays no part: the
batches are given.

Writes fixtures/data/training_variants/ (plans.json, start.safetensors, one file per trainer).
Run with the throwaway nnU-Net venv (scripts/nnunet_env.sh):
    python scripts/make_training_variant_fixture.py fixtures/data/training_variants
"""
import json
import os
import struct
import sys
import tempfile
import warnings

OUT = sys.argv[1]
WORK = tempfile.mkdtemp()
for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ[var] = WORK
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class  # noqa: E402
import nnunetv2  # noqa: E402

EPOCH = 10
TRAINERS = [
    "nnUNetTrainer",
    "nnUNetTrainerCELoss",
    "nnUNetTrainerTopk10Loss",
    "nnUNetTrainerDiceLoss",
    "nnUNetTrainerAdam",
    "nnUNetTrainerVanillaAdam",
    "nnUNetTrainerCosAnneal",
    "nnUNetTrainer_warmup",
    "nnUNetTrainerNoDeepSupervision",
    "nnUNetTrainerBN",
]
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "fixtures", "data", "nnunet", "model",
                      "nnUNetTrainer_autosegFixture__nnUNetPlans__3d_fullres")


def own_parameters(state):
    """The state dict without nnU-Net's aliases (`all_modules.*` repeats each conv block,
    `decoder.encoder.*` the encoder), i.e. the names autoseg's network has."""
    return {k: v.clone() for k, v in state.items()
            if ".all_modules." not in k and not k.startswith("decoder.encoder.")}


def write_safetensors(path, tensors):
    """The safetensors format by hand (8-byte header length, JSON header, raw little-endian)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}[t.dtype]
        blob = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


plans = json.load(open(os.path.join(SOURCE, "plans.json")))
dataset_json = json.load(open(os.path.join(SOURCE, "dataset.json")))
config = plans["configurations"]["3d_fullres"]
config["patch_size"] = [16, 16, 16]
config["batch_size"] = 2
os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "plans.json"), "w") as f:
    json.dump(plans, f, indent=2)
# infer_dataset_class looks at the preprocessed folder's files.
pre = os.path.join(WORK, plans["dataset_name"], config["data_identifier"])
os.makedirs(pre, exist_ok=True)
open(os.path.join(pre, "case.b2nd"), "w").close()

gen = torch.Generator().manual_seed(20)
batches = []
for b in range(2):
    data = torch.randn(2, 1, 16, 16, 16, generator=gen)
    seg = torch.randint(0, 3, (2, 1, 16, 16, 16), generator=gen).float()
    # DownsampleSegForDSTransform: nearest-exact to each scale (1, 1/2, 1/4).
    targets = [seg] + [F.interpolate(seg, size=(16 // s,) * 3, mode="nearest-exact") for s in (2, 4)]
    batches.append((data, targets))

start = None
torch.manual_seed(0)  # the first trainer's initialisation: start.safetensors
for name in TRAINERS:
    cls = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "training", "nnUNetTrainer"),
                                      name, "nnunetv2.training.nnUNetTrainer")
    # run_training.py adds this key, and the trainer pops it.
    trainer_plans = dict(plans, continue_training=False)
    trainer = cls(trainer_plans, "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
    trainer.initialize()
    if start is None:
        start = own_parameters(trainer.network.state_dict())
        tensors = dict(start)
        for b, (data, targets) in enumerate(batches):
            tensors[f"batch{b}.data"] = data
            for s, t in enumerate(targets):
                tensors[f"batch{b}.target{s}"] = t
        write_safetensors(os.path.join(OUT, "start.safetensors"), tensors)
    trainer.network.load_state_dict(start, strict=False)
    assert all(torch.equal(trainer.network.state_dict()[k], v) for k, v in start.items())
    trainer.current_epoch = EPOCH
    trainer.on_train_epoch_start()
    lr = trainer.optimizer.param_groups[0]["lr"]
    losses = []
    for data, targets in batches:
        target = targets if trainer.enable_deep_supervision else targets[0]
        losses.append(float(trainer.train_step({"data": data, "target": target})["loss"]))
    out = own_parameters(trainer.network.state_dict())
    out["loss"] = torch.tensor(losses, dtype=torch.float64)
    out["lr"] = torch.tensor([lr], dtype=torch.float64)
    write_safetensors(os.path.join(OUT, f"{name}.safetensors"), out)
    print(f"{name}: lr {lr!r}, losses {losses}")
