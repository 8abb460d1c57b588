"""Dialogue data for Dial-MAE (docs/methods.md#dial-mae): response-selection files and post-training pairs.

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

**Post-training pairs** (paper §3, authors' ``make_data.py``): from each session of ``n`` turns,
the whole session (context = ``turns[:n-1]``, response = ``turns[n-1]``) plus sliding windows: for
each start ``s`` up to ``windows_per_start`` distinct window sizes ``w`` drawn from
``[min_window_turns, max_window_turns]`` (capped by the turns left), giving context =
``turns[s:s+w]`` and response = ``turns[s+w]``. Turns are joined with the tokenizer's own
``sep_token_id``. The pairs are kept as ``(session, start, end)`` indices over turns tokenised once
(only the turns that the kept windows use) and materialised on access, so hundreds of thousands of
windows cost a few MB.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from ..errors import CorpusFormatError
from ..io_utils import atomic_write_text

#: The authors' sliding-window defaults (``make_data.py``: min_span 1, max_span 20, num_window 6).
MIN_WINDOW_TURNS = 1
MAX_WINDOW_TURNS = 20
WINDOWS_PER_START = 6


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


def sliding_windows(
    num_turns: int,
    min_window_turns: int = MIN_WINDOW_TURNS,
    max_window_turns: int = MAX_WINDOW_TURNS,
    windows_per_start: int = WINDOWS_PER_START,
    rng: random.Random | None = None,
) -> list[tuple[int, int]]:
    """``(start, end)`` pairs of one session of ``num_turns`` turns: context ``[start, end)``, response ``end``.

    The whole session ``(0, num_turns - 1)`` comes first; then for each start, up to
    ``windows_per_start`` distinct window sizes from ``[min_window_turns, max_window_turns]``,
    capped by the turns left after the start (the authors' ``make_data.py``).
    """
    if min_window_turns < 1 or max_window_turns < min_window_turns or windows_per_start < 1:
        raise ValueError(
            f"need 1 <= min_window_turns <= max_window_turns and windows_per_start >= 1, got "
            f"{min_window_turns}, {max_window_turns}, {windows_per_start}"
        )
    if num_turns < 2:
        return []
    rng = rng or random.Random(0)
    windows = [(0, num_turns - 1)]
    for start in range(num_turns - 1):
        left = num_turns - start - 1  # turns after `start` that can still be a response
        low, high = min(min_window_turns, left), min(max_window_turns, left)
        sizes = range(low, high + 1)
        for size in rng.sample(sizes, min(len(sizes), windows_per_start)):
            if (start, start + size) != windows[0]:
                windows.append((start, start + size))
    return windows


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


def window_rows(
    session_lengths: Sequence[int],
    min_window_turns: int = MIN_WINDOW_TURNS,
    max_window_turns: int = MAX_WINDOW_TURNS,
    windows_per_start: int = WINDOWS_PER_START,
    seed: int = 42,
) -> np.ndarray:
    """``[N, 3]`` rows ``(session, start, end)`` of every sliding window of every session.

    Each session draws its windows from a private RNG seeded with ``(seed, session index)``, so the
    rows never depend on processing order or on the other sessions.
    """
    rows = []
    for index, length in enumerate(session_lengths):
        rng = random.Random(f"{seed}-{index}")
        for start, end in sliding_windows(length, min_window_turns, max_window_turns, windows_per_start, rng):
            rows.append((index, start, end))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class DialoguePairs:
    """Post-training pairs as ``(session, start, end)`` rows over flat, tokenised turns.

    ``pair(i)`` gives ``{"context_ids": u_s [SEP] ... u_{e-1}, "response_ids": u_e}`` (no [CLS] or
    final [SEP]: the collator adds them after truncating). Used as a ``datasets`` transform, it maps
    rows ``{"pair": [i, ...]}`` to those two columns.

    Args:
        rows: ``[N, 3]`` windows, from :func:`window_rows`.
        first_turn: per session, the global index of its first turn (length ``sessions + 1``).
        turn_ids: ``{global turn index: token ids}`` for (at least) every turn a row uses.
        sep_token_id: id placed between turns.
    """

    def __init__(
        self,
        rows: np.ndarray,
        first_turn: Sequence[int],
        turn_ids: dict[int, Sequence[int]],
        sep_token_id: int,
    ) -> None:
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        self.first_turn = np.asarray(first_turn, dtype=np.int64)
        self.sep_token_id = int(sep_token_id)
        order = sorted(turn_ids)
        lengths = [len(turn_ids[i]) for i in order]
        self.tokens = np.fromiter((t for i in order for t in turn_ids[i]), dtype=np.int32, count=sum(lengths))
        self.offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        self.slot = {turn: k for k, turn in enumerate(order)}

    def __len__(self) -> int:
        return len(self.rows)

    def turn(self, index: int) -> list[int]:
        """Token ids of the global turn ``index``."""
        k = self.slot[index]
        return self.tokens[self.offsets[k] : self.offsets[k + 1]].tolist()

    def pair(self, row: int) -> dict[str, list[int]]:
        session, start, end = (int(v) for v in self.rows[row])
        base = int(self.first_turn[session])
        turns = [self.turn(base + t) for t in range(start, end)]
        return {"context_ids": join_turns(turns, self.sep_token_id), "response_ids": self.turn(base + end)}

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        pairs = [self.pair(int(i)) for i in batch["pair"]]
        return {
            "context_ids": [p["context_ids"] for p in pairs],
            "response_ids": [p["response_ids"] for p in pairs],
        }


def tokenize_turns(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, batch_size: int = 4096
) -> list[list[int]]:
    """Token ids of each text, no special tokens, untruncated (the collator truncates each side)."""
    out: list[list[int]] = []
    for begin in range(0, len(texts), batch_size):
        encoded = tokenizer(
            list(texts[begin : begin + batch_size]),
            add_special_tokens=False,
            truncation=False,
            verbose=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        out.extend(encoded)
    return out


def dialogue_pairs(
    sessions: Sequence[Sequence[str]],
    tokenizer: PreTrainedTokenizerBase,
    min_window_turns: int = MIN_WINDOW_TURNS,
    max_window_turns: int = MAX_WINDOW_TURNS,
    windows_per_start: int = WINDOWS_PER_START,
    max_samples: int | None = None,
    seed: int = 42,
) -> DialoguePairs:
    """The sliding-window pairs of ``sessions`` (see the module docstring).

    ``max_samples`` keeps a seeded random subset of the windows (in their original order), so a
    small run still sees many sessions. Only the turns the kept windows use are tokenised.
    """
    if tokenizer.sep_token_id is None:
        raise ValueError(f"{type(tokenizer).__name__} has no sep_token_id to join dialogue turns with")
    lengths = [len(session) for session in sessions]
    rows = window_rows(lengths, min_window_turns, max_window_turns, windows_per_start, seed)
    if max_samples is not None and max_samples < len(rows):
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_samples, replace=False))
        rows = rows[keep]
    first_turn = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    needed = np.zeros(int(first_turn[-1]), dtype=bool)
    for session, start, end in rows:
        needed[first_turn[session] + start : first_turn[session] + end + 1] = True
    flat = [turn for session in sessions for turn in session]
    indices = np.flatnonzero(needed).tolist()
    ids = tokenize_turns([flat[i] for i in indices], tokenizer)
    return DialoguePairs(rows, first_turn, dict(zip(indices, ids)), tokenizer.sep_token_id)


def dialogue_pair_dataset(
    sessions: Sequence[Sequence[str]],
    tokenizer: PreTrainedTokenizerBase,
    min_window_turns: int = MIN_WINDOW_TURNS,
    max_window_turns: int = MAX_WINDOW_TURNS,
    windows_per_start: int = WINDOWS_PER_START,
    max_samples: int | None = None,
    seed: int = 42,
):
    """A :class:`datasets.Dataset` of :func:`dialogue_pairs`, columns ``context_ids`` / ``response_ids``.

    Rows are materialised on access (``set_transform``): hundreds of thousands of windows cost a few MB.
    """
    import datasets

    pairs = dialogue_pairs(
        sessions, tokenizer, min_window_turns, max_window_turns, windows_per_start, max_samples, seed
    )
    dataset = datasets.Dataset.from_dict({"pair": list(range(len(pairs)))})
    dataset.set_transform(pairs)
    return dataset


def build_dialogue_pretraining_dataset(tokenizer: PreTrainedTokenizerBase, data_args):
    """``maeir.methods`` entry of Dial-MAE: sliding-window pairs of ``train_file`` or the embedded chitchat.

    ``train_file``: a response-selection file (its positive lines are the sessions) or a JSON-lines
    file of ``{"turns": [...]}``; default: the train split of the embedded chitchat conversations.
    """
    if data_args.train_file:
        sessions = read_dialogue_sessions(data_args.train_file)
    else:
        from .chitchat import embedded_chitchat

        sessions = read_dialogue_sessions(embedded_chitchat().train_sessions)
    return dialogue_pair_dataset(
        sessions,
        tokenizer,
        min_window_turns=getattr(data_args, "min_window_turns", MIN_WINDOW_TURNS),
        max_window_turns=getattr(data_args, "max_window_turns", MAX_WINDOW_TURNS),
        windows_per_start=getattr(data_args, "windows_per_start", WINDOWS_PER_START),
        max_samples=data_args.max_train_samples,
    )


def sessions_to_jsonl(path: str | os.PathLike, sessions: Iterable[Sequence[str]]) -> None:
    """Write sessions as ``{"turns": [...]}`` JSON lines, atomically."""
    text = "".join(
        json.dumps({"turns": [clean_text(t) for t in s]}, ensure_ascii=False) + "\n" for s in sessions
    )
    atomic_write_text(Path(path), text)
