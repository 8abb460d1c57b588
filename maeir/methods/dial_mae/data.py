"""Dial-MAE's post-training data (docs/methods.md#dial-mae): sliding-window context/response pairs.

**Post-training pairs** (paper §3, authors' ``make_data.py``): from each session of ``n`` turns,
the whole session (context = ``turns[:n-1]``, response = ``turns[n-1]``) plus sliding windows: for
each start ``s`` up to ``windows_per_start`` distinct window sizes ``w`` drawn from
``[min_window_turns, max_window_turns]`` (capped by the turns left), giving context =
``turns[s:s+w]`` and response = ``turns[s+w]``. Turns are joined with the tokenizer's own
``sep_token_id``. The pairs are kept as ``(session, start, end)`` indices over turns tokenised once
(only the turns that the kept windows use) and materialised on access, so hundreds of thousands of
windows cost a few MB.

Sessions come from :func:`maeir.data.dialogue.read_dialogue_sessions`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from ...data.dialogue import join_turns, read_dialogue_sessions
from ...datasets.embedded.chitchat import embedded_chitchat

#: The authors' sliding-window defaults (``make_data.py``: min_span 1, max_span 20, num_window 6).
MIN_WINDOW_TURNS = 1
MAX_WINDOW_TURNS = 20
WINDOWS_PER_START = 6


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
        sessions = read_dialogue_sessions(embedded_chitchat().train_sessions)
    return dialogue_pair_dataset(
        sessions,
        tokenizer,
        min_window_turns=getattr(data_args, "min_window_turns", MIN_WINDOW_TURNS),
        max_window_turns=getattr(data_args, "max_window_turns", MAX_WINDOW_TURNS),
        windows_per_start=getattr(data_args, "windows_per_start", WINDOWS_PER_START),
        max_samples=data_args.max_train_samples,
    )
