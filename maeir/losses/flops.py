"""SPLADE's FLOPs regulariser with separate query / passage weights and a quadratic warm-up.

``flops(w) = sum_j (mean_i |w_ij|)^2`` over a batch of sparse vocabulary vectors ``w [B, V]``
(Paria et al., 2020; SPLADE, Formal et al., 2021, Section 3.2): it penalises the expected number of
floating-point operations of an inverted-index dot product. CoT-MAE v2 fine-tuning
(docs/methods.md#cot-mae-v2) uses separate weights for queries and passages and a quadratic warm-up:
the weight at step ``t`` is ``lambda * min(1, (t / warmup_steps) ** 2)`` (SPLADE's authors' schedule).

Public API: :func:`flops`, :class:`FLOPsRegularizer`.
"""

from __future__ import annotations

import torch


def flops(representations: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_j (mean_i |w_ij|)^2`` over the rows of ``representations`` (rows with ``mask`` False skipped)."""
    values = representations.float().abs()
    if mask is not None:
        values = values[mask.bool()]
    if values.shape[0] == 0:
        return representations.sum() * 0.0
    return values.mean(dim=0).pow(2).sum()


class FLOPsRegularizer:
    """``query_weight * flops(q) + passage_weight * flops(p)``, each weight warmed up quadratically.

    Args:
        query_weight: final weight of the query term (SPLADE uses values around 1e-4 to 1e-3;
            queries usually get the larger one).
        passage_weight: final weight of the passage term.
        warmup_steps: steps to reach the final weights (0: full weights from the start).
    """

    def __init__(self, query_weight: float = 0.0, passage_weight: float = 0.0, warmup_steps: int = 0) -> None:
        if query_weight < 0 or passage_weight < 0 or warmup_steps < 0:
            raise ValueError("FLOPs weights and warm-up steps must be >= 0")
        self.query_weight = query_weight
        self.passage_weight = passage_weight
        self.warmup_steps = warmup_steps

    @property
    def enabled(self) -> bool:
        return self.query_weight > 0 or self.passage_weight > 0

    def scale(self, step: int) -> float:
        """The warm-up factor ``min(1, (step / warmup_steps) ** 2)``."""
        if self.warmup_steps <= 0:
            return 1.0
        return min(1.0, (step / self.warmup_steps) ** 2)

    def weights(self, step: int) -> tuple[float, float]:
        """``(query_weight, passage_weight)`` at training step ``step``."""
        factor = self.scale(step)
        return self.query_weight * factor, self.passage_weight * factor

    def __call__(
        self,
        query: torch.Tensor,
        passage: torch.Tensor,
        step: int,
        passage_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, query_flops, passage_flops)``: the weighted sum and the two unweighted values."""
        query_flops = flops(query)
        passage_flops = flops(passage, passage_mask)
        query_weight, passage_weight = self.weights(step)
        return query_weight * query_flops + passage_weight * passage_flops, query_flops, passage_flops

    def __repr__(self) -> str:
        return (
            f"FLOPsRegularizer(query_weight={self.query_weight}, passage_weight={self.passage_weight}, "
            f"warmup_steps={self.warmup_steps})"
        )
