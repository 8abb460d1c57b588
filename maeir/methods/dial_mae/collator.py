"""The Dial-MAE collator (docs/methods.md#dial-mae): truncate each side, add specials, pad, mask the exact ids.

Context: ``[CLS] u1 [SEP] u2 [SEP] ... un [SEP]`` keeping its LAST ``context_max_length`` tokens
(the oldest turns are dropped; [CLS] and the final [SEP] stay), masked at ``encoder_mask_rate``.
Response: ``[CLS] r [SEP]`` keeping its FIRST ``response_max_length`` tokens, masked at
``decoder_mask_rate``. Whole-word masks are drawn on the truncated, padded ids that the model reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ...data.collators import EncoderDecoderMaskingCollator, add_special_tokens
from ...data.dialogue import join_turns


def keep_last(ids: Sequence[int], budget: int) -> list[int]:
    """The last ``budget`` ids (left truncation)."""
    ids = list(ids)
    return ids[len(ids) - budget :] if len(ids) > budget else ids


def keep_first(ids: Sequence[int], budget: int) -> list[int]:
    """The first ``budget`` ids (right truncation)."""
    return list(ids)[:budget]


class DialMAECollator(EncoderDecoderMaskingCollator):
    """Batches for :class:`maeir.DialMAEForPretraining`.

    Features hold either token ids without special tokens, ``{"context_ids": u1 [SEP] ... un,
    "response_ids": r}`` (as made by :func:`maeir.methods.dial_mae.data.dialogue_pair_dataset`), or text,
    ``{"context": [turn, ...], "response": "..."}``.

    Args:
        tokenizer: the backbone's tokenizer.
        decoder_mask_rate: share of the response's words that are masked.
        context_max_length / response_max_length: tokens kept per side, specials included.
        masking: ``encoder_mask_rate`` (0.30), ``whole_word_mask``, ``mask_replace_prob`` /
            ``random_replace_prob`` (the encoder's 80/10/10), ``decoder_mask_replace_prob`` /
            ``decoder_random_replace_prob`` (the decoder's), ``pad_to_multiple_of``, ``seed``: see
            :class:`maeir.data.collators.EncoderDecoderMaskingCollator`.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        decoder_mask_rate: float = 0.75,
        context_max_length: int = 256,
        response_max_length: int = 64,
        **masking: Any,
    ) -> None:
        super().__init__(tokenizer, decoder_mask_rate=decoder_mask_rate, **masking)
        if tokenizer.sep_token_id is None:
            raise ValueError(f"{type(tokenizer).__name__} has no sep_token_id to join dialogue turns with")
        for name, value in (
            ("context_max_length", context_max_length),
            ("response_max_length", response_max_length),
        ):
            if value <= self._specials:
                raise ValueError(f"{name}={value} leaves no room beside {self._specials} special tokens")
        self.context_max_length = context_max_length
        self.response_max_length = response_max_length

    # -- building one side ----------------------------------------------------------------------
    def context_input_ids(self, context_ids: Sequence[int]) -> list[int]:
        """``[CLS] ... [SEP]`` holding the LAST tokens of ``context_ids`` that fit ``context_max_length``."""
        return add_special_tokens(
            keep_last(context_ids, self.context_max_length - self._specials), self.template
        )

    def response_input_ids(self, response_ids: Sequence[int]) -> list[int]:
        """``[CLS] ... [SEP]`` holding the FIRST tokens of ``response_ids`` that fit ``response_max_length``."""
        return add_special_tokens(
            keep_first(response_ids, self.response_max_length - self._specials), self.template
        )

    def _bodies(self, feature: dict[str, Any]) -> tuple[Sequence[int], Sequence[int]]:
        if "context_ids" in feature:
            return feature["context_ids"], feature["response_ids"]
        encode = lambda text: self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]  # noqa: E731
        turns = feature["context"]
        turns = [turns] if isinstance(turns, str) else turns
        return join_turns([encode(t) for t in turns], self.tokenizer.sep_token_id), encode(
            feature["response"]
        )

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        bodies = [self._bodies(f) for f in features]
        contexts = [self.context_input_ids(c) for c, _ in bodies]
        responses = [self.response_input_ids(r) for _, r in bodies]
        encoder = self.masked_inputs(
            *self.pad_ids(contexts), self.encoder_mask_rate, self.mask_replace_prob, self.random_replace_prob
        )
        decoder = self.masked_inputs(
            *self.pad_ids(responses),
            self.decoder_mask_rate,
            self.decoder_mask_replace_prob,
            self.decoder_random_replace_prob,
        )
        return {**encoder, **{f"decoder_{key}": value for key, value in decoder.items()}}
