"""Contextual span data for CoT-MAE v2 (docs/methods.md#cot-mae-v2): documents -> anchor spans + context spans.

**Documents**: :func:`maeir.methods.cotmae_v2.documents.load_documents`.

**Spans.** Each document is split into paragraphs and sentences
(:func:`maeir.data.sentences.split_sentences`), tokenised once without special tokens, and whole
sentences are packed greedily into spans of at most ``max_seq_length - specials`` tokens (128 with
[CLS]/[SEP] by default); a sentence longer than that is cut into span-sized pieces. Spans tile the
document's token stream, so a document is stored once, as ``tokens`` plus ``span_bounds`` (span ``k``
is ``tokens[span_bounds[k]:span_bounds[k + 1]]``).

**Context spans**, all from the anchor's own document:

- ``nearby``: the previous or the next span (±1 span);
- ``overlapping``: a span-sized window that starts inside the anchor (at the sentence boundary
  nearest its middle) and runs past its end, or one that ends inside it and starts before it,
  snapped to sentence boundaries when that keeps it overlapping; it always shares tokens with the
  anchor and holds tokens the anchor does not;
- ``random``: any other span of the document, uniformly.

The type is drawn per example by :class:`maeir.data.CoTMAEv2Collator` (``mixed``) or fixed, so every
epoch sees fresh contexts, drawn from the collator's generator (resumable). A document with no
token, or whose whole text fits in one span, has no context span: it is skipped and **counted**
(:class:`SpanStats`, logged by :func:`build_cotmae_v2_dataset`).

Storage: documents are an Arrow-backed :class:`datasets.Dataset` (``tokens``, ``span_bounds``,
``overlaps``), memory-mapped from the ``datasets`` cache, so MS MARCO-sized corpora do not live in
RAM; the training set is an index of ``(document, span)`` rows materialised on access.

Public API: :class:`SpanStats`, :func:`pack_spans`, :func:`overlapping_windows`,
:func:`context_candidates`, :func:`load_documents`, :func:`tokenize_documents`,
:func:`context_span_dataset`, :func:`build_cotmae_v2_dataset`, :data:`CONTEXT_TYPES`.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from ...data.collators import special_template
from ...data.sentences import split_sentences
from ...datasets.embedded import CLEANER_VERSION, cache_dir
from ...errors import ConfigError, CorpusFormatError
from .configuration_cotmae_v2 import CONTEXT_TYPES
from .documents import load_documents

logger = logging.getLogger(__name__)

__all__ = [
    "CONTEXT_TYPES",
    "SpanStats",
    "build_cotmae_v2_dataset",
    "context_candidates",
    "context_span_dataset",
    "load_documents",
    "overlapping_windows",
    "pack_spans",
    "tokenize_documents",
]

Range = tuple[int, int]


@dataclasses.dataclass
class SpanStats:
    """What the span builder did with the documents.

    Attributes:
        documents: documents read.
        used_documents: documents that gave anchor spans (at least two spans).
        empty_documents: documents without a single token (skipped).
        single_span_documents: documents that fit in one span, so have no context span (skipped).
        spans: anchor spans (training examples before ``max_train_samples``).
        tokens: tokens in the used documents.
        examples: training examples kept (after ``max_train_samples``).
    """

    documents: int = 0
    used_documents: int = 0
    empty_documents: int = 0
    single_span_documents: int = 0
    spans: int = 0
    tokens: int = 0
    examples: int = 0

    @property
    def skipped_documents(self) -> int:
        return self.empty_documents + self.single_span_documents

    def as_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "skipped_documents": self.skipped_documents}

    def describe(self) -> str:
        return (
            f"{self.documents} documents: {self.used_documents} used, {self.single_span_documents} skipped as "
            f"too short for a context span (one span), {self.empty_documents} skipped as empty; "
            f"{self.spans} anchor spans ({self.tokens / max(1, self.spans):.1f} tokens each on average), "
            f"{self.examples} training examples"
        )


# ---------------------------------------------------------------------------------------------
# One document


def pack_spans(unit_lengths: Sequence[int], budget: int) -> list[int]:
    """Greedy packing of whole units (sentences) into spans of at most ``budget`` tokens.

    Returns span boundaries as unit indices ``[0, ..., len(unit_lengths)]`` (span ``k`` holds units
    ``bounds[k]:bounds[k + 1]``). Every unit must be at most ``budget`` tokens and longer than 0.
    """
    bounds, used = [0], 0
    for index, length in enumerate(unit_lengths):
        if length < 1 or length > budget:
            raise ValueError(f"unit {index} has {length} tokens; units must have 1..{budget}")
        if used and used + length > budget:
            bounds.append(index)
            used = 0
        used += length
    if unit_lengths:
        bounds.append(len(unit_lengths))
    return bounds


def _units(sentence_ids: Sequence[Sequence[int]], budget: int) -> list[list[int]]:
    """Sentences as packing units: empty ones dropped, over-long ones cut into ``budget``-token pieces."""
    units: list[list[int]] = []
    for ids in sentence_ids:
        ids = list(ids)
        units.extend(ids[start : start + budget] for start in range(0, len(ids), budget))
    return units


def segment_document(
    sentence_ids: Sequence[Sequence[int]], budget: int
) -> tuple[list[int], list[int], list[int]]:
    """``(tokens, unit_bounds, span_bounds)`` of one document; bounds are token offsets from 0 to ``len(tokens)``."""
    units = _units(sentence_ids, budget)
    lengths = [len(u) for u in units]
    unit_bounds = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).tolist() if units else [0]
    span_units = pack_spans(lengths, budget)
    tokens = [t for u in units for t in u]
    return tokens, unit_bounds, [unit_bounds[u] for u in span_units]


def _closest_inside(bounds: Sequence[int], low: int, high: int, target: int) -> int | None:
    """The bound strictly inside ``(low, high)`` closest to ``target`` (the earlier one on a tie), or None."""
    lo, hi = bisect.bisect_right(bounds, low), bisect.bisect_left(bounds, high)
    inside = bounds[lo:hi]
    if not inside:
        return None
    return min(inside, key=lambda b: (abs(b - target), b))


def overlapping_windows(
    unit_bounds: Sequence[int], span_bounds: Sequence[int], k: int, budget: int
) -> list[Range]:
    """Overlapping context windows of span ``k`` as token ranges (0, 1 or 2 of them).

    Forward (when a span follows): starts inside the anchor, at the sentence boundary nearest its
    middle (the middle token when the anchor is one sentence), holds at most ``budget`` tokens and
    ends at a sentence boundary past the anchor's end when there is one. Backward (when a span
    precedes): the mirror image. Each window shares at least one token with the anchor and holds at
    least one token outside it.
    """
    a, b = span_bounds[k], span_bounds[k + 1]
    total = span_bounds[-1]
    windows: list[Range] = []
    if b < total:
        start = _closest_inside(unit_bounds, a, b, a + (b - a) // 2)
        start = a + (b - a) // 2 if start is None else start
        end = min(start + budget, total)
        snapped = bisect.bisect_right(unit_bounds, end) - 1  # last boundary <= end
        if unit_bounds[snapped] > b:
            end = unit_bounds[snapped]
        windows.append((start, end))
    if a > 0:
        end = _closest_inside(unit_bounds, a, b, a + (b - a + 1) // 2)
        end = a + (b - a + 1) // 2 if end is None else end
        start = max(0, end - budget)
        snapped = bisect.bisect_left(unit_bounds, start)  # first boundary >= start
        if snapped < len(unit_bounds) and unit_bounds[snapped] < a:
            start = unit_bounds[snapped]
        windows.append((start, end))
    return windows


def context_candidates(span_bounds: Sequence[int], overlaps: Sequence[int], k: int) -> dict[str, list[Range]]:
    """``{"nearby", "overlapping", "random"}`` candidate token ranges of span ``k`` of one document.

    ``overlaps`` is the document's flat ``[start, end] * 2`` per span (``-1`` for a missing window),
    as stored by :func:`tokenize_documents`.
    """
    n = len(span_bounds) - 1
    spans = [(int(span_bounds[j]), int(span_bounds[j + 1])) for j in range(n)]
    nearby = [spans[j] for j in (k - 1, k + 1) if 0 <= j < n]
    overlapping = []
    for w in range(2):
        start, end = int(overlaps[4 * k + 2 * w]), int(overlaps[4 * k + 2 * w + 1])
        if start >= 0:
            overlapping.append((start, end))
    return {
        "nearby": nearby,
        "overlapping": overlapping,
        "random": [s for j, s in enumerate(spans) if j != k],
    }


def _sentences(text: str) -> list[str]:
    out = []
    for paragraph in text.replace("\r\n", "\n").split("\n"):
        if paragraph.strip():
            out.extend(split_sentences(paragraph.strip()))
    return out


def _special_count(tokenizer: PreTrainedTokenizerBase) -> int:
    prefix, suffix = special_template(tokenizer)
    return len(prefix) + len(suffix)


def tokenize_documents(
    documents: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int = 128,
    num_proc: int | None = None,
    cache_file_name: str | None = None,
) -> datasets.Dataset:
    """Tokenise and segment every document: columns ``doc_id``, ``tokens``, ``span_bounds``, ``overlaps``, ``skip``.

    ``skip`` is ``""`` for a usable document, ``"empty"`` or ``"single_span"`` for a skipped one (kept
    as a row so that the skip counts survive multi-process ``map``; :func:`context_span_dataset` drops them).
    ``cache_file_name`` stores (and later reuses) the result for in-memory ``documents``; documents
    read from files are cached by ``datasets`` itself.
    """
    budget = max_seq_length - _special_count(tokenizer)
    if budget < 2:
        raise ConfigError(
            None, None, f"leaves {budget} tokens per span beside the special tokens", "max_seq_length"
        )

    def segment(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        sentences = [_sentences(text or "") for text in batch["text"]]
        flat = [s for doc in sentences for s in doc]
        ids = (
            tokenizer(flat, add_special_tokens=False, truncation=False, verbose=False,
                      return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            if flat else []
        )  # fmt: skip
        out: dict[str, list[Any]] = {
            "doc_id": [],
            "tokens": [],
            "span_bounds": [],
            "overlaps": [],
            "skip": [],
        }
        position = 0
        for doc_id, doc_sentences in zip(batch["id"], sentences):
            doc_ids = ids[position : position + len(doc_sentences)]
            position += len(doc_sentences)
            tokens, unit_bounds, span_bounds = segment_document(doc_ids, budget)
            spans = len(span_bounds) - 1
            skip = "empty" if not tokens else "single_span" if spans < 2 else ""
            overlaps: list[int] = []
            if not skip:
                for k in range(spans):
                    windows = overlapping_windows(unit_bounds, span_bounds, k, budget)
                    forward = next((w for w in windows if w[0] >= span_bounds[k]), (-1, -1))
                    backward = next((w for w in windows if w[0] < span_bounds[k]), (-1, -1))
                    overlaps.extend([*forward, *backward])
            out["doc_id"].append(str(doc_id))
            out["tokens"].append(tokens if not skip else [])
            out["span_bounds"].append(span_bounds if not skip else [0])
            out["overlaps"].append(overlaps)
            out["skip"].append(skip)
        return out

    features = datasets.Features(
        {
            "doc_id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("int32")),
            "span_bounds": datasets.Sequence(datasets.Value("int32")),
            "overlaps": datasets.Sequence(datasets.Value("int32")),
            "skip": datasets.Value("string"),
        }
    )
    return documents.map(
        segment,
        batched=True,
        batch_size=256,
        remove_columns=documents.column_names,
        features=features,
        num_proc=num_proc,
        cache_file_name=cache_file_name,
        desc="Segmenting documents into spans",
    )


class ContextSpanRows:
    """``datasets`` transform: rows ``{"row": [i, ...]}`` -> the i-th anchor span and its document.

    Each example is ``{"doc_id", "tokens", "span_bounds", "overlaps", "anchor"}``: the whole document
    (stored once in the Arrow table) and the anchor's span number; the collator cuts the anchor and
    draws its context span.
    """

    def __init__(self, documents: datasets.Dataset, doc_of_row: np.ndarray, span_of_row: np.ndarray) -> None:
        self.documents = documents.with_format("numpy")
        self.doc_of_row = doc_of_row
        self.span_of_row = span_of_row

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [int(i) for i in batch["row"]]
        out: dict[str, list[Any]] = {
            "doc_id": [],
            "tokens": [],
            "span_bounds": [],
            "overlaps": [],
            "anchor": [],
        }
        for row in rows:
            document = self.documents[int(self.doc_of_row[row])]
            out["doc_id"].append(str(document["doc_id"]))
            out["tokens"].append(np.asarray(document["tokens"], dtype=np.int64))
            out["span_bounds"].append(np.asarray(document["span_bounds"], dtype=np.int64))
            out["overlaps"].append(np.asarray(document["overlaps"], dtype=np.int64))
            out["anchor"].append(int(self.span_of_row[row]))
        return out


def context_span_dataset(
    documents: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int = 128,
    max_samples: int | None = None,
    num_proc: int | None = None,
    seed: int = 42,
    cache_file_name: str | None = None,
) -> tuple[datasets.Dataset, SpanStats]:
    """``(training set, stats)``: one example per anchor span of every usable document.

    ``max_samples`` keeps a seeded random subset of the anchors (in document order), so a short run
    still sees many documents.
    """
    segmented = tokenize_documents(documents, tokenizer, max_seq_length, num_proc, cache_file_name)
    skip = np.asarray(segmented["skip"], dtype=object)
    stats = SpanStats(
        documents=len(segmented),
        empty_documents=int((skip == "empty").sum()),
        single_span_documents=int((skip == "single_span").sum()),
    )
    usable = np.flatnonzero(skip == "")
    kept = segmented.select(usable) if len(usable) != len(segmented) else segmented
    spans = np.asarray([len(b) - 1 for b in kept["span_bounds"]], dtype=np.int64)
    stats.used_documents = len(kept)
    stats.spans = int(spans.sum())
    stats.tokens = int(sum(int(b[-1]) for b in kept["span_bounds"])) if len(kept) else 0
    doc_of_row = np.repeat(np.arange(len(kept), dtype=np.int64), spans)
    span_of_row = (
        np.concatenate([np.arange(n, dtype=np.int64) for n in spans]) if len(spans) else np.zeros(0, np.int64)
    )
    if max_samples is not None and max_samples < len(doc_of_row):
        keep = np.sort(np.random.default_rng(seed).choice(len(doc_of_row), size=max_samples, replace=False))
        doc_of_row, span_of_row = doc_of_row[keep], span_of_row[keep]
    stats.examples = len(doc_of_row)
    if stats.examples == 0:
        raise CorpusFormatError(
            None, None, f"no document is long enough for a context span ({stats.describe()}); "
            f"use longer documents or a smaller max_seq_length",
        )  # fmt: skip
    dataset = datasets.Dataset.from_dict({"row": np.arange(len(doc_of_row), dtype=np.int64)})
    dataset.set_transform(ContextSpanRows(kept, doc_of_row, span_of_row))
    return dataset, stats


#: Bump when the segmentation changes: cached embedded segmentations carry it in their names.
SPAN_FORMAT_VERSION = 1


def embedded_cache_file(tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> str | None:
    """Cache file of the embedded Wikipedia segmentation for this tokenizer and span length (None: no cache)."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    template = json.dumps(_special_count(tokenizer))
    key = hashlib.sha1(f"{type(tokenizer).__name__}|{vocab}|{template}".encode()).hexdigest()[:16]
    folder = cache_dir() / "cotmae_v2"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(
        folder / f"enwiki-v{CLEANER_VERSION}-spans-v{SPAN_FORMAT_VERSION}-{key}-{max_seq_length}.arrow"
    )


def build_cotmae_v2_dataset(tokenizer: PreTrainedTokenizerBase, data_args) -> datasets.Dataset:
    """``maeir.methods`` entry of CoT-MAE v2: anchor spans of ``train_file`` or of the embedded Wikipedia.

    ``max_seq_length`` is the span length with special tokens (default 128); ``max_train_samples``
    caps the number of anchors. The span statistics are logged (skipped documents are counted).
    """
    documents = load_documents(data_args.train_file, data_args.text_field)
    cache_file = None
    if data_args.train_file is None:  # the embedded articles: keep their segmentation between runs
        cache_file = embedded_cache_file(tokenizer, data_args.max_seq_length)
    dataset, stats = context_span_dataset(
        documents,
        tokenizer,
        max_seq_length=data_args.max_seq_length,
        max_samples=data_args.max_train_samples,
        num_proc=data_args.preprocessing_num_workers,
        cache_file_name=cache_file,
    )
    log = logger.warning if stats.skipped_documents else logger.info
    log("CoT-MAE v2 spans: %s", stats.describe())
    dataset.span_stats = stats  # for callers that want the counts (e.g. the run info)
    return dataset
