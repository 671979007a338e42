#!/usr/bin/env python3
"""Benchmark `autoseg predict` against `nnUNetv2_predict -device cpu` on the same cases.

Both tools predict the same images with the same architecture and patch (nnU-Net's plans, which
autoseg's equal: scripts/compare_nnunet.py), near-random weights, on the CPU, with the same
number of torch threads. Per TTA setting (no-TTA first), in alternating rounds:
  1. end to end:  autoseg predict ... --device cpu      |  nnUNetv2_predict ... -device cpu -npp 1 -nps 1
     under /usr/bin/time -v (wall seconds; peak RSS of the largest single process, and the peak
     of the summed RSS of the whole process tree, sampled every 50 ms: nnU-Net spawns workers);
  2. split per case: autoseg's `predict_bench` example (Predictor::phase_times) | this script's
     nnU-Net worker (nnUNetPredictor API: DefaultPreprocessor.run_case, forward hooks on the
     network, predict_logits_from_preprocessed_data, export_prediction_from_logits).
Accumulation is the sliding window's time minus the network's, for both tools.

Setup it does itself (in --keep DIR, or a temporary folder):
  nnU-Net: copies the dataset to nnUNet_raw/DatasetID_Name, runs nnUNetv2_plan_and_preprocess
  -d ID -c 3d_fullres --no_pp, builds the network from the plans with
  nnUNetTrainer.build_network_architecture, and saves checkpoint_final.pth (random weights) plus
  plans.json and dataset.json as nnU-Net's training would.
  autoseg: `autoseg plan-and-train DATASET -c 3d_fullres --folds 0 --epochs 1 --iters-per-epoch 1`
  unless --model gives a model folder.

Needs Python 3.11+ (stdlib only); nnU-Net runs from --venv (nnunetv2 2.8.1, torch CPU).

Example:
    cargo build --release && cargo build --release -p autoseg-inference --example predict_bench
    target/release/autoseg fixtures demo3d_large /tmp/ds
    python3 scripts/compare_nnunet_predict.py /tmp/ds/Dataset906_Demo3dLarge \\
        --images /tmp/ds/Dataset906_Demo3dLarge/imagesTs --keep /tmp/bench --tta off
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CONFIG = "3d_fullres"
PHASES = ("preprocessing", "network", "accumulation", "export")


def parse_args() -> argparse.Namespace:
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", type=Path, help="dataset folder in nnU-Net raw layout (DatasetXXX_Name)")
    p.add_argument("--images", type=Path, required=True, help="folder of CASE_XXXX images to predict")
    p.add_argument("--venv", type=Path, default=Path("/work/peer-venv"))
    p.add_argument("--autoseg", type=Path, default=repo / "target/release/autoseg")
    p.add_argument("--bench", type=Path, default=repo / "target/release/examples/predict_bench")
    p.add_argument("--model", type=Path, help="autoseg model folder (default: train one, 1 iteration)")
    p.add_argument("--same-model", action="store_true",
                   help="autoseg predicts nnU-Net's own model folder (issue 17: `predict -m <nnU-Net folder>`, "
                        "the same weights for both tools); implies --skip-split")
    p.add_argument("--threads", type=int, default=2, help="torch/OMP threads for both tools")
    p.add_argument("--tta", choices=("off", "on", "both"), default="off")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds per TTA setting")
    p.add_argument("--setup-only", action="store_true", help="prepare both models, measure nothing")
    p.add_argument("--skip-split", action="store_true", help="end-to-end runs only")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write all measurements here")
    return p.parse_args()


# ---------------------------------------------------------------- process measurement


def tree_memory_kib(root: int) -> tuple[int, int]:
    """Summed VmRSS and Pss (KiB) of `root` and all its descendants, from /proc (RSS counts
    shared pages once per process; PSS splits them between the processes sharing them)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    members, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in members:
                members.add(child)
                frontier.append(child)
    rss = pss = 0
    for pid in members:
        try:
            with open(f"/proc/{pid}/status") as f:
                rss += sum(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return rss, pss


def measure(cmd: list[str], env: dict[str, str]) -> dict:
    """Runs cmd under /usr/bin/time -v; wall s, max single-process RSS and peak tree RSS (MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            rss, pss = tree_memory_kib(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-3000:]}\n{err[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    return {"wall": wall, "rss_single_mib": int(m.group(1)) / 1024 if m else float("nan"),
            "rss_tree_mib": peak[0] / 1024, "pss_tree_mib": peak[1] / 1024, "stdout": out}


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res.stdout


# ---------------------------------------------------------------- setup


def nnunet_env(root: Path, threads: int, venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(root / "nnUNet_raw"), nnUNet_preprocessed=str(root / "nnUNet_preprocessed"),
               nnUNet_results=str(root / "nnUNet_results"), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PATH=f"{venv / 'bin'}:{env['PATH']}")
    return env


def setup_nnunet(dataset: Path, root: Path, env: dict[str, str], venv: Path) -> tuple[int, Path]:
    """Plans with nnU-Net and saves a random-weight fold 0; returns (dataset id, model folder)."""
    m = re.match(r"Dataset(\d{3})_.+", dataset.name)
    if not m:
        sys.exit(f"{dataset}: the folder must be named DatasetXXX_Name")
    ds_id, name = int(m.group(1)), dataset.name
    raw = root / "nnUNet_raw" / name
    if not raw.exists():
        shutil.copytree(dataset, raw)
    model = root / "nnUNet_results" / name / f"nnUNetTrainer__nnUNetPlans__{CONFIG}"
    if (model / "fold_0" / "checkpoint_final.pth").is_file():
        return ds_id, model
    run([str(venv / "bin/nnUNetv2_plan_and_preprocess"), "-d", str(ds_id), "-c", CONFIG, "--no_pp"], env)
    run([str(venv / "bin/python"), __file__, "--nnunet-make-checkpoint",
         str(root / "nnUNet_preprocessed" / name), str(raw / "dataset.json"), str(model)], env)
    return ds_id, model


def make_checkpoint(preprocessed: Path, dataset_json_file: Path, model: Path) -> None:
    """(nnU-Net venv) Writes checkpoint_final.pth with random weights, plans.json, dataset.json."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    dataset_json = json.loads(dataset_json_file.read_text())
    pm = PlansManager(plans)
    cm = pm.get_configuration(CONFIG)
    n_in = determine_num_input_channels(pm, cm, dataset_json)
    n_out = pm.get_label_manager(dataset_json).num_segmentation_heads
    torch.manual_seed(0)
    net = nnUNetTrainer.build_network_architecture(pm, cm, n_in, n_out, enable_deep_supervision=False)
    (model / "fold_0").mkdir(parents=True, exist_ok=True)
    shutil.copy(preprocessed / "nnUNetPlans.json", model / "plans.json")
    shutil.copy(dataset_json_file, model / "dataset.json")
    torch.save({"network_weights": net.state_dict(),
                "init_args": {"plans": plans, "configuration": CONFIG, "fold": 0,
                              "dataset_json": dataset_json, "device": torch.device("cpu")},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
                "current_epoch": 0, "optimizer_state": None, "grad_scaler_state": None,
                "logging": {}, "_best_ema": None},
               model / "fold_0" / "checkpoint_final.pth")
    print(json.dumps({"patch_size": cm.patch_size, "spacing": cm.spacing}))


def setup_autoseg(args: argparse.Namespace, root: Path) -> Path:
    if args.model:
        return args.model
    work = root / "autoseg_work"
    model = work / args.dataset.name
    if not (model / "results" / CONFIG / "fold_0" / "checkpoint_final.safetensors").is_file():
        run([str(args.autoseg), "plan-and-train", str(args.dataset), "--work", str(work), "-c", CONFIG,
             "--folds", "0", "--epochs", "1", "--iters-per-epoch", "1", "--device", "cpu"],
            {**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    return model


def check_same_patch(nnunet_model: Path, autoseg_model: Path) -> None:
    plans = json.loads((nnunet_model / "plans.json").read_text())
    theirs = plans["configurations"][CONFIG]["patch_size"]
    text = (autoseg_model / "plans.toml").read_text()
    section = text.split(f"[configurations.{CONFIG}]", 1)[1]
    ours = json.loads(re.search(r"patch_size = (\[[^\]]*\])", section).group(1))
    if list(theirs) != list(ours):
        sys.exit(f"patch sizes differ: nnU-Net {theirs}, autoseg {ours}")
    print(f"patch {ours} (both)")


# ---------------------------------------------------------------- nnU-Net split worker


def nnunet_split(model: Path, images: Path, out: Path, tta: bool, threads: int) -> None:
    """(nnU-Net venv) Predicts every case sequentially, printing one JSON line of phases per case."""
    import torch
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder

    torch.set_num_threads(threads)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=False, device=torch.device("cpu"),
                                verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), (0,), "checkpoint_final.pth")
    spent = {"network": 0.0}
    started: list[float] = []
    predictor.network.register_forward_pre_hook(lambda *_: started.append(time.perf_counter()))

    def stop(*_):
        spent["network"] += time.perf_counter() - started.pop()

    predictor.network.register_forward_hook(stop)
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    out.mkdir(parents=True, exist_ok=True)
    for files in create_lists_from_splitted_dataset_folder(str(images), predictor.dataset_json["file_ending"]):
        case = Path(files[0]).name[: -len("_0000" + predictor.dataset_json["file_ending"])]
        t0 = time.perf_counter()
        data, _, props = preprocessor.run_case(files, None, predictor.plans_manager,
                                               predictor.configuration_manager, predictor.dataset_json)
        t1 = time.perf_counter()
        spent["network"] = 0.0
        logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
        t2 = time.perf_counter()
        export_prediction_from_logits(logits, props, predictor.configuration_manager, predictor.plans_manager,
                                      predictor.dataset_json, str(out / case), False)
        t3 = time.perf_counter()
        print(json.dumps({"case": case, "tta": tta, "threads": torch.get_num_threads(),
                          "preprocessing": t1 - t0, "network": spent["network"],
                          "accumulation": (t2 - t1) - spent["network"], "export": t3 - t2,
                          "total": t3 - t0}), flush=True)


# ---------------------------------------------------------------- the benchmark


def n_cases(images: Path) -> int:
    return len({re.sub(r"_\d{4}\..*$", "", p.name) for p in images.iterdir() if p.is_file()})


def end_to_end(tool: str, args, ctx, tta: bool, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    if tool == "autoseg":
        cmd = [str(args.autoseg), "predict", "-i", str(args.images), "-o", str(out), "-m", str(ctx["model"]),
               "-c", CONFIG, "--folds", "0", "--device", "cpu", "--threads", str(args.threads)]
        cmd += [] if tta else ["--no-tta"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    else:
        cmd = [str(args.venv / "bin/nnUNetv2_predict"), "-i", str(args.images), "-o", str(out), "-d",
               str(ctx["id"]), "-c", CONFIG, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"]
        cmd += [] if tta else ["--disable_tta"]
        env = ctx["env"]
    res = measure(cmd, env)
    res.pop("stdout")
    return res


def split(tool: str, args, ctx, tta: bool, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    if tool == "autoseg":
        cmd = [str(args.bench), str(ctx["model"]), CONFIG, "0", str(args.images), str(out)]
        cmd += [] if tta else ["--no-tta"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    else:
        cmd = [str(args.venv / "bin/python"), __file__, "--nnunet-split", str(ctx["nnunet_model"]),
               str(args.images), str(out), "1" if tta else "0", str(args.threads)]
        env = ctx["env"]
    res = measure(cmd, env)
    res["cases"] = [json.loads(line) for line in res.pop("stdout").splitlines() if line.startswith("{")]
    return res


def mean_phases(cases: list[dict]) -> dict:
    return {k: sum(c[k] for c in cases) / len(cases) for k in (*PHASES, "total")}


def report(results: dict, n: int) -> None:
    for tta, runs in results.items():
        print(f"\n=== TTA {'on (8 passes)' if tta else 'off'}; {n} cases; seconds per case (mean of rounds)")
        rows = {}
        for tool in ("nnunet", "autoseg"):
            e2e = runs[tool]["e2e"]
            row = {"e2e": sum(r["wall"] for r in e2e) / len(e2e) / n,
                   "rss_single": max(r["rss_single_mib"] for r in e2e),
                   "rss_tree": max(r["rss_tree_mib"] for r in e2e),
                   "pss_tree": max(r["pss_tree_mib"] for r in e2e)}
            if runs[tool]["split"]:
                cases = [c for r in runs[tool]["split"] for c in r["cases"]]
                row.update(mean_phases(cases))
            rows[tool] = row
        cols = [*PHASES, "outside", "total", "e2e", "rss_single", "rss_tree", "pss_tree"]
        for row in rows.values():
            if "network" in row:
                row["outside"] = row["preprocessing"] + row["accumulation"] + row["export"]
        print(f"{'':10}" + "".join(f"{c:>13}" for c in cols))
        for tool, row in rows.items():
            print(f"{tool:10}" + "".join(f"{row.get(c, float('nan')):>13.2f}" for c in cols))
        ratio = {c: rows["nnunet"].get(c, float("nan")) / rows["autoseg"].get(c, float("nan"))
                 for c in cols if rows["autoseg"].get(c)}
        print(f"{'nnU/ours':10}" + "".join(f"{ratio.get(c, float('nan')):>12.2f}x" for c in cols))
    print("(e2e: whole command incl. start-up and model load, divided by the cases; rss_single: "
          "largest single process, /usr/bin/time -v; rss_tree: peak of the summed RSS of the process "
          "tree, sampled every 50 ms; pss_tree: the same with PSS (shared pages split); MiB)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--nnunet-make-checkpoint":
        return make_checkpoint(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "--nnunet-split":
        a = sys.argv[2:]
        return nnunet_split(Path(a[0]), Path(a[1]), Path(a[2]), a[3] == "1", int(a[4]))
    args = parse_args()
    args.dataset = args.dataset.resolve()
    root = args.keep or Path(tempfile.mkdtemp(prefix="compare_predict_"))
    root.mkdir(parents=True, exist_ok=True)
    env = nnunet_env(root, args.threads, args.venv)
    ds_id, nnunet_model = setup_nnunet(args.dataset, root, env, args.venv)
    if args.same_model:
        ctx = {"id": ds_id, "env": env, "nnunet_model": nnunet_model, "model": nnunet_model}
        args.skip_split = True
    else:
        ctx = {"id": ds_id, "env": env, "nnunet_model": nnunet_model, "model": setup_autoseg(args, root)}
        check_same_patch(nnunet_model, ctx["model"])
    if args.setup_only:
        return
    print("loadavg before:", Path("/proc/loadavg").read_text().strip())
    settings = {"off": [False], "on": [True], "both": [False, True]}[args.tta]
    results = {}
    for tta in settings:
        runs = {t: {"e2e": [], "split": []} for t in ("nnunet", "autoseg")}
        for rnd in range(args.rounds):
            for tool in (("nnunet", "autoseg") if rnd % 2 == 0 else ("autoseg", "nnunet")):
                runs[tool]["e2e"].append(end_to_end(tool, args, ctx, tta, root / f"out_{tool}"))
                print(f"tta={tta} round {rnd} {tool} e2e: {runs[tool]['e2e'][-1]}", flush=True)
            if not args.skip_split:
                for tool in (("autoseg", "nnunet") if rnd % 2 == 0 else ("nnunet", "autoseg")):
                    runs[tool]["split"].append(split(tool, args, ctx, tta, root / f"split_{tool}"))
                    print(f"tta={tta} round {rnd} {tool} split: {runs[tool]['split'][-1]}", flush=True)
        results[tta] = runs
    print("loadavg after:", Path("/proc/loadavg").read_text().strip())
    report(results, n_cases(args.images))
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
