#!/usr/bin/env python
"""Does bf16 hold on this CPU? fp32 vs bf16 loss curves of every pre-training method, same run.

    python benchmarks/bf16_curves.py --output benchmarks/results/bf16_curves_cpu.json

For each method's CPU recipe (``configs/<method>_cpu.yaml``: the real all-MiniLM-L6-v2, the embedded
data), three training runs of ``--steps`` steps through the real driver (``scripts/pretrain.py``:
the ``Trainer``, fused AdamW, bf16 as CPU autocast), loss logged every ``--logging_steps`` steps:
fp32 with seed A, bf16 with seed A (same data order, masks and initialisation), and fp32 with
seed B, the noise yardstick: what changing only the seed does to the curve. bf16 "holds" for a method
when its curve is no further from the fp32 curve (mean absolute difference of the logged losses, and
the difference of the mean loss over the last quarter of the run) than the seed-B curve is. Also
reported: each run's wall time per step (bf16 vs fp32, same machine, interleaved per method), and a
PNG of the curves (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if not __package__:
    sys.path.insert(0, str(REPO))
from benchmarks.common import machine_info, write_report  # noqa: E402

METHODS = ("mlm", "mae_lm", "dial_mae", "cotmae_v2")
RUNS = {"fp32": (False, 0), "bf16": (True, 0), "fp32_other_seed": (False, 1)}


def train_curve(method: str, bf16: bool, seed: int, args, folder: Path) -> dict:
    """Losses (every ``logging_steps``) and wall time of one recipe run."""
    from maeir.cli.pretrain import main

    argv = [
        str(REPO / "configs" / f"{method}_cpu.yaml"), "--output_dir", str(folder), "--max_steps", str(args.steps),
        "--per_device_train_batch_size", str(args.batch_size), "--logging_steps", str(args.logging_steps),
        "--save_strategy", "no", "--seed", str(seed), "--data_seed", str(seed), "--bf16", str(bf16).lower(),
        "--disable_tqdm", "true",
    ]  # fmt: skip
    if bf16:
        argv += ["--use_cpu", "true"]
    start = time.perf_counter()
    trainer = main(argv)
    wall = time.perf_counter() - start
    history = [h for h in trainer.state.log_history if "loss" in h]
    runtime = next(h["train_runtime"] for h in trainer.state.log_history if "train_runtime" in h)
    del trainer
    return {
        "steps": [h["step"] for h in history],
        "loss": [float(h["loss"]) for h in history],
        "wall_s": wall,  # with loading the model and the data
        "train_runtime_s": runtime,
        "wall_s_per_step": runtime / args.steps,  # the training loop only
    }


def compare(a: list[float], b: list[float]) -> dict:
    tail = max(1, len(a) // 4)
    return {
        "mean_abs_difference": statistics.fmean(abs(x - y) for x, y in zip(a, b)),
        "last_quarter_mean_difference": statistics.fmean(a[-tail:]) - statistics.fmean(b[-tail:]),
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(report["methods"])
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.4))
    for ax, method in zip(axes if len(methods) > 1 else [axes], methods):
        for name, run in report["methods"][method]["runs"].items():
            ax.plot(run["steps"], run["loss"], label=name, lw=1.2)
        ax.set_title(method)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--logging_steps", type=int, default=5)
    parser.add_argument("--output", default=None)
    parser.add_argument("--plot", default=None, help="PNG of the curves")
    args = parser.parse_args(argv)
    report = {
        "machine": machine_info(torch.device("cpu")),
        "setting": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "logging_steps": args.logging_steps,
            "recipes": "configs/<method>_cpu.yaml",
            "command": " ".join(["python", *sys.argv]),
        },  # fmt: skip
        "methods": {},
    }
    for method in args.methods.split(","):
        runs = {}
        for name, (bf16, seed) in RUNS.items():
            with tempfile.TemporaryDirectory() as folder:
                runs[name] = train_curve(method, bf16, seed, args, Path(folder))
            print(
                f"{method} {name}: final loss {runs[name]['loss'][-1]:.3f}, {runs[name]['wall_s_per_step']:.2f} s/step"
            )
        bf16_vs_fp32 = compare(runs["bf16"]["loss"], runs["fp32"]["loss"])
        seed_noise = compare(runs["fp32_other_seed"]["loss"], runs["fp32"]["loss"])
        report["methods"][method] = {
            "runs": runs,
            "bf16_vs_fp32": bf16_vs_fp32,
            "seed_noise": seed_noise,
            "bf16_holds": abs(bf16_vs_fp32["last_quarter_mean_difference"])
            <= abs(seed_noise["last_quarter_mean_difference"]) + 0.02
            and bf16_vs_fp32["mean_abs_difference"] <= 1.5 * seed_noise["mean_abs_difference"],
            "bf16_speedup": runs["fp32"]["wall_s_per_step"] / runs["bf16"]["wall_s_per_step"],
        }
        if args.output:  # after each method: a killed run keeps what it measured
            write_report(args.output, report)
    if args.plot:
        plot(report, Path(args.plot))
    print(
        json.dumps(
            {m: {k: v for k, v in r.items() if k != "runs"} for m, r in report["methods"].items()}, indent=1
        )
    )
    return report


if __name__ == "__main__":
    main()
