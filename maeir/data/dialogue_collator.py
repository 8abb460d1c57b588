"""The Dial-MAE collator (SPEC "Dial-MAE"): truncate each side, add specials, pad, then mask the exact ids.

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

from .collators import MaskingCollator, pad_sequences
from .dialogue import join_turns
from .masking import mlm_labels


def keep_last(ids: Sequence[int], budget: int) -> list[int]:
    """The last ``budget`` ids (left truncation)."""
    ids = list(ids)
    return ids[len(ids) - budget :] if len(ids) > budget else ids


def keep_first(ids: Sequence[int], budget: int) -> list[int]:
    """The first ``budget`` ids (right truncation)."""
    return list(ids)[:budget]


def special_template(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence (``[CLS]`` / ``[SEP]`` for BERT).

    Read off the tokenizer's own post-processor by encoding a probe with and without special tokens,
    so BERT, RoBERTa (``<s> ... </s>``) and others work alike.
    """
    body = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(body) + 1):
        if full[start : start + len(body)] == body:
            return list(full[:start]), list(full[start + len(body) :])
    raise ValueError(f"{type(tokenizer).__name__}: cannot locate the text among its special tokens")


def add_special_tokens(ids: Sequence[int], template: tuple[list[int], list[int]]) -> list[int]:
    """``prefix + ids + suffix`` for a template from :func:`special_template`."""
    return [*template[0], *ids, *template[1]]


class DialMAECollator(MaskingCollator):
    """Batches for :class:`maeir.DialMAEForPretraining`.

    Features hold either token ids without special tokens, ``{"context_ids": u1 [SEP] ... un,
    "response_ids": r}`` (as made by :func:`maeir.data.dialogue.dialogue_pair_dataset`), or text,
    ``{"context": [turn, ...], "response": "..."}``.

    Args:
        tokenizer: the backbone's tokenizer.
        encoder_mask_rate / decoder_mask_rate: share of each side's words that are masked.
        whole_word_mask: whole words (True) or single sub-tokens.
        mask_replace_prob / random_replace_prob: 80/10/10 split of the encoder's chosen tokens.
        decoder_mask_replace_prob / decoder_random_replace_prob: the same for the decoder.
        context_max_length / response_max_length: tokens kept per side, specials included.
        pad_to_multiple_of / seed: see :class:`maeir.data.MaskingCollator`.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        encoder_mask_rate: float = 0.30,
        decoder_mask_rate: float = 0.75,
        whole_word_mask: bool = True,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        decoder_mask_replace_prob: float = 0.8,
        decoder_random_replace_prob: float = 0.1,
        context_max_length: int = 256,
        response_max_length: int = 64,
        pad_to_multiple_of: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(tokenizer, encoder_mask_rate, whole_word_mask, pad_to_multiple_of, seed)
        if tokenizer.sep_token_id is None:
            raise ValueError(f"{type(tokenizer).__name__} has no sep_token_id to join dialogue turns with")
        self.template = special_template(tokenizer)
        specials = len(self.template[0]) + len(self.template[1])
        for name, value in (
            ("context_max_length", context_max_length),
            ("response_max_length", response_max_length),
        ):
            if value <= specials:
                raise ValueError(f"{name}={value} leaves no room beside {specials} special tokens")
        self.encoder_mask_rate = encoder_mask_rate
        self.decoder_mask_rate = decoder_mask_rate
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob
        self.decoder_mask_replace_prob = decoder_mask_replace_prob
        self.decoder_random_replace_prob = decoder_random_replace_prob
        self.context_max_length = context_max_length
        self.response_max_length = response_max_length
        self._specials = specials

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

    def _side(self, sequences, rate, mask_prob, random_prob, prefix: str) -> dict[str, torch.Tensor]:
        ids, attention = pad_sequences(sequences, self.tokenizer.pad_token_id, self.pad_to_multiple_of)
        mask = self.choose(ids, attention, rate=rate)
        return {
            f"{prefix}input_ids": self.corrupt(ids, mask, mask_prob, random_prob),
            f"{prefix}attention_mask": attention,
            f"{prefix}labels": mlm_labels(ids, mask),
        }

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        bodies = [self._bodies(f) for f in features]
        contexts = [self.context_input_ids(c) for c, _ in bodies]
        responses = [self.response_input_ids(r) for _, r in bodies]
        return {
            **self._side(
                contexts, self.encoder_mask_rate, self.mask_replace_prob, self.random_replace_prob, ""
            ),
            **self._side(
                responses,
                self.decoder_mask_rate,
                self.decoder_mask_replace_prob,
                self.decoder_random_replace_prob,
                "decoder_",
            ),
        }
