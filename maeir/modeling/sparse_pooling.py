"""Top-k SPLADE pooling that never keeps full-position vocabulary logits (docs/methods.md#shared-ground).

The sparse view of CoT-MAE v2 (docs/methods.md#cot-mae-v2) is, for every vocabulary entry ``j``,
``w_j = max_i log(1 + relu(logits_ij))`` over the real positions ``i``, of which only the top ``k``
entries are kept. Computed naively, autograd keeps the ``[B, L, V]`` logits (fp32: 1 GB for 64 x 128
BERT-base spans) and the backward pass multiplies through all of them again.

Because ``log1p(relu(.))`` is non-decreasing, ``w_j = log1p(relu(max_i logits_ij))``: the ranking of
the entries needs only the per-entry max (no graph), and after the top-k only ``k`` entries per row
carry a value, hence a gradient. :func:`splade_top_k` therefore works in two passes:

1. **search** (no graph): the logits of the valid positions only (padding and special tokens are
   packed away), ``chunk_size x B`` positions at a time, reduced to ``max_i`` per entry in fp32; the
   excluded (special-token) entries are zeroed and the top ``k`` entries chosen;
2. **select** (with graph): the logits of those ``k`` entries at every position, ``[B, L, k]``, from the
   ``k`` gathered output-embedding rows (+ bias), in fp32, and their max over the valid positions.

Values and gradients equal those of ``sparse_top_k(splade_pool(...))`` (the reference path in
:mod:`maeir.retrieval.pooling`), ties included: the select pass is the same max, restricted to
the surviving entries. The largest temporary is ``[chunk x B, V]``; what autograd keeps is
``[B, L, k]`` (with ``recompute``, the select pass is replayed in the backward pass instead of keeping
its ``[B, k, H]`` gathered rows). The search pass is a forward matmul only: no ``[B, L, V]`` backward.

Public API: :func:`split_mlm_head`, :func:`head_transform`, :func:`splade_top_k`, :func:`sparse_to_dense`, :func:`sparse_embedding_bag`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

from .backbone import mlm_head


class _StopForward(Exception):
    """Raised by a pre-hook to stop a head right before its output layer."""


def split_mlm_head(masked_lm: PreTrainedModel) -> tuple[nn.Module, nn.Module]:
    """``(head, output)``: the MLM head (transform + output layer) and its output layer.

    ``output`` is ``get_output_embeddings()`` (a ``Linear`` whose weight is tied to the word
    embeddings); :func:`head_transform` runs the head up to it.
    """
    output = masked_lm.get_output_embeddings()
    if not isinstance(output, nn.Linear):
        raise NotImplementedError(f"{type(masked_lm).__name__}: the output embeddings are not an nn.Linear")
    return mlm_head(masked_lm), output


def head_transform(head: nn.Module, output: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The head's input to its output layer (BERT: dense + activation + LayerNorm), ``[..., H]``.

    Found by running the head with a pre-hook on ``output`` that captures its input and stops, so
    any head layout (BERT ``cls.predictions``, RoBERTa ``lm_head``) works and no logits are computed.
    """
    captured: list[torch.Tensor] = []

    def hook(_module, args):
        captured.append(args[0])
        raise _StopForward

    handle = output.register_forward_pre_hook(hook)
    try:
        head(hidden)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise NotImplementedError(f"{type(head).__name__} never calls its output layer")
    return captured[0]


@torch.no_grad()
def _search(
    states: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    valid: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """``max_i logits_ij`` over each row's valid positions, ``[B, V]`` fp32 (``-inf`` for a row with none).

    The valid positions of all rows are packed (padding and special tokens cost nothing) and their
    logits computed ``chunk_size x B`` positions at a time; each row's max is a contiguous reduction.
    """
    batch = states.shape[0]
    best = torch.full((batch, weight.shape[0]), float("-inf"), dtype=torch.float32, device=states.device)
    rows, columns = valid.nonzero(as_tuple=True)  # row-major: each row's positions are contiguous
    packed = states[rows, columns]
    step = max(1, chunk_size * batch)
    for start in range(0, packed.shape[0], step):
        logits = F.linear(packed[start : start + step], weight, bias).float()
        segment_rows, counts = torch.unique_consecutive(rows[start : start + step], return_counts=True)
        offset = 0
        for row, count in zip(segment_rows.tolist(), counts.tolist(), strict=True):
            torch.maximum(best[row], logits[offset : offset + count].amax(dim=0), out=best[row])
            offset += count
        del logits
    return best


def _selected_max(
    states: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    valid: torch.Tensor,
    indices: torch.Tensor,
) -> torch.Tensor:
    """``max_i logits[b, i, indices[b, j]]`` over valid positions, ``[B, k]``, in fp32 (autocast off)."""
    with torch.autocast(states.device.type, enabled=False):
        rows = F.embedding(indices, weight).float()  # [B, k, H]
        logits = torch.bmm(states.float(), rows.transpose(1, 2))  # [B, L, k]
        if bias is not None:
            logits = logits + bias.float()[indices].unsqueeze(1)
        return logits.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)


def splade_top_k(
    states: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    valid: torch.Tensor,
    k: int,
    excluded_ids: torch.Tensor | None = None,
    chunk_size: int = 32,
    recompute: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` SPLADE weights ``(values [B, k] fp32, indices [B, k])`` (see the module docstring).

    Args:
        states: the head's transformed hidden states ``[B, L, H]`` (:func:`head_transform`).
        weight / bias: the output layer (``[V, H]`` word embeddings when tied; ``[V]`` bias or None).
        valid: ``[B, L]`` positions that may be pooled (real tokens; special tokens and padding False).
        k: entries kept per row (``k >= V`` keeps every entry).
        excluded_ids: vocabulary ids whose weight is always zero (special tokens).
        chunk_size: positions per row and chunk of the search pass (temporary ``[chunk x B, V]`` fp32 logits).
        recompute: replay the select pass in the backward pass instead of keeping its ``[B, k, H]``
            gathered output rows.

    Exactly ``min(k, V)`` distinct indices per row; ties among equal weights are broken by
    ``torch.topk``, so a row never has more than ``k`` non-zeros. Values of entries whose weight is 0
    (no positive logit, excluded id, row without a valid position) are exactly 0 and carry no gradient.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    valid = valid.bool()
    best = _search(
        states.detach(), weight.detach(), None if bias is None else bias.detach(), valid, chunk_size
    )
    with torch.no_grad():
        weights = torch.log1p(torch.relu(best))
        if excluded_ids is not None and excluded_ids.numel():
            weights.index_fill_(1, excluded_ids.to(weights.device), 0.0)
        top, indices = weights.topk(min(k, weights.shape[1]), dim=1)
        active = top > 0
    if recompute and torch.is_grad_enabled() and (states.requires_grad or weight.requires_grad):
        maxima = checkpoint(_selected_max, states, weight, bias, valid, indices, use_reentrant=False)
    else:
        maxima = _selected_max(states, weight, bias, valid, indices)
    values = torch.log1p(torch.relu(maxima)).masked_fill(~active, 0.0)
    return values, indices


def sparse_to_dense(values: torch.Tensor, indices: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[B, V]`` vector with ``values`` at ``indices`` and zeros elsewhere."""
    out = values.new_zeros((values.shape[0], vocab_size))
    return out.scatter(1, indices, values)


def sparse_embedding_bag(values: torch.Tensor, indices: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``sum_j values[b, j] * table[indices[b, j]]`` -> ``[B, H]`` without a ``[B, k, H]`` tensor."""
    return F.embedding_bag(indices, table, per_sample_weights=values.to(table.dtype), mode="sum")
