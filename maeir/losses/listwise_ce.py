"""Listwise cross-entropy over candidate groups (docs/methods.md#md2pr: the ranker's training loss).

Layout: ``scores`` is ``[Q, G]``: row ``i`` holds query ``i``'s group, positive first (column
``target``, 0 by default) then ``G - 1`` negatives. The loss is the mean over queries of
``-log softmax(scores[i] / temperature)[target]``; slots marked False in ``valid`` (padding for a query
with too few negatives, or a filtered false negative) get the logit ``-inf`` and so take part in no
softmax.

Public API: :func:`listwise_cross_entropy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def listwise_cross_entropy(
    scores: torch.Tensor,
    valid: torch.Tensor | None = None,
    target: int = 0,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Listwise softmax cross-entropy of ``[Q, G]`` group scores (see the module docstring). Computed in fp32.

    Args:
        scores: one row per query, one column per candidate.
        valid: ``[Q, G]`` bool, False for candidates left out of the softmax; the target must be valid.
        target: column of the positive in every row.
        temperature: logits are ``scores / temperature``.
        reduction: ``"mean"`` over queries, ``"sum"`` or ``"none"``.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [Q, G], got shape {tuple(scores.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = scores.float() / temperature
    if valid is not None:
        valid = valid.to(device=scores.device, dtype=torch.bool)
        if valid.shape != scores.shape:
            raise ValueError(f"valid has shape {tuple(valid.shape)}, scores {tuple(scores.shape)}")
        if not valid[:, target].all():
            raise ValueError("a query's positive is masked out")
        logits = logits.masked_fill(~valid, float("-inf"))
    targets = torch.full((scores.shape[0],), target, dtype=torch.long, device=scores.device)
    return F.cross_entropy(logits, targets, reduction=reduction)
