"""Dynamic false-negative filtering (docs/methods.md#md2pr; paper Section 3.3).

A negative whose teacher score exceeds the positive's by more than a threshold ``δ`` is taken for
an unlabelled positive: it is removed from the contrastive CE (its logit becomes ``-inf``) and from
the KL target (which is renormalised). ``δ`` is in the teacher's raw logit units (before any KL
temperature) and moves over training following :class:`ThresholdSchedule`.

Public API: :func:`false_negative_mask`, :class:`ThresholdSchedule`, :data:`SCHEDULES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULES = ("constant", "linear", "cosine", "step")


def false_negative_mask(
    teacher_scores: torch.Tensor,
    threshold: float,
    valid: torch.Tensor | None = None,
    positive_index: int = 0,
) -> torch.Tensor:
    """``[Q, G]`` bool: True for negatives with ``teacher[i, j] - teacher[i, positive] > threshold``.

    The positive itself and invalid slots (``valid`` False) are never flagged. NaN teacher scores
    (unknown) are never flagged.
    """
    if teacher_scores.dim() != 2:
        raise ValueError(f"teacher_scores must be [Q, G], got {tuple(teacher_scores.shape)}")
    scores = teacher_scores.float()
    margin = scores - scores[:, positive_index : positive_index + 1]
    flagged = margin > threshold  # NaN compares False
    flagged[:, positive_index] = False
    if valid is not None:
        flagged &= valid.to(device=flagged.device, dtype=torch.bool)
    return flagged


@dataclass
class ThresholdSchedule:
    """The filtering threshold as a function of the optimisation step.

    Before ``begin_step`` nothing is filtered (:meth:`value` returns ``+inf``). From ``begin_step``
    the threshold goes from ``start`` to ``end`` over ``num_steps`` steps, then stays at ``end``:

    - ``constant``: always ``start``;
    - ``linear``: ``start + (end - start) * t`` with ``t = (step - begin_step) / num_steps`` in [0, 1];
    - ``cosine``: ``start + (end - start) * (1 - cos(pi * t)) / 2``;
    - ``step``: ``num_stages`` equal stages, ``start`` in the first and ``end`` in the last, evenly
      spaced in between (``t`` rounded down to a multiple of ``1 / (num_stages - 1)``).

    ``num_steps`` None means "until the end of training" (set by the trainer from ``max_steps``).
    """

    kind: str = "linear"
    start: float = 1.0
    end: float = 0.0
    begin_step: int = 0
    num_steps: int | None = None
    num_stages: int = 4

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.kind!r}")
        if self.begin_step < 0:
            raise ValueError(f"begin_step must be >= 0, got {self.begin_step}")
        if self.num_steps is not None and self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1 or None, got {self.num_steps}")
        if self.num_stages < 2:
            raise ValueError(f"num_stages must be >= 2, got {self.num_stages}")

    def progress(self, step: int) -> float:
        """``t`` in [0, 1] at ``step`` (0 before ``begin_step``)."""
        span = self.num_steps or 1
        return min(1.0, max(0.0, (step - self.begin_step) / span))

    def value(self, step: int) -> float:
        """The threshold at optimisation step ``step`` (``+inf``: no filtering yet)."""
        if step < self.begin_step:
            return math.inf
        if self.kind == "constant":
            return self.start
        t = self.progress(step)
        if self.kind == "cosine":
            t = (1.0 - math.cos(math.pi * t)) / 2.0
        elif self.kind == "step":
            stages = self.num_stages - 1
            t = math.floor(t * stages + 1e-9) / stages
        return self.start + (self.end - self.start) * t
