"""Text → ids for a bi-encoder, following its encoding recipe (:class:`~maeir.retrieval.configuration_bi_encoder.BiEncoderConfig`).

Each side (query / passage) has its own prefix, max length and truncation side; a passage's title goes
in front of its text when the recipe includes titles. :func:`side_tokenizer` is a copy of the tokenizer
set up for one side (what the plain tower checkpoints are saved with).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

from transformers import BatchEncoding, PreTrainedTokenizerBase

from .configuration_bi_encoder import BiEncoderConfig

SIDES = ("query", "passage")


def format_passage(config: BiEncoderConfig, text: str, title: str | None = None) -> str:
    """``title + " " + text`` when the recipe includes titles and there is one, else ``text``."""
    if title and config.include_title:
        return f"{title} {text}"
    return text


@contextlib.contextmanager
def _truncation_side(tokenizer: PreTrainedTokenizerBase, side: str) -> Iterator[None]:
    previous = tokenizer.truncation_side
    tokenizer.truncation_side = side
    try:
        yield
    finally:
        tokenizer.truncation_side = previous


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    config: BiEncoderConfig,
    texts: Sequence[str],
    side: str,
    padding: bool | str = True,
    pad_to_multiple_of: int | None = None,
    return_tensors: str | None = "pt",
) -> BatchEncoding:
    """Tokenise ``texts`` as queries or passages: prefix, max length and truncation side of the recipe."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    prefix = config.query_prefix if side == "query" else config.passage_prefix
    max_length = config.query_max_length if side == "query" else config.passage_max_length
    truncation_side = config.query_truncation_side if side == "query" else config.passage_truncation_side
    texts = [prefix + text for text in texts] if prefix else list(texts)
    with _truncation_side(tokenizer, truncation_side):
        return tokenizer(
            texts,
            max_length=max_length,
            truncation=True,
            padding=padding,
            pad_to_multiple_of=pad_to_multiple_of,
            return_tensors=return_tensors,
            return_token_type_ids=False,
        )


def side_max_length(config: BiEncoderConfig, side: str) -> int:
    return config.query_max_length if side == "query" else config.passage_max_length


def side_tokenizer(
    tokenizer: PreTrainedTokenizerBase, config: BiEncoderConfig, side: str
) -> PreTrainedTokenizerBase:
    copied = copy.deepcopy(tokenizer)
    copied.truncation_side = (
        config.query_truncation_side if side == "query" else config.passage_truncation_side
    )
    copied.model_max_length = side_max_length(config, side)
    return copied
