"""Hard negatives for training JSONL: BM25 negatives and negatives mined from a trained retriever.

The fine-tuning pipeline of docs/methods.md#cot-mae-v2: BM25 negatives -> hard negatives mined from the stage-1
retriever (top 200, every qrels positive excluded) -> ... Both sources go through
:func:`sample_negatives`, which never returns a judged-relevant document of the query.

Public API: :func:`sample_negatives`, :func:`bm25_negatives`, :func:`retriever_negatives`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from ..data.retrieval import RetrievalData
from .bm25 import BM25Retriever
from .search import retrieve

Run = dict[str, dict[str, float]]


def sample_negatives(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    depth: int = 200,
    num_negatives: int = 30,
    skip_top: int = 0,
    seed: int = 42,
    corpus: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, list[str]]:
    """Per query: ``num_negatives`` documents sampled from ranks ``skip_top + 1 .. depth`` of ``run``.

    Every document judged relevant (relevance > 0) for the query is excluded, and with ``corpus``
    also any document whose text equals a relevant one's (duplicates are false negatives). Documents
    judged 0 stay eligible (they are judged non-relevant). ``skip_top`` leaves out the very top
    ranks, where unjudged relevant documents are most likely (RocketQA-style denoising).
    """
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for qid, docs in run.items():
        positives = {d for d, r in qrels.get(qid, {}).items() if r > 0}
        positive_texts = set()
        if corpus is not None:
            positive_texts = {corpus[d]["text"].strip() for d in positives if d in corpus}
        ranked = [d for d, _ in sorted(docs.items(), key=lambda item: (-item[1], item[0]))]
        pool = [
            d for d in ranked[skip_top:depth]
            if d not in positives and (corpus is None or corpus.get(d, {}).get("text", "").strip() not in positive_texts)
        ]  # fmt: skip
        out[qid] = pool if len(pool) <= num_negatives else rng.sample(pool, num_negatives)
    return out


def bm25_negatives(
    data: RetrievalData, depth: int = 200, num_negatives: int = 30, seed: int = 42, **bm25_kwargs
) -> dict[str, list[str]]:
    """BM25 (``bm25s``) negatives for every query of ``data`` (see :func:`sample_negatives`)."""

    run = BM25Retriever(**bm25_kwargs).index(data.corpus).search(data.queries, k=depth)
    return sample_negatives(run, data.qrels, depth, num_negatives, seed=seed, corpus=data.corpus)


def retriever_negatives(
    model,
    tokenizer,
    data: RetrievalData,
    depth: int = 200,
    num_negatives: int = 30,
    skip_top: int = 0,
    seed: int = 42,
    batch_size: int = 64,
    index_factory: str = "Flat",
    show_progress: bool = True,
) -> dict[str, list[str]]:
    """Hard negatives from a trained bi-encoder's top ``depth`` (dense, sparse or hybrid)."""

    run = retrieve(model, tokenizer, data, k=depth, batch_size=batch_size, index_factory=index_factory,
                   show_progress=show_progress)["run"]  # fmt: skip
    return sample_negatives(run, data.qrels, depth, num_negatives, skip_top, seed, corpus=data.corpus)
