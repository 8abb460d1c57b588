"""MAE-LM's collator: masked tokens removed from the encoder input (docs/methods.md#mae-lm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...data.collators import MaskingCollator
from ...data.masking import mlm_labels, remove_masked_tokens


class MAELMCollator(MaskingCollator):
    """Batches for :class:`maeir.MAELMForMaskedLM`: masked tokens removed from the encoder input.

    Returns ``encoder_input_ids`` / ``encoder_position_ids`` / ``encoder_attention_mask`` (the kept
    tokens, left-packed, with their original positions), the full-length ``attention_mask`` and
    ``labels`` (original ids at the masked positions, -100 elsewhere). No 80/10/10: masked tokens
    are removed, never replaced (docs/methods.md#mae-lm).
    """

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self.pad(features)
        mask = self.choose(input_ids, attention_mask, word_ids=self.word_ids(features, input_ids.shape[1]))
        kept_ids, kept_positions, kept_attention = remove_masked_tokens(input_ids, attention_mask, mask)
        return {
            "encoder_input_ids": kept_ids,
            "encoder_position_ids": kept_positions,
            "encoder_attention_mask": kept_attention,
            "attention_mask": attention_mask,
            "labels": mlm_labels(input_ids, mask),
        }
