"""The MLM baseline's collator: BERT-style corrupted ids and labels (docs/methods.md#shared-ground)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...data.collators import MaskingCollator


class MLMCollator(MaskingCollator):
    """Batches for :class:`maeir.MaskedLMForPretraining`: BERT-style corrupted ids and labels.

    Args:
        mask_replace_prob / random_replace_prob: BERT's 80/10/10 split of the chosen tokens.
        (other arguments: see :class:`MaskingCollator`)
    """

    def __init__(self, tokenizer, mask_rate=0.15, whole_word_mask=True, mask_replace_prob=0.8,
                 random_replace_prob=0.1, pad_to_multiple_of=None, seed=None) -> None:  # fmt: skip
        super().__init__(tokenizer, mask_rate, whole_word_mask, pad_to_multiple_of, seed)
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self.pad(features)
        word_ids = self.word_ids(features, input_ids.shape[1])
        return self.masked_inputs(
            input_ids, attention_mask, None, self.mask_replace_prob, self.random_replace_prob, word_ids
        )
