"""Retrieval data readers and writers: BEIR, MS MARCO TSV and Tevatron-style training JSONL.

Every malformed record raises :class:`maeir.errors.CorpusFormatError` naming the file, the line and
the field. Files may be gzip-compressed (``.gz``).

Public API:

- :class:`RetrievalData` (``corpus``, ``queries``, ``qrels`` of one split) and :func:`load_beir`.
- :func:`read_beir_corpus`, :func:`read_beir_queries`, :func:`read_qrels` (BEIR TSV with or without
  its header, or TREC ``qid 0 docid rel``).
- :func:`read_msmarco_collection`, :func:`read_msmarco_queries` (``id \\t text``), :func:`load_msmarco`.
- :func:`read_training_jsonl` / :func:`write_training_jsonl`: one training example per line,
  ``{"query_id", "query", "positive_passages": [{"docid", "title", "text"}], "negative_passages": [...]}``
  (Tevatron). Also read: ``positives`` / ``negatives`` and ``pos`` / ``neg`` (strings or passages).
  Records come back as ``{"query_id", "query", "positives", "negatives"}``, what
  :class:`maeir.data.retrieval_collator.ContrastiveCollator` takes.
- :func:`write_beir`: a BEIR folder, written atomically (what the embedded benchmark uses).
- :func:`training_records` : training examples from a split's qrels (+ optional negatives).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CorpusFormatError
from ..io_utils import atomic_directory, atomic_write_text

logger = logging.getLogger(__name__)

Passage = dict[str, str]
QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass
class RetrievalData:
    """One split of a retrieval data set.

    Args:
        corpus: ``{doc_id: {"title": str, "text": str}}``.
        queries: ``{query_id: text}`` (only the queries with judgements in ``qrels``).
        qrels: ``{query_id: {doc_id: relevance}}`` (relevance > 0 is relevant).
        name: a label for reports.
    """

    corpus: dict[str, Passage]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def _open(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` without the newline (nor a UTF-8 byte-order mark).

    Each line is decoded on its own, so that undecodable bytes are reported on their own line (a text
    stream decodes whole chunks ahead); a broken gzip stream is a format error too.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(path, None, "file not found")
    number = 0
    try:
        with _open(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise CorpusFormatError(
                        path, number, f"not valid UTF-8 (byte {err.start + 1} of the line)"
                    ) from None
                yield number, line.rstrip("\n").rstrip("\r")
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError; a cut stream is an EOFError
        raise CorpusFormatError(path, number + 1, f"cannot read the file: {err}") from None


def _json_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusFormatError(path, number, f"invalid JSON: {err.msg}") from None
        if not isinstance(record, dict):
            raise CorpusFormatError(path, number, "a record must be a JSON object")
        yield number, record


def _string(
    path, number: int, record: Mapping, key: str, required: bool = True, allow_empty: bool = False
) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if isinstance(value, (int,)) and not isinstance(value, bool) and key.endswith("id"):
        value = str(value)
    if not isinstance(value, str):
        what = "missing" if value is None else f"must be a string, got {type(value).__name__}"
        raise CorpusFormatError(path, number, what, field=key)
    if not allow_empty and not value.strip():
        raise CorpusFormatError(path, number, "is empty", field=key)
    return value


# ---------------------------------------------------------------------------------------------
# BEIR


def read_beir_corpus(path: str | os.PathLike) -> dict[str, Passage]:
    """``corpus.jsonl``: ``{"_id", "title" (optional), "text"}`` per line; ids are unique.

    ``text`` must be a string; an empty document (real collections have a few, e.g. Cranfield) is
    kept, so that judged ids stay resolvable, and counted in a warning.
    """
    corpus: dict[str, Passage] = {}
    empty = []
    for number, record in _json_records(path):
        doc_id = _string(path, number, record, "_id")
        if doc_id in corpus:
            raise CorpusFormatError(path, number, f"duplicate document id {doc_id!r}", field="_id")
        title = _string(path, number, record, "title", required=False, allow_empty=True)
        text = _string(path, number, record, "text", allow_empty=True)
        if not (title.strip() or text.strip()):
            empty.append(number)
        corpus[doc_id] = {"title": title, "text": text}
    if not corpus:
        raise CorpusFormatError(path, None, "no documents: the corpus is empty")
    if len(empty) == len(corpus):
        raise CorpusFormatError(path, None, f"all {len(corpus)} documents are empty (no title, no text)")
    if empty:
        logger.warning("%s: %d empty documents (lines %s)", path, len(empty), ", ".join(map(str, empty[:5])))
    return corpus


def read_beir_queries(path: str | os.PathLike) -> dict[str, str]:
    """``queries.jsonl``: ``{"_id", "text"}`` per line; ids are unique."""
    queries: dict[str, str] = {}
    for number, record in _json_records(path):
        query_id = _string(path, number, record, "_id")
        if query_id in queries:
            raise CorpusFormatError(path, number, f"duplicate query id {query_id!r}", field="_id")
        queries[query_id] = _string(path, number, record, "text")
    return queries


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Relevance judgements: BEIR TSV (``query-id corpus-id score``, header optional) or TREC
    (``qid iteration docid relevance``), tab- or space-separated."""
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if number == 1 and tuple(p.strip().lower() for p in parts[:3]) == QRELS_HEADER:
            continue
        if len(parts) == 3:
            query_id, doc_id, score = parts
        elif len(parts) == 4:
            query_id, _, doc_id, score = parts
        else:
            raise CorpusFormatError(path, number, f"expected 3 (BEIR) or 4 (TREC) columns, got {len(parts)}")
        query_id, doc_id = query_id.strip(), doc_id.strip()
        if not query_id:
            raise CorpusFormatError(path, number, "is empty", field="query-id")
        if not doc_id:
            raise CorpusFormatError(path, number, "is empty", field="corpus-id")
        try:
            relevance = int(float(score))
        except (ValueError, OverflowError):  # "x", "nan", "inf"
            raise CorpusFormatError(path, number, f"not a number: {score!r}", field="score") from None
        if float(score) != relevance:
            raise CorpusFormatError(
                path, number, f"relevance must be an integer, got {score!r}", field="score"
            )
        qrels.setdefault(query_id, {})[doc_id] = relevance
    return qrels


def _qrels_line(path: str | os.PathLike, query_id: str) -> int | None:
    """The first line of a qrels file that judges ``query_id`` (for error messages)."""
    for number, line in _lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        if parts and parts[0].strip() == query_id:
            return number
    return None


def _find(folder: Path, *names: str) -> Path:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise CorpusFormatError(folder / names[0], None, "file not found")


def load_beir(
    folder: str | os.PathLike,
    split: str = "test",
    name: str | None = None,
    allow_missing_documents: bool = False,
) -> RetrievalData:
    """A BEIR folder's corpus, its queries with judgements in ``qrels/{split}.tsv``, and those qrels.

    A query judged in the qrels but missing from ``queries.jsonl`` is an error naming the qrels line;
    so is a judged document missing from ``corpus.jsonl``, unless ``allow_missing_documents`` (then a
    warning gives the counts: such documents can never be retrieved).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusFormatError(folder, None, "BEIR folder not found")
    qrels_path = _find(folder / "qrels", f"{split}.tsv")
    corpus = read_beir_corpus(_find(folder, "corpus.jsonl"))
    all_queries = read_beir_queries(_find(folder, "queries.jsonl"))
    qrels = read_qrels(qrels_path)
    if not qrels:
        raise CorpusFormatError(qrels_path, None, "no judgements: every query would score 0")
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise CorpusFormatError(
            qrels_path, _qrels_line(qrels_path, missing[0]),
            f"{len(missing)} judged queries are not in queries.jsonl (e.g. {missing[:3]})", field="query-id",
        )  # fmt: skip
    queries = {qid: all_queries[qid] for qid in qrels}
    unknown = [(qid, doc) for qid, judged in qrels.items() for doc in judged if doc not in corpus]
    unknown_docs = len(unknown)
    if unknown:
        judgements = sum(len(judged) for judged in qrels.values())
        what = (
            f"{unknown_docs} of {judgements} judgements name documents that are not in corpus.jsonl "
            f"({len({d for _, d in unknown})} distinct, e.g. {sorted({d for _, d in unknown})[:3]}; "
            f"{len({q for q, _ in unknown})} queries affected)"
        )
        if not allow_missing_documents:
            raise CorpusFormatError(
                qrels_path, _qrels_line(qrels_path, unknown[0][0]),
                f"{what}: they could never be retrieved; pass --allow_missing_documents true to go on anyway",
                field="corpus-id",
            )  # fmt: skip
        logger.warning("%s: %s; they count as never retrieved", qrels_path, what)
    info = {"split": split, "judged_documents_not_in_corpus": unknown_docs}
    if name is None:  # "./cranfield/beir" is "cranfield"
        name = folder.resolve().parent.name if folder.name.lower() == "beir" else folder.name
    return RetrievalData(corpus, queries, qrels, name=name, info=info)


def write_beir(
    folder: str | os.PathLike,
    corpus: Mapping[str, Mapping[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, Mapping[str, int]]],
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv`` per split) atomically."""
    with atomic_directory(folder) as staging:
        lines = [json.dumps({"_id": d, "title": p.get("title", ""), "text": p["text"]}, ensure_ascii=False)
                 for d, p in corpus.items()]  # fmt: skip
        atomic_write_text(staging / "corpus.jsonl", "\n".join(lines) + "\n")
        lines = [json.dumps({"_id": q, "text": t}, ensure_ascii=False) for q, t in queries.items()]
        atomic_write_text(staging / "queries.jsonl", "\n".join(lines) + "\n")
        for split, judged in qrels.items():
            rows = ["\t".join(QRELS_HEADER)]
            rows += [f"{q}\t{d}\t{r}" for q, docs in judged.items() for d, r in docs.items()]
            atomic_write_text(staging / "qrels" / f"{split}.tsv", "\n".join(rows) + "\n")
        for name, text in (extra_files or {}).items():
            atomic_write_text(staging / name, text)
    return Path(folder)


# ---------------------------------------------------------------------------------------------
# MS MARCO


def _read_id_text_tsv(path: str | os.PathLike, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise CorpusFormatError(path, number, f"expected 'id<TAB>{what}'", field="text")
        key, text = parts[0].strip(), "\t".join(parts[1:]).strip()
        if not key:
            raise CorpusFormatError(path, number, "is empty", field="id")
        if not text:
            raise CorpusFormatError(path, number, "is empty", field="text")
        if key in out:
            raise CorpusFormatError(path, number, f"duplicate id {key!r}", field="id")
        out[key] = text
    return out


def read_msmarco_collection(path: str | os.PathLike) -> dict[str, Passage]:
    """``collection.tsv``: ``pid \\t passage`` (or ``pid \\t title \\t passage`` when 3 columns)."""
    corpus: dict[str, Passage] = {}
    for key, value in _read_id_text_tsv(path, "passage").items():
        title, sep, text = value.partition("\t")
        corpus[key] = {"title": title, "text": text} if sep else {"title": "", "text": value}
    return corpus


def read_msmarco_queries(path: str | os.PathLike) -> dict[str, str]:
    """``queries.*.tsv``: ``qid \\t query``."""
    return _read_id_text_tsv(path, "query")


def load_msmarco(
    collection: str | os.PathLike, queries: str | os.PathLike, qrels: str | os.PathLike, name: str = "msmarco"
) -> RetrievalData:
    """MS MARCO passage ranking: every query of the queries file is kept (MRR@10 divides by all of them;
    docs/methods.md#cot-mae-v2 metrics), judged or not."""
    judged = read_qrels(qrels)
    all_queries = read_msmarco_queries(queries)
    missing = sorted(set(judged) - set(all_queries))
    if missing:
        raise CorpusFormatError(
            qrels, _qrels_line(qrels, missing[0]),
            f"{len(missing)} judged queries are not in {queries} (e.g. {missing[:3]})", "query-id",
        )  # fmt: skip
    return RetrievalData(read_msmarco_collection(collection), all_queries, judged, name=name)


# ---------------------------------------------------------------------------------------------
# Training JSONL

_POSITIVE_KEYS = ("positive_passages", "positives", "pos")
_NEGATIVE_KEYS = ("negative_passages", "negatives", "neg")


def _passages(path, number: int, record: Mapping, keys: tuple[str, ...], required: bool) -> list[Passage]:
    key = next((k for k in keys if k in record), None)
    if key is None:
        if required:
            raise CorpusFormatError(path, number, f"missing (one of {list(keys)})", field=keys[0])
        return []
    value = record[key]
    if not isinstance(value, list):
        raise CorpusFormatError(path, number, "must be a list of passages", field=key)
    out = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if isinstance(item, str):
            if not item.strip():
                raise CorpusFormatError(path, number, "is empty", field=where)
            out.append({"docid": "", "title": "", "text": item})
        elif isinstance(item, dict):
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                raise CorpusFormatError(path, number, "missing or empty 'text'", field=f"{where}.text")
            title = item.get("title") or ""
            if not isinstance(title, str):
                raise CorpusFormatError(path, number, "must be a string", field=f"{where}.title")
            docid = item.get("docid", item.get("_id", ""))
            out.append({"docid": str(docid), "title": title, "text": text})
        else:
            raise CorpusFormatError(path, number, "a passage is a string or an object", field=where)
    if required and not out:
        raise CorpusFormatError(path, number, "needs at least one positive passage", field=key)
    return out


def read_training_jsonl(path: str | os.PathLike, max_records: int | None = None) -> list[dict[str, Any]]:
    """Training examples ``{"query_id", "query", "positives", "negatives"}`` (see the module docstring)."""
    records = []
    for number, record in _json_records(path):
        query = _string(path, number, record, "query")
        id_key = next((k for k in ("query_id", "_id") if k in record), None)
        query_id = str(number) if id_key is None else record[id_key]
        if isinstance(query_id, bool) or not isinstance(query_id, (str, int)):
            raise CorpusFormatError(path, number, "must be a string or an integer", field=id_key)
        records.append({
            "query_id": str(query_id),
            "query": query,
            "positives": _passages(path, number, record, _POSITIVE_KEYS, required=True),
            "negatives": _passages(path, number, record, _NEGATIVE_KEYS, required=False),
        })  # fmt: skip
        if max_records is not None and len(records) >= max_records:
            break
    if not records:
        raise CorpusFormatError(path, None, "no training examples")
    return records


def write_training_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> int:
    """Write examples in the Tevatron layout, atomically; returns the number written."""
    lines = []
    for record in records:
        lines.append(json.dumps({
            "query_id": record["query_id"],
            "query": record["query"],
            "positive_passages": [_as_passage(p) for p in record["positives"]],
            "negative_passages": [_as_passage(p) for p in record.get("negatives", [])],
        }, ensure_ascii=False))  # fmt: skip
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def _as_passage(passage: str | Mapping[str, str]) -> Passage:
    if isinstance(passage, str):
        return {"docid": "", "title": "", "text": passage}
    return {
        "docid": str(passage.get("docid", "")),
        "title": passage.get("title", ""),
        "text": passage["text"],
    }


def training_records(
    data: RetrievalData, negatives: Mapping[str, list[str]] | None = None, min_relevance: int = 1
) -> list[dict[str, Any]]:
    """Training examples of a split: positives = judged documents with relevance >= ``min_relevance``;
    negatives = ``negatives[query_id]`` (document ids). Queries without a positive in the corpus are skipped."""
    records = []
    for query_id, judged in data.qrels.items():
        positives = [doc for doc, rel in judged.items() if rel >= min_relevance and doc in data.corpus]
        if not positives or query_id not in data.queries:
            continue
        negative_ids = [doc for doc in (negatives or {}).get(query_id, []) if doc in data.corpus]
        records.append({
            "query_id": query_id,
            "query": data.queries[query_id],
            "positives": [{"docid": d, **data.corpus[d]} for d in positives],
            "negatives": [{"docid": d, **data.corpus[d]} for d in negative_ids],
        })  # fmt: skip
    return records
