"""Study plots (PNG, matplotlib's Agg canvas, no pyplot state): curves, per-layer effective rank, bars.

matplotlib is imported inside each function, so ``maeir.cli.study`` imports without it. Every PNG is
written to a temporary sibling and moved into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import _arms, _stage_runs
from .stats import mean_ci


def plot_curves(study: dict, output_path: str | os.PathLike, metric: str, stage: str) -> str:
    """``metric`` against post-training steps for every arm: mean over seeds, shaded 95% t band.

    Points come from each run's ``curve`` entries (``{"step", metric: value}``) and, for runs with a
    ``post_train_steps`` field, from ``(post_train_steps, metrics[metric])``.
    """
    points: dict[str, dict[float, dict[Any, float]]] = {}  # arm -> step -> seed -> value
    for run in study["runs"]:
        if run.get("stage", "default") != stage:
            continue
        by_step = points.setdefault(run["arm"], {})
        for entry in run.get("curve") or []:
            if metric in entry and entry.get("step") is not None:
                by_step.setdefault(float(entry["step"]), {})[run["seed"]] = float(entry[metric])
        if run.get("post_train_steps") is not None and metric in run.get("metrics", {}):
            by_step.setdefault(float(run["post_train_steps"]), {})[run["seed"]] = float(
                run["metrics"][metric]
            )
    if not any(points.values()):
        raise ValueError(f"no curve points for metric {metric!r} in stage {stage!r}")

    fig, ax = _figure()
    for arm in _arms(study):
        by_step = points.get(arm)
        if not by_step:
            continue
        steps = sorted(by_step)
        stats = [mean_ci(list(by_step[s].values())) for s in steps]
        means = [s["mean"] for s in stats]
        line = ax.plot(steps, means, marker="o", markersize=3, label=_label(study, arm))[0]
        low = [s["ci_low"] if s["ci_defined"] else s["mean"] for s in stats]
        high = [s["ci_high"] if s["ci_defined"] else s["mean"] for s in stats]
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("post-training steps")
    ax.set_ylabel(metric)
    ax.set_title(f"{study.get('name', 'study')}: {metric} ({stage}), mean over seeds ± 95% CI")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, output_path)


def plot_effective_rank(
    ranks: Mapping[str, Sequence[Sequence[float]]], output_path: str | os.PathLike
) -> str:
    """Effective rank per layer for every arm: ``ranks[arm]`` is one per-layer list per seed.

    Markers are the mean over seeds, error bars the 95% t interval (none with a single seed).
    """
    if not ranks:
        raise ValueError("no effective ranks to plot")
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    n_arms = len(ranks)
    for index, (arm, per_seed) in enumerate(ranks.items()):
        per_seed = [list(layers) for layers in per_seed]
        if not per_seed or len({len(layers) for layers in per_seed}) != 1:
            raise ValueError(f"arm {arm!r}: every seed needs the same (non-zero) number of layers")
        n_layers = len(per_seed[0])
        stats = [mean_ci([seed_ranks[layer] for seed_ranks in per_seed]) for layer in range(n_layers)]
        offset = (index - (n_arms - 1) / 2) * 0.08  # keep error bars of different arms apart
        x = [layer + offset for layer in range(n_layers)]
        errors = [0.0 if not s["ci_defined"] else s["half_width"] for s in stats]
        ax.errorbar(
            x, [s["mean"] for s in stats], yerr=errors, marker="o", markersize=4, capsize=3, label=arm
        )
    ax.set_xlabel("layer")
    ax.set_ylabel("effective rank")
    ax.set_title("Effective rank per layer, mean over seeds ± 95% CI")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, output_path)


def plot_bars(study: dict, output_path: str | os.PathLike, metric: str, stage: str) -> str:
    """Per-arm mean of ``metric`` over seeds with 95% t-interval error bars; dots are single seeds."""
    table = _stage_runs(study, stage)
    arms, stats, seeds_values = [], [], []
    for arm in _arms(study):
        values = [r["metrics"][metric] for r in table.get(arm, {}).values() if metric in r.get("metrics", {})]
        if values:
            arms.append(arm)
            stats.append(mean_ci(values))
            seeds_values.append(values)
    if not arms:
        raise ValueError(f"no values for metric {metric!r} in stage {stage!r}")
    fig, ax = _figure()
    x = list(range(len(arms)))
    colors = ["tab:gray" if arm == study.get("control") else "tab:blue" for arm in arms]
    errors = [s["half_width"] if s["ci_defined"] else 0.0 for s in stats]
    ax.bar(x, [s["mean"] for s in stats], yerr=errors, capsize=4, color=colors, alpha=0.8)
    for position, values in zip(x, seeds_values):
        ax.scatter([position] * len(values), values, color="black", s=10, zorder=3)
    ax.set_xticks(x, [_label(study, arm) for arm in arms], rotation=20)
    ax.set_ylabel(metric)
    ax.set_title(f"{study.get('name', 'study')}: {metric} ({stage}), mean ± 95% CI (dots: seeds)")
    finite = [v for values in seeds_values for v in values if math.isfinite(v)]
    if finite and min(finite) >= 0:
        ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, output_path)


def _label(study: dict, arm: str) -> str:
    return f"{arm} (control)" if arm == study.get("control") else arm


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, output_path: str | os.PathLike) -> str:
    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.png", dir=path.parent)
    os.close(fd)
    try:
        fig.tight_layout()
        fig.savefig(tmp, format="png")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return str(path)
