"""The embedded dialogue data: the Chit Chat Challenge conversations of the ``chitchat-dataset`` package.

The package (``pip install maeir[data]``) ships ``dataset.json``: 7,168 open-domain English chats
between two people (BYU PCC lab), each a list of messages grouped by sender. A *turn* here is one
sender's consecutive messages joined by a space. :func:`embedded_chitchat` turns them into the
files the Dial-MAE pipeline reads, in the formats of the real corpora (docs/methods.md#dial-mae):

- the conversations are split **by id** into train / valid / test (80/10/10, seeded shuffle of the
  sorted ids: no conversation is in two splits);
- ``train_sessions.jsonl``: the train conversations, for post-training (sliding windows);
- ``train.txt``: Ubuntu-v1-style training lines from the train conversations: for up to
  ``TRAIN_CUTS_PER_CONVERSATION`` cut points ``e``, a positive line (context = the turns before
  ``e``, response = turn ``e``) followed by a negative line (a turn of another train conversation);
- ``valid.txt`` / ``test.txt``: one candidate group per conversation, at a random cut point: the
  true next turn followed by ``NEGATIVES`` negatives sampled from turns of *other* conversations of
  the same split (distinct, never equal to the true response), like the Ubuntu v1 test set (R10@k).

Contexts keep at most ``MAX_CONTEXT_TURNS`` turns before the response (the encoder keeps only the
last 256 tokens anyway). Everything is written once, atomically, under
``cache_dir()/chitchat-v{VERSION}-seed{seed}/``.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path

from ...data.dialogue import (
    ResponseSelectionGroup,
    clean_text,
    format_response_selection,
    separate_equal_contexts,
)
from ...io_utils import atomic_directory, atomic_write_json
from .files import cache_dir, package_file

#: Bump when the files below change: the cache folder carries it in its name.
VERSION = 1
PACKAGE = "chitchat_dataset"
VALID_FRACTION = 0.1
TEST_FRACTION = 0.1
NEGATIVES = 9
TRAIN_CUTS_PER_CONVERSATION = 4
MAX_CONTEXT_TURNS = 20
DESCRIPTION = (
    "Chit Chat Challenge conversations (chitchat-dataset on PyPI, BYU PCC lab): train split "
    "(80% of the conversations, split by id), sliding-window context/response pairs"
)


@dataclass(frozen=True)
class ChitchatFiles:
    """Paths of the embedded dialogue files (see the module docstring) and their counts."""

    folder: Path
    train: Path
    valid: Path
    test: Path
    train_sessions: Path
    stats: dict


def chitchat_conversations() -> dict[str, list[str]]:
    """``{conversation id: [turn, ...]}`` for every conversation with at least two turns."""
    with open(package_file(PACKAGE, "dataset.json"), encoding="utf-8") as handle:
        raw = json.load(handle)
    conversations: dict[str, list[str]] = {}
    for conversation_id, record in raw.items():
        turns: list[str] = []
        previous = None
        for message in record.get("messages", []):
            text = clean_text(" ".join(u.get("text", "") for u in message))
            sender = message[0].get("sender") if message else None
            if not text:
                continue
            if sender is not None and sender == previous and turns:
                turns[-1] = f"{turns[-1]} {text}"  # same speaker again: one turn
            else:
                turns.append(text)
            previous = sender
        if len(turns) >= 2:
            conversations[conversation_id] = turns
    return conversations


def split_ids(ids: list[str], seed: int) -> dict[str, list[str]]:
    """Seeded 80/10/10 split of the sorted ``ids`` into ``train`` / ``valid`` / ``test``."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n_test = round(TEST_FRACTION * len(order))
    n_valid = round(VALID_FRACTION * len(order))
    return {
        "test": sorted(order[:n_test]),
        "valid": sorted(order[n_test : n_test + n_valid]),
        "train": sorted(order[n_test + n_valid :]),
    }


def _sample_negatives(
    pool: list[tuple[int, str]], owner: int, positive: str, count: int, rng: random.Random
) -> list[str]:
    """``count`` distinct turns of ``pool`` that are not from conversation ``owner`` nor equal to ``positive``."""
    banned = {positive.lower()}
    out: list[str] = []
    for _ in range(100 * count):
        if len(out) == count:
            break
        conversation, text = pool[rng.randrange(len(pool))]
        if conversation != owner and text.lower() not in banned:
            banned.add(text.lower())
            out.append(text)
    if len(out) < count:
        raise RuntimeError(f"could not sample {count} distinct negatives (pool of {len(pool)} turns)")
    return out


def _context(turns: list[str], cut: int) -> list[str]:
    return turns[max(0, cut - MAX_CONTEXT_TURNS) : cut]


def selection_groups(
    conversations: list[list[str]], rng: random.Random, negatives: int = NEGATIVES
) -> list[ResponseSelectionGroup]:
    """One group per conversation: a random cut point, the true next turn first, then ``negatives``."""
    pool = [(index, turn) for index, turns in enumerate(conversations) for turn in turns]
    groups = []
    for index, turns in enumerate(conversations):
        cut = rng.randint(1, len(turns) - 1)
        candidates = [turns[cut], *_sample_negatives(pool, index, turns[cut], negatives, rng)]
        groups.append(
            ResponseSelectionGroup(str(index), _context(turns, cut), candidates, [1] + [0] * negatives)
        )
    return separate_equal_contexts(groups)


def multi_cut_selection_groups(
    conversations: list[list[str]], rng: random.Random, cuts: int, negatives: int = NEGATIVES
) -> list[ResponseSelectionGroup]:
    """Up to ``cuts`` candidate groups per conversation (distinct cut points), ids ``"{conversation}-{cut}"``.

    A larger test set than :func:`selection_groups` from the same conversations: the study runner
    (:mod:`maeir.cli.study.tasks.response_selection`) uses it to reach 1,000+ groups, and bootstraps over conversations
    (the groups of one conversation share its turns, so they are not independent units).
    """
    pool = [(index, turn) for index, turns in enumerate(conversations) for turn in turns]
    groups = []
    for index, turns in enumerate(conversations):
        for cut in sorted(rng.sample(range(1, len(turns)), min(cuts, len(turns) - 1))):
            candidates = [turns[cut], *_sample_negatives(pool, index, turns[cut], negatives, rng)]
            groups.append(
                ResponseSelectionGroup(
                    f"{index}-{cut}", _context(turns, cut), candidates, [1] + [0] * negatives
                )
            )
    return groups


def chitchat_split_groups(split: str, cuts: int, seed: int = 42) -> list[ResponseSelectionGroup]:
    """Candidate groups of the ``split`` conversations of :func:`embedded_chitchat` (same split by id),
    ``cuts`` cut points per conversation, drawn with their own seeded generator."""
    conversations = chitchat_conversations()
    ids = split_ids(list(conversations), seed)[split]
    rng = random.Random(f"{seed}-{split}-cuts{cuts}")
    return multi_cut_selection_groups([conversations[i] for i in ids], rng, cuts)


def training_groups(
    conversations: list[list[str]], rng: random.Random, cuts: int = TRAIN_CUTS_PER_CONVERSATION
) -> list[ResponseSelectionGroup]:
    """Ubuntu-train-style groups: up to ``cuts`` cut points per conversation, 1 positive + 1 negative each."""
    pool = [(index, turn) for index, turns in enumerate(conversations) for turn in turns]
    groups = []
    for index, turns in enumerate(conversations):
        points = sorted(rng.sample(range(1, len(turns)), min(cuts, len(turns) - 1)))
        for cut in points:
            negative = _sample_negatives(pool, index, turns[cut], 1, rng)[0]
            groups.append(
                ResponseSelectionGroup(f"{index}-{cut}", _context(turns, cut), [turns[cut], negative], [1, 0])
            )
    rng.shuffle(groups)  # like the Ubuntu training file: contexts in no particular order
    return separate_equal_contexts(groups)


_LOCK = threading.Lock()


def embedded_chitchat(seed: int = 42) -> ChitchatFiles:
    """Build (once) and return the embedded dialogue files for ``seed`` (see the module docstring)."""
    folder = cache_dir() / f"chitchat-v{VERSION}-seed{seed}"
    names = {
        "train": "train.txt",
        "valid": "valid.txt",
        "test": "test.txt",
        "train_sessions": "train_sessions.jsonl",
    }
    with _LOCK:
        meta = folder / "meta.json"
        if not meta.is_file():
            conversations = chitchat_conversations()
            splits = split_ids(list(conversations), seed)
            by_split = {name: [conversations[i] for i in ids] for name, ids in splits.items()}
            rng = random.Random(seed)
            valid = selection_groups(by_split["valid"], rng)
            test = selection_groups(by_split["test"], rng)
            train = training_groups(by_split["train"], rng)
            with atomic_directory(folder) as staging:
                (staging / names["train"]).write_text(format_response_selection(train), encoding="utf-8")
                (staging / names["valid"]).write_text(format_response_selection(valid), encoding="utf-8")
                (staging / names["test"]).write_text(format_response_selection(test), encoding="utf-8")
                sessions = "".join(
                    json.dumps({"id": cid, "turns": conversations[cid]}, ensure_ascii=False) + "\n"
                    for cid in splits["train"]
                )
                (staging / names["train_sessions"]).write_text(sessions, encoding="utf-8")
                stats = {
                    "source": "chitchat-dataset (PyPI) dataset.json",
                    "seed": seed,
                    "version": VERSION,
                    "conversations": {name: len(ids) for name, ids in splits.items()},
                    "train_lines": 2 * len(train),
                    "valid_groups": len(valid),
                    "test_groups": len(test),
                    "candidates_per_group": NEGATIVES + 1,
                    "split_ids": splits,
                }
                atomic_write_json(staging / "meta.json", stats)
        stats = json.loads(meta.read_text(encoding="utf-8"))
    return ChitchatFiles(folder=folder, stats=stats, **{key: folder / name for key, name in names.items()})
