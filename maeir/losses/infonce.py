"""InfoNCE over in-batch and given (hard) negatives (SPEC "CoT-MAE v2" fine-tuning, "Dial-MAE" fine-tuning).

Layout: ``Q`` queries and ``P = Q * G`` passages in groups of ``G``; group ``i`` is
``[positive_i, negative_i_1, ..., negative_i_{G-1}]``, so query ``i``'s target is passage ``i * G``.
The loss is the mean over queries of ``-log softmax(scores[i] / temperature)[i * G]``, where the
softmax runs over every passage of the batch (in-batch negatives) or only over the query's own
group (``in_batch_negatives=False``). Passages marked invalid (``passage_mask == False``: a padding
slot for a query that had too few negatives) take part in no softmax.

Public API: :func:`info_nce`, :func:`group_targets`, :class:`InfoNCELoss` (an ``nn.Module``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_targets(num_queries: int, num_passages: int, device: torch.device | None = None) -> torch.Tensor:
    """Index of each query's positive: ``i * (num_passages // num_queries)``."""
    if num_queries < 1 or num_passages % num_queries:
        raise ValueError(f"{num_passages} passages do not split into groups for {num_queries} queries")
    return torch.arange(num_queries, device=device) * (num_passages // num_queries)


def info_nce(
    scores: torch.Tensor,
    temperature: float = 1.0,
    passage_mask: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    in_batch_negatives: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """InfoNCE of a ``[Q, P]`` score matrix (see the module docstring). Computed in fp32.

    Args:
        scores: similarity of every query with every passage.
        temperature: logits are ``scores / temperature``.
        passage_mask: ``[P]`` bool, False for passage slots to leave out of every softmax.
        targets: ``[Q]`` index of each query's positive (default :func:`group_targets`).
        in_batch_negatives: False restricts each query's softmax to its own group of ``P / Q``.
        reduction: ``"mean"`` over queries, ``"sum"`` or ``"none"``.
    """
    num_queries, num_passages = scores.shape
    if targets is None:
        targets = group_targets(num_queries, num_passages, scores.device)
    logits = scores.float() / temperature
    exclude = None
    if passage_mask is not None:
        exclude = ~passage_mask.bool().to(scores.device).unsqueeze(0).expand(num_queries, -1)
    if not in_batch_negatives:
        size = num_passages // num_queries
        group_of_passage = torch.arange(num_passages, device=scores.device) // size
        other = group_of_passage.unsqueeze(0) != torch.arange(num_queries, device=scores.device).unsqueeze(1)
        exclude = other if exclude is None else exclude | other
    if exclude is not None:
        if exclude.gather(1, targets.unsqueeze(1)).any():
            raise ValueError("a query's positive is masked out")
        logits = logits.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(logits, targets, reduction=reduction)


class InfoNCELoss(nn.Module):
    """``nn.Module`` form of :func:`info_nce` with a fixed temperature and negative scope."""

    def __init__(self, temperature: float = 1.0, in_batch_negatives: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.in_batch_negatives = in_batch_negatives

    def forward(
        self,
        scores: torch.Tensor,
        passage_mask: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return info_nce(
            scores,
            self.temperature,
            passage_mask=passage_mask,
            targets=targets,
            in_batch_negatives=self.in_batch_negatives,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, in_batch_negatives={self.in_batch_negatives}"
