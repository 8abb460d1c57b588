"""Cell and table formatting of the study report (:mod:`maeir.cli.study.report`): numbers, intervals,
differences to the control, key/value tables and durations."""

from __future__ import annotations

import json
import math
from typing import Any


def diff_cell(diff: dict | None) -> str:
    """A paired difference and its interval, marked when the interval excludes zero."""
    if diff is None:
        return "n/a"
    mark = " **✓**" if diff["excludes_zero"] else ""
    return f"{signed(diff['mean_difference'])} {interval(diff['ci'])}{mark}"


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals (one above 1,000); ``n/a`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 3) -> str:
    """:func:`fmt` with an explicit sign."""
    text = fmt(value, digits)
    return text if text == "n/a" or text.startswith("-") else "+" + text


def interval(ci: list | None, digits: int = 3) -> str:
    """``[low, high]`` with signs."""
    if not ci or ci[0] is None or ci[1] is None:
        return "[n/a]"
    return f"[{signed(ci[0], digits)}, {signed(ci[1], digits)}]"


def mean_cell(entry: dict) -> str:
    """Mean ± half-width over seeds (or the single value)."""
    if entry["half_width"] is None:
        return f"{fmt(entry['mean'])} (n={entry['n']}, no CI)"
    return f"{fmt(entry['mean'])} ± {fmt(entry['half_width'])} (n={entry['n']})"


def diff_row(arm: str, metric: str, diff: dict | None) -> str:
    """One row of a paired-difference table."""
    if diff is None:
        return f"| `{arm}` | {metric} | n/a | n/a | n/a | n/a | no shared seeds |"
    p = diff.get("p_value")
    if p is None:
        p_text = "n/a"
    elif p == 0 and diff.get("n_resamples"):
        p_text = f"< {1 / diff['n_resamples']:.0e}"
    else:
        p_text = f"{p:.3g}"
    excludes = "**yes**" if diff["excludes_zero"] else "no"
    return (
        f"| `{arm}` | {metric} | {signed(diff['mean_difference'])} | {interval(diff['ci'])} | {p_text} "
        f"| {excludes} | {diff['method']}, {len(diff['seeds'])} seeds"
        + (f", {diff['n_units']} units" if diff.get("n_units") else "")
        + " |"
    )


def key_value_table(mapping: dict) -> list[str]:
    """A flattened mapping as a two-column markdown table."""
    rows = ["| key | value |", "|---|---|"]
    for key, value in flatten(mapping):
        text = value if isinstance(value, str) else json.dumps(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{key}` | {text} |")
    return rows


def flatten(mapping: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as dotted keys."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items += flatten(value, name + ".")
        else:
            items.append((name, value))
    return items


def duration(seconds: float) -> str:
    """Seconds as s / min / h."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
