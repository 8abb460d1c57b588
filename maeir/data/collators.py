"""Data collators for pre-training: pad, then mask the exact padded ids (docs/methods.md#shared-ground).

Each collator takes features with ``input_ids`` (already tokenised and truncated, special tokens
included; optional ``word_ids`` with -1/None for special tokens) and returns the keys that the
matching model's ``forward`` takes.

Randomness comes from the collator's own ``torch.Generator``, checkpointed and restored on resume:
see :mod:`maeir.data.generator_state`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from .generator_state import CheckpointedRandomness
from .masking import WordBoundaries, mlm_labels, replace_masked, whole_word_mask


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


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_value: int, pad_to_multiple_of: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad lists of ids into ``(ids [B, L], attention_mask [B, L])``."""
    length = max((len(s) for s in sequences), default=0)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.full((len(sequences), length), pad_value, dtype=torch.long)
    attention = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.as_tensor(list(sequence), dtype=torch.long)
        attention[row, : len(sequence)] = 1
    return ids, attention


class MaskingCollator(CheckpointedRandomness):
    """Shared part of the masking collators: padding and whole-word selection.

    Args:
        tokenizer: the backbone's tokenizer (its vocabulary decides word boundaries).
        mask_rate: share of words masked per sequence.
        whole_word_mask: mask whole words (True) or single sub-tokens.
        pad_to_multiple_of: pad lengths up to a multiple of this (8 helps tensor cores).
        seed: use a private generator with this seed instead of torch's global one.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        mask_rate: float = 0.15,
        whole_word_mask: bool = True,
        pad_to_multiple_of: int | None = None,
        seed: int | None = None,
    ) -> None:
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError(
                f"{type(tokenizer).__name__} needs a mask token and a pad token for masked-LM training"
            )
        self.tokenizer = tokenizer
        self.mask_rate = mask_rate
        self.whole_word_mask = whole_word_mask
        self.pad_to_multiple_of = pad_to_multiple_of
        self.boundaries = WordBoundaries.from_tokenizer(tokenizer)
        self.init_generator(seed)

    @classmethod
    def from_model_config(cls, tokenizer: PreTrainedTokenizerBase, config: Any, **kwargs) -> MaskingCollator:
        """A collator whose fields are read from the model config's fields of the same name.

        The fields are the parameters of ``cls.__init__`` and, where it passes ``**kwargs`` on to its
        base class, those of the base class's ``__init__`` (and so on up).
        """
        names = _init_parameter_names(cls) - {"tokenizer"}
        fields = {
            name: getattr(config, name) for name in names if hasattr(config, name) and name not in kwargs
        }
        return cls(tokenizer, **fields, **kwargs)

    def pad(
        self, features: Sequence[dict[str, Any]], key: str = "input_ids"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pad_ids([f[key] for f in features])

    def pad_ids(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids [B, L], attention_mask [B, L])``: ``sequences`` right-padded with the tokenizer's pad id."""
        return pad_sequences(sequences, self.tokenizer.pad_token_id, self.pad_to_multiple_of)

    def word_ids(self, features: Sequence[dict[str, Any]], length: int) -> torch.Tensor | None:
        if not features or "word_ids" not in features[0]:
            return None
        out = torch.full((len(features), length), -1, dtype=torch.long)
        for row, feature in enumerate(features):
            values = [-1 if w is None else w for w in feature["word_ids"]]
            out[row, : len(values)] = torch.as_tensor(values, dtype=torch.long)
        return out

    def choose(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rate: float | None = None, word_ids=None
    ):
        """The positions to mask in an already padded batch."""
        return whole_word_mask(
            input_ids,
            attention_mask,
            self.boundaries,
            self.mask_rate if rate is None else rate,
            word_ids=word_ids,
            generator=self.generator,
            whole_words=self.whole_word_mask,
        )

    def corrupt(self, input_ids: torch.Tensor, mask: torch.Tensor, mask_prob: float, random_prob: float):
        """80/10/10-style corruption of the chosen positions."""
        return replace_masked(
            input_ids,
            mask,
            self.tokenizer.mask_token_id,
            self.boundaries,
            mask_prob,
            random_prob,
            self.generator,
        )

    def masked_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rate: float | None,
        mask_prob: float,
        random_prob: float,
        word_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One masked-LM input of a padded batch: choose (:meth:`choose`), corrupt (:meth:`corrupt`), label.

        Returns ``input_ids`` (corrupted), ``attention_mask`` and ``labels`` (original ids at the
        chosen positions, -100 elsewhere).
        """
        mask = self.choose(input_ids, attention_mask, rate, word_ids=word_ids)
        return {
            "input_ids": self.corrupt(input_ids, mask, mask_prob, random_prob),
            "attention_mask": attention_mask,
            "labels": mlm_labels(input_ids, mask),
        }


def _init_parameter_names(cls: type) -> set[str]:
    """Named parameters of ``cls.__init__``, following ``**kwargs`` up the base classes' ``__init__``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        names |= {p.name for p in parameters if p.kind not in variadic} - {"self"}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return names


class EncoderDecoderMaskingCollator(MaskingCollator):
    """Shared part of the collators that mask an encoder input and a decoder input, each at its own rate.

    Dial-MAE (context -> response) and CoT-MAE v2 (anchor -> context span): each side is one sequence
    in the tokenizer's own special tokens (:func:`special_template`), whole-word masked at
    ``encoder_mask_rate`` / ``decoder_mask_rate`` with its own 80/10/10 split. Subclasses pass these
    arguments on (``**masking``) and set their own ``decoder_mask_rate`` default.

    Args:
        tokenizer: the backbone's tokenizer.
        decoder_mask_rate: share of the decoder side's words that are masked.
        encoder_mask_rate: share of the encoder side's words that are masked.
        whole_word_mask: whole words (True) or single sub-tokens.
        mask_replace_prob / random_replace_prob: 80/10/10 split of the encoder's chosen tokens.
        decoder_mask_replace_prob / decoder_random_replace_prob: the same for the decoder.
        pad_to_multiple_of / seed: see :class:`MaskingCollator`.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        decoder_mask_rate: float,
        encoder_mask_rate: float = 0.30,
        whole_word_mask: bool = True,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        decoder_mask_replace_prob: float = 0.8,
        decoder_random_replace_prob: float = 0.1,
        pad_to_multiple_of: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(tokenizer, encoder_mask_rate, whole_word_mask, pad_to_multiple_of, seed)
        self.encoder_mask_rate = encoder_mask_rate
        self.decoder_mask_rate = decoder_mask_rate
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob
        self.decoder_mask_replace_prob = decoder_mask_replace_prob
        self.decoder_random_replace_prob = decoder_random_replace_prob
        self.template = special_template(tokenizer)
        self._specials = len(self.template[0]) + len(self.template[1])
