"""Response-selection metrics: R_n@k, MRR, MAP and P@1 over candidate groups (docs/methods.md#dial-mae).

Each group is one context with its ``n`` scored candidates and 0/1 labels; groups are keyed by
context id by the caller, never by batch or file position. Per group:

- the rank of a positive is ``1 + #negatives scoring >= it + #positives scoring > it``: ties with
  negatives count against the model, so the result never depends on the candidates' order;
- ``R_n@k`` = share of the group's positives ranked within the top ``k`` (with one positive, as in
  Ubuntu / E-commerce: 1 if the true response is in the top ``k``); ``k >= n`` gives 1;
- ``MRR`` = 1 / rank of the best-ranked positive; ``MAP`` = mean over the positives (in rank order)
  of precision at their ranks; ``P@1`` = 1 if the top-ranked candidate is a positive (Douban).

Groups with no positive are skipped and counted (``skipped``); the reported values are means over
the other groups (``groups``), or None when there is none. :func:`response_selection_metrics` returns
``{"R@1", "R@2", "R@5", "MRR", "MAP", "P@1", "groups", "skipped", "group_sizes"}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 2, 5)


def positive_ranks(scores: Sequence[float], labels: Sequence[int]) -> np.ndarray:
    """Ranks (1 = best) of the positives of one group, pessimistic on ties with negatives, sorted."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be two vectors of one length")
    if np.isnan(scores).any():
        raise ValueError("NaN score in a candidate group")
    positive, negative = scores[labels], scores[~labels]
    ranks = (
        1
        + (negative[None, :] >= positive[:, None]).sum(axis=1)
        + (positive[None, :] > positive[:, None]).sum(axis=1)
    )
    return np.sort(ranks)


def group_metrics(
    scores: Sequence[float], labels: Sequence[int], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float] | None:
    """R@k for ``ks``, MRR, MAP and P@1 of one group; None if it has no positive."""
    ranks = positive_ranks(scores, labels)
    if ranks.size == 0:
        return None
    out = {f"R@{k}": float((ranks <= k).mean()) for k in ks}
    out["MRR"] = float(1.0 / ranks[0])
    out["MAP"] = float(np.mean(np.arange(1, ranks.size + 1) / ranks))
    out["P@1"] = float(ranks[0] == 1)
    return out


def response_selection_metrics(
    groups: Iterable[tuple[Sequence[float], Sequence[int]]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float | int | dict]:
    """Mean of :func:`group_metrics` over the groups that have a positive (see the module docstring)."""
    totals: dict[str, float] = {}
    evaluated = skipped = 0
    sizes: Counter[int] = Counter()
    for scores, labels in groups:
        sizes[len(labels)] += 1
        metrics = group_metrics(scores, labels, ks)
        if metrics is None:
            skipped += 1
            continue
        evaluated += 1
        for key, value in metrics.items():
            totals[key] = totals.get(key, 0.0) + value
    names = [f"R@{k}" for k in ks] + ["MRR", "MAP", "P@1"]
    result: dict[str, float | int | dict] = {
        name: (totals.get(name, 0.0) / evaluated if evaluated else None) for name in names
    }
    result["groups"] = evaluated
    result["skipped"] = skipped
    result["group_sizes"] = {str(size): count for size, count in sorted(sizes.items())}
    return result


def format_table(metrics: dict, title: str | None = None) -> str:
    """A small Markdown table of the metrics (values as 4-decimal numbers)."""
    keys = [k for k in metrics if k.startswith("R@")] + [k for k in ("MRR", "MAP", "P@1") if k in metrics]
    header = "| " + " | ".join(keys + ["groups", "skipped"]) + " |"
    values = ["-" if metrics[k] is None else f"{metrics[k]:.4f}" for k in keys] + [
        str(metrics["groups"]),
        str(metrics["skipped"]),
    ]
    lines = [header, "|" + "---:|" * (len(keys) + 2), "| " + " | ".join(values) + " |"]
    if title:
        lines.insert(0, title)
    return "\n".join(lines)
