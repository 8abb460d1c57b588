"""Bi-encoder pooling: dense (``cls`` / ``mean`` / ``max``) and SPLADE sparse vectors, top-k pruning, and the
lexical start of a masked-LM head that a checkpoint did not have (docs/methods.md#cot-mae-v2).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from ..modeling.backbone import mlm_head


def pool_dense(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """``[B, L, H] -> [B, H]``: first position (``cls``), masked ``mean`` or masked ``max``."""
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    raise ValueError(f"unknown pooling {mode!r}")


def splade_pool(
    head: nn.Module,
    hidden: torch.Tensor,
    valid: torch.Tensor,
    chunk_size: int = 32,
    excluded_ids: torch.Tensor | None = None,
    recompute: bool = False,
) -> torch.Tensor:
    """SPLADE max pooling: ``w_j = max_i log(1 + relu(logits_ij))`` over positions with ``valid`` True.

    Computed as ``log(1 + relu(max_i logits_ij))``: the same value and the same gradient, since
    ``log1p(relu(.))`` is non-decreasing, with the element-wise work on ``[B, V]`` only. Logits are
    computed ``chunk_size`` positions at a time (in fp32 for the max; chunks of padding only are
    skipped), so the largest intermediate is ``[B, chunk_size, V]``, and it is not kept for the
    backward pass (a max over a dimension keeps only its indices). Vocabulary entries in
    ``excluded_ids`` are zero; rows without any valid position are all zero. ``recompute`` is
    accepted for compatibility and has no effect (there is no large intermediate left to recompute).
    """
    length = hidden.shape[1]
    valid = valid.bool()
    out = None
    for start in range(0, length, chunk_size):
        mask = valid[:, start : start + chunk_size]
        if not mask.any():
            continue
        logits = head(hidden[:, start : start + chunk_size]).float()
        block = logits.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
        out = block if out is None else torch.maximum(out, block)
    if out is None:  # nothing valid anywhere
        vocab = head(hidden[:, :1]).shape[-1]
        return hidden.new_zeros((hidden.shape[0], vocab), dtype=torch.float32) + hidden.sum() * 0.0
    out = torch.log1p(torch.relu(out))
    if excluded_ids is not None and excluded_ids.numel():
        out = out.index_fill(1, excluded_ids.to(out.device), 0.0)
    return out


@torch.no_grad()
def init_lexical_mlm_head(masked_lm: PreTrainedModel, output_bias: float = -6.0) -> None:
    """Initialise a masked-LM head that the checkpoint did not have so that SPLADE starts lexical.

    A fresh random head maps every position to noise over the whole vocabulary (all ~30k entries
    active). Instead, every square ``hidden -> hidden`` projection of the head is set to the identity
    (so logits are ``LayerNorm(act(h)) . word_embeddings``: the final hidden states of a BERT-like
    encoder still point at their own and related tokens) and the output bias to ``output_bias``, so
    only strong matches are positive. With all-MiniLM-L6-v2 and -6.0 a 64-word passage starts with
    about 100 active entries, mostly its own and related words.
    """
    head = mlm_head(masked_lm)
    output = masked_lm.get_output_embeddings()
    for module in head.modules():
        if (
            isinstance(module, nn.Linear)
            and module is not output
            and module.in_features == module.out_features
        ):
            module.weight.copy_(torch.eye(module.in_features, dtype=module.weight.dtype))
            if module.bias is not None:
                module.bias.zero_()
    if output.bias is not None:
        output.bias.fill_(output_bias)


def sparse_top_k(vectors: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row, zero the rest (``k`` None/0 or >= V: unchanged)."""
    if not k or k >= vectors.shape[-1]:
        return vectors
    values, indices = vectors.topk(k, dim=-1)
    return torch.zeros_like(vectors).scatter(-1, indices, values)
