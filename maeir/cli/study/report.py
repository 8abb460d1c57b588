"""Markdown report and compact summary of a study (controlled experiment: arms x seeds).

A study is a ``study.json``-like dict::

    {
      "name": "mae-lm-vs-mlm",                 # title
      "description": "...",                    # free text (optional)
      "command": "python -m ... --config x",   # exact reproduce command (optional)
      "protocol": {...},                       # config shown as a key/value table (nested keys dotted)
      "control": "mlm",                        # arm every other arm is compared with
      "reference_arms": ["none"],              # further baselines (optional; default ["none"] if
                                               # an arm "none" exists); only those in "arms" are used
      "metrics": ["r10@1", "mrr"],             # metrics to report, in order (default: all seen)
      "headline_metric": "r10@1",              # metric of the one-line verdicts
      "headline_stage": "finetune",            # optional; default: every stage with the metric
      "arms": ["mlm", "mae-lm", "none"],       # order of the tables
      "seeds": [0, 1, 2],
      "runs": [
        {"arm": "mae-lm", "seed": 0, "stage": "finetune",      # stage: "finetune", "probe", ...
         "metrics": {"r10@1": 0.61},
         "per_unit": {"r10@1": {"q17": 1.0, ...}},             # optional: unit id -> score
         "wall_time_s": 812.0,                                 # optional
         "post_train_steps": 2000,                             # optional (curve point per run)
         "curve": [{"step": 500, "r10@1": 0.40}, ...]},        # optional
        ...
      ],
      "protocol_changes": ["..."],             # optional: deviations from the planned protocol
      "machine": {...},                        # optional: key/value table
      "wall_time_s": 5400.0                    # optional: whole study
    }

Per stage and arm, each metric is summarised over seeds by :func:`~maeir.cli.study.stats.mean_ci`.
If several runs share ``(arm, stage, seed)`` (points of a post-training curve), the one with the
largest ``post_train_steps`` (else the last listed) is the one tabled. Differences to the control
(and reference arms) use :func:`~maeir.cli.study.stats.paired_difference_by_units` on the seeds both arms
share when every such run has ``per_unit`` scores for the metric; otherwise they fall back to a
paired t interval over the per-seed differences of the shared seeds ("seeds (t)").
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from scipy import stats as scipy_stats

from ...io_utils import atomic_write_text
from .formatting import (
    diff_cell,
    diff_row,
    duration,
    fmt,
    interval,
    key_value_table,
    mean_cell,
    signed,
)
from .stats import mean_ci, paired_difference_by_units

REPORT_NAME = "report.md"


def summary(
    study: dict, n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{stage: {arm: {metric: entry}}}``; entry = ``{mean, ci: [low, high], half_width, std, n,
    diff_to_control, diff_to_references: {ref: diff}}`` with each diff ``{mean_difference, ci,
    excludes_zero, p_value, method, n_units, seeds}`` (``None`` for the control itself or without
    shared seeds). Stages appear in the order of the runs, arms in ``study["arms"]`` order."""
    control = study["control"]
    references = _reference_arms(study)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for stage in _stages(study):
        table = _stage_runs(study, stage)
        out[stage] = {}
        for arm in _arms(study):
            if arm not in table:
                continue
            out[stage][arm] = {}
            for metric in _metrics(study, stage):
                values = [run["metrics"][metric] for run in table[arm].values() if metric in run["metrics"]]
                if not values:
                    continue
                entry = _jsonable_ci(mean_ci(values, confidence))
                entry["diff_to_control"] = (
                    None
                    if arm == control
                    else _difference(table, arm, control, metric, n_resamples, confidence, seed)
                )
                entry["diff_to_references"] = {
                    ref: _difference(table, arm, ref, metric, n_resamples, confidence, seed)
                    for ref in references
                    if ref != arm
                }
                out[stage][arm][metric] = entry
    return out


def verdict(diff: dict | None, control: str, digits: int = 3) -> str:
    """One line: ``higher than X control: +0.031 [+0.012, +0.050]`` or ``no difference detectable``."""
    if diff is None:
        return "no comparison (no shared seeds with the control)"
    text = f"{signed(diff['mean_difference'], digits)} {interval(diff['ci'], digits)}"
    if diff["excludes_zero"]:
        direction = "higher" if diff["mean_difference"] > 0 else "lower"
        return f"{direction} than {control} control: {text}"
    return f"no difference detectable: {text}"


def comparison_table(
    studies: dict[str, dict], stages_metrics: dict[str, list[tuple[str, str]]] | None = None
) -> str:
    """One markdown table over several studies (the README's "Does it work?"): per study, stage and
    metric, every arm's mean ± 95% CI half-width, its paired difference to the control and to
    ``none`` (when the study has that arm) with the 95% CI, the post-training budget and wall time.

    ``studies`` maps a link (e.g. ``studies/dial_mae/report.md``) to a study dict; ``stages_metrics``
    maps the same link to ``[(stage, metric), ...]`` (default: the headline metric at every stage).
    """
    header = (
        "| study | stage | metric | arm | mean ± 95% CI (n seeds) | vs control [95% CI] | vs none [95% CI] "
        "| budget | wall time |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for link, study in studies.items():
        stats = summary(study)
        pairs = (stages_metrics or {}).get(link) or [(stage, study["headline_metric"]) for stage in stats]
        steps = study.get("protocol", {}).get("post_training", {}).get("args", {}).get("max_steps")
        budget = f"{steps} steps" if steps else ""
        for stage, metric in pairs:
            for arm, metrics in stats.get(stage, {}).items():
                if metric not in metrics:
                    continue
                entry = metrics[metric]
                to_control = entry["diff_to_control"]
                to_none = entry["diff_to_references"].get("none")
                vs_control = "control" if arm == study["control"] else diff_cell(to_control)
                vs_none = "—" if arm == "none" or to_none is None else diff_cell(to_none)
                lines.append(
                    f"| [{study.get('name', link)}]({link}) | {stage} | {metric} | `{arm}` | {mean_cell(entry)} "
                    f"| {vs_control} | {vs_none} | {budget} | {duration(study.get('wall_time_s', 0.0))} |"
                )
    return "\n".join(lines)


def write_report(
    study: dict,
    output_dir: str | os.PathLike,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> str:
    """Write ``output_dir/report.md`` atomically from ``study`` (schema in the module docstring); return its path."""
    output_dir = Path(output_dir)
    control = study["control"]
    references = _reference_arms(study)
    headline = study.get("headline_metric")
    stats = summary(study, n_resamples=n_resamples, confidence=confidence, seed=seed)
    level = f"{round(confidence * 100):d}%"
    lines: list[str] = [f"# {study.get('name', 'Study')}", ""]
    if study.get("description"):
        lines += [str(study["description"]).strip(), ""]
    lines += [
        f"Control arm: `{control}`"
        + (f"; reference arms: {', '.join(f'`{r}`' for r in references)}" if references else "")
        + f"; seeds: {', '.join(str(s) for s in study.get('seeds', [])) or 'n/a'}"
        + (f"; headline metric: `{headline}`" if headline else ""),
        "",
    ]

    if headline:
        lines += [f"## Verdict ({headline}, paired difference to `{control}`, {level} CI)", ""]
        stages = [study["headline_stage"]] if study.get("headline_stage") else list(stats)
        for stage in stages:
            for arm, metrics in stats.get(stage, {}).items():
                if arm == control or headline not in metrics:
                    continue
                lines.append(f"- {stage} / `{arm}`: {verdict(metrics[headline]['diff_to_control'], control)}")
        lines.append("")

    lines += _teacher_section(study)
    if study.get("protocol"):
        lines += ["## Protocol", "", *key_value_table(study["protocol"]), ""]

    for stage, arms in stats.items():
        lines += [f"## Stage: {stage}", ""]
        metrics = _metrics(study, stage)
        lines += [f"Mean ± {level} CI half-width over seeds (Student t; n = number of seeds).", ""]
        lines.append("| arm | " + " | ".join(metrics) + " | wall time |")
        lines.append("|---" * (len(metrics) + 2) + "|")
        table = _stage_runs(study, stage)
        for arm, entries in arms.items():
            cells = [mean_cell(entries[m]) if m in entries else "–" for m in metrics]
            walls = [r["wall_time_s"] for r in table[arm].values() if r.get("wall_time_s") is not None]
            wall = duration(sum(walls) / len(walls)) + " / run" if walls else "–"
            lines.append(f"| `{arm}` | " + " | ".join(cells) + f" | {wall} |")
        lines.append("")
        for baseline in [control, *references]:
            rows = []
            for arm, entries in arms.items():
                if arm == baseline:
                    continue
                for metric in metrics:
                    if metric not in entries:
                        continue
                    diff = (
                        entries[metric]["diff_to_control"]
                        if baseline == control
                        else entries[metric]["diff_to_references"].get(baseline)
                    )
                    rows.append(diff_row(arm, metric, diff))
            if rows:
                lines += [
                    f"Paired difference to `{baseline}` (arm − {baseline}; bootstrap over units, "
                    f"{n_resamples} resamples, {level} percentile CI):",
                    "",
                    "| arm | metric | difference | CI | p | excludes zero | method |",
                    "|---|---|---|---|---|---|---|",
                    *rows,
                    "",
                ]

    lines += ["## Wall time and machine", ""]
    if study.get("wall_time_s") is not None:
        lines += [f"Total wall time: {duration(float(study['wall_time_s']))}", ""]
    if study.get("machine"):
        lines += [*key_value_table(study["machine"]), ""]
    if study.get("command"):
        lines += ["## Reproduce", "", "```bash", str(study["command"]).strip(), "```", ""]
    changes = study.get("protocol_changes") or []
    lines += ["## Protocol changes", ""]
    lines += [f"- {c}" for c in changes] if changes else ["None."]
    lines.append("")
    superseded = study.get("superseded_runs") or []
    if superseded:
        lines += [
            "Runs superseded by a protocol change (not in the tables above; kept as they came out):",
            "",
            "| arm | seed | stage | metrics | superseded by protocol |",
            "|---|---|---|---|---|",
        ]
        for run in superseded:
            metrics = ", ".join(f"{k} {fmt(v)}" for k, v in run.get("metrics", {}).items())
            lines.append(
                f"| `{run['arm']}` | {run['seed']} | {run['stage']} | {metrics} | {run.get('superseded_by', '')} |"
            )
        lines.append("")
    pngs = (
        sorted(p for p in output_dir.rglob("*.png") if not p.name.startswith("."))
        if output_dir.is_dir()
        else []
    )
    if pngs:
        lines += ["## Plots", ""]
        for png in pngs:
            rel = png.relative_to(output_dir).as_posix()
            lines.append(f"![{png.stem}]({rel})")
            lines.append("")
    path = output_dir / REPORT_NAME
    atomic_write_text(path, "\n".join(lines).rstrip() + "\n")
    os.chmod(path, 0o644)  # the temporary file behind the atomic write is 0600
    return str(path)


# -- helpers ---------------------------------------------------------------------------------------


def _teacher_section(study: dict) -> list[str]:
    """The shared teacher's own evaluation and the precondition verdict (``stages.teacher``)."""
    teacher = (study.get("stages") or {}).get("teacher")
    if not teacher or not teacher.get("eval"):
        return []
    names = {
        "first_stage": "BM25",
        "rerank": "the teacher, BM25's top list re-ranked",
        "student": "the student alone (its zero-shot run, whole corpus)",
        "rerank_student_top": "the teacher, the student's top "
        f"{teacher['eval'].get('rerank_student_top', {}).get('depth', '?')} re-ranked",
    }
    lines = ["## The teacher (precondition)", "", "| system | MRR@10 | nDCG@10 |", "|---|---|---|"]
    for view, values in teacher["eval"].items():
        lines.append(
            f"| {names.get(view, view)} | {fmt(values.get('MRR@10'))} | {fmt(values.get('nDCG@10'))} |"
        )
    verdict = teacher.get("precondition")
    if verdict:
        beaten = [k for k, v in verdict.items() if isinstance(v, dict)]
        lines += ["", f"Precondition (the teacher must beat {', '.join(beaten)} on MRR@10): "
                  + ("**passed**" if verdict.get("passed") else "**failed**: nothing is distilled")]  # fmt: skip
    if teacher.get("wall_time_s") is not None:
        lines += ["", f"Teacher training wall time: {duration(float(teacher['wall_time_s']))}"]
    if teacher.get("reused"):
        lines += [
            "",
            "The teacher folder was in place before the study (same `teacher.args`): not trained "
            "again; its evaluation is its training driver's own (`teacher/eval_<split>/metrics.json`).",
        ]
    return [*lines, ""]


def _arms(study: dict) -> list[str]:
    arms = list(study.get("arms") or [])
    for run in study["runs"]:
        if run["arm"] not in arms:
            arms.append(run["arm"])
    return arms


def _reference_arms(study: dict) -> list[str]:
    arms = _arms(study)
    refs = study.get("reference_arms")
    if refs is None:
        refs = ["none"]
    return [r for r in refs if r in arms and r != study["control"]]


def _stages(study: dict) -> list[str]:
    stages: list[str] = []
    for run in study["runs"]:
        stage = run.get("stage", "default")
        if stage not in stages:
            stages.append(stage)
    return stages


def _metrics(study: dict, stage: str) -> list[str]:
    seen: list[str] = []
    for run in study["runs"]:
        if run.get("stage", "default") == stage:
            seen += [m for m in run.get("metrics", {}) if m not in seen]
    if study.get("metrics"):
        return [m for m in study["metrics"] if m in seen]
    return seen


def _stage_runs(study: dict, stage: str) -> dict[str, dict[Any, dict]]:
    """``{arm: {seed: run}}`` for one stage, keeping the final run of a curve."""
    table: dict[str, dict[Any, dict]] = {}
    for run in study["runs"]:
        if run.get("stage", "default") != stage:
            continue
        seeds = table.setdefault(run["arm"], {})
        previous = seeds.get(run["seed"])
        if previous is None or run.get("post_train_steps", 0) >= previous.get("post_train_steps", 0):
            seeds[run["seed"]] = run
    return table


def _difference(
    table: dict, arm: str, baseline: str, metric: str, n_resamples: int, confidence: float, seed: int
) -> dict | None:
    if arm not in table or baseline not in table:
        return None
    seeds = [
        s
        for s in sorted(table[arm], key=str)
        if s in table[baseline]
        and metric in table[arm][s]["metrics"]
        and metric in table[baseline][s]["metrics"]
    ]
    if not seeds:
        return None
    arm_runs = [table[arm][s] for s in seeds]
    base_runs = [table[baseline][s] for s in seeds]
    if all(metric in r.get("per_unit", {}) for r in arm_runs + base_runs):
        result = paired_difference_by_units(
            [r["per_unit"][metric] for r in arm_runs],
            [r["per_unit"][metric] for r in base_runs],
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
        result.pop("unit_ids")
        result["method"] = "bootstrap (units)"
    else:
        diffs = [a["metrics"][metric] - b["metrics"][metric] for a, b in zip(arm_runs, base_runs)]
        ci = mean_ci(diffs, confidence)
        result = {
            "mean_difference": ci["mean"],
            "ci": ci["ci"],
            "ci_low": ci["ci_low"],
            "ci_high": ci["ci_high"],
            "p_value": _t_p_value(diffs),
            "excludes_zero": bool(ci["ci_defined"] and (ci["ci_low"] > 0 or ci["ci_high"] < 0)),
            "n_units": None,
            "per_seed_differences": [float(d) for d in diffs],
            "method": "seeds (t)",
        }
    result["seeds"] = seeds
    return _jsonable_ci(result)


def _t_p_value(diffs: list[float]) -> float:
    if len(diffs) < 2:
        return math.nan
    if max(diffs) == min(diffs):
        return 1.0 if diffs[0] == 0 else 0.0
    return float(scipy_stats.ttest_1samp(diffs, 0.0).pvalue)


def _jsonable_ci(entry: dict) -> dict:
    """Replace ``nan`` by ``None`` so that the summary is strict JSON."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return {k: clean(v) for k, v in entry.items()}
