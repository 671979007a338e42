"""Golden values for the training variants of the `training` table (issue 20).

Prints what torch 2.11 and nnU-Net 2.8.1 compute for the optimisers, schedules and losses
autoseg reproduces; the numbers are pasted into the Rust unit tests that cite this script
(trainer/src/optim/adam.rs, trainer/src/schedule.rs, trainer/src/loss.rs).

Run with the throwaway nnU-Net venv (see scripts/nnunet_env.sh):
    python scripts/golden_training_variants.py
"""
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
torch.set_printoptions(precision=17)
GRADS = [[0.5, 0.1], [-0.3, 0.2], [0.25, -0.4]]


def optimiser_steps(make):
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = make([p])
    out = []
    for g in GRADS:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append([repr(v) for v in p.detach().tolist()])
    return out


print("Adam(lr=1e-2, weight_decay=3e-5):",
      optimiser_steps(lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=3e-5)))
print("AdamW(lr=1e-2, weight_decay=3e-5, amsgrad=True):",
      optimiser_steps(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=3e-5, amsgrad=True)))

# Schedules, stepped with the epoch as nnU-Net's on_train_epoch_start does.
from torch.optim.lr_scheduler import CosineAnnealingLR
from nnunetv2.training.lr_scheduler.warmup import Lin_incr_LRScheduler, PolyLRScheduler_offset

p = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([p], lr=0.01)
cos = CosineAnnealingLR(opt, T_max=1000)
lrs = []
for e in (0, 1, 500, 999):
    cos.step(e)
    lrs.append(repr(opt.param_groups[0]["lr"]))
print("CosineAnnealingLR(T_max=1000) at 0, 1, 500, 999:", lrs)
opt = torch.optim.SGD([p], lr=0.01)
warm = Lin_incr_LRScheduler(opt, 0.01, 50)
lrs = []
for e in (0, 1, 49):
    warm.step(e)
    lrs.append(repr(opt.param_groups[0]["lr"]))
poly = PolyLRScheduler_offset(opt, 0.01, 1000, 50)
for e in (50, 51, 999):
    poly.step(e)
    lrs.append(repr(opt.param_groups[0]["lr"]))
print("nnUNetTrainer_warmup at 0, 1, 49, 50, 51, 999:", lrs)

# Losses on the fixed logits/target the Rust tests build (loss.rs `variant_batch`).
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss, TopKLoss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

n = 2 * 3 * 4 * 5
logits = torch.tensor([((i * 37) % 23) / 7.0 - 1.5 for i in range(n)], dtype=torch.float32).reshape(2, 3, 4, 5)
target = torch.tensor([((i * 11) % 7) % 3 for i in range(2 * 4 * 5)], dtype=torch.float32).reshape(2, 1, 4, 5)
print("RobustCrossEntropyLoss:", repr(RobustCrossEntropyLoss()(logits, target).item()))
print("TopKLoss(k=10):", repr(TopKLoss(k=10)(logits, target).item()))
print("TopKLoss(k=25):", repr(TopKLoss(k=25)(logits, target).item()))
for batch_dice in (False, True):
    dice = MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice, do_bg=False, smooth=1e-5, ddp=False)
    print(f"MemoryEfficientSoftDiceLoss(softmax, do_bg=False, batch_dice={batch_dice}):",
          repr(dice(logits, target).item()))
regions = (target > 0).float().repeat(1, 3, 1, 1)
regions[:, 1] = (target[:, 0] == 2).float()
regions[:, 2] = (target[:, 0] == 1).float()
dice = MemoryEfficientSoftDiceLoss(apply_nonlin=torch.sigmoid, batch_dice=False, do_bg=True, smooth=1e-5, ddp=False)
print("MemoryEfficientSoftDiceLoss(sigmoid, do_bg=True) on regions (>0, ==2, ==1):",
      repr(dice(logits, regions).item()))
