"""Response-selection scoring with a bi-encoder (docs/methods.md#dial-mae): every group's candidates scored
against its context, contexts through the query tower and candidates through the passage tower."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..data.dialogue import ResponseSelectionGroup, context_text
from .modeling_bi_encoder import BiEncoderModel
from .tokenization_bi_encoder import tokenize


@torch.inference_mode()
def encode_texts(
    model: BiEncoderModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    side: str,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """``{"dense"|"sparse": [N, D]}`` of ``texts`` in their order; batches are sorted by length, none dropped."""
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(order), batch_size):
        batch = [texts[i] for i in order[start : start + batch_size]]
        encoded = tokenize(tokenizer, model.config, batch, side)
        rep = model.encode(encoded["input_ids"].to(device), encoded["attention_mask"].to(device), side=side)
        for key, value in rep.items():
            parts.setdefault(key, []).append(value.float().cpu())
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return {key: torch.cat(chunks)[inverse] for key, chunks in parts.items()}


def score_groups(
    model: BiEncoderModel,
    tokenizer: PreTrainedTokenizerBase,
    groups: Sequence[ResponseSelectionGroup],
    batch_size: int = 64,
    groups_per_chunk: int = 2048,
) -> list[np.ndarray]:
    """The candidates' scores of each group (context tower vs response tower), in the groups' order.

    Groups are processed ``groups_per_chunk`` at a time (memory stays bounded on large test sets);
    within a chunk every distinct candidate text is encoded once.
    """
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        for begin in range(0, len(groups), groups_per_chunk):
            chunk = groups[begin : begin + groups_per_chunk]
            contexts = encode_texts(
                model, tokenizer, [context_text(g.turns, tokenizer) for g in chunk], "query", batch_size
            )
            index: dict[str, int] = {}
            for group in chunk:
                for candidate in group.candidates:
                    index.setdefault(candidate, len(index))
            candidates = encode_texts(model, tokenizer, list(index), "passage", batch_size)
            for row, group in enumerate(chunk):
                rows = torch.tensor([index[c] for c in group.candidates], dtype=torch.long)
                query = {key: value[row : row + 1] for key, value in contexts.items()}
                passage = {key: value[rows] for key, value in candidates.items()}
                out.append(model.score(query, passage)[0].numpy().astype(np.float64))
    finally:
        model.train(was_training)
    return out
