#!/usr/bin/env python3
"""Times nnU-Net 2.8.1's `compute_metrics_on_folder` (what `nnUNetv2_evaluate_folder` runs) on
the folders `evaluation/examples/bench_evaluate.rs` writes (`DIR/ref`, `DIR/pred`, labels 1-3,
`.nii.gz`), with 2 processes, best of N runs: the peer of `bench_evaluate` (issue 21, item 7).

Usage: OMP_NUM_THREADS=1 /tmp/pyenv/bin/python scripts/nnunet_evaluate_time.py DIR [N]
"""

import sys
import time

from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

if __name__ == "__main__":
    folder = sys.argv[1]
    best = float("inf")
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1):
        start = time.perf_counter()
        compute_metrics_on_folder(folder + "/ref", folder + "/pred", folder + "/nnunet_summary.json",
                                  SimpleITKIO(), ".nii.gz", [1, 2, 3], None, 2)
        best = min(best, time.perf_counter() - start)
    print(f"nnU-Net compute_metrics_on_folder: {best:.3f} s")
