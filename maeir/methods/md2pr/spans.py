"""Teacher inputs built from the student's own tokens, and the token spans both share (docs/methods.md#md2pr).

The word-level terms compare the student's token states of ``q`` (query tower) and ``p`` (passage
tower) with the teacher's states / attention on the ``q`` and ``p`` spans of ``[CLS] q [SEP] p [SEP]``.
For that comparison to be token-exact, the teacher input is assembled from the very token ids the
student encodes (same tokenizer): the content tokens of the student's query (without specials and
without the recipe's prefix) and of its passage, put into the tokenizer's own pair template. For
BERT-like tokenizers the template is ``[CLS] q [SEP] p [SEP]``: the query sits at ``1 .. |q|`` and
the passage starts at ``|q| + 2``; other templates (RoBERTa's ``<s> q </s></s> p </s>``) are read
from the tokenizer, never hard-coded.

Public API: :class:`PairTemplate`, :func:`single_template`, :func:`content_positions`, :func:`strip_prefix`,
:func:`span_positions`, :func:`gather_span`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PairTemplate:
    """The special tokens (and token types) a tokenizer puts around a pair ``(a, b)``.

    ``ids = before + a + between + b + after``; ``types_*`` are the token type ids of each region
    (None when the tokenizer makes none).
    """

    before: tuple[int, ...]
    between: tuple[int, ...]
    after: tuple[int, ...]
    types_before: tuple[int, ...] | None = None
    type_a: int = 0
    types_between: tuple[int, ...] | None = None
    type_b: int = 1
    types_after: tuple[int, ...] | None = None

    @property
    def num_special(self) -> int:
        return len(self.before) + len(self.between) + len(self.after)

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> PairTemplate:
        """Read the pair template by encoding two probe texts and locating their tokens."""
        probe_a, probe_b = "first", "second"
        enc = tokenizer(probe_a, probe_b, add_special_tokens=True, return_token_type_ids=True)
        ids = list(enc["input_ids"])
        a = tokenizer(probe_a, add_special_tokens=False)["input_ids"]
        b = tokenizer(probe_b, add_special_tokens=False)["input_ids"]
        if not a or not b:
            raise ValueError(
                f"cannot read the pair template of {type(tokenizer).__name__}: empty probe tokens"
            )
        start_a = _find(ids, a, 0)
        start_b = _find(ids, b, start_a + len(a)) if start_a >= 0 else -1
        if start_a < 0 or start_b < 0:
            raise ValueError(f"cannot read the pair template of {type(tokenizer).__name__}: {ids}")
        end_a, end_b = start_a + len(a), start_b + len(b)
        types = enc.get("token_type_ids")
        regions = {}
        if types is not None:
            types = list(types)
            regions = dict(
                types_before=tuple(types[:start_a]), type_a=types[start_a] if a else 0,
                types_between=tuple(types[end_a:start_b]), type_b=types[start_b] if b else 1,
                types_after=tuple(types[end_b:]),
            )  # fmt: skip
        return cls(tuple(ids[:start_a]), tuple(ids[end_a:start_b]), tuple(ids[end_b:]), **regions)

    def build(self, a: Sequence[int], b: Sequence[int]) -> tuple[list[int], list[int] | None, int, int]:
        """``(ids, token_type_ids or None, start of a, start of b)`` for the pair ``(a, b)``."""
        ids = [*self.before, *a, *self.between, *b, *self.after]
        start_a = len(self.before)
        start_b = start_a + len(a) + len(self.between)
        types = None
        if self.types_before is not None:
            types = [
                *self.types_before, *([self.type_a] * len(a)), *self.types_between,
                *([self.type_b] * len(b)), *self.types_after,
            ]  # fmt: skip
        return ids, types, start_a, start_b


def _find(haystack: Sequence[int], needle: Sequence[int], start: int) -> int:
    n = len(needle)
    for i in range(start, len(haystack) - n + 1):
        if list(haystack[i : i + n]) == list(needle):
            return i
    return -1


def single_template(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """``(specials before, specials after)`` the tokenizer puts around one sequence (BERT: ``(1, 1)``)."""
    probe = "first"
    with_specials = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    start = _find(with_specials, plain, 0) if plain else -1
    if start < 0:
        raise ValueError(f"cannot read the single-sequence template of {type(tokenizer).__name__}")
    return start, len(with_specials) - start - len(plain)


def content_positions(attention_mask: torch.Tensor, before: int, after: int) -> list[list[int]]:
    """Per row, the positions of the text's own tokens: the attended positions minus the template's specials.

    Positions, not token ids, decide: an ``[UNK]`` (or a literal ``[SEP]``) inside the text is content.
    """
    out = []
    for row in attention_mask.bool():
        real = row.nonzero().flatten().tolist()
        out.append(real[before : len(real) - after] if len(real) >= before + after else [])
    return out


def strip_prefix(content: Sequence[int], prefix: Sequence[int]) -> int:
    """How many leading tokens of ``content`` belong to the recipe's prefix.

    The whole prefix when ``content`` starts with it; when left truncation cut into the prefix, the
    longest tail of the prefix that ``content`` starts with; 0 without a prefix.
    """
    prefix = list(prefix)
    for k in range(len(prefix), 0, -1):
        if list(content[:k]) == prefix[-k:]:
            return k
    return 0


def span_positions(
    starts: torch.Tensor, lengths: torch.Tensor, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positions [N, W], valid [N, W])``: ``starts[n] + k`` for ``k < lengths[n]`` (W = max length).

    Padding entries repeat the span's start (an in-range position) and are marked invalid.
    """
    if width is None:
        width = max(1, int(lengths.max().item()) if lengths.numel() else 1)
    offsets = torch.arange(width, device=starts.device)
    valid = offsets.unsqueeze(0) < lengths.unsqueeze(1)
    positions = torch.where(valid, starts.unsqueeze(1) + offsets.unsqueeze(0), starts.unsqueeze(1))
    return positions, valid


def gather_span(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``states [N, L, H]`` at ``positions [N, W]`` -> ``[N, W, H]`` (keeps the graph)."""
    index = positions.unsqueeze(-1).expand(-1, -1, states.shape[-1])
    return states.gather(1, index)
