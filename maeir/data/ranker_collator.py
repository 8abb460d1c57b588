"""Cross-encoder ranker collator: one positive + ``G - 1`` negatives per query (docs/methods.md#md2pr).

Features are the training records of :mod:`maeir.data.retrieval` (``query``, ``positives``,
``negatives``), the same as the bi-encoder's; sampling (a fresh positive and fresh negatives at every
step, or the first ones) is :class:`~maeir.data.retrieval_collator.ContrastiveCollator`'s. Each
(query, passage) pair becomes ``[CLS] q [SEP] p [SEP]`` under the ranker's recipe
(:func:`maeir.retrieval.modeling_cross_encoder.tokenize_pairs`).

The batch holds ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) ``[B * G, L]`` in groups,
positive first, and ``group_valid [B, G]`` (False for padding slots of a query without negatives;
they take part in no softmax).

Public API: :class:`RankerCollator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ..retrieval.modeling_cross_encoder import RankerRecipe, tokenize_pairs
from .retrieval_collator import ContrastiveCollator


class RankerCollator(ContrastiveCollator):
    """Tokenise groups of (query, passage) pairs for :class:`maeir.trainers.RankerTrainer`.

    Args:
        tokenizer: the ranker's tokenizer.
        recipe: the ranker's :class:`RankerRecipe` (max length, titles).
        group_size: pairs per query: 1 positive + ``group_size - 1`` negatives (at least 2).
        sampling: ``positive_sampling``, ``negative_sampling``, ``pad_to_multiple_of``, ``seed``: as in
            :class:`~maeir.data.retrieval_collator.ContrastiveCollator`.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, recipe: RankerRecipe, group_size: int = 8, **sampling: Any
    ) -> None:
        if group_size < 2:
            raise ValueError(
                f"a ranker group needs a positive and at least one negative: group_size >= 2, got {group_size}"
            )
        # The base class formats passages with ``config.include_title``: the recipe has that field.
        super().__init__(tokenizer, recipe, group_size=group_size, **sampling)
        self.recipe = recipe

    def collate(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        queries, passages, valid = [], [], []
        for feature in features:
            texts, flags = self.select(feature)
            queries += [str(feature["query"])] * len(texts)
            passages += texts
            valid.append(flags)
        batch = tokenize_pairs(
            self.tokenizer, self.recipe, queries, passages, padding=False, return_tensors=None
        )
        padded = self.tokenizer.pad(
            dict(batch), pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
        )
        out = {k: v for k, v in padded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        out["group_valid"] = torch.tensor(valid, dtype=torch.bool)
        return out
