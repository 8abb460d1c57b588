"""Dialogue data (docs/methods.md#dial-mae): response-selection files and dialogue sessions.

**Response-selection files** (Ubuntu v1, E-commerce, Douban): UTF-8 lines
``label \\t turn1 \\t ... \\t turnN \\t response`` with ``label`` 0 or 1. Consecutive lines that share
the same turns form one candidate *group* (one context, its candidate responses). With
``group_size`` the file is instead cut into blocks of that many lines, and every line of a block
must repeat the block's context (Ubuntu/E-commerce test files: 10 lines per context). Every
malformed line raises :class:`~maeir.errors.CorpusFormatError` naming the file, the 1-based line and
the field: too few tab-separated fields, a label that is not 0/1, a line that disagrees with its
group's context, an incomplete last group, invalid UTF-8.

**Dialogue sessions** for post-training: the positive lines of such a file (turns + the true
response), or a JSON-lines file of ``{"turns": [...]}`` records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ..errors import CorpusFormatError
from ..io_utils import atomic_write_text


@dataclass
class ResponseSelectionGroup:
    """One context with its candidate responses.

    Attributes:
        context_id: the group's id (its 0-based ordinal in the file, as a string).
        turns: the context's turns, oldest first.
        candidates: candidate responses, in file order.
        labels: 1 for a true response, 0 for a negative, one per candidate.
        line: the 1-based line of the group's first candidate.
        lines: the 1-based line of each candidate.
    """

    context_id: str
    turns: list[str]
    candidates: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    line: int = 0
    lines: list[int] = field(default_factory=list)

    @property
    def has_positive(self) -> bool:
        return any(self.labels)

    @property
    def positives(self) -> list[str]:
        return [c for c, y in zip(self.candidates, self.labels) if y]

    @property
    def negatives(self) -> list[str]:
        return [c for c, y in zip(self.candidates, self.labels) if not y]


def clean_text(text: str) -> str:
    """One line of text: tabs, newlines and runs of whitespace become one space."""
    return " ".join(text.split())


def _parse_line(raw: str, path: str, number: int) -> tuple[int, list[str], str]:
    text = raw.rstrip("\n").rstrip("\r")
    fields = text.split("\t")
    if len(fields) < 3:
        raise CorpusFormatError(
            path,
            number,
            f"expected 'label<TAB>turn ...<TAB>response' (at least 3 tab-separated fields), "
            f"got {len(fields)}: {text[:80]!r}",
            field="line",
        )
    label = fields[0].strip()
    if label not in ("0", "1"):
        raise CorpusFormatError(path, number, f"label must be 0 or 1, got {label[:20]!r}", field="label")
    # The authors drop empty utterances of the context; an empty response is kept as given.
    turns = [t.strip() for t in fields[1:-1] if t.strip()]
    if not turns:
        raise CorpusFormatError(path, number, "the context has no non-empty turn", field="context")
    return int(label), turns, fields[-1].strip()


def _lines(path: str) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as handle:
        for number, data in enumerate(handle, start=1):
            try:
                yield number, data.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CorpusFormatError(path, number, f"not valid UTF-8 ({err.reason})") from None


def iter_response_selection(
    path: str | os.PathLike, group_size: int | None = None
) -> Iterator[ResponseSelectionGroup]:
    """Stream the candidate groups of a response-selection file (see the module docstring).

    Blank lines are skipped. ``group_size=None`` groups consecutive lines with the same context.
    """
    path = os.fspath(path)
    if group_size is not None and group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    group: ResponseSelectionGroup | None = None
    ordinal = 0
    for number, raw in _lines(path):
        if number == 1 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if not raw.strip():
            continue
        label, turns, response = _parse_line(raw, path, number)
        starts_new = group is None or (
            len(group.candidates) >= group_size if group_size is not None else turns != group.turns
        )
        if not starts_new and turns != group.turns:
            raise CorpusFormatError(
                path,
                number,
                f"context differs from the group's context (group {group.context_id} starts at line "
                f"{group.line}; every {group_size} lines share one context)",
                field="context",
            )
        if starts_new:
            if group is not None:
                yield group
            group = ResponseSelectionGroup(str(ordinal), turns, line=number)
            ordinal += 1
        group.candidates.append(response)
        group.labels.append(label)
        group.lines.append(number)
    if group is not None:
        if group_size is not None and len(group.candidates) != group_size:
            raise CorpusFormatError(
                path,
                group.lines[-1],
                f"the last group (from line {group.line}) has {len(group.candidates)} candidates, "
                f"expected {group_size}",
                field="context",
            )
        yield group


def read_response_selection(
    path: str | os.PathLike, group_size: int | None = None, max_groups: int | None = None
) -> list[ResponseSelectionGroup]:
    """All candidate groups of a response-selection file (the first ``max_groups`` if given)."""
    groups = []
    for group in iter_response_selection(path, group_size):
        if max_groups is not None and len(groups) >= max_groups:
            break
        groups.append(group)
    if not groups:
        raise CorpusFormatError(path, None, "no candidate group in the file")
    return groups


def separate_equal_contexts(groups: Sequence[ResponseSelectionGroup]) -> list[ResponseSelectionGroup]:
    """Reorder ``groups`` so that no two neighbours share a context (they would read back as one group).

    Greedy and stable: a group whose context equals its predecessor's is swapped with the nearest
    later group that fits. Raises ``ValueError`` when no such order is found.
    """
    out = list(groups)
    key = [tuple(clean_text(t) for t in g.turns) for g in out]

    def fits(position: int, value: tuple, skip: int) -> bool:
        neighbours = (position - 1, position + 1)
        return all(not (0 <= n < len(out)) or n == skip or key[n] != value for n in neighbours)

    for i in range(1, len(out)):
        if key[i] != key[i - 1]:
            continue
        for j in range(i + 1, len(out)):
            if key[j] != key[i - 1] and fits(i, key[j], j) and fits(j, key[i], i):
                out[i], out[j] = out[j], out[i]
                key[i], key[j] = key[j], key[i]
                break
        else:
            raise ValueError(f"cannot order the groups so that equal contexts are not adjacent (group {i})")
    return out


def format_response_selection(groups: Iterable[ResponseSelectionGroup]) -> str:
    """The Ubuntu-format text of ``groups`` (texts cleaned of tabs and newlines).

    Raises ``ValueError`` if two neighbouring groups share a context: the format would merge them
    (see :func:`separate_equal_contexts`).
    """
    out = []
    previous = None
    for group in groups:
        context = "\t".join(clean_text(t) for t in group.turns)
        if context == previous:
            raise ValueError(
                f"groups {group.context_id!r} and its predecessor share a context: the file would merge "
                "them; reorder with separate_equal_contexts()"
            )
        previous = context
        for candidate, label in zip(group.candidates, group.labels):
            out.append(f"{int(label)}\t{context}\t{clean_text(candidate)}\n")
    return "".join(out)


def write_response_selection(path: str | os.PathLike, groups: Iterable[ResponseSelectionGroup]) -> None:
    """Write ``groups`` as a response-selection file, atomically."""
    atomic_write_text(path, format_response_selection(groups))


# ---------------------------------------------------------------------------------------------
# Sessions and sliding windows


def read_dialogue_sessions(path: str | os.PathLike) -> list[list[str]]:
    """Dialogue sessions (lists of turns) for post-training.

    ``.jsonl``/``.json``: one ``{"turns": ["...", ...]}`` record per line. Anything else is read as a
    response-selection file whose positive lines give the sessions (turns + true response); a line
    whose response is empty is skipped. Sessions with fewer than two turns are dropped.
    """
    path = os.fspath(path)
    sessions: list[list[str]] = []
    if path.endswith((".jsonl", ".json")):
        for number, raw in _lines(path):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                raise CorpusFormatError(path, number, f"invalid JSON: {err.msg}") from None
            turns = record.get("turns") if isinstance(record, dict) else None
            if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
                raise CorpusFormatError(path, number, "expected a list of strings", field="turns")
            turns = [clean_text(t) for t in turns if t.strip()]
            if len(turns) >= 2:
                sessions.append(turns)
    else:
        for group in iter_response_selection(path):
            for candidate, label in zip(group.candidates, group.labels):
                if label and candidate:
                    sessions.append([*group.turns, candidate])
    if not sessions:
        raise CorpusFormatError(path, None, "no dialogue session with at least two turns")
    return sessions


def join_turns(turn_ids: Sequence[Sequence[int]], sep_token_id: int) -> list[int]:
    """Token ids of the turns joined by ``sep_token_id``: ``u1 [SEP] u2 [SEP] ... un``."""
    out: list[int] = []
    for index, ids in enumerate(turn_ids):
        if index:
            out.append(sep_token_id)
        out.extend(ids)
    return out


def turn_separator(tokenizer: PreTrainedTokenizerBase) -> str:
    """The text that joins turns so that the tokenizer emits its own SEP id between them."""
    if tokenizer.sep_token is None:
        raise ValueError(f"{type(tokenizer).__name__} has no sep_token to join dialogue turns with")
    return f" {tokenizer.sep_token} "


def context_text(turns: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> str:
    """The turns as one text whose tokenisation is ``u1 [SEP] u2 [SEP] ... un``."""
    return turn_separator(tokenizer).join(turns)


def sessions_to_jsonl(path: str | os.PathLike, sessions: Iterable[Sequence[str]]) -> None:
    """Write sessions as ``{"turns": [...]}`` JSON lines, atomically."""
    text = "".join(
        json.dumps({"turns": [clean_text(t) for t in s]}, ensure_ascii=False) + "\n" for s in sessions
    )
    atomic_write_text(Path(path), text)
