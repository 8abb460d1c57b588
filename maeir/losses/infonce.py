"""InfoNCE over in-batch and given (hard) negatives, with cross-device negatives as an option.

The one InfoNCE of the package: the bi-encoder's own loss (fine-tuning in docs/methods.md#cot-mae-v2 and
docs/methods.md#dial-mae), the contrastive trainer's objective and MD2PR's CE term all call :class:`InfoNCELoss`.

Layout: ``Q`` queries and ``P = Q * G`` passages in groups of ``G``; group ``i`` is
``[positive_i, negative_i_1, ..., negative_i_{G-1}]``, so query ``i``'s target is passage ``i * G``.
The loss is the mean over queries of ``-log softmax(scores[i] / temperature)[i * G]``, where the
softmax runs over every passage of the batch (in-batch negatives) or only over the query's own
group (``in_batch_negatives=False``). Passages marked invalid (``passage_mask == False``: a padding
slot for a query that had too few negatives) take part in no softmax; passages flagged in a query's
own group (``exclude``: e.g. MD2PR's false negatives) take no part in that query's softmax.

With ``gather_across_devices`` and several processes, the representations (and the masks) of every
process are all-gathered, this process's slice keeping its graph (:func:`maeir.distributed.gather_with_grad`),
and every process computes the loss of the global batch. DDP averages gradients over the ``W``
processes, so the loss must be multiplied by ``W`` before back-propagating (``InfoNCEOutput.scale``,
docs/methods.md#pitfalls): the gradients then equal those of one process holding the whole batch.

Public API: :class:`InfoNCELoss` (an ``nn.Module`` returning :class:`InfoNCEOutput`), :func:`info_nce`
(the formula on a score matrix), :func:`group_targets`, :func:`exclusion_matrix`, :func:`dot_scores`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_representation, gather_with_grad, world_size

Representation = torch.Tensor | dict[str, torch.Tensor]


def group_targets(num_queries: int, num_passages: int, device: torch.device | None = None) -> torch.Tensor:
    """Index of each query's positive: ``i * (num_passages // num_queries)``."""
    if num_queries < 1 or num_passages % num_queries:
        raise ValueError(f"{num_passages} passages do not split into groups for {num_queries} queries")
    return torch.arange(num_queries, device=device) * (num_passages // num_queries)


def exclusion_matrix(masked: torch.Tensor, num_passages: int) -> torch.Tensor:
    """``[Q, G]`` per-group flags -> ``[Q, P]`` flags on the all-pairs score matrix (query ``i``'s own group)."""
    num_queries, group = masked.shape
    out = torch.zeros(num_queries, num_passages, dtype=torch.bool, device=masked.device)
    index = torch.arange(num_queries, device=masked.device).unsqueeze(1) * group + torch.arange(
        group, device=masked.device
    )
    return out.scatter(1, index, masked.bool())


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


def dot_scores(query: torch.Tensor, passage: torch.Tensor) -> torch.Tensor:
    """``[Q, P]`` fp32 dot products: the default similarity of :class:`InfoNCELoss` on plain tensors."""
    return query.float() @ passage.float().T


@dataclass
class InfoNCEOutput:
    """What :class:`InfoNCELoss` returns.

    Attributes:
        loss: InfoNCE of the (global) batch, plus each view's own InfoNCE with ``view_losses``; with
            its graph, not multiplied by ``scale``.
        parts: detached terms for logging: ``contrastive_loss`` and, with ``view_losses``,
            ``<view>_loss`` for each view.
        scores: the ``[Q, P]`` similarity scores (before ``exclude`` is applied).
        scale: multiply the loss by this before back-propagating under DDP (the world size when
            gathered across devices, else 1).
        query / passage / passage_mask: the inputs the loss saw (gathered across devices when so).
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    scores: torch.Tensor
    scale: int
    query: Representation
    passage: Representation
    passage_mask: torch.Tensor | None


def _gather(representation: Representation) -> Representation:
    if isinstance(representation, torch.Tensor):
        return gather_with_grad(representation)
    return gather_representation(representation)


def _first(representation: Representation) -> torch.Tensor:
    return representation if isinstance(representation, torch.Tensor) else next(iter(representation.values()))


class InfoNCELoss(nn.Module):
    """InfoNCE of query and passage representations (see the module docstring).

    Args:
        similarity: ``(query, passage) -> [Q, P]`` scores, e.g. a bi-encoder's ``score`` on
            ``{"dense", "sparse"}`` dicts; default :func:`dot_scores` on plain tensors.
        temperature: logits are ``scores / temperature``.
        in_batch_negatives: False restricts each query's softmax to its own group.
        gather_across_devices: all-gather representations across processes (cross-device negatives).
        view_losses: with dict representations of several views, also add each view's own InfoNCE
            (``similarity`` of that view alone, same temperature), logged as ``<view>_loss``.
    """

    def __init__(
        self,
        similarity: Callable[[Representation, Representation], torch.Tensor] | None = None,
        temperature: float = 1.0,
        in_batch_negatives: bool = True,
        gather_across_devices: bool = False,
        view_losses: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.similarity = similarity or dot_scores
        self.temperature = temperature
        self.in_batch_negatives = in_batch_negatives
        self.gather_across_devices = gather_across_devices
        self.view_losses = view_losses

    def forward(
        self,
        query: Representation,
        passage: Representation,
        passage_mask: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
    ) -> InfoNCEOutput:
        """InfoNCE of ``Q`` queries against ``Q * G`` passages in groups (positive first).

        Args:
            query / passage: ``[Q, D]`` / ``[P, D]`` tensors, or dicts of such per view.
            passage_mask: ``[P]`` bool, False for padding slots (left out of every softmax).
            exclude: ``[Q, G]`` bool, True for passages of a query's own group to leave out of that
                query's softmax (the positive must not be flagged).
        """
        scale = 1
        if self.gather_across_devices and world_size() > 1:
            device = _first(query).device
            query, passage = _gather(query), _gather(passage)
            if passage_mask is not None:  # gloo cannot gather bool tensors
                passage_mask = gather_with_grad(passage_mask.to(device).to(torch.uint8)).bool()
            if exclude is not None:
                exclude = gather_with_grad(exclude.to(torch.uint8)).bool()
            scale = world_size()
        scores = self.similarity(query, passage)
        loss = self._info_nce(scores, passage_mask, exclude)
        parts = {"contrastive_loss": loss.detach()}
        if self.view_losses and isinstance(query, dict) and len(query) > 1:
            for view in query:
                view_scores = self.similarity({view: query[view]}, {view: passage[view]})
                view_loss = self._info_nce(view_scores, passage_mask, exclude)
                loss = loss + view_loss
                parts[f"{view}_loss"] = view_loss.detach()
        return InfoNCEOutput(loss, parts, scores, scale, query, passage, passage_mask)

    def _info_nce(
        self, scores: torch.Tensor, passage_mask: torch.Tensor | None, exclude: torch.Tensor | None
    ) -> torch.Tensor:
        if exclude is not None and exclude.any():
            scores = scores.masked_fill(exclusion_matrix(exclude, scores.shape[1]), float("-inf"))
        return info_nce(scores, self.temperature, passage_mask, in_batch_negatives=self.in_batch_negatives)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, in_batch_negatives={self.in_batch_negatives}, "
            f"gather_across_devices={self.gather_across_devices}, view_losses={self.view_losses}"
        )
