"""End-to-end retrieval with a bi-encoder: encode the corpus and the queries, index, search, fuse.

Public API: :func:`retrieve(model, tokenizer, data, k=1000, ...) -> dict` with

- ``"run"``: the model's own run (dense, sparse, or hybrid for a hybrid model);
- ``"runs"``: every view's run (a hybrid model also gives ``"dense"`` and ``"sparse"``);
- ``"timings"``: seconds spent encoding the corpus and the queries and searching;
- ``"corpus_embeddings"`` / ``"query_embeddings"``: the :class:`~maeir.retrieval.encode.Embeddings`.
"""

from __future__ import annotations

import time

from ..data.retrieval import RetrievalData
from .dense_index import dense_search
from .encode import Embeddings, encode_corpus, encode_queries
from .fusion import hybrid_rescore
from .sparse_index import sparse_search


def retrieve(
    model,
    tokenizer,
    data: RetrievalData,
    k: int = 1000,
    batch_size: int = 64,
    dtype: str = "auto",
    index_factory: str = "Flat",
    search_parameters: str | None = None,
    corpus_embeddings: Embeddings | None = None,
    show_progress: bool = True,
) -> dict:
    """Encode, index and search ``data`` with ``model`` (see the module docstring)."""
    timings = {}
    start = time.perf_counter()
    if corpus_embeddings is None:
        corpus_embeddings = encode_corpus(
            model, tokenizer, data.corpus, batch_size=batch_size, dtype=dtype, show_progress=show_progress
        )
    timings["encode_corpus_s"] = time.perf_counter() - start
    start = time.perf_counter()
    queries = encode_queries(
        model, tokenizer, data.queries, batch_size=batch_size, dtype=dtype, show_progress=show_progress
    )
    timings["encode_queries_s"] = time.perf_counter() - start
    runs = {}
    start = time.perf_counter()
    if corpus_embeddings.dense is not None:
        runs["dense"] = dense_search(
            corpus_embeddings.ids, corpus_embeddings.dense, queries.ids, queries.dense, k=k,
            index_factory=index_factory, search_parameters=search_parameters,
        )  # fmt: skip
    timings["dense_search_s"] = time.perf_counter() - start
    start = time.perf_counter()
    if corpus_embeddings.sparse is not None:
        device = next(model.parameters()).device
        runs["sparse"] = sparse_search(
            corpus_embeddings.ids, corpus_embeddings.sparse, queries.ids, queries.sparse, k=k, device=device
        )
    timings["sparse_search_s"] = time.perf_counter() - start
    if "dense" in runs and "sparse" in runs:
        start = time.perf_counter()
        runs["hybrid"] = hybrid_rescore(
            runs["dense"], runs["sparse"], queries, corpus_embeddings,
            dense_weight=model.config.dense_weight, sparse_weight=model.config.sparse_weight, k=k,
        )  # fmt: skip
        timings["fusion_s"] = time.perf_counter() - start
    main = {"dense": "dense", "sparse": "sparse", "hybrid": "hybrid"}[model.config.representation]
    return {
        "run": runs[main],
        "runs": runs,
        "timings": timings,
        "corpus_embeddings": corpus_embeddings,
        "query_embeddings": queries,
    }
