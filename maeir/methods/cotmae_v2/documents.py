"""Documents for CoT-MAE v2 (docs/methods.md#cot-mae-v2), read once and then cut into spans by :mod:`.data`.

**Documents** come from plain text (``.txt``: one document per line), JSON lines (``.jsonl`` /
``.json``: the ``text_field`` of each record), a BEIR corpus (``corpus.jsonl`` with ``_id`` / ``title``
/ ``text``, or a BEIR folder holding one), or by default the embedded Wikipedia articles
(:func:`maeir.datasets.embedded.wikipedia_documents`). Malformed files raise
:class:`~maeir.errors.CorpusFormatError` naming the file, line and field.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import datasets

from ...data.corpus import load_text_corpus
from ...data.retrieval import read_beir_corpus
from ...datasets.embedded import wikipedia_documents
from ...errors import CorpusFormatError


def load_documents(
    path: str | os.PathLike | None = None, text_field: str = "text", max_documents: int | None = None
) -> datasets.Dataset:
    """Documents as a :class:`datasets.Dataset` with columns ``id`` and ``text`` (see the module docstring)."""
    if path is None:
        records = wikipedia_documents()
        if max_documents is not None:
            records = records[:max_documents]
        return datasets.Dataset.from_dict(
            {"id": [r["id"] for r in records], "text": [r["text"] for r in records]}
        )
    path = Path(path)
    beir_corpus = path / "corpus.jsonl" if path.is_dir() else path
    if path.is_dir() and not beir_corpus.is_file():
        raise CorpusFormatError(path, None, "a folder must be a BEIR folder holding corpus.jsonl")
    if beir_corpus.is_file() and _is_beir_corpus(beir_corpus):
        corpus = read_beir_corpus(beir_corpus)
        ids = list(corpus)[:max_documents] if max_documents is not None else list(corpus)
        return datasets.Dataset.from_dict({"id": ids, "text": [corpus[i]["text"] for i in ids]})
    corpus = load_text_corpus(path, text_field, max_documents)
    return corpus.add_column("id", [str(i) for i in range(len(corpus))])


def _is_beir_corpus(path: Path) -> bool:
    """A JSON-lines file whose first record has ``_id`` (BEIR's corpus layout)."""
    if path.suffix.lower() not in (".jsonl", ".json") and not path.name.endswith(".jsonl.gz"):
        return False
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(record, dict) and "_id" in record
    return False
