"""Collator for contrastive bi-encoder training: query + 1 positive + (G - 1) given negatives per example.

Public API: :class:`ContrastiveCollator`, :func:`passage_text`.

Each feature is a mapping with

- ``query``: the query (context) text;
- ``positives``: a non-empty list of passages; one is drawn per example (``positive_sampling``);
- ``negatives`` (optional): a list of passages; ``group_size - 1`` are drawn per example.

A passage is a string or a mapping with ``text`` and an optional ``title`` (the Tevatron layout,
see :mod:`maeir.data.retrieval`), formatted with the model's recipe (prefix, title, max length,
truncation side; :func:`maeir.retrieval.tokenization_bi_encoder.tokenize`).

The batch holds ``query_input_ids / query_attention_mask [B, Lq]`` and ``passage_input_ids /
passage_attention_mask [B * G, Lp]`` in groups (positive first), plus ``passage_mask [B * G]``: an
example with fewer negatives than ``group_size - 1`` repeats the ones it has (drawn with
replacement), and one with none gets padding slots marked False (left out of every softmax by
:func:`maeir.losses.info_nce`). Every draw comes from the collator's own generator, which checkpoints
save and resumes restore (:mod:`maeir.data.generator_state`): a resumed run draws the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ..retrieval.configuration_bi_encoder import BiEncoderConfig
from ..retrieval.tokenization_bi_encoder import format_passage, tokenize
from .generator_state import CheckpointedRandomness

SAMPLING = ("random", "first")


def passage_text(config: BiEncoderConfig, passage: str | Mapping[str, Any]) -> str:
    """The text of one passage (a string, or ``{"title", "text"}``) under the recipe."""
    if isinstance(passage, str):
        return passage
    return format_passage(config, str(passage.get("text") or ""), passage.get("title") or None)


class ContrastiveCollator(CheckpointedRandomness):
    """Tokenise and group query / positive / negatives for :class:`maeir.trainers.ContrastiveTrainer`.

    Args:
        tokenizer: the bi-encoder's tokenizer.
        config: the bi-encoder's config (its recipe decides prefixes, lengths and truncation sides).
        group_size: passages per query: 1 positive + ``group_size - 1`` given negatives (1: in-batch
            negatives only).
        positive_sampling / negative_sampling: ``"random"`` (a fresh draw at every step, Tevatron's
            default) or ``"first"`` (the first positive; the first negatives in file order).
        pad_to_multiple_of: pad lengths to a multiple of this.
        seed: seed of the collator's generator (default: drawn from torch's global generator).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        config: BiEncoderConfig,
        group_size: int = 8,
        positive_sampling: str = "random",
        negative_sampling: str = "random",
        pad_to_multiple_of: int | None = None,
        seed: int | None = None,
    ) -> None:
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        for name, value in (
            ("positive_sampling", positive_sampling),
            ("negative_sampling", negative_sampling),
        ):
            if value not in SAMPLING:
                raise ValueError(f"{name} must be one of {SAMPLING}, got {value!r}")
        self.tokenizer = tokenizer
        self.config = config
        self.group_size = group_size
        self.positive_sampling = positive_sampling
        self.negative_sampling = negative_sampling
        self.pad_to_multiple_of = pad_to_multiple_of
        self.init_generator(seed)

    def _choice(self, count: int, k: int, replace: bool) -> list[int]:
        if replace:
            return torch.randint(count, (k,), generator=self.generator).tolist()
        return torch.randperm(count, generator=self.generator)[:k].tolist()

    def select_passages(self, feature: Mapping[str, Any]) -> tuple[list[Any], list[bool]]:
        """The ``group_size`` passages (as given; None for padding slots) of one example and their flags."""
        positives = list(feature.get("positives") or [])
        if not positives:
            raise ValueError(
                f"example {feature.get('query_id', feature.get('query'))!r} has no positive passage"
            )
        if self.positive_sampling == "first" or len(positives) == 1:
            positive = positives[0]
        else:
            positive = positives[self._choice(len(positives), 1, replace=False)[0]]
        chosen: list[Any] = [positive]
        valid = [True]
        wanted = self.group_size - 1
        negatives = list(feature.get("negatives") or [])
        if wanted:
            if not negatives:
                chosen += [None] * wanted
                valid += [False] * wanted
            else:
                if self.negative_sampling == "first":
                    picks = [k % len(negatives) for k in range(wanted)]
                elif len(negatives) >= wanted:
                    picks = self._choice(len(negatives), wanted, replace=False)
                else:
                    picks = list(range(len(negatives))) + self._choice(
                        len(negatives), wanted - len(negatives), replace=True
                    )
                chosen += [negatives[k] for k in picks]
                valid += [True] * wanted
        return chosen, valid

    def passage_texts(self, passages: Sequence[Any]) -> list[str]:
        """The texts of selected passages under the recipe (``""`` for padding slots)."""
        return ["" if p is None else passage_text(self.config, p) for p in passages]

    def select(self, feature: Mapping[str, Any]) -> tuple[list[str], list[bool]]:
        """The ``group_size`` passage texts of one example and their validity flags."""
        passages, valid = self.select_passages(feature)
        return self.passage_texts(passages), valid

    def student_batch(
        self, queries: Sequence[str], passages: Sequence[str], valid: Sequence[bool]
    ) -> dict[str, torch.Tensor]:
        """The bi-encoder's inputs: queries and passage texts tokenised with the recipe, and ``passage_mask``."""
        multiple = self.pad_to_multiple_of
        query = tokenize(self.tokenizer, self.config, list(queries), "query", pad_to_multiple_of=multiple)
        passage = tokenize(
            self.tokenizer, self.config, list(passages), "passage", pad_to_multiple_of=multiple
        )
        return {
            "query_input_ids": query["input_ids"],
            "query_attention_mask": query["attention_mask"],
            "passage_input_ids": passage["input_ids"],
            "passage_attention_mask": passage["attention_mask"],
            "passage_mask": torch.tensor(valid, dtype=torch.bool),
        }

    def collate(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        queries, passages, valid = [], [], []
        for feature in features:
            queries.append(str(feature["query"]))
            texts, flags = self.select(feature)
            passages += texts
            valid += flags
        return self.student_batch(queries, passages, valid)
